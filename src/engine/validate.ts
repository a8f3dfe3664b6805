import { embeddingCrc, normOf, sumOfSquares } from '../format/embedding.js';
import { invalid } from '../errors.js';
import type { MemoryMetadata, MemoryRecord } from '../types.js';
import { DEFAULT_SPACE } from '../records/spaces.js';
import { ContentKind } from '../wal/entries.js';

export const MAX_ID_BYTES = 255;
export const MAX_SPACE_BYTES = 64;
export const MAX_CONTENT_LIMIT = 0xffffffff;

/** A record checked and converted to what the engine stores. */
export interface NormalizedRecord extends MemoryMetadata {
  id: string;
  space: string;
  idBytes: Buffer;
  embedding: Float32Array;
  /** The embedding's L2 norm (as a float32) and CRC32C, computed once here. */
  norm: number;
  embCrc: number;
  kind: ContentKind;
  content: Buffer | null;
}

/** Checks an id used for lookup only; no allocation on the read path. */
export function checkId(id: unknown, field = 'id'): void {
  if (typeof id !== 'string') throw invalid(field, 'must be a string');
  if (id.length === 0) throw invalid(field, 'must not be empty');
  // UTF-8 takes at most 3 bytes per UTF-16 unit, so short ids need no byte count.
  if (id.length * 3 > MAX_ID_BYTES) {
    const n = Buffer.byteLength(id, 'utf8');
    if (n > MAX_ID_BYTES) throw invalid(field, `is ${n} bytes of UTF-8; at most ${MAX_ID_BYTES}`);
  }
  if (!id.isWellFormed()) throw invalid(field, 'must be well-formed UTF-16 (no lone surrogates)');
}

/** A memory space's name: 1..64 bytes of well-formed UTF-8; undefined is the default space. */
export function checkSpace(space: unknown, field = 'space'): string {
  if (space === undefined) return DEFAULT_SPACE;
  if (typeof space !== 'string') throw invalid(field, 'must be a string');
  if (space.length === 0) throw invalid(field, 'must not be empty');
  if (!space.isWellFormed()) throw invalid(field, 'must be well-formed UTF-16 (no lone surrogates)');
  if (space.length * 3 > MAX_SPACE_BYTES) {
    const n = Buffer.byteLength(space, 'utf8');
    if (n > MAX_SPACE_BYTES) throw invalid(field, `is ${n} bytes of UTF-8; at most ${MAX_SPACE_BYTES}`);
  }
  return space;
}

/** The `space` of an options object (get, has, delete, recall), checked; the default when absent. */
export function spaceOption(options: unknown): string {
  if (options === undefined) return DEFAULT_SPACE;
  if (typeof options !== 'object' || options === null) throw invalid('options', 'must be an object');
  return checkSpace((options as { space?: unknown }).space);
}

export function validateId(id: unknown, field = 'id'): Buffer {
  checkId(id, field);
  return Buffer.from(id as string, 'utf8');
}

export function validateEmbedding(e: unknown, dimension: number, field = 'embedding'): Float32Array {
  const out = copyEmbedding(e, dimension, field);
  finiteSumOfSquares(out, field);
  return out;
}

/** A copy of `e` (the caller may change its array afterwards) of exactly `dimension` numbers. */
function copyEmbedding(e: unknown, dimension: number, field: string): Float32Array {
  let out: Float32Array;
  if (e instanceof Float32Array) {
    // Its own allocation: copies carved from shared 1 MiB slabs were cheaper on put, but freed
    // slabs stayed in glibc's heap and doubled the process's resident memory (memory-ceiling test).
    out = e.slice();
  } else if (Array.isArray(e)) {
    out = new Float32Array(e.length);
    for (let i = 0; i < e.length; i++) {
      const v: unknown = e[i];
      if (typeof v !== 'number') throw invalid(`${field}[${i}]`, 'must be a number');
      out[i] = v;
    }
  } else {
    throw invalid(field, 'must be a Float32Array or an array of numbers');
  }
  if (out.length !== dimension)
    throw invalid(field, `has ${out.length} values; the store's dimension is ${dimension}`);
  return out;
}

/**
 * The sum of the squares of `e`, which also proves every value finite: float32 squares summed in
 * float64 cannot overflow, so the sum is finite exactly when no value is NaN or infinite. One pass
 * gives the check and the norm; the search for the offending index runs only when one is wrong.
 */
function finiteSumOfSquares(e: Float32Array, field: string): number {
  const s = sumOfSquares(e);
  if (!Number.isFinite(s)) {
    for (let i = 0; i < e.length; i++) {
      if (!Number.isFinite(e[i])) throw invalid(`${field}[${i}]`, 'must be finite (no NaN or Infinity)');
    }
  }
  return s;
}

function num(v: unknown, field: string, dflt: number, check: (x: number) => string | undefined): number {
  if (v === undefined) return dflt;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw invalid(field, 'must be a finite number');
  const why = check(v);
  if (why) throw invalid(field, why);
  return v;
}

export function normalizeRecord(
  r: unknown,
  dimension: number,
  maxContentBytes: number,
  now: number,
): NormalizedRecord {
  if (typeof r !== 'object' || r === null || Array.isArray(r)) throw invalid('record', 'must be an object');
  const rec = r as MemoryRecord;
  const idBytes = validateId(rec.id);
  const space = checkSpace(rec.space);
  const embedding = copyEmbedding(rec.embedding, dimension, 'embedding');
  const norm = normOf(finiteSumOfSquares(embedding, 'embedding'));
  let kind: ContentKind;
  let content: Buffer | null = null;
  if (rec.content === undefined || rec.content === null) {
    kind = ContentKind.Absent;
  } else if (typeof rec.content !== 'string') {
    throw invalid('content', 'must be a string, null or undefined');
  } else if (rec.content.length === 0) {
    kind = ContentKind.Empty;
  } else {
    if (!rec.content.isWellFormed())
      throw invalid('content', 'must be well-formed UTF-16 (no lone surrogates)');
    // Cheap bound first: UTF-8 is at most 3 bytes per UTF-16 unit, and at least 1.
    if (rec.content.length > maxContentBytes) {
      throw invalid('content', `is over maxContentBytes (${maxContentBytes})`);
    }
    content = Buffer.from(rec.content, 'utf8');
    if (content.length > maxContentBytes) {
      throw invalid('content', `is ${content.length} bytes of UTF-8; maxContentBytes is ${maxContentBytes}`);
    }
    kind = ContentKind.Present;
  }
  const confidence = num(rec.confidence, 'confidence', 1, (x) =>
    x < 0 || x > 1 ? 'must be in [0, 1]' : undefined,
  );
  const activation = num(rec.activation, 'activation', 0, () => undefined);
  const decayRate = num(rec.decayRate, 'decayRate', 0, (x) => (x < 0 ? 'must be >= 0' : undefined));
  const createdAt = num(rec.createdAt, 'createdAt', now, () => undefined);
  const lastAccess = num(rec.lastAccess, 'lastAccess', createdAt, () => undefined);
  const accessCount = num(rec.accessCount, 'accessCount', 0, (x) =>
    Number.isSafeInteger(x) && x >= 0 ? undefined : 'must be an integer >= 0',
  );
  return {
    id: rec.id,
    space,
    idBytes,
    embedding,
    norm,
    embCrc: embeddingCrc(embedding),
    kind,
    content,
    confidence,
    activation,
    decayRate,
    createdAt,
    lastAccess,
    accessCount,
  };
}
