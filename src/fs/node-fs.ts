import * as fs from 'node:fs';
import type { OpenMode, WsFile, WsFileSystem } from './types.js';

const { O_RDONLY, O_RDWR, O_CREAT, O_EXCL, O_TRUNC } = fs.constants;
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

class NodeFile implements WsFile {
  readonly path: string;
  #fd: number;

  constructor(path: string, fd: number) {
    this.path = path;
    this.#fd = fd;
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

  close(): Promise<void> {
    return new Promise((resolve, reject) => fs.close(this.#fd, (err) => (err ? reject(err) : resolve())));
  }

  closeSync(): void {
    fs.closeSync(this.#fd);
  }
}

/** The real file layer: Node's fs with positional I/O and fdatasync. */
export class NodeFileSystem implements WsFileSystem {
  open(path: string, mode: OpenMode): WsFile {
    // 'a+' would force appends on Linux and ignore positions, so create with 'a' then reopen r+.
    if (mode === 'create') {
      fs.closeSync(fs.openSync(path, 'a'));
      return new NodeFile(path, openFd(path, O_RDWR));
    }
    return new NodeFile(path, openFd(path, FLAGS[mode]));
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

  async syncDir(path: string): Promise<void> {
    const fh = await fs.promises.open(path, 'r');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  }

  async freeBytes(path: string): Promise<number> {
    const s = await fs.promises.statfs(path);
    return s.bavail * s.bsize;
  }
}

export const nodeFileSystem: WsFileSystem = new NodeFileSystem();
