import { crc32c } from '../format/crc.js';
import { normOf, sumOfSquares } from '../format/embedding.js';
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
  /** The embedding's bytes (a view of `embedding`): what the writer puts in vectors.dat. */
  embeddingBytes: Uint8Array;
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

/** A query embedding, checked, in an array of its own (it may be sent to scan workers whole). */
export function validateEmbedding(e: unknown, dimension: number, field = 'embedding'): Float32Array {
  const out = copyEmbedding(e, dimension, field, false);
  finiteSumOfSquares(out, field);
  return out;
}

/**
 * A put's embedding is copied into a slab of this size shared with the puts around it, as a view
 * of it: the copy lives only until its batch has written it to vectors.dat. A buffer of its own
 * for each copy took a tenth of a put's main-thread time, and more in the collector (finalizing
 * 3 KB buffers by the thousand). A slab is freed with its last copy; the record table keeps no
 * embeddings, so no slab outlives the batches of its puts. (When the table held them, slabs carved
 * the same way stayed alive for one copy each and doubled the resident memory.)
 *
 * The size stays below glibc's mmap threshold (128 KiB), so a slab comes from memory the heap
 * already has; a larger one came as fresh pages from the kernel, each faulted in on first write
 * (a copy cost 0.65 us in 1 MiB slabs, 0.39 in 120 KiB ones, 0.83 in buffers of their own;
 * medians of 9 runs of 20,000 copies of 768 floats).
 */
const SLAB_BYTES = 120 << 10;
let slab = new ArrayBuffer(0);
let slabUsed = 0;

/** Room for `dimension` floats in the current slab, or in a fresh one. */
function slabView(dimension: number): Float32Array {
  const bytes = dimension * 4;
  if (slabUsed + bytes > slab.byteLength) {
    // Uninitialized: every copy overwrites its whole view before anything reads it.
    slab = Buffer.allocUnsafeSlow(Math.max(SLAB_BYTES, bytes)).buffer;
    slabUsed = 0;
  }
  const out = new Float32Array(slab, slabUsed, dimension);
  slabUsed += bytes;
  return out;
}

let contentSlab = Buffer.alloc(0);
let contentUsed = 0;

/**
 * Content this short (in UTF-16 units) is encoded into a content slab, as embeddings are copied
 * (a view of it; 0.3 us against 0.5 for a buffer of its own from Node's pool, 50..2000 bytes of
 * ASCII); longer content gets a buffer of its own.
 */
const SLAB_CONTENT_UNITS = 4096;

/** The UTF-8 bytes of a well-formed string. */
function contentBytes(text: string): Buffer {
  if (text.length > SLAB_CONTENT_UNITS) return Buffer.from(text, 'utf8');
  // Room for the worst case, three bytes per UTF-16 unit: the encoding never stops short.
  if (contentUsed + text.length * 3 > contentSlab.length) {
    contentSlab = Buffer.allocUnsafeSlow(SLAB_BYTES);
    contentUsed = 0;
  }
  const at = contentUsed;
  const n = contentSlab.write(text, at, 'utf8');
  contentUsed += n;
  return contentSlab.subarray(at, at + n);
}

/**
 * A copy of `e` (the caller may change its array afterwards) of exactly `dimension` numbers, in a
 * slab (a put's) or in an array of its own.
 */
function copyEmbedding(e: unknown, dimension: number, field: string, inSlab: boolean): Float32Array {
  let length: number;
  if (e instanceof Float32Array || Array.isArray(e)) length = e.length;
  else throw invalid(field, 'must be a Float32Array or an array of numbers');
  // Checked before copying, so a wrong length costs no slab space.
  if (length !== dimension)
    throw invalid(field, `has ${length} values; the store's dimension is ${dimension}`);
  const out = inSlab ? slabView(dimension) : new Float32Array(dimension);
  if (e instanceof Float32Array) {
    out.set(e);
  } else {
    const a = e as unknown[];
    for (let i = 0; i < dimension; i++) {
      const v = a[i];
      if (typeof v !== 'number') throw invalid(`${field}[${i}]`, 'must be a number');
      out[i] = v;
    }
  }
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

/** A metadata number: finite, or the default when undefined (range checks are the caller's). */
function num(v: unknown, field: string, dflt: number): number {
  if (v === undefined) return dflt;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw invalid(field, 'must be a finite number');
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
  const embedding = copyEmbedding(rec.embedding, dimension, 'embedding', true);
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
    content = contentBytes(rec.content);
    if (content.length > maxContentBytes) {
      throw invalid('content', `is ${content.length} bytes of UTF-8; maxContentBytes is ${maxContentBytes}`);
    }
    kind = ContentKind.Present;
  }
  const confidence = num(rec.confidence, 'confidence', 1);
  if (confidence < 0 || confidence > 1) throw invalid('confidence', 'must be in [0, 1]');
  const activation = num(rec.activation, 'activation', 0);
  const decayRate = num(rec.decayRate, 'decayRate', 0);
  if (decayRate < 0) throw invalid('decayRate', 'must be >= 0');
  const createdAt = num(rec.createdAt, 'createdAt', now);
  const lastAccess = num(rec.lastAccess, 'lastAccess', createdAt);
  const accessCount = num(rec.accessCount, 'accessCount', 0);
  if (!Number.isSafeInteger(accessCount) || accessCount < 0)
    throw invalid('accessCount', 'must be an integer >= 0');
  const embeddingBytes = new Uint8Array(embedding.buffer, embedding.byteOffset, embedding.byteLength);
  return {
    id: rec.id,
    space,
    idBytes,
    embedding,
    embeddingBytes,
    norm,
    embCrc: crc32c(embeddingBytes),
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
