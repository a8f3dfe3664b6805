import { constants as osConstants } from 'node:os';
import { writeDurable } from '../fs/io.js';
import { nodeFileSystem } from '../fs/node-fs.js';
import type { OpenMode, WsFile, WsFileSystem } from '../fs/types.js';

/**
 * Operations a fault can target. `any-write` matches every operation that changes the disk:
 * write, sync, durable write, truncate, rename, unlink, link, mkdir, syncDir, and open in a
 * creating mode ('create' or 'excl'). `read` matches file reads and `readFile`.
 *
 * A durable write (`WsFile.writeDurable`) is a write and a sync in one call, so a `write` fault
 * and a `sync` fault both match it too, as they would the two calls it replaces: a `write` fault
 * fails it before any byte lands (or, `short`, lands half of them, durably, and returns the short
 * count); a `sync` fault fails it after its bytes landed in the file, not known to be durable.
 * `durableWrite` matches durable writes only, as a `write` fault does.
 */
export type FaultOp =
  | 'write'
  | 'sync'
  | 'durableWrite'
  | 'open'
  | 'rename'
  | 'truncate'
  | 'syncDir'
  | 'unlink'
  | 'link'
  | 'mkdir'
  | 'read'
  | 'any-write';

/**
 * Operations counted in `FaultyFileSystem.counts`; `any-write` counts every mutating one. A durable
 * write counts once in `durableWrite`, `write`, `sync` and `any-write` each.
 */
export type CountedOp = FaultOp | 'readdir' | 'exists' | 'freeBytes' | 'close';

/** The errors a fault raises: a full disk or a failing one. */
export type FaultErrorCode = 'ENOSPC' | 'EIO';

/** One fault to arm with `FaultyFileSystem.failAt`: which operation, which occurrence, which error. */
export interface FaultSpec {
  op: FaultOp;
  /** 1-based: the Nth matching operation from the moment `failAt` is called fails. */
  nth: number;
  error: FaultErrorCode;
  /**
   * For writes: write half the bytes and return the short count instead of throwing. With
   * `persistent`, later matching operations throw `error`, as a disk that just filled up does.
   * A non-write operation matched by a short fault throws `error`.
   */
  short?: boolean;
  /** Only operations whose path (either path, for rename and link) contains this match. */
  pathIncludes?: string;
  /** Keep failing every matching operation after the Nth (a disk that stays full or broken). */
  persistent?: boolean;
}

/** One fault that fired, for tests to assert that the intended operation was hit. */
export interface TriggeredFault {
  op: CountedOp;
  path: string;
  error: FaultErrorCode;
  short: boolean;
}

type Outcome =
  | { kind: 'ok' }
  | { kind: 'short' }
  | { kind: 'throw'; error: NodeJS.ErrnoException }
  /** A durable write hit by a sync fault: the bytes land, then the call fails. */
  | { kind: 'landed'; error: NodeJS.ErrnoException };

interface ArmedFault {
  spec: FaultSpec;
  matched: number;
  fired: boolean;
}

const MESSAGES: Record<FaultErrorCode, string> = {
  ENOSPC: 'no space left on device',
  EIO: 'i/o error',
};

const SYSCALLS: Partial<Record<CountedOp, string>> = {
  write: 'write',
  sync: 'fdatasync',
  durableWrite: 'write',
  open: 'open',
  rename: 'rename',
  truncate: 'ftruncate',
  syncDir: 'fsync',
  unlink: 'unlink',
  link: 'link',
  mkdir: 'mkdir',
  read: 'read',
};

/** Builds an error shaped like the ones Node's fs throws, so the engine's error mapping is exercised. */
export function makeFsError(
  code: FaultErrorCode,
  op: CountedOp,
  path: string,
  dest?: string,
): NodeJS.ErrnoException {
  const syscall = SYSCALLS[op] ?? op;
  const target = dest === undefined ? `'${path}'` : `'${path}' -> '${dest}'`;
  const err = new Error(`${code}: ${MESSAGES[code]}, ${syscall} ${target}`) as NodeJS.ErrnoException;
  err.code = code;
  err.errno = -osConstants.errno[code];
  err.syscall = syscall;
  err.path = path;
  if (dest !== undefined) (err as NodeJS.ErrnoException & { dest: string }).dest = dest;
  return err;
}

