import { join } from 'node:path';
import { corruption, ioError } from '../errors.js';
import { HEADER_BYTES, decodeHeader, encodeHeader, registerMigration } from '../format/header.js';
import { createReplacing, settleAll, writeFully, writeFullyDurable } from '../fs/io.js';
import type { WsFile, WsFileSystem } from '../fs/types.js';
import type { WarmStoreLogger } from '../types.js';
import { decodeWal, type WalEntry } from './entries.js';

/**
 * WALG v2 added memory spaces (a put carries its space's number; two entry types define and drop
 * spaces). A version-1 file is read as it is: its puts belong to the default space.
 */
registerMigration({ kind: 'WALG', fromVersion: 1, toVersion: 2, migrateFields: (f) => f });
/**
 * WALG v3 added slot moves (compaction's relocation). A version-2 file is read as it is; a
 * warmstore that only knows version 2 refuses a version-3 file instead of stopping its replay at
 * the first move it cannot read.
 */
registerMigration({ kind: 'WALG', fromVersion: 2, toVersion: 3, migrateFields: (f) => f });
/**
 * WALG v4: puts and slot moves no longer carry the embedding (the writer puts it in vectors.dat,
 * durable before the entry, which keeps its CRC32C and norm). A version-3 file is read as it is;
 * replay writes the embeddings its entries carry to vectors.dat.
 */
registerMigration({ kind: 'WALG', fromVersion: 3, toVersion: 4, migrateFields: (f) => f });

export function walFileName(n: number): string {
  return `wal-${String(n).padStart(8, '0')}.log`;
}

export function parseWalFileName(name: string): number | undefined {
  const m = /^wal-(\d{8,})\.log$/.exec(name);
  return m ? Number(m[1]) : undefined;
}

/** The WAL files among `names` numbered `from` or later, oldest first. */
export function walFilesFrom(names: readonly string[], from: number): number[] {
  return names
    .map(parseWalFileName)
    .filter((n): n is number => n !== undefined && n >= from)
    .sort((a, b) => a - b);
}

/** One WAL file read back at open. */
export interface WalFileContents {
  fileNo: number;
  path: string;
  /** Written under relaxed durability: a dangling content reference marks the end of what landed. */
  relaxed: boolean;
  entries: WalEntry[];
  /** Index in `entries` of the file's last batch (see DecodeResult.lastBatch). */
  lastBatch: number;
}

/**
 * Reads and decodes one WAL file; changes nothing on disk. A torn tail ends the file (logged); a
 * damaged entry followed by an intact batch is corruption of acknowledged entries, which fails
 * the open (unless the file was written under relaxed durability, where no batch was promised).
 */
export async function readWalFile(
  fs: WsFileSystem,
  dir: string,
  fileNo: number,
  dimension: number,
  afterLsn: number,
  logger: WarmStoreLogger | undefined,
): Promise<WalFileContents | undefined> {
  const path = join(dir, walFileName(fileNo));
  let buf: Buffer;
  try {
    buf = await fs.readFile(path);
  } catch (err) {
    throw ioError('read', path, err);
  }
  if (buf.length < HEADER_BYTES) return undefined; // created, but its header never became durable
  const header = decodeHeader(buf.subarray(0, HEADER_BYTES), 'WALG', path);
  const relaxed = header.fields[1] === 1;
  const res = decodeWal(buf, HEADER_BYTES, dimension, afterLsn, header.version);
  if (res.laterBatchAt !== undefined && !relaxed) {
    throw corruption(
      `WAL entry at offset ${res.validEnd} is damaged but the batch at ${res.laterBatchAt} after it is intact`,
      { file: path, offset: res.validEnd },
    );
  }
  if (res.stopReason && res.validEnd < buf.length) {
    logger?.warn(
      { file: path, validEnd: res.validEnd, size: buf.length, reason: res.stopReason },
      'cut a torn WAL tail',
    );
  }
  return { fileNo, path, relaxed, entries: res.entries, lastBatch: res.lastBatch };
}

/**
 * The write-ahead log being appended to: one open file at a time, numbered; a checkpoint rotates
 * to the next number and later deletes the files it covers. The log knows nothing of what its
 * entries mean.
 */
