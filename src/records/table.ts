import { crc32c } from '../format/crc.js';
import type { MemoryMetadata } from '../types.js';
import { ContentKind } from '../wal/entries.js';
import { corruption } from '../errors.js';

/** Scan workers recall may run. */
export const SCAN_LANES = 2;

export const CHUNK_SHIFT = 13;
export const CHUNK_SLOTS = 1 << CHUNK_SHIFT;
export const CHUNK_MASK = CHUNK_SLOTS - 1;
export const DIRTY_HEADER = 1;
export const DIRTY_FULL = 2;

/** A typed array over shared memory, so scan workers can read it where it lies. */
function shared<T>(Ctor: new (b: SharedArrayBuffer) => T, bytesPerElement: number): T {
  return new Ctor(new SharedArrayBuffer(CHUNK_SLOTS * bytesPerElement));
}

/**
 * One chunk of the in-memory record table: dense typed arrays of everything but the embeddings,
 * so the table grows a chunk at a time (no 2x copy when it grows). The embeddings stay in
 * vectors.dat and are read through the page cache (see VectorSource): at 768 dimensions they are
 * 3 KB of the ~3.4 KB a memory takes, and a process holding them could never serve a store larger
 * than its RAM.
 */
export class Chunk {
  readonly norm: Float32Array = shared(Float32Array, 4);
  /** CRC32C of each embedding: what a read of vectors.dat is checked against. */
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
}

/**
 * Where the embeddings are: vectors.dat, at the slot's number. Reads are synchronous preads (a
 * page-cached 3 KB read costs about 2 us; a thread-pool hop costs far more).
 */
export interface VectorSource {
  readonly path: string;
  /** Reads `count` vectors from `first` into `into` (bytes past the file's end read as zero). */
  readVectorsSync(first: number, count: number, into: Uint8Array): number;
  /** The same through the I/O pool: the calling thread never waits for the disk. */
  readVectors(first: number, count: number, into: Uint8Array): Promise<number>;
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
  /** CRC32C of the embedding's bytes, as vectors.dat holds them. */
  embCrc: number;
  /** The embedding's L2 norm (recall's cosine divides by it). */
  norm: number;
}

export class RecordTable {
  readonly dim: number;
  readonly chunks: Chunk[] = [];
  #vectors: VectorSource | undefined;
  /** One vector's bytes, reused by every single-vector read (reads are synchronous). */
  readonly #one: Buffer;
  readonly #oneF32: Float32Array;

  constructor(dim: number) {
    this.dim = dim;
    this.#one = Buffer.alloc(dim * 4);
    this.#oneF32 = new Float32Array(this.#one.buffer, this.#one.byteOffset, dim);
  }

  /** Where embeddings are read from (vectors.dat, once the store's files are open). */
  attachVectors(source: VectorSource): void {
    this.#vectors = source;
  }

  get vectors(): VectorSource {
    if (!this.#vectors) throw new Error('record table has no vector file attached');
    return this.#vectors;
  }

  get capacity(): number {
    return this.chunks.length * CHUNK_SLOTS;
  }

  ensure(slot: number): void {
    while (slot >= this.capacity) this.chunks.push(new Chunk());
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

  /** Stores `v` in `slot` (its embedding is already in vectors.dat, or about to be). */
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
    c.norm[i] = v.norm;
    c.embCrc[i] = v.embCrc;
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

  /** The slot's values, without the embedding (see `embedding`). */
  get(slot: number): SlotValue {
    const c = this.chunk(slot);
    const i = slot & CHUNK_MASK;
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
      norm: c.norm[i]!,
      embCrc: c.embCrc[i]!,
    };
  }

  /**
   * The slot's embedding, read from vectors.dat and checked against the CRC32C the table holds for
   * it: a mismatch is `CORRUPTION_DETECTED` naming the memory and the file. Into `out` when given
   * (and returned), else a fresh array.
   */
  embedding(slot: number, out?: Float32Array): Float32Array {
    const v = this.vectors;
    const one = this.#one;
    const n = v.readVectorsSync(slot, 1, one);
    const c = this.chunk(slot);
    const i = slot & CHUNK_MASK;
    if (n !== one.length || crc32c(one) !== c.embCrc[i]) {
      throw corruption(
        n !== one.length ? 'embedding missing (vectors.dat ends early)' : 'embedding checksum mismatch',
        {
          id: c.ids[i] ?? `<slot ${slot}>`,
          file: v.path,
          slot,
        },
      );
    }
    const dst = out ?? new Float32Array(this.dim);
    dst.set(this.#oneF32);
    return dst;
  }

  /**
   * The slot's embedding, unchecked, as a view that the next read overwrites (the rescoring of a
   * recall's candidates, which must not pay a checksum per candidate: the memories it returns are
   * read again, checked, when their embedding is asked for).
   */
  embeddingView(slot: number): Float32Array {
    const one = this.#one;
    if (this.vectors.readVectorsSync(slot, 1, one) !== one.length) one.fill(0);
    return this.#oneF32;
  }
}
