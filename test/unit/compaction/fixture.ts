/**
 * Shared fixture of the compaction tests: deterministic records whose expected value can be
 * recomputed from (id, version), a Map model of what the store must hold, and small file layers
 * that observe or delay the engine's I/O.
 */
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { WarmStore, nodeFileSystem } from '../../../src/index.js';
import { delegate } from '../../helpers/wrapped-fs.js';
import type {
  MemoryRecord,
  OpenMode,
  StoredMemory,
  WarmStoreLogger,
  WarmStoreOptions,
  WsFile,
  WsFileSystem,
} from '../../../src/index.js';

export const DIM = 16;
export const KiB = 1024;
export const MiB = 1024 * 1024;
/** Segment file header size (src/format/header.ts); only used for file-size bounds. */
export const SEGMENT_HEADER_BYTES = 32;

/** FNV-1a, so (id, version) pairs map to well-spread 32-bit numbers. */
export function hash(...parts: Array<string | number>): number {
  let h = 0x811c9dc5;
  for (const part of parts) {
    const s = `${String(part)}\u0001`;
    for (let i = 0; i < s.length; i++) {
      h ^= s.charCodeAt(i);
      h = Math.imul(h, 0x01000193) >>> 0;
    }
  }
  return h >>> 0;
}

/**
 * A pool of mostly-ASCII text with 2- and 3-byte UTF-8 characters mixed in. BMP only, so a slice
 * never splits a surrogate pair and every content string is well-formed UTF-8 when encoded.
 */
const POOL: string = (() => {
  const alphabet = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,;:!?-_\n';
  const extra = ['é', 'ß', 'Ж', '漢', '字', '\u0000'];
  let a = 12345;
  const out: string[] = [];
  for (let i = 0; i < 8192; i++) {
    a = (Math.imul(a, 1103515245) + 12345) >>> 0;
    out.push(a % 23 === 0 ? extra[(a >>> 8) % extra.length]! : alphabet[(a >>> 8) % alphabet.length]!);
  }
  return out.join('');
})();

export interface ContentShape {
  /** Smallest and largest number of characters (bytes are a little more: some are multi-byte). */
  min: number;
  max: number;
}

export const SMALL: ContentShape = { min: 50, max: 2000 };

/**
 * Deterministic content of (id, version). It starts with `${id}|v${version}|`, so a misplaced or
 * stale entry can never compare equal to the expected value.
 */
export function contentOf(id: string, version: number, shape: ContentShape = SMALL): string {
  const h = hash('c', id, version);
  const head = `${id}|v${version}|`;
  const len = Math.max(0, shape.min + (h % (shape.max - shape.min + 1)) - head.length);
  if (len <= POOL.length) {
    const start = (h >>> 3) % (POOL.length - len + 1);
    return head + POOL.slice(start, start + len);
  }
  const reps = Math.ceil(len / POOL.length);
  return head + POOL.repeat(reps).slice(h % 97, (h % 97) + len);
}

export function embeddingOf(id: string, version: number, dim = DIM): Float32Array {
  const v = new Float32Array(dim);
  let a = hash('e', id, version) || 1;
  for (let i = 0; i < dim; i++) {
    a ^= a << 13;
    a ^= a >>> 17;
    a ^= a << 5;
    v[i] = ((a >>> 0) / 4294967296) * 2 - 1;
  }
  v[0] = (v[0] ?? 0) + 0.01;
  return v;
}

/** What the model remembers of a record: its version and its content (null = absent). */
export interface ModelValue {
  v: number;
  content: string | null;
}

export type Model = Map<string, ModelValue>;

export function recordOf(id: string, v: number, content: string | null, dim = DIM): MemoryRecord {
  return {
    id,
    embedding: embeddingOf(id, v, dim),
    content,
    confidence: (hash('k', id, v) % 1025) / 1024,
    createdAt: 1_700_000_000_000 + (hash('t', id, v) % 1_000_000),
  };
}

