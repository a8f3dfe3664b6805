import { join } from 'node:path';
import { WarmStoreError } from '../errors.js';
import { writeFully } from '../fs/io.js';
import type { WsFile, WsFileSystem } from '../fs/types.js';
import type { StorageStatus, WarmStoreLogger } from '../types.js';

/** The reserve file: zero bytes the store may give back to itself when the disk fills. */
export const RESERVE_FILE = 'RESERVE';

/**
 * Kept back when the reserve is given up on a full disk, and given up only by an open that cannot
 * otherwise write its lock file, its first WAL header and a MANIFEST (a few pages each).
 */
export const OPEN_SLACK_BYTES = 64 * 1024;

/** The reserve is written in pieces of this size (one zero buffer, reused). */
const FILL_CHUNK = 1024 * 1024;

/** Below this much free space beyond the reserve, a full disk is not considered free again. */
const MIN_RESUME_MARGIN = 1024 * 1024;

/** True for the error a write gets on a full disk (ENOSPC; EDQUOT is a full quota). */
export function isNoSpace(err: unknown): boolean {
  for (let e = err; e !== undefined && e !== null; e = (e as { cause?: unknown }).cause) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOSPC' || code === 'EDQUOT') return true;
    if (!(e instanceof Error)) break;
  }
  return false;
}

/** The error a write gets while the disk is full. */
export function diskFullError(dir: string, cause?: unknown): WarmStoreError {
  return new WarmStoreError(
    'DISK_FULL',
    `the disk of ${dir} is full: new content is refused until space returns (reads, deletes and compaction still work)`,
    { file: dir },
    cause,
  );
}

export interface DiskSpaceDeps {
  fs: WsFileSystem;
  dir: string;
  /** Bytes of the reserve file; 0 keeps no reserve (the full state still works). */
  reserveBytes: number;
  logger: WarmStoreLogger | undefined;
}

/**
 * The store's own disk space: a reserve file of real zero bytes (a sparse file would reserve
 * nothing) and the "disk full" state. A write that hits ENOSPC enters the state: the reserve is
 * given back to the file system (but for `OPEN_SLACK_BYTES`), so deletes, checkpoints and a
 * compaction find room and can free space from inside; new content is refused with DISK_FULL.
 * The state ends when the file system has the reserve and a margin free again: the reserve is
 * written back first, then writes resume. One log line on entering and one on leaving.
 */
export class DiskSpace {
  readonly #d: DiskSpaceDeps;
  readonly #path: string;
  /** Bytes the reserve file holds on disk now. */
  #held = 0;
  #full = false;
  #reason: string | undefined;
  #since: number | undefined;
  #checking: Promise<boolean> | undefined;
  #closed = false;

  constructor(deps: DiskSpaceDeps) {
    this.#d = deps;
    this.#path = join(deps.dir, RESERVE_FILE);
  }

  get full(): boolean {
    return this.#full;
  }

