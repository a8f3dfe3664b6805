import * as fs from 'node:fs';
import type { OpenMode, WsFile, WsFileSystem } from './types.js';

const { O_RDONLY, O_WRONLY, O_RDWR, O_CREAT, O_EXCL, O_TRUNC } = fs.constants;
/** O_DSYNC where the platform has it (not on Windows): then durable writes take write + sync. */
const DSYNC = (fs.constants as { O_DSYNC?: number }).O_DSYNC ?? 0;
const FLAGS: Record<Exclude<OpenMode, 'create'>, number> = {
  r: O_RDONLY,
  rw: O_RDWR,
  excl: O_RDWR | O_CREAT | O_EXCL | O_TRUNC,
};
/**
 * Linux's O_NOATIME, 0 elsewhere. Under relatime a read of a file written since its last access
 * updates its atime, which needs a journal handle, and ext4 makes that wait for the running
 * journal commit: with online discard, a commit that frees a truncated gigabyte held synchronous
 * reads of vectors.dat 250-660 ms. Without atime, a read never waits for the journal.
 */
const NOATIME = (fs.constants as { O_NOATIME?: number }).O_NOATIME ?? 0;

/** Opens without atime updates where allowed (the owner only, else EPERM: then as asked). */
function openFd(path: string, flags: number): number {
  if (NOATIME !== 0) {
    try {
      return fs.openSync(path, flags | NOATIME);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EPERM') throw err;
    }
  }
  return fs.openSync(path, flags);
}

/**
 * A second descriptor of the file open as `fd`, with O_DSYNC: every pwrite through it returns once
 * its bytes (and the size that reaches them) are on stable storage. Opened through
 * /proc/self/fd, so it is the same inode even if the file was renamed or unlinked since; by path
 * where /proc is missing, checked to be the same inode. Undefined where that cannot be done.
 */
function openDsync(path: string, fd: number): number | undefined {
  if (DSYNC === 0) return undefined;
  const st = fs.fstatSync(fd);
  for (const p of [`/proc/self/fd/${fd}`, path]) {
    let d: number;
    try {
      d = openFd(p, O_WRONLY | DSYNC);
    } catch {
      continue;
    }
    const dst = fs.fstatSync(d);
    if (dst.ino === st.ino && dst.dev === st.dev) return d;
    fs.closeSync(d);
  }
  return undefined;
}

class NodeFile implements WsFile {
  readonly path: string;
  #fd: number;
  readonly #writable: boolean;
  /**
   * The O_DSYNC descriptor, opened on the first durable write (most files never make one): one
   * pwrite through it is one job of the I/O pool, where write then fdatasync are two, each
   * resolving on its own turn of the event loop. On this machine's disk one O_DSYNC pwrite cost
   * the same as pwrite + fdatasync or less (0.15-0.3 ms up to 100 KB, 0.9 ms at 1 MB). Null when
   * the platform cannot: durable writes then take write + fdatasync.
   */
  #dsyncFd: number | null | undefined;

  constructor(path: string, fd: number, writable: boolean) {
    this.path = path;
    this.#fd = fd;
    this.#writable = writable;
  }