export class WalLog {
  readonly #fs: WsFileSystem;
  readonly #dir: string;
  readonly #relaxed: boolean;
  #file: WsFile | undefined;
  #fileNo = 0;
  #end = HEADER_BYTES;
  /** A failed batch could not be cut back: the tail may be torn, continue in a fresh file. */
  #broken = false;
  /** Plain writes and cuts of the current file ended, and how many of them an fsync covered. */
  #changes = 0;
  #changesSynced = 0;

  constructor(fs: WsFileSystem, dir: string, relaxed: boolean) {
    this.#fs = fs;
    this.#dir = dir;
    this.#relaxed = relaxed;
  }

  get fileNo(): number {
    return this.#fileNo;
  }

  get path(): string {
    return join(this.#dir, walFileName(this.#fileNo));
  }

  /** Where the next entry goes. */
  get end(): number {
    return this.#end;
  }

  /** Bytes of entries in the current file. */
  get bytes(): number {
    return this.#end - HEADER_BYTES;
  }

  #current(): WsFile {
    if (!this.#file) throw new Error('WAL used before it was created');
    return this.#file;
  }

  /**
   * Creates WAL file `fileNo` (replacing a leftover of that number) with a durable header and
   * directory entry, and appends there from now on. Returns the previous file's handle, still open.
   */
  async start(fileNo: number): Promise<WsFile | undefined> {
    const path = join(this.#dir, walFileName(fileNo));
    let file: WsFile | undefined;
    try {
      // A leftover of that number: a crash before the MANIFEST named it.
      file = await createReplacing(this.#fs, path);
      // Field 1 records the durability the file was written under (see readWalFile).
      // The header and the directory entry made durable together (each awaited trip to the I/O
      // pool is a turn of a busy event loop).
      await settleAll([
        writeFullyDurable(file, encodeHeader('WALG', [fileNo, this.#relaxed ? 1 : 0, 0, 0]), 0),
        this.#fs.syncDir(this.#dir),
      ]);
    } catch (err) {
      await file?.close().catch(() => undefined);
      throw ioError('create WAL', path, err);
    }
    const old = this.#file;
    this.#file = file;
    this.#fileNo = fileNo;
    this.#end = HEADER_BYTES;
    this.#broken = false;
    // Its header is durable: nothing of the new file waits for a sync.
    this.#changes = this.#changesSynced = 0;
    return old;
  }

  /** Before a batch: a broken tail is left behind for a fresh file. */
  async ensureWritable(): Promise<void> {
    if (!this.#broken) return;
    const old = await this.start(this.#fileNo + 1);
    await old?.close().catch(() => undefined);
  }

  /**
   * Writes a batch at the end; it counts once `advance` is called after it is durable. Relaxed
   * durability writes it to the page cache (a timed sync follows); otherwise it is on stable
   * storage when this resolves, in one durable write: one trip to the I/O pool where a write and
   * an fdatasync took two, each waiting for its own turn of the event loop.
   */
  async write(buf: Buffer): Promise<void> {
    if (!this.#relaxed) {
      await writeFullyDurable(this.#current(), buf, this.#end);
      return;
    }
    try {
      await writeFully(this.#current(), buf, this.#end);
    } finally {
      this.#changes++;
    }
  }

  /**
   * fdatasync of the current file; none when every change to it already is durable (under
   * synchronous durability each batch's write is, and a checkpoint's two syncs were two wasted
   * trips to the I/O pool, each a turn of the event loop).
   */
  async sync(): Promise<void> {
    const file = this.#current();
    const upTo = this.#changes;
    if (upTo === this.#changesSynced) return;
    await file.sync();
    if (file === this.#file) this.#changesSynced = Math.max(this.#changesSynced, upTo);
  }

  advance(bytes: number): void {
    this.#end += bytes;
  }

  /** Cuts a failed batch off. If that fails too, the next batch starts a fresh file. */
  async cutBack(): Promise<void> {
    try {
      await this.#current().truncate(this.#end);
    } catch {
      this.#broken = true;
    } finally {
      // A cut is made durable by the next sync like a plain write.
      this.#changes++;
    }
  }

  /** Deletes WAL files older than the current one (a checkpoint covers them). */
  async removeOlder(names: readonly string[]): Promise<void> {
    for (const name of names) {
      const no = parseWalFileName(name);
      if (no !== undefined && no < this.#fileNo)
        await this.#fs.unlink(join(this.#dir, name)).catch(() => undefined);
    }
  }

  async close(): Promise<void> {
    await this.#file?.close().catch(() => undefined);
  }
}
