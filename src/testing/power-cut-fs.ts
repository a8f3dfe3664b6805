import * as fs from 'node:fs';
import { basename, dirname, isAbsolute, join, relative, resolve } from 'node:path';
import type { OpenMode, WsFile, WsFileSystem } from '../fs/types.js';

/** Name of the hidden directory under the root that holds the hard links of tracked inodes. */
const STASH = '.powercut-stash';

/** How `PowerCutFileSystem.cut()` (or an armed `cutAtOp`) reverts the tree. */
export interface CutOptions {
  /**
   * Seed for a harsher crash: each unsynced overwrite independently persists or not, and a file
   * grown since its last sync keeps either its synced size or its current size (with unsynced
   * 4 KiB pages of the growth either kept or zeroed). Directory entries still revert exactly.
   * Without it the tree reverts to exactly the durable state.
   */
  tornSeed?: number;
  /**
   * Files (by the path they had when first written through this layer) whose unsynced writes all
   * reach the disk anyway, as when the kernel's writeback flushed one file and not another. Lets a
   * test pick an exact reordering (say, the WAL page persisted, the content page did not).
   */
  keepUnsynced?: (path: string) => boolean;
}

/** What a cut changed on disk, for tests to assert that the cut point mattered. */
export interface CutReport {
  /** Files whose data was rolled back (bytes restored or size changed). */
  filesReverted: string[];
  /** Directory entries removed because their creation or rename was not durable. */
  entriesRemoved: string[];
  /** Directory entries put back because their unlink or rename was not durable. */
  entriesRestored: string[];
}

interface UndoEntry {
  seq: number;
  pos: number;
  len: number;
  /**
   * The bytes [pos, pos+len) held before; undefined when they lay past the file's end (growth):
   * nothing to restore, and undone as zeros (a hole) should a durable write beyond them make the
   * durable size cover them.
   */
  data: Buffer | undefined;
  /** Bytes cut off by a truncate; always restored, even in torn mode (truncation is metadata). */
  truncate: boolean;
  /**
   * Left by a durable write: a torn cut keeps or undoes each 4 KiB page of it on its own (a durable
   * write in flight when the power went may have landed in part).
   */
  paged: boolean;
}

/** A durable write that resolved after the last resolved sync's call: its end is durable size. */
interface DurableWrite {
  seq: number;
  end: number;
}

interface InodeState {
  key: string;
  stashPath: string;
  /** A name the inode had when first tracked, for reports. */
  name: string;
  /** Current size, maintained here because every change goes through this layer. */
  size: number;
  syncedSize: number;
  /** The seq of the latest sync call that resolved; later-resolving older calls change nothing. */
  syncedMark: number;
  undo: UndoEntry[];
  /** Durable writes that resolved and were called after `syncedMark`. */
  durable: DurableWrite[];
}

const PAGE = 4096;

/**
 * Drops the bytes [start, end) from the undo records older than `seq`: a durable write made them
 * durable. Newer records keep them (they hold what the durable write left, or later bytes).
 */
function trimUndo(undo: UndoEntry[], seq: number, start: number, end: number): UndoEntry[] {
  const out: UndoEntry[] = [];
  for (const u of undo) {
    const uEnd = u.pos + u.len;
    if (u.seq > seq || uEnd <= start || u.pos >= end) {
      out.push(u);
      continue;
    }
    if (u.pos < start) out.push(slice(u, u.pos, start));
    if (uEnd > end) out.push(slice(u, end, uEnd));
  }
  return out;
}

function slice(u: UndoEntry, from: number, to: number): UndoEntry {
  const data = u.data?.subarray(from - u.pos, to - u.pos);
  return { ...u, pos: from, len: to - from, data };
}

/** Writes what `u` says [pos, pos+len) held: its saved bytes, or zeros for growth. */
function restore(fd: number, u: UndoEntry, pos: number, len: number): void {
  if (u.data !== undefined) {
    fs.writeSync(fd, u.data, pos - u.pos, len, pos);
    return;
  }
  const zero = Buffer.alloc(Math.min(len, 1 << 20));
  for (let at = pos; at < pos + len; at += zero.length)
    fs.writeSync(fd, zero, 0, Math.min(zero.length, pos + len - at), at);
}

