/**
 * The file layer. Every byte warmstore reads or writes goes through these two interfaces so that
 * tests can inject faults (ENOSPC, EIO, short writes, fsync errors) and simulate power cuts.
 * Sync variants exist because a page-cached pread costs ~2 us while an async hop through the
 * libuv pool costs tens of microseconds; the engine picks per path.
 */
export interface WsFile {
  readonly path: string;
  /** Reads up to `length` bytes at `position`; returns bytes read (short only at end of file). */
  readSync(buf: Uint8Array, offset: number, length: number, position: number): number;
  read(buf: Uint8Array, offset: number, length: number, position: number): Promise<number>;
  /** Writes at `position`; returns bytes written, which may be short. */
  writeSync(buf: Uint8Array, offset: number, length: number, position: number): number;
  write(buf: Uint8Array, offset: number, length: number, position: number): Promise<number>;
  /**
   * A positioned write that is on stable storage when it resolves (its bytes and the size needed
   * to read them back), as `write` then `sync` would leave it, in one call: one trip to the I/O
   * pool instead of two, which matters when every trip waits for a turn of a busy event loop.
   * Unlike `sync`, it makes durable only the bytes it wrote. Returns bytes written, which may be
   * short (those bytes are durable). A rejected one may have landed in part, or not at all.
   * Optional: a file layer without it gets `write` then `sync` (see `writeDurable` in io.ts).
   */
  writeDurable?(buf: Uint8Array, offset: number, length: number, position: number): Promise<number>;
  /**
   * Writes `bufs` back to back from `position` in one call (pwritev), durable as `writeDurable`
   * makes it when `durable`. Returns bytes written, which may be short. Optional: a file layer
   * without it gets the pieces copied into one buffer (see `writevFully` in io.ts).
   */
  writev?(bufs: readonly Uint8Array[], position: number, durable: boolean): Promise<number>;
  /** fdatasync: data durable when it resolves. */
  sync(): Promise<void>;
  truncate(length: number): Promise<void>;
  size(): number;
  close(): Promise<void>;
  closeSync(): void;
}

export type OpenMode =
  /** read only, must exist */
  | 'r'
  /** read-write, must exist */
  | 'rw'
  /** read-write, created if missing */
  | 'create'
  /** read-write, must not exist (exclusive create) */
  | 'excl';

export interface WsFileSystem {
  open(path: string, mode: OpenMode): WsFile;
  readFile(path: string): Promise<Buffer>;
  rename(from: string, to: string): Promise<void>;
  unlink(path: string): Promise<void>;
  /** Creates a hard link; fails with EEXIST if `to` exists (used for the lock file). */
  link(from: string, to: string): Promise<void>;
  readdir(path: string): Promise<string[]>;
  mkdir(path: string): Promise<void>;
  exists(path: string): Promise<boolean>;
  /** fsync of a directory, making created, renamed and deleted entries durable. */
  syncDir(path: string): Promise<void>;
  /** Free bytes available to this process on the filesystem holding `path`. */
  freeBytes(path: string): Promise<number>;
}