  readSync(buf: Uint8Array, offset: number, length: number, position: number): number {
    return fs.readSync(this.#fd, buf, offset, length, position);
  }

  read(buf: Uint8Array, offset: number, length: number, position: number): Promise<number> {
    return new Promise((resolve, reject) => {
      fs.read(this.#fd, buf, offset, length, position, (err, n) => (err ? reject(err) : resolve(n)));
    });
  }

  writeSync(buf: Uint8Array, offset: number, length: number, position: number): number {
    return fs.writeSync(this.#fd, buf, offset, length, position);
  }

  write(buf: Uint8Array, offset: number, length: number, position: number): Promise<number> {
    return new Promise((resolve, reject) => {
      fs.write(this.#fd, buf, offset, length, position, (err, n) => (err ? reject(err) : resolve(n)));
    });
  }

  /** The O_DSYNC descriptor, opened on first use; undefined or null when there is none. */
  #durableFd(): number | null | undefined {
    if (this.#dsyncFd === undefined && this.#writable) this.#dsyncFd = openDsync(this.path, this.#fd) ?? null;
    return this.#dsyncFd;
  }

  async writeDurable(buf: Uint8Array, offset: number, length: number, position: number): Promise<number> {
    const fd = this.#durableFd();
    if (fd === undefined || fd === null) {
      // Read-only (the write fails as any write would) or no O_DSYNC here.
      const n = await this.write(buf, offset, length, position);
      await this.sync();
      return n;
    }
    return new Promise((resolve, reject) => {
      fs.write(fd, buf, offset, length, position, (err, n) => (err ? reject(err) : resolve(n)));
    });
  }

  async writev(bufs: readonly Uint8Array[], position: number, durable: boolean): Promise<number> {
    let fd = this.#fd;
    if (durable) {
      const d = this.#durableFd();
      if (d === undefined || d === null) {
        const n = await this.writev(bufs, position, false);
        await this.sync();
        return n;
      }
      fd = d;
    }
    return new Promise((resolve, reject) => {
      fs.writev(fd, bufs as NodeJS.ArrayBufferView[], position, (err, n) => (err ? reject(err) : resolve(n)));
    });
  }

  sync(): Promise<void> {
    return new Promise((resolve, reject) => fs.fdatasync(this.#fd, (err) => (err ? reject(err) : resolve())));
  }

  truncate(length: number): Promise<void> {
    return new Promise((resolve, reject) =>
      fs.ftruncate(this.#fd, length, (err) => (err ? reject(err) : resolve())),
    );
  }

  size(): number {
    return fs.fstatSync(this.#fd).size;
  }

  async close(): Promise<void> {
    const d = this.#takeDsync();
    if (d !== undefined) await new Promise<void>((resolve) => fs.close(d, () => resolve()));
    return new Promise((resolve, reject) => fs.close(this.#fd, (err) => (err ? reject(err) : resolve())));
  }

  closeSync(): void {
    const d = this.#takeDsync();
    if (d !== undefined) {
      try {
        fs.closeSync(d);
      } catch {
        // Its writes all settled before close; the main descriptor's close reports what matters.
      }
    }
    fs.closeSync(this.#fd);
  }

  /** The durable descriptor, if one was opened, never to be used again. */
  #takeDsync(): number | undefined {
    const d = this.#dsyncFd;
    this.#dsyncFd = null;
    return d ?? undefined;
  }
}

/** The real file layer: Node's fs with positional I/O and fdatasync. */
export class NodeFileSystem implements WsFileSystem {
  open(path: string, mode: OpenMode): WsFile {
    // 'a+' would force appends on Linux and ignore positions, so create with 'a' then reopen r+.
    if (mode === 'create') {
      fs.closeSync(fs.openSync(path, 'a'));
      return new NodeFile(path, openFd(path, O_RDWR), true);
    }
    return new NodeFile(path, openFd(path, FLAGS[mode]), mode !== 'r');
  }

  readFile(path: string): Promise<Buffer> {
    return fs.promises.readFile(path);
  }

  rename(from: string, to: string): Promise<void> {
    return fs.promises.rename(from, to);
  }

  unlink(path: string): Promise<void> {
    return fs.promises.unlink(path);
  }

  link(from: string, to: string): Promise<void> {
    return fs.promises.link(from, to);
  }

  readdir(path: string): Promise<string[]> {
    return fs.promises.readdir(path);
  }

  async mkdir(path: string): Promise<void> {
    await fs.promises.mkdir(path, { recursive: true });
  }

  async exists(path: string): Promise<boolean> {
    try {
      await fs.promises.access(path);
      return true;
    } catch {
      return false;
    }
  }

  /** Open and close on the calling thread (microseconds), so the fsync is the only trip to the pool. */
  syncDir(path: string): Promise<void> {
    let fd: number;
    try {
      fd = fs.openSync(path, 'r');
    } catch (err) {
      return Promise.reject(err as Error);
    }
    return new Promise<void>((resolve, reject) =>
      fs.fsync(fd, (err) => {
        try {
          fs.closeSync(fd);
        } catch {
          // The fsync's outcome is what matters; a directory's close has nothing to write back.
        }
        if (err) reject(err);
        else resolve();
      }),
    );
  }

  async freeBytes(path: string): Promise<number> {
    const s = await fs.promises.statfs(path);
    return s.bavail * s.bsize;
  }
}

export const nodeFileSystem: WsFileSystem = new NodeFileSystem();