function emptyCounts(): Record<CountedOp, number> {
  return {
    write: 0,
    sync: 0,
    durableWrite: 0,
    open: 0,
    rename: 0,
    truncate: 0,
    syncDir: 0,
    unlink: 0,
    link: 0,
    mkdir: 0,
    read: 0,
    'any-write': 0,
    readdir: 0,
    exists: 0,
    freeBytes: 0,
    close: 0,
  };
}

/** `op` is the operation, or for a durable write the operations it counts as (its own first). */
type Intercept = (
  op: CountedOp | readonly CountedOp[],
  mutating: boolean,
  path: string,
  dest?: string,
  sync?: boolean,
) => Outcome;

/** What a durable write counts as, and which faults match it. */
const DURABLE_WRITE_OPS: readonly CountedOp[] = ['durableWrite', 'write', 'sync'];

class FaultyFile implements WsFile {
  readonly path: string;
  readonly #inner: WsFile;
  readonly #intercept: Intercept;
  readonly #onClose: (f: FaultyFile) => void;

  constructor(inner: WsFile, intercept: Intercept, onClose: (f: FaultyFile) => void) {
    this.path = inner.path;
    this.#inner = inner;
    this.#intercept = intercept;
    this.#onClose = onClose;
  }

  readSync(buf: Uint8Array, offset: number, length: number, position: number): number {
    const o = this.#intercept('read', false, this.path, undefined, true);
    if (o.kind === 'throw') throw o.error;
    return this.#inner.readSync(buf, offset, length, position);
  }

  read(buf: Uint8Array, offset: number, length: number, position: number): Promise<number> {
    // The decision is taken at call time, so the count of an operation never depends on when an
    // earlier async operation happened to complete.
    const o = this.#intercept('read', false, this.path);
    if (o.kind === 'throw') return Promise.reject(o.error);
    return this.#inner.read(buf, offset, length, position);
  }

  writeSync(buf: Uint8Array, offset: number, length: number, position: number): number {
    const o = this.#intercept('write', true, this.path);
    if (o.kind === 'throw') throw o.error;
    if (o.kind === 'short') {
      const half = Math.floor(length / 2);
      return half === 0 ? 0 : this.#inner.writeSync(buf, offset, half, position);
    }
    return this.#inner.writeSync(buf, offset, length, position);
  }

  write(buf: Uint8Array, offset: number, length: number, position: number): Promise<number> {
    const o = this.#intercept('write', true, this.path);
    if (o.kind === 'throw') return Promise.reject(o.error);
    if (o.kind === 'short') {
      const half = Math.floor(length / 2);
      return half === 0 ? Promise.resolve(0) : this.#inner.write(buf, offset, half, position);
    }
    return this.#inner.write(buf, offset, length, position);
  }