/** Puts (id, v) with the default content and records it in the model once acknowledged. */
export async function putVersion(
  store: WarmStore,
  model: Model,
  id: string,
  v: number,
  shape: ContentShape = SMALL,
): Promise<void> {
  const content = contentOf(id, v, shape);
  await store.put(recordOf(id, v, content, store.dimension));
  model.set(id, { v, content });
}

/** Puts many (id, v) pairs in batches of `batch` (one group commit each). */
export async function putAll(
  store: WarmStore,
  model: Model,
  items: Iterable<[string, number]>,
  shape: ContentShape = SMALL,
  batch = 1000,
): Promise<void> {
  let recs: MemoryRecord[] = [];
  let vals: [string, ModelValue][] = [];
  const flush = async (): Promise<void> => {
    if (recs.length === 0) return;
    await store.putMany(recs);
    for (const [id, mv] of vals) model.set(id, mv);
    recs = [];
    vals = [];
  };
  for (const [id, v] of items) {
    const content = contentOf(id, v, shape);
    recs.push(recordOf(id, v, content, store.dimension));
    vals.push([id, { v, content }]);
    if (recs.length >= batch) await flush();
  }
  await flush();
}

export function* versions(ids: Iterable<string>, v: number): Generator<[string, number]> {
  for (const id of ids) yield [id, v];
}

export function idList(n: number, prefix = 'm'): string[] {
  const out: string[] = [];
  for (let i = 0; i < n; i++) out.push(`${prefix}${String(i).padStart(6, '0')}`);
  return out;
}

/** Deletes ids (all concurrently, sharing group commits) and removes them from the model. */
export async function deleteAll(
  store: WarmStore,
  model: Model,
  ids: readonly string[],
  chunk = 2000,
): Promise<void> {
  for (let i = 0; i < ids.length; i += chunk) {
    const part = ids.slice(i, i + chunk);
    const res = await Promise.all(part.map((id) => store.delete(id)));
    part.forEach((id, j) => {
      assert.equal(res[j], model.has(id), `delete(${id}) returned ${String(res[j])}`);
      model.delete(id);
    });
  }
}

/** Puts version 1 of `ids` (content of `shape`), then deletes every other one: half dead. */
export async function putHalfDeleted(
  store: WarmStore,
  model: Model,
  ids: readonly string[],
  shape: ContentShape,
): Promise<void> {
  await putAll(store, model, versions(ids, 1), shape);
  await deleteAll(
    store,
    model,
    ids.filter((_, i) => i % 2 === 0),
  );
}

/** Asserts one stored memory against the model value, byte for byte. */
export function expectValue(
  got: StoredMemory | undefined,
  id: string,
  want: ModelValue | undefined,
  ctx = '',
): void {
  const where = `${ctx ? `${ctx}: ` : ''}${id}`;
  if (want === undefined) {
    assert.equal(got, undefined, `${where}: should be absent`);
    return;
  }
  assert.ok(got !== undefined, `${where}: missing`);
  assert.equal(got.id, id, `${where}: id`);
  if (want.content === null) {
    assert.equal(got.content, null, `${where}: content should be absent (null)`);
  } else {
    assert.equal(typeof got.content, 'string', `${where}: content should be a string`);
    const a = Buffer.from(got.content!, 'utf8');
    const b = Buffer.from(want.content, 'utf8');
    if (!a.equals(b)) {
      assert.fail(
        `${where}: content differs: ${a.length} bytes vs ${b.length} bytes, starts ${JSON.stringify(got.content!.slice(0, 40))}`,
      );
    }
  }
  const e = embeddingOf(id, want.v, got.embedding.length);
  assert.equal(
    Buffer.compare(
      Buffer.from(got.embedding.buffer, got.embedding.byteOffset, got.embedding.byteLength),
      Buffer.from(e.buffer),
    ),
    0,
    `${where}: embedding differs`,
  );
}