  /** The error a put gets while the disk is full. */
  fullError(cause?: unknown): WarmStoreError {
    return diskFullError(this.#d.dir, cause);
  }

  get reserveHeldBytes(): number {
    return this.#held;
  }

  /** Free bytes needed before a full disk counts as free again: the reserve and a margin. */
  get resumeBytes(): number {
    return this.#d.reserveBytes + Math.max(this.#d.reserveBytes, MIN_RESUME_MARGIN);
  }

  status(): Pick<
    StorageStatus,
    'diskFull' | 'diskFullReason' | 'diskFullSince' | 'reserveBytes' | 'reserveHeldBytes'
  > {
    return {
      diskFull: this.#full,
      ...(this.#reason !== undefined ? { diskFullReason: this.#reason } : {}),
      ...(this.#since !== undefined ? { diskFullSince: this.#since } : {}),
      reserveBytes: this.#d.reserveBytes,
      reserveHeldBytes: this.#held,
    };
  }

  /**
   * Before the lock file can be written on a full disk: gives up the reserve entirely. Safe without
   * the lock: the reserve is only ever space, never data, and a running owner's next fill starts
   * from the file's real size (its figure of what it holds is only used to decide when to try).
   */
  static async freeForLock(fs: WsFileSystem, dir: string): Promise<boolean> {
    const path = join(dir, RESERVE_FILE);
    if (!(await fs.exists(path))) return false;
    let f: WsFile | undefined;
    try {
      f = fs.open(path, 'rw');
      if (f.size() === 0) return false;
      await f.truncate(0);
      return true;
    } catch {
      return false;
    } finally {
      await f?.close().catch(() => undefined);
    }
  }

  /**
   * At open, with the lock held: notes what the reserve file holds and tops it up to its size. On
   * a disk without room for it the store opens in the full state (new content refused until space
   * returns). Never fails the open.
   */
  async open(): Promise<void> {
    const d = this.#d;
    this.#held = this.#sizeOnDisk();
    if (d.reserveBytes === 0) {
      if (this.#held > 0) await d.fs.unlink(this.#path).catch(() => undefined);
      this.#held = 0;
      return;
    }
    let free: number;
    try {
      free = await d.fs.freeBytes(d.dir);
    } catch {
      free = 0;
    }
    if (free < MIN_RESUME_MARGIN) {
      // Recovery writes a WAL header, records.dat's new slots and a MANIFEST: the reserve is
      // there for exactly this.
      this.#enter(`only ${free} bytes free at open`);
      await this.#shrinkTo(0);
      return;
    }
    if (this.#held > d.reserveBytes) await this.#shrinkTo(d.reserveBytes);
    if (this.#held >= d.reserveBytes) return;
    if (free < d.reserveBytes - this.#held + MIN_RESUME_MARGIN) {
      this.#enter(`only ${free} bytes free at open, below the reserve of ${d.reserveBytes}`);
      return;
    }
    try {
      await this.#fill();
    } catch (err) {
      if (isNoSpace(err)) this.#enter('the reserve could not be written at open: ENOSPC');
      else d.logger?.warn({ err, file: this.#path }, 'the disk reserve could not be written');
    }
  }

  /**
   * Enters the full state (once) and gives the reserve back to the file system but for the open
   * slack. Called by whoever hit ENOSPC; never throws.
   */
  async onNoSpace(err?: unknown): Promise<void> {
    if (!this.#full) {
      const why = err instanceof Error ? err.message : 'ENOSPC';
      this.#enter(why);
    }
    await this.#shrinkTo(Math.min(this.#held, OPEN_SLACK_BYTES));
  }

  /**
   * While full: leaves the state if the file system has the reserve and a margin free again
   * (writing the reserve back first). Concurrent callers share one check. Resolves `!full`.
   */
  recheck(): Promise<boolean> {
    if (!this.#full) return Promise.resolve(true);
    this.#checking ??= this.#recheck().finally(() => {
      this.#checking = undefined;
    });
    return this.#checking;
  }

  async #recheck(): Promise<boolean> {
    const d = this.#d;
    let free: number;
    try {
      free = await d.fs.freeBytes(d.dir);
    } catch {
      return false;
    }
    // The released reserve is part of `free` already; what the file still holds is not.
    if (free + this.#held < this.resumeBytes || this.#closed) return false;
    try {
      await this.#fill();
    } catch (err) {
      if (!isNoSpace(err)) d.logger?.warn({ err, file: this.#path }, 'the disk reserve could not be written');
      return false;
    }
    const since = this.#since ?? Date.now();
    this.#full = false;
    this.#reason = undefined;
    this.#since = undefined;
    d.logger?.info(
      { dir: d.dir, freeBytes: free, fullForMs: Date.now() - since, reserveBytes: this.#held },
      'disk space returned: writes resume',
    );
    return true;
  }

  /** At close: no more reserve writes (the file itself stays, for the next open). */
  close(): void {
    this.#closed = true;
  }

  #enter(reason: string): void {
    if (this.#full) return;
    this.#full = true;
    this.#reason = reason;
    this.#since = Date.now();
    this.#d.logger?.warn(
      { dir: this.#d.dir, reason, reserveBytes: this.#held },
      'disk full: new content refused until space returns; reads, deletes and compaction go on',
    );
  }

  #sizeOnDisk(): number {
    try {
      const f = this.#d.fs.open(this.#path, 'r');
      try {
        return f.size();
      } finally {
        f.closeSync();
      }
    } catch {
      return 0;
    }
  }

  /** Writes zero bytes up to the reserve's size and makes them durable; cuts back on failure. */
  async #fill(): Promise<void> {
    const d = this.#d;
    const created = this.#held === 0;
    const f = d.fs.open(this.#path, 'create');
    try {
      const zero = Buffer.alloc(Math.min(FILL_CHUNK, d.reserveBytes));
      let pos = f.size();
      try {
        while (pos < d.reserveBytes) {
          const n = Math.min(zero.length, d.reserveBytes - pos);
          await writeFully(f, zero.subarray(0, n), pos);
          pos += n;
        }
        await f.sync();
        if (created) await d.fs.syncDir(d.dir);
      } catch (err) {
        await f.truncate(this.#held).catch(() => undefined);
        throw err;
      }
      this.#held = pos;
    } finally {
      await f.close().catch(() => undefined);
    }
  }

  async #shrinkTo(size: number): Promise<void> {
    if (this.#held <= size) return;
    let f: WsFile | undefined;
    try {
      f = this.#d.fs.open(this.#path, 'rw');
      await f.truncate(size);
      this.#held = size;
    } catch (err) {
      this.#d.logger?.warn({ err, file: this.#path }, 'the disk reserve could not be given back');
    } finally {
      await f?.close().catch(() => undefined);
    }
  }
}