  async writeDurable(buf: Uint8Array, offset: number, length: number, position: number): Promise<number> {
    const o = this.#intercept(DURABLE_WRITE_OPS, true, this.path);
    switch (o.kind) {
      case 'throw':
        throw o.error;
      case 'short': {
        const half = Math.floor(length / 2);
        return half === 0 ? 0 : writeDurable(this.#inner, buf, offset, half, position);
      }
      case 'landed':
        await this.#inner.write(buf, offset, length, position);
        throw o.error;
      case 'ok':
        return writeDurable(this.#inner, buf, offset, length, position);
    }
  }

  sync(): Promise<void> {
    const o = this.#intercept('sync', true, this.path);
    if (o.kind !== 'ok')
      return Promise.reject(o.kind === 'throw' ? o.error : makeFsError('EIO', 'sync', this.path));
    return this.#inner.sync();
  }

  truncate(length: number): Promise<void> {
    const o = this.#intercept('truncate', true, this.path);
    if (o.kind !== 'ok') {
      return Promise.reject(o.kind === 'throw' ? o.error : makeFsError('EIO', 'truncate', this.path));
    }
    return this.#inner.truncate(length);
  }

  size(): number {
    return this.#inner.size();
  }

  async close(): Promise<void> {
    this.#intercept('close', false, this.path);
    // A handle counts as released even if the inner close fails: the descriptor is gone either way.
    this.#onClose(this);
    await this.#inner.close();
  }

  closeSync(): void {
    this.#intercept('close', false, this.path);
    this.#onClose(this);
    this.#inner.closeSync();
  }
}

/**
 * A file layer that injects faults into another one (the real fs by default): the Nth matching
 * operation throws ENOSPC/EIO shaped like Node's errors, or performs a short write. Counters let
 * a test first measure how many operations a call makes, then fail each of them in turn.
 */
export class FaultyFileSystem implements WsFileSystem {
  /** Operations seen since construction or the last `reset()`/`resetCounts()`. */
  counts: Record<CountedOp, number> = emptyCounts();
  /** Faults that fired, in order. */
  readonly triggered: TriggeredFault[] = [];
  /** When set, `freeBytes` reports this instead of asking the inner file system (a "full" disk). */
  freeBytesOverride: number | undefined = undefined;
  /** Synchronous reads made (also counted in `counts.read`). */
  syncReads = 0;
  /**
   * A slow disk for synchronous reads: each `readSync` of a path containing `path` blocks the
   * calling thread for `ms` first (what a page-cache miss on a busy disk does).
   */
  slowSyncReads: { path: string; ms: number } | undefined = undefined;

  readonly #inner: WsFileSystem;
  #faults: ArmedFault[] = [];
  readonly #open = new Set<FaultyFile>();
  readonly #intercept: Intercept = (op, mutating, path, dest, sync) => {
    if (sync === true) {
      this.syncReads++;
      const slow = this.slowSyncReads;
      if (slow && path.includes(slow.path))
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, slow.ms);
    }
    return this.#check(op, mutating, path, dest);
  };
  readonly #release = (f: FaultyFile): void => {
    this.#open.delete(f);
  };

  constructor(inner: WsFileSystem = nodeFileSystem) {
    this.#inner = inner;
  }

  /** Arms a fault. Several may be armed at once; the first that fires on an operation wins. */
  failAt(spec: FaultSpec): void {
    if (!Number.isInteger(spec.nth) || spec.nth < 1)
      throw new RangeError(`nth must be an integer >= 1: ${spec.nth}`);
    this.#faults.push({ spec: { ...spec }, matched: 0, fired: false });
  }

  /** Disarms every fault, zeroes the counters, forgets triggered faults and the free-space override. */
  reset(): void {
    this.#faults = [];
    this.triggered.length = 0;
    this.freeBytesOverride = undefined;
    this.slowSyncReads = undefined;
    this.syncReads = 0;
    this.resetCounts();
  }

  /** Zeroes the counters only (armed faults keep their own progress). */
  resetCounts(): void {
    this.counts = emptyCounts();
  }

  /** Disarms every fault but keeps counters. */
  clearFaults(): void {
    this.#faults = [];
  }

  /** Armed faults that have not fired yet (persistent ones count until they first fire). */
  get pendingFaults(): number {
    return this.#faults.filter((f) => !f.fired).length;
  }

  /** Paths of handles opened through this layer and not closed yet, to detect leaks after errors. */
  openFiles(): string[] {
    return [...this.#open].map((f) => f.path);
  }

  #check(what: CountedOp | readonly CountedOp[], mutating: boolean, path: string, dest?: string): Outcome {
    const ops: readonly CountedOp[] = typeof what === 'string' ? [what] : what;
    const op = ops[0]!;
    for (const o of ops) this.counts[o]++;
    if (mutating) this.counts['any-write']++;
    let outcome: Outcome = { kind: 'ok' };
    for (const f of this.#faults) {
      const { spec } = f;
      if (!ops.includes(spec.op) && !(spec.op === 'any-write' && mutating)) continue;
      if (spec.pathIncludes !== undefined) {
        const hit = path.includes(spec.pathIncludes) || (dest?.includes(spec.pathIncludes) ?? false);
        if (!hit) continue;
      }
      f.matched++;
      const fires = f.matched === spec.nth || (spec.persistent === true && f.matched > spec.nth);
      // Every armed fault advances its count, but only the first firing one decides the outcome.
      if (!fires || outcome.kind !== 'ok') continue;
      const firstShot = f.matched === spec.nth;
      f.fired = true;
      // The operation as the fault named it (a durable write hit as a write or a sync).
      const as = spec.op === 'any-write' ? op : spec.op;
      const short = spec.short === true && firstShot && (as === 'write' || as === 'durableWrite');
      this.triggered.push({ op: as, path, error: spec.error, short });
      const error = makeFsError(spec.error, as, path, dest);
      if (short) outcome = { kind: 'short' };
      else if (as === 'sync' && op === 'durableWrite') outcome = { kind: 'landed', error };
      else outcome = { kind: 'throw', error };
    }
    this.#faults = this.#faults.filter((f) => !f.fired || f.spec.persistent === true);
    return outcome;
  }

  open(path: string, mode: OpenMode): WsFile {
    const o = this.#check('open', mode === 'create' || mode === 'excl', path);
    if (o.kind !== 'ok') throw o.kind === 'throw' ? o.error : makeFsError('EIO', 'open', path);
    const f = new FaultyFile(this.#inner.open(path, mode), this.#intercept, this.#release);
    this.#open.add(f);
    return f;
  }

  readFile(path: string): Promise<Buffer> {
    const o = this.#check('read', false, path);
    if (o.kind === 'throw') return Promise.reject(o.error);
    return this.#inner.readFile(path);
  }

  rename(from: string, to: string): Promise<void> {
    const o = this.#check('rename', true, from, to);
    if (o.kind !== 'ok')
      return Promise.reject(o.kind === 'throw' ? o.error : makeFsError('EIO', 'rename', from, to));
    return this.#inner.rename(from, to);
  }

  unlink(path: string): Promise<void> {
    const o = this.#check('unlink', true, path);
    if (o.kind !== 'ok')
      return Promise.reject(o.kind === 'throw' ? o.error : makeFsError('EIO', 'unlink', path));
    return this.#inner.unlink(path);
  }

  link(from: string, to: string): Promise<void> {
    const o = this.#check('link', true, from, to);
    if (o.kind !== 'ok')
      return Promise.reject(o.kind === 'throw' ? o.error : makeFsError('EIO', 'link', from, to));
    return this.#inner.link(from, to);
  }

  readdir(path: string): Promise<string[]> {
    this.#check('readdir', false, path);
    return this.#inner.readdir(path);
  }

  mkdir(path: string): Promise<void> {
    const o = this.#check('mkdir', true, path);
    if (o.kind !== 'ok')
      return Promise.reject(o.kind === 'throw' ? o.error : makeFsError('EIO', 'mkdir', path));
    return this.#inner.mkdir(path);
  }

  exists(path: string): Promise<boolean> {
    this.#check('exists', false, path);
    return this.#inner.exists(path);
  }

  syncDir(path: string): Promise<void> {
    const o = this.#check('syncDir', true, path);
    if (o.kind !== 'ok')
      return Promise.reject(o.kind === 'throw' ? o.error : makeFsError('EIO', 'syncDir', path));
    return this.#inner.syncDir(path);
  }

  freeBytes(path: string): Promise<number> {
    this.#check('freeBytes', false, path);
    if (this.freeBytesOverride !== undefined) return Promise.resolve(this.freeBytesOverride);
    return this.#inner.freeBytes(path);
  }
}