/** Every model entry reads back exactly (getSync), and nothing else is in the store. */
export function expectStoreEquals(store: WarmStore, model: Model, ctx = ''): void {
  assert.equal(store.size, model.size, `${ctx}: store.size`);
  for (const [id, want] of model) expectValue(store.getSync(id), id, want, ctx);
  for (const id of store.ids()) assert.ok(model.has(id), `${ctx}: unexpected id ${id} in the store`);
}

/** Same as expectStoreEquals through the async get path. */
export async function expectStoreEqualsAsync(store: WarmStore, model: Model, ctx = ''): Promise<void> {
  assert.equal(store.size, model.size, `${ctx}: store.size`);
  const ids = [...model.keys()];
  for (let i = 0; i < ids.length; i += 256) {
    const part = ids.slice(i, i + 256);
    const got = await Promise.all(part.map((id) => store.get(id)));
    part.forEach((id, j) => expectValue(got[j], id, model.get(id), ctx));
  }
}

export function segmentFiles(dir: string): string[] {
  return readdirSync(dir)
    .filter((n) => /^seg-\d+\.dat$/.test(n))
    .sort();
}

export function segmentFileBytes(dir: string): number {
  return segmentFiles(dir).reduce((n, f) => n + statSync(join(dir, f)).size, 0);
}

/** Names and sizes of every file of the store, to show that nothing was written. */
export function dirSnapshot(dir: string): Map<string, number> {
  const m = new Map<string, number>();
  for (const n of readdirSync(dir).sort()) m.set(n, statSync(join(dir, n)).size);
  return m;
}

export const BASE_OPTIONS: WarmStoreOptions = {
  dimension: DIM,
  segmentBytes: 128 * KiB,
  maintenanceIntervalMs: false,
  maintenance: { startupCompaction: 'off' },
};

/** Opens with the test defaults; `maintenance`/`compaction` are merged one level deep. */
export function openStore(dir: string, o: WarmStoreOptions = {}): Promise<WarmStore> {
  return WarmStore.open(dir, {
    ...BASE_OPTIONS,
    ...o,
    maintenance: { ...BASE_OPTIONS.maintenance, ...o.maintenance },
    compaction: { ...o.compaction },
  });
}

/** A logger that records every call. */
export class RecordingLogger implements WarmStoreLogger {
  readonly calls: { level: 'info' | 'warn' | 'error' | 'debug'; obj: object; msg: string | undefined }[] = [];
  info(obj: object, msg?: string): void {
    this.calls.push({ level: 'info', obj, msg });
  }
  warn(obj: object, msg?: string): void {
    this.calls.push({ level: 'warn', obj, msg });
  }
  error(obj: object, msg?: string): void {
    this.calls.push({ level: 'error', obj, msg });
  }
  debug(obj: object, msg?: string): void {
    this.calls.push({ level: 'debug', obj, msg });
  }
  at(level: 'info' | 'warn' | 'error' | 'debug'): { obj: object; msg: string | undefined }[] {
    return this.calls.filter((c) => c.level === level);
  }
}

/** Content entries of a segment file, parsed from disk: [offset, id, content]. */
export function parseSegment(path: string): { off: number; id: string; content: string }[] {
  const buf = readFileSync(path);
  const out: { off: number; id: string; content: string }[] = [];
  let pos = SEGMENT_HEADER_BYTES;
  while (pos + 12 <= buf.length) {
    const clen = buf.readUInt32LE(pos + 4);
    const idLen = buf[pos + 8]!;
    const size = 12 + idLen + clen;
    if (idLen === 0 || pos + size > buf.length) break;
    const id = buf.subarray(pos + 12, pos + 12 + idLen).toString('utf8');
    const content = buf.subarray(pos + 12 + idLen, pos + size).toString('utf8');
    out.push({ off: pos, id, content });
    pos += size;
  }
  return out;
}

/** `${id}|v${version}|...` -> version, or undefined for other contents. */
export function versionOfContent(id: string, content: string): number | undefined {
  const head = `${id}|v`;
  if (!content.startsWith(head)) return undefined;
  const end = content.indexOf('|', head.length);
  return end < 0 ? undefined : Number(content.slice(head.length, end));
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Polls `cond` every `every` ms until it holds or `timeoutMs` passes; returns whether it held. */
export async function waitFor(cond: () => boolean, timeoutMs: number, every = 10): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (cond()) return true;
    await sleep(every);
  }
  return cond();
}

