import { crc32c } from '../format/crc.js';
import type { MemoryMetadata } from '../types.js';
import { ContentKind } from '../wal/entries.js';
import { EmbeddingArena } from './arena.js';

/** Scan workers recall may run (one scratch lane each in the embedding arena). */
export const SCAN_LANES = 2;

export const CHUNK_SHIFT = 13;
export const CHUNK_SLOTS = 1 << CHUNK_SHIFT;
export const CHUNK_MASK = CHUNK_SLOTS - 1;
export const DIRTY_HEADER = 1;
export const DIRTY_FULL = 2;

/**
 * One chunk of the in-memory record table: dense typed arrays, so recall scans contiguous memory
 * and the table grows a chunk at a time (no 2x copy when it grows).
 */
/** A typed array over shared memory, so scan workers can read it where it lies. */
function shared<T>(Ctor: new (b: SharedArrayBuffer) => T, bytesPerElement: number): T {
  return new Ctor(new SharedArrayBuffer(CHUNK_SLOTS * bytesPerElement));
}

export class Chunk {
  readonly emb: Float32Array;
  /** Byte offset of `emb` in the embedding arena's memory; undefined when outside it. */
  readonly embArenaOffset: number | undefined;
  readonly norm: Float32Array = shared(Float32Array, 4);
  /** CRC32C of each embedding, kept so a header-only checkpoint never rehashes the vector. */
  readonly embCrc = new Uint32Array(CHUNK_SLOTS);
  readonly kind: Uint8Array = shared(Uint8Array, 1);
  /** The memory space's number (see SpaceRegistry). */
  readonly space: Uint32Array = shared(Uint32Array, 4);
  readonly idLen = new Uint8Array(CHUNK_SLOTS);
  readonly seg = new Uint32Array(CHUNK_SLOTS);
  readonly clen = new Uint32Array(CHUNK_SLOTS);
  readonly off = new Float64Array(CHUNK_SLOTS);
  /** LSN of the put that wrote the content: the generation compare-and-swap checks. */
  readonly clsn = new Float64Array(CHUNK_SLOTS);
  // The metadata numbers are shared too: a scan worker evaluates recall filters on them.
  readonly confidence: Float64Array = shared(Float64Array, 8);
  readonly activation: Float64Array = shared(Float64Array, 8);
  readonly decayRate: Float64Array = shared(Float64Array, 8);
  readonly createdAt: Float64Array = shared(Float64Array, 8);
  readonly lastAccess: Float64Array = shared(Float64Array, 8);
  readonly accessCount: Float64Array = shared(Float64Array, 8);
  readonly ids: (string | undefined)[] = new Array<string | undefined>(CHUNK_SLOTS).fill(undefined);
  /**
   * What the next checkpoint must write: 0 nothing, 1 the header, 2 the whole slot. A flag array,
   * not a Set: a Set of half a million slots rehashes in one long synchronous step.
   */
  dirty = new Uint8Array(CHUNK_SLOTS);

  constructor(dim: number, arena: EmbeddingArena | undefined) {
    // Shared, so that open can have a worker thread check the vectors where they lie, and recall
    // scan them.
    const block = arena
      ? arena.allocate(CHUNK_SLOTS * dim * 4)
      : { emb: new Float32Array(new SharedArrayBuffer(CHUNK_SLOTS * dim * 4)), arenaOffset: undefined };
    this.emb = block.emb;
    this.embArenaOffset = block.arenaOffset;
  }
}

export interface SlotValue extends MemoryMetadata {
  id: string;
  space: number;
  idLen: number;
  kind: ContentKind;
  seg: number;
  off: number;
  clen: number;
  clsn: number;
  embedding: Float32Array;
}

export class RecordTable {
  readonly dim: number;
  readonly chunks: Chunk[] = [];
  /** Where chunk embeddings are allocated (see EmbeddingArena). */
  readonly arena: EmbeddingArena;

  constructor(dim: number) {
    this.dim = dim;
    this.arena = new EmbeddingArena(dim, SCAN_LANES, CHUNK_SLOTS);
  }

  get capacity(): number {
    return this.chunks.length * CHUNK_SLOTS;
  }

  ensure(slot: number): void {
    while (slot >= this.capacity) this.chunks.push(new Chunk(this.dim, this.arena));
  }

  chunk(slot: number): Chunk {
    const c = this.chunks[slot >>> CHUNK_SHIFT];
    if (!c) throw new RangeError(`slot ${slot} beyond table capacity ${this.capacity}`);
    return c;
  }