interface DirChange {
  seq: number;
  name: string;
  /** Inode key the entry pointed to before the change, or null when it did not exist. */
  before: string | null;
}

function powerCutError(what: string): NodeJS.ErrnoException {
  const err = new Error(`EIO: power cut, the file system is gone (${what})`) as NodeJS.ErrnoException;
  err.code = 'EIO';
  err.syscall = what;
  return err;
}

function inodeKey(st: fs.Stats): string {
  return `${st.dev}-${st.ino}`;
}

/** Small deterministic PRNG (mulberry32) for torn cuts. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The bookkeeping of a `PowerCutFileSystem` that its file handles use. */
interface FileHost {
  isCut(): boolean;
  nextSeq(): number;
  /** Counts a mutating operation and cuts the power if a cut was armed for it. */
  beforeMutation(op: string): void;
  /** Resolves `fn()` on a later turn, or rejects if the power was cut meanwhile. */
  later<T>(fn: () => T): Promise<T>;
  /** The tracked state of the inode behind `fd`, if any. */
  stateOf(fd: number): InodeState | undefined;
  forget(h: PowerCutFile): void;
  /**
   * Saves the bytes a write at [pos, pos+len) is about to overwrite, and notes the part past the
   * end; `paged` for a durable write.
   */
  captureWrite(state: InodeState, fd: number, pos: number, len: number, paged: boolean): void;
  /** A durable write called at `seq` resolved: [start, end) and the size reaching it are durable. */
  markDurable(state: InodeState, seq: number, start: number, end: number): void;
  captureTruncate(state: InodeState, fd: number, length: number): void;
}

class PowerCutFile implements WsFile {
  readonly path: string;
  readonly #host: FileHost;
  readonly #state: InodeState | undefined;
  #fd: number | undefined;

  constructor(host: FileHost, path: string, fd: number, state: InodeState | undefined) {
    this.path = path;
    this.#host = host;
    this.#fd = fd;
    this.#state = state;
  }

  #live(op: string): number {
    if (this.#host.isCut()) throw powerCutError(op);
    if (this.#fd === undefined) {
      const err = new Error(`EBADF: bad file descriptor, ${op} '${this.path}'`) as NodeJS.ErrnoException;
      err.code = 'EBADF';
      throw err;
    }
    return this.#fd;
  }

