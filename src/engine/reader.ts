import { setImmediate as yieldImmediate } from 'node:timers/promises';
import type { SegmentSet } from '../content/segment-set.js';
import { entryBytes, verifyEntry, type Segment } from '../content/segment.js';
import { corruption } from '../errors.js';
import { crc32c } from '../format/crc.js';
import type { RecordFiles } from '../records/record-files.js';
import type { Keyspace } from '../records/keyspace.js';
import { CHUNK_MASK } from '../records/table.js';
import type { StoredMemory } from '../types.js';
import { ContentKind } from '../wal/entries.js';

/** Reads bigger than this go through the async path with a segment pin, so they never block. */
const SYNC_READ_LIMIT = 256 * 1024;
/**
 * A synchronous read slower than this is taken for a page-cache miss on a busy disk (a GC pause
 * landing inside a read is usually shorter; a lower bar sent `get` to the pool on every scavenge)...
 */
const SLOW_SYNC_READ_MS = 20;
/** Placeholder embedding of a descriptor whose embedding is read afterwards. */
const EMPTY = new Float32Array(0);
/** ...after which `get` reads through the thread pool for this long. */
const POOL_READ_WINDOW_MS = 1000;
/**
 * Size of the buffers the embeddings of `readBytesNow` are cut from: one allocation per ~20
 * embeddings of 768 dimensions, where Node's 8 KiB pool allocates for every second one (a buffer's
 * allocation costs about what the embedding's pread does).
 */
const SLAB_BYTES = 64 * 1024;

/** A memory whose embedding has the type `E`. */
type MemoryWith<E> = Omit<StoredMemory, 'embedding'> & { embedding: E };

/**
 * A memory with its embedding as the bytes vectors.dat holds: `dimension` float32 values in the
 * machine's byte order, checked against their CRC32C like every embedding read.
 */
export type StoredMemoryBytes = MemoryWith<Buffer>;

/**
 * How a read takes the embedding: as a fresh Float32Array, as its checked bytes, or not in the
 * synchronous step (the thread-pool path reads it afterwards).
 */
type VectorRead<E> = (slot: number, crc: number, id: string) => E;

/**
 * Everything a read needs, taken in one synchronous step: the record's values as of now and
 * where its content lies. Reading the content afterwards (possibly asynchronously) cannot mix two
 * versions: the entry is checked against this id and length, and segments are append-only.
 */
interface ReadDescriptor<E = Float32Array> {
  memory: MemoryWith<E>;
  /** The CRC32C the embedding must match (when it is read after the descriptor is taken). */
  embCrc: number;
  seg: Segment | undefined;
  off: number;
  clen: number;
  idLen: number;
}

/**
 * The read path: memories by slot, their content from the segments, every entry checked (CRC32C
 * and owner id) as it is read. Small reads use a synchronous pread while those stay fast; after
 * one that was slow (a page-cache miss), `get` reads through the thread pool for a while.
 */
export class Reader {
  readonly #keyspace: Keyspace;
  readonly #segments: SegmentSet;
  readonly #files: RecordFiles;
  /** Until when `get` reads embeddings and content through the thread pool. */
  #poolReadsUntil = 0;
  /**
   * Where synchronous reads put a content entry: it is checked and decoded into a string before
   * anything else runs, so one buffer serves them all (grown to the largest, at most
   * SYNC_READ_LIMIT) and a read allocates none.
   */
  #entry = Buffer.alloc(0);
  /** Where `readBytesNow` cuts embeddings from, and how much of it is handed out. */
  #slab = Buffer.alloc(0);
  #slabUsed = 0;

  constructor(keyspace: Keyspace, segments: SegmentSet, files: RecordFiles) {
    this.#keyspace = keyspace;
    this.#segments = segments;
    this.#files = files;
  }

  /**
   * The memory in `slot`. The common case stays synchronous: one page-cached pread (~2 us; a
   * thread-pool hop costs ~200 us here). A pread that misses the cache holds the event loop for
   * the disk's latency (80 ms seen during a compaction), so after one slow read this goes through
   * the pool for a while.
   */
  async read(slot: number, requestedId?: string): Promise<StoredMemory> {
    return this.readNow(slot, requestedId);
  }

  /**
   * `read`, but a memory read synchronously comes back as is, not in a promise: small content from
   * the page cache, unless a slow synchronous read recently sent reads through the thread pool.
   */
  readNow(slot: number, requestedId?: string): StoredMemory | Promise<StoredMemory> {
    return this.#readNow(slot, requestedId, this.#arrayOf, this.#arrayFromBytes);
  }

  /**
   * `readNow`, with the embedding as its checked bytes in place of a Float32Array: for a caller
   * that writes them out as they are (the server's base64), which then skips the array's
   * allocation and the copy into it. The bytes are the caller's: no later read writes them.
   */
  readBytesNow(slot: number, requestedId?: string): StoredMemoryBytes | Promise<StoredMemoryBytes> {
    return this.#readNow(slot, requestedId, this.#bytesOf, (b) => b);
  }