  markFull(slot: number): void {
    this.chunk(slot).dirty[slot & CHUNK_MASK] = DIRTY_FULL;
  }

  markHeader(slot: number): void {
    const d = this.chunk(slot).dirty;
    const i = slot & CHUNK_MASK;
    if (d[i] === 0) d[i] = DIRTY_HEADER;
  }

  /** Takes the dirty flags of every chunk and clears them (for a checkpoint). */
  takeDirty(): Uint8Array[] {
    return this.chunks.map((c) => {
      const taken = c.dirty;
      c.dirty = new Uint8Array(CHUNK_SLOTS);
      return taken;
    });
  }

  /** Puts flags taken by a failed checkpoint back, keeping the stronger of old and new. */
  restoreDirty(taken: Uint8Array[]): void {
    taken.forEach((t, ci) => {
      const d = this.chunks[ci]!.dirty;
      for (let i = 0; i < CHUNK_SLOTS; i++) if (t[i]! > d[i]!) d[i] = t[i]!;
    });
  }

  isUsed(slot: number): boolean {
    const c = this.chunks[slot >>> CHUNK_SHIFT];
    return c !== undefined && c.kind[slot & CHUNK_MASK] !== ContentKind.Free;
  }

  /** Stores `v` in `slot`, computing the embedding's norm and CRC32C. */
  set(slot: number, v: SlotValue): void {
    this.ensure(slot);
    const c = this.chunk(slot);
    const i = slot & CHUNK_MASK;
    c.ids[i] = v.id;
    c.space[i] = v.space;
    c.idLen[i] = v.idLen;
    c.kind[i] = v.kind;
    c.seg[i] = v.seg;
    c.off[i] = v.off;
    c.clen[i] = v.clen;
    c.clsn[i] = v.clsn;
    c.confidence[i] = v.confidence;
    c.activation[i] = v.activation;
    c.decayRate[i] = v.decayRate;
    c.createdAt[i] = v.createdAt;
    c.lastAccess[i] = v.lastAccess;
    c.accessCount[i] = v.accessCount;
    const base = i * this.dim;
    const e = v.embedding;
    c.emb.set(e, base);
    // Hoisted: `v` arrives in several object shapes, and reading v.embedding inside the loop
    // made this the hottest line of put.
    const dim = this.dim;
    let s = 0;
    for (let d = 0; d < dim; d++) {
      const x = e[d]!;
      s += x * x;
    }
    c.norm[i] = Math.sqrt(s);
    c.embCrc[i] = crc32c(new Uint8Array(e.buffer, e.byteOffset, e.byteLength));
  }

  clear(slot: number): void {
    const c = this.chunk(slot);
    const i = slot & CHUNK_MASK;
    c.ids[i] = undefined;
    c.space[i] = 0;
    c.kind[i] = ContentKind.Free;
    c.seg[i] = 0;
    c.clen[i] = 0;
    c.off[i] = 0;
    c.clsn[i] = 0;
    c.norm[i] = 0;
    c.embCrc[i] = 0;
  }

  id(slot: number): string | undefined {
    return this.chunks[slot >>> CHUNK_SHIFT]?.ids[slot & CHUNK_MASK];
  }

  /**
   * The slot's values. The embedding is a copy unless `copy` is false, in which case it is a view
   * into the table that must not escape the engine.
   */
  get(slot: number, copy = true): SlotValue {
    const c = this.chunk(slot);
    const i = slot & CHUNK_MASK;
    const base = i * this.dim;
    return {
      id: c.ids[i] ?? '',
      space: c.space[i]!,
      idLen: c.idLen[i]!,
      kind: c.kind[i] as ContentKind,
      seg: c.seg[i]!,
      off: c.off[i]!,
      clen: c.clen[i]!,
      clsn: c.clsn[i]!,
      confidence: c.confidence[i]!,
      activation: c.activation[i]!,
      decayRate: c.decayRate[i]!,
      createdAt: c.createdAt[i]!,
      lastAccess: c.lastAccess[i]!,
      accessCount: c.accessCount[i]!,
      embedding: copy ? copyOut(c.emb, base, this.dim) : c.emb.subarray(base, base + this.dim),
    };
  }
}

function copyOut(src: Float32Array, base: number, dim: number): Float32Array {
  const out = new Float32Array(dim);
  out.set(src.subarray(base, base + dim));
  return out;
}
