import { join } from 'node:path';
import { WarmStoreError, corruption, ioError } from '../errors.js';
import { HEADER_BYTES, decodeHeader, encodeHeader } from '../format/header.js';
import { readFully, readFullySync, writeFully, writeFullyDurable, writevFully } from '../fs/io.js';
import type { WsFile, WsFileSystem } from '../fs/types.js';
import type { WarmStoreLogger } from '../types.js';
import type { VectorSource } from './table.js';
import { splitV1Records } from './migrate.js';
import {
  RECORDS_DATA_START,
  RECORDS_FILE,
  SLOT_HEADER_BYTES,
  VECTORS_FILE,
  headerOffset,
  vectorOffset,
} from './slot-codec.js';

/** The most one truncate cuts off a record file (see `truncateTo`). */
const CUT_STEP_BYTES = 16 * 1024 * 1024;

/**
 * records.dat (slot headers) and vectors.dat (embeddings), one record at the same slot number in
 * each. This class owns the two handles and their header checks; the layout of a slot is the
 * codec's (slot-codec.ts), what to write is the checkpointer's.
 */
export class RecordFiles {
  readonly dim: number;
  readonly recordsPath: string;
  readonly vectorsPath: string;
  readonly #records: WsFile;
  readonly #vectors: WsFile;
  /** Plain writes of each file, for the fsyncs that can be skipped. */
  readonly #vectorWrites = new PlainWrites();
  readonly #headerWrites = new PlainWrites();
  /** records.dat's header names an older format whose body reads as the current one. */
  readonly olderHeader: boolean;

  private constructor(dim: number, dir: string, records: WsFile, vectors: WsFile, olderHeader: boolean) {
    this.dim = dim;
    this.olderHeader = olderHeader;
    this.recordsPath = join(dir, RECORDS_FILE);
    this.vectorsPath = join(dir, VECTORS_FILE);
    this.#records = records;
    this.#vectors = vectors;
  }

  get vectorBytes(): number {
    return this.dim * 4;
  }

  /** Creates both files with durable headers (a new store; the caller syncs the directory). */
  static async create(fs: WsFileSystem, dir: string, dim: number): Promise<void> {
    const head = Buffer.alloc(RECORDS_DATA_START);
    const files: [string, Buffer][] = [
      [RECORDS_FILE, encodeHeader('RECS', [dim, SLOT_HEADER_BYTES, 0, 0])],
      [VECTORS_FILE, encodeHeader('VECS', [dim, dim * 4, 0, 0])],
    ];
    for (const [name, header] of files) {
      const f = fs.open(join(dir, name), 'excl');
      try {
        head.fill(0);
        header.copy(head, 0);
        await writeFully(f, head, 0);
        await f.sync();
      } finally {
        await f.close().catch(() => undefined);
      }
    }
  }

  /**
   * Opens both files and checks their headers against the store's dimension. A format-1
   * records.dat (headers and vectors interleaved) is split into the two files first.
   */
  static async open(
    fs: WsFileSystem,
    dir: string,
    dim: number,
    logger: WarmStoreLogger | undefined,
    readOnly = false,
  ): Promise<RecordFiles> {
    const path = join(dir, RECORDS_FILE);
    const vpath = join(dir, VECTORS_FILE);
    const mode = readOnly ? 'r' : 'rw';
    let records = openFile(fs, path, mode);
    let h = readFileHeader(records, 'RECS', path);
    if (h.version === 1) {
      checkLayout([h.fields[0], 0], dim, 0, path, 'records');
      await records.close().catch(() => undefined);
      if (readOnly) {
        throw new WarmStoreError(
          'READ_ONLY',
          `${path} is in format 1 and must be migrated by one writable open before a read-only one`,
          { file: path },
        );
      }
      try {
        await splitV1Records(fs, dir, dim);
      } catch (err) {
        throw ioError('migrate', path, err);
      }
      logger?.info({ file: path }, 'records.dat migrated from format 1 to 2');
      records = openFile(fs, path, mode);
      h = readFileHeader(records, 'RECS', path);
    }
    let vectors: WsFile | undefined;
    try {
      checkLayout(h.fields, dim, SLOT_HEADER_BYTES, path, 'records');
      vectors = openFile(fs, vpath, mode);
      const vh = readFileHeader(vectors, 'VECS', vpath);
      checkLayout(vh.fields, dim, dim * 4, vpath, 'vectors');
    } catch (err) {
      await records.close().catch(() => undefined);
      await vectors?.close().catch(() => undefined);
      throw err;
    }
    return new RecordFiles(dim, dir, records, vectors, h.migrations.length > 0);
  }