  #readNow<E>(
    slot: number,
    requestedId: string | undefined,
    vector: VectorRead<E>,
    fromBytes: (b: Buffer) => E,
  ): MemoryWith<E> | Promise<MemoryWith<E>> {
    if (performance.now() < this.#poolReadsUntil) return this.#readAsync(slot, requestedId, fromBytes);
    const t = performance.now();
    const d = this.#describe(slot, requestedId, vector);
    let m: MemoryWith<E> | Promise<MemoryWith<E>> = d.memory;
    if (d.seg) m = this.#isSmall(d) ? this.#finishSync(d) : this.#finishAsync(d);
    const now = performance.now();
    // The embedding's pread and the content's both count: either can miss the page cache.
    if (now - t > SLOW_SYNC_READ_MS) this.#poolReadsUntil = now + POOL_READ_WINDOW_MS;
    return m;
  }

  /**
   * Everything through the thread pool. The slot is pinned meanwhile: a delete or update may free
   * it, but no put reuses it (and overwrites its vector) until the read is done.
   */
  async #readAsync<E>(
    slot: number,
    requestedId: string | undefined,
    fromBytes: (b: Buffer) => E,
  ): Promise<MemoryWith<E>> {
    const d = this.#describe<E>(slot, requestedId, this.#later);
    const ks = this.#keyspace;
    ks.pinSlot(slot);
    try {
      const buf = Buffer.allocUnsafe(this.#files.vectorBytes);
      const n = await this.#files.readVectors(slot, 1, buf);
      if (n !== buf.length || crc32c(buf) !== d.embCrc) {
        throw corruption(
          n !== buf.length ? 'embedding missing (vectors.dat ends early)' : 'embedding checksum mismatch',
          {
            id: d.memory.id,
            file: this.#files.vectorsPath,
            slot,
          },
        );
      }
      d.memory.embedding = fromBytes(buf);
      return d.seg ? await this.#finishAsync(d) : d.memory;
    } finally {
      ks.unpinSlot(slot);
    }
  }

  /** Always synchronous: on a page-cache miss it waits for the disk on the calling thread. */
  readSync(slot: number, requestedId?: string): StoredMemory {
    const d = this.#describe(slot, requestedId, this.#arrayOf);
    return d.seg ? this.#finishSync(d) : d.memory;
  }

  /** Small entries synchronously (no window logic: iteration and recall read in bulk). */
  async readBulk(slot: number): Promise<StoredMemory> {
    const d = this.#describe(slot, undefined, this.#arrayOf);
    if (!d.seg) return d.memory;
    return this.#isSmall(d) ? this.#finishSync(d) : this.#finishAsync(d);
  }

  /**
   * Every memory of `space` (of every live space when undefined) in slot order; a memory written
   * during iteration may or may not appear. A memory that moves from a slot ahead of the iteration
   * to one behind it (relocated by compaction, or updated into a free slot) is yielded once it is
   * noticed (out of slot order), and one updated from behind into a slot ahead is not yielded
   * again, so a memory present throughout is yielded once, in its old or new version. `checkOpen`
   * throws once the store is closing, ending the iteration.
   */
  async *entries(checkOpen: () => void, space: number | undefined): AsyncGenerator<StoredMemory> {
    const ks = this.#keyspace;
    const wanted = (s: number): boolean => (space === undefined ? ks.spaces.isLive(s) : s === space);
    const cursor = ks.openCursor();
    try {
      let n = 0;
      for (let slot = 0; slot < ks.slotLimit || cursor.movedBehind.size > 0; slot++) {
        checkOpen();
        // Passed as soon as its values are taken (synchronously, by readBulk before it awaits).
        cursor.next = Math.max(cursor.next, slot + 1);
        const yieldedAs = cursor.yieldedAhead.get(slot);
        if (yieldedAs !== undefined) cursor.yieldedAhead.delete(slot);
        if (
          slot < ks.slotLimit &&
          ks.isUsed(slot) &&
          (yieldedAs === undefined || yieldedAs !== ks.table.id(slot)) &&
          wanted(ks.table.chunk(slot).space[slot & CHUNK_MASK]!)
        ) {
          yield await this.readBulk(slot);
          if (++n % 4096 === 0) await yieldImmediate();
        }
        for (const [key, m] of cursor.movedBehind) {
          cursor.movedBehind.delete(key);
          const at = ks.indexed(m.space, m.id);
          // Not behind any more (moved again, or gone): the scan reaches it, or it was deleted.
          if (at === undefined || at >= cursor.next || !wanted(m.space)) continue;
          checkOpen();
          yield await this.readBulk(at);
        }
      }
    } finally {
      ks.closeCursor(cursor);
    }
  }

  /** Reads and checks a slot's content entry through the thread pool; for verify. */
  async checkContent(slot: number): Promise<number> {
    const d = this.#describe(slot, undefined, this.#later);
    if (!d.seg) return 0;
    await this.#finishAsync(d);
    return entryBytes(d.idLen, d.clen);
  }

  #isSmall<E>(d: ReadDescriptor<E>): boolean {
    return entryBytes(d.idLen, d.clen) <= SYNC_READ_LIMIT;
  }

  /**
   * The slot's values and its embedding, taken by `vector` now, with the values, so that the slot
   * cannot be freed and rewritten in between (`#later` leaves it to the caller, who pins the slot).
   */
  #describe<E>(slot: number, requestedId: string | undefined, vector: VectorRead<E>): ReadDescriptor<E> {
    this.#keyspace.checkReadable(slot, requestedId);
    const table = this.#keyspace.table;
    const v = table.get(slot);
    const memory: MemoryWith<E> = {
      id: v.id,
      space: this.#keyspace.spaces.nameOf(v.space) ?? '',
      embedding: vector(slot, v.embCrc, v.id),
      content: v.kind === ContentKind.Absent ? null : '',
      // Written out rather than spread from metadataOf: a spread after other properties takes
      // V8's slow path, on every read.
      confidence: v.confidence,
      activation: v.activation,
      decayRate: v.decayRate,
      createdAt: v.createdAt,
      lastAccess: v.lastAccess,
      accessCount: v.accessCount,
    };
    if (v.kind !== ContentKind.Present)
      return { memory, embCrc: v.embCrc, seg: undefined, off: 0, clen: 0, idLen: v.idLen };
    const seg = this.#segments.get(v.seg);
    if (!seg) {
      throw corruption(`content segment ${v.seg} is missing`, { id: v.id, file: this.#segments.path(v.seg) });
    }
    return { memory, embCrc: v.embCrc, seg, off: v.off, clen: v.clen, idLen: v.idLen };
  }

  /** The embedding as a fresh Float32Array (the table checks it against its CRC32C). */
  readonly #arrayOf: VectorRead<Float32Array> = (slot) => this.#keyspace.table.embedding(slot);

  /**
   * The embedding's bytes, checked against its CRC32C, in bytes of their own: cut from a slab that
   * no other read writes again, so that an answer never changes under its holder (who keeps the
   * whole slab alive while it holds them).
   */
  readonly #bytesOf: VectorRead<Buffer> = (slot, crc, id) => {
    const source = this.#keyspace.table.vectors;
    const buf = this.#take(this.#files.vectorBytes);
    const n = source.readVectorsSync(slot, 1, buf);
    if (n !== buf.length || crc32c(buf) !== crc) {
      throw corruption(
        n !== buf.length ? 'embedding missing (vectors.dat ends early)' : 'embedding checksum mismatch',
        { id, file: source.path, slot },
      );
    }
    return buf;
  };

  /** `n` bytes of the slab, at an offset a Float32Array can view (a multiple of 8). */
  #take(n: number): Buffer {
    if (this.#slabUsed + n > this.#slab.length) {
      this.#slab = Buffer.allocUnsafeSlow(Math.max(SLAB_BYTES, n));
      this.#slabUsed = 0;
    }
    const b = this.#slab.subarray(this.#slabUsed, this.#slabUsed + n);
    this.#slabUsed += (n + 7) & ~7;
    return b;
  }

  /** A placeholder: the embedding is read after the descriptor is taken. */
  readonly #later: VectorRead<never> = () => EMPTY as never;

  /** An embedding read through the thread pool, as the array the caller gets. */
  readonly #arrayFromBytes = (b: Buffer): Float32Array =>
    new Float32Array(b.buffer, b.byteOffset, this.#files.dim);

  #finishSync<E>(d: ReadDescriptor<E>): MemoryWith<E> {
    const seg = d.seg!;
    const size = entryBytes(d.idLen, d.clen);
    if (size > this.#entry.length && size <= SYNC_READ_LIMIT)
      this.#entry = Buffer.allocUnsafeSlow(Math.max(size, 2 * this.#entry.length, 4096));
    const buf = seg.readSync(d.off, size, this.#entry);
    d.memory.content = this.#check(d, seg, buf);
    return d.memory;
  }

  async #finishAsync<E>(d: ReadDescriptor<E>): Promise<MemoryWith<E>> {
    // The pin keeps the segment's file open even if compaction retires it while we wait.
    const seg = d.seg!;
    seg.pins++;
    try {
      const buf = await seg.read(d.off, entryBytes(d.idLen, d.clen));
      d.memory.content = this.#check(d, seg, buf);
      return d.memory;
    } finally {
      seg.pins--;
    }
  }

  #check<E>(d: ReadDescriptor<E>, seg: Segment, buf: Buffer): string {
    const id = d.memory.id;
    return verifyEntry(buf, Buffer.from(id, 'utf8'), d.clen, seg.path, id, d.off).toString('utf8');
  }
}