/**
 * A file layer over the Node one that can (a) tell which segment file the last async read hit
 * and (b) hold the next async read of a segment file at a gate until the test opens it.
 */
export class ObservingFileSystem implements WsFileSystem {
  /**
   * The segment read last, by `read` or `readSync`: the copier reads a window on the event loop
   * when other work keeps the loop busy (a loaded machine, the suite's other files), else through
   * the pool.
   */
  lastSegmentRead: string | undefined;
  readonly #inner: WsFileSystem;
  #holdNext = false;
  held: { path: string; release: () => void }[] = [];

  constructor(inner: WsFileSystem = nodeFileSystem) {
    this.#inner = inner;
  }

  /** The next async read of a segment file waits until `releaseHeld()`. */
  holdNextSegmentRead(): void {
    this.#holdNext = true;
  }

  releaseHeld(): void {
    for (const h of this.held.splice(0)) h.release();
  }

  open(path: string, mode: OpenMode): WsFile {
    const inner = this.#inner.open(path, mode);
    if (!/seg-\d+\.dat$/.test(path)) return inner;
    const wrapped = delegate(inner, {
      readSync: (b, o, l, p) => {
        this.lastSegmentRead = path;
        return inner.readSync(b, o, l, p);
      },
      read: (b, o, l, p) => {
        this.lastSegmentRead = path;
        if (this.#holdNext) {
          this.#holdNext = false;
          return new Promise<void>((release) => this.held.push({ path, release })).then(() =>
            inner.read(b, o, l, p),
          );
        }
        return inner.read(b, o, l, p);
      },
    });
    return wrapped;
  }

  readFile(path: string): Promise<Buffer> {
    return this.#inner.readFile(path);
  }
  rename(from: string, to: string): Promise<void> {
    return this.#inner.rename(from, to);
  }
  unlink(path: string): Promise<void> {
    return this.#inner.unlink(path);
  }
  link(from: string, to: string): Promise<void> {
    return this.#inner.link(from, to);
  }
  readdir(path: string): Promise<string[]> {
    return this.#inner.readdir(path);
  }
  mkdir(path: string): Promise<void> {
    return this.#inner.mkdir(path);
  }
  exists(path: string): Promise<boolean> {
    return this.#inner.exists(path);
  }
  syncDir(path: string): Promise<void> {
    return this.#inner.syncDir(path);
  }
  freeBytes(path: string): Promise<number> {
    return this.#inner.freeBytes(path);
  }
}

/** Builds a fragmented store: n records (versions 1), every other one deleted. */
export async function buildHalfDeleted(
  store: WarmStore,
  n: number,
  shape: ContentShape = SMALL,
  prefix = 'm',
): Promise<{ model: Model; ids: string[]; deleted: string[] }> {
  const model: Model = new Map();
  const ids = idList(n, prefix);
  await putAll(store, model, versions(ids, 1), shape);
  const deleted = ids.filter((_, i) => i % 2 === 1);
  await deleteAll(store, model, deleted);
  return { model, ids, deleted };
}

/** With WARMSTORE_TEST_TIMING=1, prints how long each phase of a test took (to keep the suite fast). */
export function stopwatch(name: string): (phase: string) => void {
  let t = performance.now();
  let cpu = process.cpuUsage();
  const on = process.env.WARMSTORE_TEST_TIMING === '1';
  return (phase) => {
    const now = performance.now();
    const c = process.cpuUsage(cpu);
    if (on) {
      const ms = ((c.user + c.system) / 1000).toFixed(0);
      console.error(`[timing] ${name}: ${phase} ${(now - t).toFixed(0)} ms (cpu ${ms} ms)`);
    }
    t = now;
    cpu = process.cpuUsage();
  };
}
