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
  /** The embedding's bytes (a copy, in a slab): what the writer puts in vectors.dat. */
  embeddingBytes: Uint8Array;
  /** The slabs holding the copies (content's when it is in one), until `releaseCopies`. */
  slab: Slab | null;
  contentSlab: Slab | null;
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
  checkLength(e, dimension, field);
  const out = new Float32Array(dimension);
  copyInto(e as Float32Array | unknown[], out, 0, field);
  finiteSumOfSquares(out, field);
  return out;
}

/**
 * A put's embedding is copied into a slab of this size shared with the puts around it (the writer
 * gets a view of its bytes): the copy lives only until its batch has written it to vectors.dat. A buffer of its own
 * for each copy took a tenth of a put's main-thread time, and more in the collector (finalizing
 * 3 KB buffers by the thousand). The record table keeps no embeddings, so no slab outlives the
 * batches of its puts. (When the table held them, slabs carved the same way stayed alive for one
 * copy each and doubled the resident memory.)
 *
 * The size stays below glibc's mmap threshold (128 KiB), so a slab comes from memory the heap
 * already has; a larger one came as fresh pages from the kernel, each faulted in on first write
 * (a copy cost 0.65 us in 1 MiB slabs, 0.39 in 120 KiB ones, 0.83 in buffers of their own;
 * medians of 9 runs of 20,000 copies of 768 floats).
 */
const SLAB_BYTES = 120 << 10;

/** A slab, and how many copies in it are still to be written. */
export interface Slab {
  readonly buf: ArrayBuffer;
  /** Copies handed to the writer and not yet released (see `releaseCopies`). */
  live: number;
  /** No longer the slab copies go to. */
  retired: boolean;
}

/**
 * Slabs whose copies were all written, kept for the next ones (both kinds: they are one size).
 * Freed slabs went back to the allocator, which gave the heap's top back to the kernel, so the
 * next slabs came as fresh pages, each faulted in by the copy that first wrote it: a third of a
 * bulk load's put time went to those faults (~12 us a 4 KiB page on this VM). At most KEEP_SLABS
 * (7.5 MiB) are kept; a slab with a copy never released (a put refused after its copy, a batch
 * that failed in an unexpected way) is simply left to the collector.
 */
const KEEP_SLABS = 64;
const freeSlabs: ArrayBuffer[] = [];

function newSlab(bytes: number): Slab {
  const buf = (bytes === SLAB_BYTES ? freeSlabs.pop() : undefined) ?? Buffer.allocUnsafeSlow(bytes).buffer;
  return { buf, live: 0, retired: false };
}

function retire(s: Slab): void {
  s.retired = true;
  if (s.live === 0) recycle(s);
}

function recycle(s: Slab): void {
  if (s.buf.byteLength === SLAB_BYTES && freeSlabs.length < KEEP_SLABS) freeSlabs.push(s.buf);
}

/**
 * The writer is done with a record's copies: every write of its batch has settled, landed or not.
 * Only then may a slab be reused: a copy overwritten under a write in flight would put another
 * memory's bytes on the disk. Idempotent.
 */
export function releaseCopies(r: NormalizedRecord): void {
  release(r.slab);
  release(r.contentSlab);
  r.slab = null;
  r.contentSlab = null;
}

function release(s: Slab | null): void {
  if (s !== null && --s.live === 0 && s.retired) recycle(s);
}

/** The current slab, as floats; `slabUsed` of them are taken. */
let vecSlab: Slab = { buf: new ArrayBuffer(0), live: 0, retired: false };
let slab = new Float32Array(0);
let slabUsed = 0;

let contentSlabOf: Slab = { buf: new ArrayBuffer(0), live: 0, retired: false };
let contentSlab = Buffer.alloc(0);
let contentUsed = 0;

/**
 * Content this short (in UTF-16 units) is encoded into a content slab of SLAB_BYTES, as embeddings
 * are copied (a view of it: 0.3 us against 0.5 for a buffer of its own from Node's pool, for
 * 50..2000 bytes of ASCII); longer content gets a buffer of its own.
 */