  #writable(op: string): InodeState {
    if (this.#state === undefined) {
      const err = new Error(`EBADF: file opened read-only, ${op} '${this.path}'`) as NodeJS.ErrnoException;
      err.code = 'EBADF';
      throw err;
    }
    return this.#state;
  }

  /** Called by `cut()`: the descriptor is closed and every later call fails. */
  invalidate(): void {
    if (this.#fd !== undefined) {
      try {
        fs.closeSync(this.#fd);
      } catch {
        // Already closed or broken: either way the handle is dead, which is the point.
      }
      this.#fd = undefined;
    }
  }

  readSync(buf: Uint8Array, offset: number, length: number, position: number): number {
    return fs.readSync(this.#live('read'), buf, offset, length, position);
  }

  read(buf: Uint8Array, offset: number, length: number, position: number): Promise<number> {
    return this.#host.later(() => this.readSync(buf, offset, length, position));
  }

  writeSync(buf: Uint8Array, offset: number, length: number, position: number): number {
    return this.#apply(buf, offset, length, position, false).n;
  }

  /** Writes now, with what a cut must undo captured first (`durable`: see `writeDurable`). */
  #apply(
    buf: Uint8Array,
    offset: number,
    length: number,
    position: number,
    durable: boolean,
  ): { state: InodeState; n: number } {
    const fd = this.#live('write');
    const state = this.#writable('write');
    this.#host.beforeMutation('write');
    this.#host.captureWrite(state, fd, position, length, durable);
    const n = fs.writeSync(fd, buf, offset, length, position);
    state.size = Math.max(state.size, position + n);
    return { state, n };
  }

  writeDurable(buf: Uint8Array, offset: number, length: number, position: number): Promise<number> {
    // Applied now like a write; durable (its range only) once it resolves. A cut before that
    // leaves it undone, or torn page by page in a torn cut.
    try {
      const { state, n } = this.#apply(buf, offset, length, position, true);
      const seq = this.#host.nextSeq();
      return this.#host.later(() => {
        this.#host.markDurable(state, seq, position, position + n);
        return n;
      });
    } catch (err) {
      return Promise.reject(err);
    }
  }

  write(buf: Uint8Array, offset: number, length: number, position: number): Promise<number> {
    // Applied now, acknowledged later: the caller sees an async write, the model sees no ambiguity.
    try {
      const n = this.writeSync(buf, offset, length, position);
      return this.#host.later(() => n);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  sync(): Promise<void> {
    try {
      const fd = this.#live('fdatasync');
      // fdatasync syncs the inode whatever the descriptor's mode, so a read-only handle may sync
      // bytes written through another one.
      const state = this.#state ?? this.#host.stateOf(fd);
      this.#host.beforeMutation('sync');
      if (state === undefined) return this.#host.later(() => undefined);
      // Only what was written before the call is covered: capture the mark and size now.
      const mark = this.#host.nextSeq();
      const size = state.size;
      return this.#host.later(() => {
        if (mark > state.syncedMark) {
          state.syncedMark = mark;
          // Durable writes called after this sync and already resolved keep their size.
          state.durable = state.durable.filter((d) => d.seq > mark);
          state.syncedSize = state.durable.reduce((m, d) => Math.max(m, d.end), size);
          state.undo = state.undo.filter((u) => u.seq > mark);
        }
      });
    } catch (err) {
      return Promise.reject(err);
    }
  }

  truncate(length: number): Promise<void> {
    try {
      const fd = this.#live('ftruncate');
      const state = this.#writable('ftruncate');
      this.#host.beforeMutation('truncate');
      this.#host.captureTruncate(state, fd, length);
      fs.ftruncateSync(fd, length);
      state.size = length;
      return this.#host.later(() => undefined);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  size(): number {
    return fs.fstatSync(this.#live('fstat')).size;
  }

  close(): Promise<void> {
    try {
      this.closeSync();
      return this.#host.later(() => undefined);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  closeSync(): void {
    const fd = this.#live('close');
    this.#fd = undefined;
    this.#host.forget(this);
    fs.closeSync(fd);
  }
}

/**
 * A file layer over the real fs of one directory tree that can simulate a power cut: `cut()`
 * reverts the tree to exactly what the rules of POSIX durability guarantee, and nothing more.
 *
 * - A file's data and size are durable as of the last `sync()` (fdatasync) *call* that resolved;
 *   bytes written after that call, or written and never synced, are undone.
 * - A `writeDurable` that resolved is durable: its bytes, and the file's size up to its end (a
 *   range it skipped over that no durable call covers reads as zeros). One that had not resolved
 *   is undone, or in a torn cut kept or undone page by page.
 * - A directory entry (create, rename, unlink, link, mkdir) is durable once `syncDir` of the
 *   directory holding it was called after the change and resolved.
 *
 * How: every mutation is applied to the real files at the instant it is called (so there is never
 * an "in flight" write whose fate is ambiguous) and leaves an undo record: the old bytes of
 * overwritten or truncated ranges per inode, and the previous target of each changed directory
 * entry. Every inode that may need restoring keeps a hard link in a hidden stash directory, so
 * its bytes survive unlink and rename-over and its inode number cannot be reused meanwhile.
 * Real fsyncs are skipped: nothing here needs the disk to be durable, only the bookkeeping.
 *
 * Meant for small stores in tests (undo logs are kept in memory).
 */
export class PowerCutFileSystem implements WsFileSystem {
  /** The directory tree this layer models (absolute). */
  readonly root: string;
  readonly #stash: string;
  #cut = false;
  #seq = 0;
  #ops = 0;
  #cutAtOp: number | undefined;
  #cutOptions: CutOptions = {};
  #lastReport: CutReport | undefined;
  readonly #inodes = new Map<string, InodeState>();
  readonly #dirs = new Map<string, DirChange[]>();
  readonly #handles = new Set<PowerCutFile>();

  /**
   * `root` must exist. Everything under it at construction is taken as durable; every mutation
   * must stay under it (the stash of hard links lives there, hidden from `readdir`).
   */
  constructor(root: string) {
    this.root = resolve(root);
    if (!fs.statSync(this.root).isDirectory()) throw new Error(`not a directory: ${this.root}`);
    this.#stash = join(this.root, STASH);
    fs.rmSync(this.#stash, { recursive: true, force: true });
    fs.mkdirSync(this.#stash);
  }

  /** True once the power was cut (by `cut()` or an armed `cutAtOp`) or the layer disposed. */
  get isCut(): boolean {
    return this.#cut;
  }

  /** Mutating operations seen so far (writes, syncs, truncates, directory changes, creating opens). */
  get opCount(): number {
    return this.#ops;
  }

  /** The report of the cut, once it happened (also useful when it was triggered by `cutAtOp`). */
  get lastCut(): CutReport | undefined {
    return this.#lastReport;
  }

  /**
   * Cuts the power when the Nth mutating operation from now is attempted: that operation fails
   * and never happens. Lets a test sweep cut points through a workload deterministically.
   */
  cutAtOp(nth: number, options: CutOptions = {}): void {
    if (!Number.isInteger(nth) || nth < 1) throw new RangeError(`nth must be an integer >= 1: ${nth}`);
    this.#cutAtOp = this.#ops + nth;
    this.#cutOptions = options;
  }

  /**
   * Reverts the tree to its durable state. Every handle becomes invalid and every later call on
   * this file system fails, as on a machine without power; reopen with a fresh file system.
   */
  cut(options: CutOptions = {}): CutReport {
    if (this.#cut) throw new Error('power already cut');
    this.#cut = true;
    for (const h of this.#handles) h.invalidate();
    this.#handles.clear();
    const report: CutReport = { filesReverted: [], entriesRemoved: [], entriesRestored: [] };
    const rnd = options.tornSeed === undefined ? undefined : prng(options.tornSeed);

    // Data first, through the stash links, while every tracked inode is still reachable.
    for (const state of this.#inodes.values()) {
      if (options.keepUnsynced?.(state.name) === true) continue;
      if (this.#revertData(state, rnd)) report.filesReverted.push(state.name);
    }

    // Then names: for each changed entry, its durable target is the "before" of the earliest change
    // not covered by a syncDir. Remove all such entries first, then relink the durable targets, so
    // that chains like a->b, b->a resolve whatever order they are visited in.
    const pending: Array<{ path: string; before: string | null }> = [];
    for (const [dir, changes] of this.#dirs) {
      const seen = new Set<string>();
      for (const c of changes) {
        if (seen.has(c.name)) continue;
        seen.add(c.name);
        pending.push({ path: join(dir, c.name), before: c.before });
      }
    }
    for (const p of pending) {
      if (fs.existsSync(dirname(p.path))) {
        let existed = true;
        try {
          fs.lstatSync(p.path);
        } catch {
          existed = false;
        }
        fs.rmSync(p.path, { recursive: true, force: true });
        if (existed && p.before === null) report.entriesRemoved.push(p.path);
      }
    }
    for (const p of pending) {
      if (p.before === null || !fs.existsSync(dirname(p.path))) continue;
      const state = this.#inodes.get(p.before);
      if (state === undefined) throw new Error(`power-cut: lost track of inode ${p.before}`);
      fs.linkSync(state.stashPath, p.path);
      report.entriesRestored.push(p.path);
    }
    fs.rmSync(this.#stash, { recursive: true, force: true });
    this.#inodes.clear();
    this.#dirs.clear();
    this.#lastReport = report;
    return report;
  }

  /** Drops the stash without cutting (end of a test that never cut); the file system is then dead. */
  dispose(): void {
    if (this.#cut) return;
    this.#cut = true;
    for (const h of this.#handles) h.invalidate();
    this.#handles.clear();
    fs.rmSync(this.#stash, { recursive: true, force: true });
  }

  #revertData(state: InodeState, rnd: (() => number) | undefined): boolean {
    const hasUndo = state.undo.length > 0;
    if (!hasUndo && state.size === state.syncedSize) return false;
    const fd = fs.openSync(state.stashPath, 'r+');
    try {
      // Newest first, so each byte ends with the value captured by its earliest undo record: the
      // value it had when the covering sync was called.
      for (let i = state.undo.length - 1; i >= 0; i--) {
        const u = state.undo[i];
        if (u === undefined) continue;
        // Growth matters only below the durable size: the truncate below cuts the rest.
        const len = u.data === undefined ? Math.min(u.pos + u.len, state.syncedSize) - u.pos : u.len;
        if (len <= 0) continue;
        if (rnd === undefined || u.truncate) restore(fd, u, u.pos, len);
        else if (!u.paged) {
          if (rnd() >= 0.5) restore(fd, u, u.pos, len);
        } else {
          for (let at = u.pos; at < u.pos + len;) {
            const next = Math.min((Math.floor(at / PAGE) + 1) * PAGE, u.pos + len);
            if (rnd() >= 0.5) restore(fd, u, at, next - at);
            at = next;
          }
        }
      }
      const current = fs.fstatSync(fd).size;
      let target = state.syncedSize;
      if (rnd !== undefined && current > state.syncedSize && rnd() < 0.5) {
        target = current;
        const zero = Buffer.alloc(PAGE);
        for (let pos = state.syncedSize; pos < current; pos += PAGE) {
          if (rnd() < 0.5) fs.writeSync(fd, zero, 0, Math.min(PAGE, current - pos), pos);
        }
      }
      fs.ftruncateSync(fd, target);
    } finally {
      fs.closeSync(fd);
    }
    return true;
  }

  // ---- bookkeeping, reached by PowerCutFile only through #host ---------------------------------

  /** Handles reach the bookkeeping through this object, so none of it is a public method. */
  readonly #host: FileHost = {
    isCut: () => this.#cut,
    nextSeq: () => this.#nextSeq(),
    beforeMutation: (op) => this.#beforeMutation(op),
    later: (fn) => this.#later(fn),
    stateOf: (fd) => this.#stateOf(fd),
    forget: (h) => this.#forget(h),
    captureWrite: (state, fd, pos, len, paged) => this.#captureWrite(state, fd, pos, len, paged),
    markDurable: (state, seq, start, end) => this.#markDurable(state, seq, start, end),
    captureTruncate: (state, fd, length) => this.#captureTruncate(state, fd, length),
  };

  #nextSeq(): number {
    return ++this.#seq;
  }

  /** Counts a mutating operation and cuts the power if a cut was armed for it. */
  #beforeMutation(op: string): void {
    if (this.#cut) throw powerCutError(op);
    this.#ops++;
    if (this.#cutAtOp !== undefined && this.#ops >= this.#cutAtOp) {
      this.#cutAtOp = undefined;
      this.cut(this.#cutOptions);
      throw powerCutError(op);
    }
  }

  /** Resolves `fn()` on a later turn, or rejects if the power was cut meanwhile. */
  #later<T>(fn: () => T): Promise<T> {
    return new Promise((res, rej) => {
      setImmediate(() => {
        if (this.#cut) return rej(powerCutError('pending operation'));
        try {
          res(fn());
        } catch (err) {
          rej(err);
        }
      });
    });
  }

  /** The tracked state of the inode behind `fd`, if any. */
  #stateOf(fd: number): InodeState | undefined {
    return this.#inodes.get(inodeKey(fs.fstatSync(fd)));
  }

  #forget(h: PowerCutFile): void {
    this.#handles.delete(h);
  }

  /** Saves the bytes a write at [pos, pos+len) is about to overwrite; notes the growth past them. */
  #captureWrite(state: InodeState, fd: number, pos: number, len: number, paged: boolean): void {
    const end = Math.min(pos + len, state.size);
    if (end > pos) {
      const data = Buffer.allocUnsafe(end - pos);
      const n = fs.readSync(fd, data, 0, data.length, pos);
      state.undo.push({
        seq: this.#nextSeq(),
        pos,
        len: n,
        data: data.subarray(0, n),
        truncate: false,
        paged,
      });
    }
    const from = Math.max(pos, state.size);
    if (pos + len > from)
      state.undo.push({
        seq: this.#nextSeq(),
        pos: from,
        len: pos + len - from,
        data: undefined,
        truncate: false,
        paged,
      });
  }

  #markDurable(state: InodeState, seq: number, start: number, end: number): void {
    // A sync called after this write covered it already, and maybe a truncate after it too.
    if (seq <= state.syncedMark) return;
    state.undo = trimUndo(state.undo, seq, start, end);
    state.durable.push({ seq, end });
    state.syncedSize = Math.max(state.syncedSize, end);
  }

  #captureTruncate(state: InodeState, fd: number, length: number): void {
    if (length >= state.size) return;
    const data = Buffer.allocUnsafe(state.size - length);
    const n = fs.readSync(fd, data, 0, data.length, length);
    state.undo.push({
      seq: this.#nextSeq(),
      pos: length,
      len: n,
      data: data.subarray(0, n),
      truncate: true,
      paged: false,
    });
  }

  #alive(op: string): void {
    if (this.#cut) throw powerCutError(op);
  }

  #inside(p: string): string {
    const abs = resolve(p);
    const rel = relative(this.root, abs);
    if (rel.startsWith('..') || isAbsolute(rel)) throw new Error(`power-cut: ${abs} is outside ${this.root}`);
    if (rel === STASH || rel.startsWith(`${STASH}/`)) throw new Error(`power-cut: ${abs} is the stash`);
    return abs;
  }

  /** Starts tracking the inode at `path` (stat given), linking it into the stash. */
  #track(path: string, st: fs.Stats, createdNow: boolean): InodeState {
    const key = inodeKey(st);
    let state = this.#inodes.get(key);
    if (state === undefined) {
      const stashPath = join(this.#stash, key);
      fs.linkSync(path, stashPath);
      state = {
        key,
        stashPath,
        name: path,
        size: st.size,
        // A file created now has no durable bytes; one that existed at the start is durable as is.
        syncedSize: createdNow ? 0 : st.size,
        syncedMark: 0,
        undo: [],
        durable: [],
      };
      this.#inodes.set(key, state);
    }
    return state;
  }

  #recordEntry(path: string, before: string | null): void {
    const dir = dirname(path);
    let list = this.#dirs.get(dir);
    if (list === undefined) {
      list = [];
      this.#dirs.set(dir, list);
    }
    list.push({ seq: this.#nextSeq(), name: basename(path), before });
  }

  /** The inode key of a file at `path` (tracking it), null when absent; directories are refused. */
  #entryTarget(path: string): string | null {
    let st: fs.Stats;
    try {
      st = fs.lstatSync(path);
    } catch {
      return null;
    }
    if (st.isDirectory())
      throw new Error(`power-cut: renaming or replacing directories is not modelled (${path})`);
    return this.#track(path, st, false).key;
  }

  #done(): Promise<void> {
    return this.#later(() => undefined);
  }

  open(path: string, mode: OpenMode): WsFile {
    this.#alive('open');
    if (mode === 'r') {
      const abs = resolve(path);
      return this.#adopt(new PowerCutFile(this.#host, abs, fs.openSync(abs, 'r'), undefined));
    }
    const abs = this.#inside(path);
    const creating = mode === 'excl' || (mode === 'create' && !fs.existsSync(abs));
    if (creating) this.#beforeMutation('open');
    let fd: number;
    if (mode === 'rw') fd = fs.openSync(abs, 'r+');
    else if (mode === 'excl') fd = fs.openSync(abs, 'wx+');
    else fd = fs.openSync(abs, creating ? 'wx+' : 'r+');
    try {
      const state = this.#track(abs, fs.fstatSync(fd), creating);
      if (creating) this.#recordEntry(abs, null);
      return this.#adopt(new PowerCutFile(this.#host, abs, fd, state));
    } catch (err) {
      fs.closeSync(fd);
      throw err;
    }
  }

  #adopt(f: PowerCutFile): PowerCutFile {
    this.#handles.add(f);
    return f;
  }

  readFile(path: string): Promise<Buffer> {
    try {
      this.#alive('readFile');
      return this.#later(() => fs.readFileSync(path));
    } catch (err) {
      return Promise.reject(err);
    }
  }

  rename(from: string, to: string): Promise<void> {
    try {
      this.#alive('rename');
      const src = this.#inside(from);
      const dst = this.#inside(to);
      this.#beforeMutation('rename');
      const srcKey = this.#entryTarget(src);
      if (srcKey === null) fs.lstatSync(src); // throws ENOENT like rename would
      const dstKey = this.#entryTarget(dst);
      fs.renameSync(src, dst);
      this.#recordEntry(src, srcKey);
      this.#recordEntry(dst, dstKey);
      return this.#done();
    } catch (err) {
      return Promise.reject(err);
    }
  }

  unlink(path: string): Promise<void> {
    try {
      this.#alive('unlink');
      const abs = this.#inside(path);
      this.#beforeMutation('unlink');
      const key = this.#entryTarget(abs);
      fs.unlinkSync(abs);
      this.#recordEntry(abs, key);
      return this.#done();
    } catch (err) {
      return Promise.reject(err);
    }
  }

  link(from: string, to: string): Promise<void> {
    try {
      this.#alive('link');
      const src = this.#inside(from);
      const dst = this.#inside(to);
      this.#beforeMutation('link');
      fs.linkSync(src, dst);
      // The source inode may be written through no handle of ours; track it so a relink is possible.
      this.#track(src, fs.lstatSync(src), false);
      this.#recordEntry(dst, null);
      return this.#done();
    } catch (err) {
      return Promise.reject(err);
    }
  }

  readdir(path: string): Promise<string[]> {
    try {
      this.#alive('readdir');
      const abs = resolve(path);
      const names = fs.readdirSync(abs);
      return this.#later(() => (abs === this.root ? names.filter((n) => n !== STASH) : names));
    } catch (err) {
      return Promise.reject(err);
    }
  }

  mkdir(path: string): Promise<void> {
    try {
      this.#alive('mkdir');
      const abs = this.#inside(path);
      // Record each missing component: its entry in its parent is not durable until syncDir(parent).
      const missing: string[] = [];
      for (let p = abs; !fs.existsSync(p); p = dirname(p)) missing.unshift(p);
      if (missing.length > 0) this.#beforeMutation('mkdir');
      for (const p of missing) {
        fs.mkdirSync(p);
        this.#recordEntry(p, null);
      }
      return this.#done();
    } catch (err) {
      return Promise.reject(err);
    }
  }

  exists(path: string): Promise<boolean> {
    try {
      this.#alive('exists');
      const found = fs.existsSync(path);
      return this.#later(() => found);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  syncDir(path: string): Promise<void> {
    try {
      this.#alive('syncDir');
      const abs = resolve(path);
      if (!fs.statSync(abs).isDirectory()) throw new Error(`power-cut: syncDir of a non-directory ${abs}`);
      this.#beforeMutation('syncDir');
      const mark = this.#nextSeq();
      return this.#later(() => {
        const list = this.#dirs.get(abs);
        if (list === undefined) return;
        const rest = list.filter((c) => c.seq > mark);
        if (rest.length === 0) this.#dirs.delete(abs);
        else this.#dirs.set(abs, rest);
      });
    } catch (err) {
      return Promise.reject(err);
    }
  }

  async freeBytes(path: string): Promise<number> {
    this.#alive('freeBytes');
    const s = await fs.promises.statfs(path);
    return s.bavail * s.bsize;
  }
}