  /**
   * Rewrites records.dat's file header at the current format version (a format-2 file reads as
   * format 3 unchanged; the new version keeps older warmstores from misreading memory spaces).
   * One 32-byte write inside the first sector, then fsync.
   */
  async stampVersion(): Promise<void> {
    try {
      await writeFully(this.#records, encodeHeader('RECS', [this.dim, SLOT_HEADER_BYTES, 0, 0]), 0);
      await this.#records.sync();
    } catch (err) {
      throw ioError('write', this.recordsPath, err);
    }
  }

  /** Whole slot headers records.dat holds. */
  headerSlots(): number {
    return Math.max(0, Math.floor((this.#records.size() - RECORDS_DATA_START) / SLOT_HEADER_BYTES));
  }

  /** Whole vectors vectors.dat holds. */
  vectorSlots(): number {
    return Math.max(0, Math.floor((this.#vectors.size() - RECORDS_DATA_START) / this.vectorBytes));
  }

  async readHeaders(first: number, count: number, into: Buffer): Promise<number> {
    try {
      return await readFully(this.#records, into, 0, count * SLOT_HEADER_BYTES, headerOffset(first));
    } catch (err) {
      throw ioError('read', this.recordsPath, err);
    }
  }

  /** `readHeaders` on the calling thread: for page-cached runs, where the pool's trip costs more. */
  readHeadersSync(first: number, count: number, into: Buffer): number {
    try {
      return readFullySync(this.#records, into, 0, count * SLOT_HEADER_BYTES, headerOffset(first));
    } catch (err) {
      throw ioError('read', this.recordsPath, err);
    }
  }

  async readVectors(first: number, count: number, into: Uint8Array): Promise<number> {
    try {
      return await readFully(this.#vectors, into, 0, count * this.vectorBytes, vectorOffset(first, this.dim));
    } catch (err) {
      throw ioError('read', this.vectorsPath, err);
    }
  }

  /** One header into `buf[pos..]`; bytes past the end of the file read as zero. */
  readHeaderSync(slot: number, buf: Buffer, pos: number): number {
    buf.fill(0, pos, pos + SLOT_HEADER_BYTES);
    return readFullySync(this.#records, buf, pos, SLOT_HEADER_BYTES, headerOffset(slot));
  }

  /** One vector into `buf[pos..]`; bytes past the end of the file read as zero. */
  readVectorSync(slot: number, buf: Buffer, pos: number): number {
    buf.fill(0, pos, pos + this.vectorBytes);
    return readFullySync(this.#vectors, buf, pos, this.vectorBytes, vectorOffset(slot, this.dim));
  }

  /** The record table's view of vectors.dat (reads only; see VectorSource). */
  vectorSource(): VectorSource {
    const f = this.#vectors;
    const dim = this.dim;
    const bytes = this.vectorBytes;
    return {
      path: this.vectorsPath,
      readVectorsSync: (first, count, into) => {
        const want = count * bytes;
        const got = readFullySync(f, into, 0, want, vectorOffset(first, dim));
        if (got < want) into.fill(0, got, want);
        return got;
      },
      readVectors: async (first, count, into) => {
        const want = count * bytes;
        const got = await readFully(f, into, 0, want, vectorOffset(first, dim));
        if (got < want) into.fill(0, got, want);
        return got;
      },
    };
  }

  /** Writes vectors synchronously (recovery's replay of a WAL format that carried them). */
  writeVectorsSync(first: number, buf: Uint8Array): void {
    try {
      let done = 0;
      while (done < buf.length) {
        const n = this.#vectors.writeSync(buf, done, buf.length - done, vectorOffset(first, this.dim) + done);
        if (n <= 0) throw ioError('write', this.vectorsPath, new Error('short write'));
        done += n;
      }
    } finally {
      this.#vectorWrites.ended();
    }
  }

  /**
   * fdatasync of vectors.dat alone (a batch's new vectors before the WAL entries naming them); none
   * when every plain write it would cover already was (synchronous durability writes a put's
   * vectors durably, and a checkpoint's fsync of them was a wasted trip to the I/O pool: a turn of
   * the event loop, 16-20 ms behind busy readers).
   */
  async syncVectors(): Promise<void> {
    await this.#vectorWrites.sync(this.#vectors);
  }

  /** `durable`: on stable storage when it resolves (these bytes only; see `writeFullyDurable`). */
  async writeHeaders(first: number, buf: Buffer, durable = false): Promise<void> {
    if (durable) {
      await writeFullyDurable(this.#records, buf, headerOffset(first));
      return;
    }
    try {
      await writeFully(this.#records, buf, headerOffset(first));
    } finally {
      this.#headerWrites.ended();
    }
  }

  /**
   * Writes slots from `first`: one buffer, or pieces back to back (written with one pwritev, not
   * copied together). `durable`: on stable storage when it resolves (these bytes only; see
   * `writeFullyDurable`).
   */
  async writeVectors(first: number, buf: Uint8Array | readonly Uint8Array[], durable = false): Promise<void> {
    const at = vectorOffset(first, this.dim);
    if (durable) {
      if (buf instanceof Uint8Array) await writeFullyDurable(this.#vectors, buf, at);
      else await writevFully(this.#vectors, buf, at, true);
      return;
    }
    try {
      if (buf instanceof Uint8Array) await writeFully(this.#vectors, buf, at);
      else await writevFully(this.#vectors, buf, at, false);
    } finally {
      this.#vectorWrites.ended();
    }
  }

  /**
   * Cuts both files to `slots` slots where they are longer (a slot limit lowered by compaction),
   * records.dat first, each made durable before the next file. Only ever called with the slot
   * count of a durable MANIFEST: open never reads past it. vectors.dat, which puts write outside
   * checkpoints, is cut through `between` (the caller runs each cut where no write is in flight and
   * names the slot count to keep then, at least `slots`). `step` is told once each file is at
   * most that long, cut or not (kill points). Returns the bytes cut off.
   *
   * A long cut goes CUT_STEP_BYTES at a time, each step its own `between`: the kernel holds every
   * other read of the file for as long as one truncate takes, and cutting half of a 1M store's
   * vectors.dat (1.5 GB) at once held a reader's 3 KB pread 405 ms (`perf trace`). A crash
   * between steps leaves the file longer than the MANIFEST's slots, which open never reads.
   */
  async truncateTo(
    slots: number,
    step: (name: string) => void = () => undefined,
    between: (cutVectors: (keep: number) => Promise<void>) => Promise<void> = (cut) => cut(slots),
  ): Promise<number> {
    let cut = 0;
    /** Cuts `f` toward `length` by at most one step; whether more is left to cut. */
    const cutStep = async (f: WsFile, path: string, length: number): Promise<boolean> => {
      const size = f.size();
      if (size <= length) return false;
      const to = Math.max(length, size - CUT_STEP_BYTES);
      try {
        await f.truncate(to);
      } catch (err) {
        throw ioError('truncate', path, err);
      }
      cut += size - to;
      return to > length;
    };
    const syncIfCut = async (f: WsFile, path: string, before: number): Promise<void> => {
      if (cut === before) return;
      try {
        await f.sync();
      } catch (err) {
        throw ioError('truncate', path, err);
      }
    };
    let before = cut;
    while (await cutStep(this.#records, this.recordsPath, headerOffset(slots)));
    await syncIfCut(this.#records, this.recordsPath, before);
    // Told even when the file was short already (vectors.dat ends at the last vector written):
    // the step is "this file is at most `slots` long", so crash tests always find it.
    step('records-truncated');
    before = cut;
    for (let more = true; more;) {
      await between(async (keep) => {
        more = await cutStep(this.#vectors, this.vectorsPath, vectorOffset(Math.max(keep, slots), this.dim));
      });
    }
    await syncIfCut(this.#vectors, this.vectorsPath, before);
    step('vectors-truncated');
    return cut;
  }

  /** Bytes both files take. */
  bytes(): number {
    return this.#records.size() + this.#vectors.size();
  }

  /**
   * Vectors first: a durable header must never describe a vector that is not. Each file's fsync
   * is skipped when every write to it since the last one was durable already.
   */
  async sync(): Promise<void> {
    await this.syncVectors();
    await this.#headerWrites.sync(this.#records);
  }

  async close(): Promise<void> {
    await this.#records.close().catch(() => undefined);
    await this.#vectors.close().catch(() => undefined);
  }
}

/**
 * Plain (not durable) writes of one file that have ended, and how many of them an fsync covered.
 * One to begin with: the first sync after open covers whatever an earlier process left in the page
 * cache (a kill -9 under relaxed durability) before a checkpoint names it.
 */
class PlainWrites {
  #ended = 1;
  #synced = 0;

  /** Counted once a write has ended, landed or not: an fsync that began earlier need not cover it. */
  ended(): void {
    this.#ended++;
  }

  /** fdatasync of `file`, unless every plain write it would cover already was. */
  async sync(file: WsFile): Promise<void> {
    const upTo = this.#ended;
    if (upTo === this.#synced) return;
    await file.sync();
    this.#synced = Math.max(this.#synced, upTo);
  }
}

function openFile(fs: WsFileSystem, path: string, mode: 'r' | 'rw'): WsFile {
  try {
    return fs.open(path, mode);
  } catch (err) {
    throw ioError('open', path, err);
  }
}

function readFileHeader(f: WsFile, kind: 'RECS' | 'VECS', path: string): ReturnType<typeof decodeHeader> {
  const head = Buffer.alloc(HEADER_BYTES);
  let n: number;
  try {
    n = f.readSync(head, 0, HEADER_BYTES, 0);
  } catch (err) {
    f.closeSync();
    throw ioError('read', path, err);
  }
  try {
    return decodeHeader(head.subarray(0, n), kind, path);
  } catch (err) {
    f.closeSync();
    throw err;
  }
}

/** Header fields 0 and 1: the dimension and the bytes per slot. */
function checkLayout(
  fields: readonly number[],
  dim: number,
  slotBytes: number,
  file: string,
  what: string,
): void {
  if (fields[0] !== dim) {
    throw corruption(`${what} header says dimension ${fields[0]}, manifest says ${dim}`, { file });
  }
  if (fields[1] !== slotBytes) {
    throw corruption(`${what} header says ${fields[1]} bytes per slot, expected ${slotBytes}`, { file });
  }
}