const SLAB_CONTENT_UNITS = 4096;

/** The UTF-8 bytes of a well-formed string. */
function contentBytes(text: string): Buffer {
  if (text.length > SLAB_CONTENT_UNITS) return Buffer.from(text, 'utf8');
  // Room for the worst case, three bytes per UTF-16 unit: the encoding never stops short.
  if (contentUsed + text.length * 3 > contentSlab.length) {
    retire(contentSlabOf);
    contentSlabOf = newSlab(SLAB_BYTES);
    contentSlab = Buffer.from(contentSlabOf.buf);
    contentUsed = 0;
  }
  const at = contentUsed;
  const n = contentSlab.write(text, at, 'utf8');
  contentUsed += n;
  return contentSlab.subarray(at, at + n);
}

/** Checks that `e` is a Float32Array or an array of exactly `dimension` elements. */
function checkLength(e: unknown, dimension: number, field: string): void {
  let length: number;
  if (e instanceof Float32Array || Array.isArray(e)) length = e.length;
  else throw invalid(field, 'must be a Float32Array or an array of numbers');
  if (length !== dimension)
    throw invalid(field, `has ${length} values; the store's dimension is ${dimension}`);
}

/** Copies `e` (checked by `checkLength`) into `out` from `at`: numbers only. */
function copyInto(e: Float32Array | unknown[], out: Float32Array, at: number, field: string): void {
  if (e instanceof Float32Array) {
    out.set(e, at);
    return;
  }
  for (let i = 0; i < e.length; i++) {
    const v = e[i];
    if (typeof v !== 'number') throw invalid(`${field}[${i}]`, 'must be a number');
    out[at + i] = v;
  }
}

/**
 * Copies a put's embedding into the current slab (a fresh one if it lacks room) and returns where
 * it starts there, in floats: the caller may change its array as soon as put() returns. Indexing
 * the slab as a whole, where a view of each copy was made to read it, leaves one view per put (its
 * bytes, for the writer).
 */
function copyToSlab(e: unknown, dimension: number, field: string): number {
  // Checked before copying, so a wrong length takes no slab space.
  checkLength(e, dimension, field);
  if (slabUsed + dimension > slab.length) {
    // Uninitialized: every copy overwrites all of its floats before anything reads them.
    retire(vecSlab);
    vecSlab = newSlab(Math.max(SLAB_BYTES, dimension * 4));
    slab = new Float32Array(vecSlab.buf);
    slabUsed = 0;
  }
  const at = slabUsed;
  copyInto(e as Float32Array | unknown[], slab, at, field);
  slabUsed += dimension;
  return at;
}

/**
 * The sum of the squares of `e`, which also proves every value finite: float32 squares summed in
 * float64 cannot overflow, so the sum is finite exactly when no value is NaN or infinite. One pass
 * gives the check and the norm; the search for the offending index runs only when one is wrong.
 */
function finiteSumOfSquares(e: Float32Array, field: string, from = 0, to = e.length): number {
  const s = sumOfSquares(e, from, to);
  if (!Number.isFinite(s)) {
    for (let i = from; i < to; i++) {
      if (!Number.isFinite(e[i]))
        throw invalid(`${field}[${i - from}]`, 'must be finite (no NaN or Infinity)');
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
  const at = copyToSlab(rec.embedding, dimension, 'embedding');
  const floats = slab; // the one the copy went to (copyToSlab may have begun a new one)
  const inSlab = vecSlab;
  const norm = normOf(finiteSumOfSquares(floats, 'embedding', at, at + dimension));
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
  const embeddingBytes = new Uint8Array(floats.buffer, at * 4, dimension * 4);
  // Counted once nothing can refuse the record: a refused copy is never released.
  inSlab.live++;
  const contentIn = content !== null && content.buffer === contentSlabOf.buf ? contentSlabOf : null;
  if (contentIn) contentIn.live++;
  return {
    id: rec.id,
    space,
    idBytes,
    embeddingBytes,
    norm,
    embCrc: crc32c(embeddingBytes),
    slab: inSlab,
    contentSlab: contentIn,
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
