/**
 * Regression tests for engine defects found in review. Each test states the rule it protects;
 * each failed against the engine as it was when the test was written.
 */
import assert from 'node:assert/strict';
import { stat, truncate } from 'node:fs/promises';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { RecordTable } from '../../../src/records/table.js';
import {
  NodeFileSystem,
  WarmStore,
  WarmStoreError,
  type MemoryRecord,
  type WarmStoreLogger,
  type WarmStoreOptions,
} from '../../../src/index.js';
import { expectSameRecord } from '../../helpers/assert.js';
import { Rng, recordFor, writeRecords } from '../../helpers/random.js';
import { tempDir } from '../../helpers/tmp.js';

const DIM = 8;
const OPTS: WarmStoreOptions = {
  dimension: DIM,
  maintenanceIntervalMs: false,
  maintenance: { startupCompaction: 'off' },
};
/** Layout of records.dat and vectors.dat (src/records/slot-codec.ts). */
const RECORDS_DATA_START = 4096;
const SLOT_HEADER_BYTES = 352;
const VECTOR_BYTES = DIM * 4;

/** `p`, or 'timeout' once `ms` have passed (the timer keeps the event loop alive until then). */
async function within<T>(p: Promise<T>, ms: number): Promise<T | 'timeout'> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<'timeout'>((resolve) => (timer = setTimeout(resolve, ms, 'timeout'))),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Opens a store in a fresh temp dir, closed (if still open) and removed when `t` ends. */
async function scratch(
  t: TestContext,
  o: WarmStoreOptions = OPTS,
): Promise<{ dir: string; store: WarmStore }> {
  const dir = await tempDir(t, 'warmstore-regress-');
  const store = await WarmStore.open(dir, o);
  t.after(() => store.close().catch(() => undefined));
  return { dir, store };
}

/** Records the calls made to each level, so a test can look for the one it expects. */
class RecordingLogger implements WarmStoreLogger {
  readonly calls: { level: string; obj: object; msg: string | undefined }[] = [];
  info(obj: object, msg?: string): void {
    this.calls.push({ level: 'info', obj, msg });
  }
  warn(obj: object, msg?: string): void {
    this.calls.push({ level: 'warn', obj, msg });
  }
  error(obj: object, msg?: string): void {
    this.calls.push({ level: 'error', obj, msg });
  }
}

/**
 * Fills a store with content in 4 KiB segments, then deletes all but every twentieth memory: 95%
 * of the content bytes are dead and a compaction has sealed victims. (Segments left with no live
 * byte are dropped by the next open, so a reopened store shows about 80%.) Returns the memories
 * still live.
 */
async function fragment(store: WarmStore): Promise<MemoryRecord[]> {
  const all: MemoryRecord[] = [];
  for (let i = 0; i < 80; i++) {
    all.push({ ...recordFor(`f${i}`, i, DIM), content: `f${i}|`.padEnd(900, 'x') });
  }
  await store.putMany(all);
  const kept: MemoryRecord[] = [];
  for (const [i, r] of all.entries()) {
    if (i % 20 === 0) kept.push(r);
    else await store.delete(r.id);
  }
  const ratio = store.contentStorageStats().fragmentationRatio;
  assert.ok(ratio > 0.9, `fragmented: ${ratio}`);
  return kept;
}

async function expectAll(store: WarmStore, records: MemoryRecord[], label: string): Promise<void> {
  for (const r of records) expectSameRecord(await store.get(r.id), r, { context: label });
}

test('a put whose slot allocation throws rejects, raises no unhandled rejection, and the store stays usable', async (t) => {
  // A failure anywhere in a group commit must reach the callers of that batch as a rejected
  // promise; an exception escaping the writer loop leaves their promises pending forever and,
  // as an unhandled rejection, ends the whole process.
  const { store } = await scratch(t);
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown): void => {
    unhandled.push(reason);
  };
  // The test runner's own listener would fail this test at once and let it run on detached;
  // ours alone, for the duration, turns the rejection into this test's assertion below.
  const runnerListeners = process.listeners('unhandledRejection');
  process.removeAllListeners('unhandledRejection');
  process.on('unhandledRejection', onUnhandled);
  const original = RecordTable.prototype.ensure;
  let thrown = 0;
  RecordTable.prototype.ensure = function (this: RecordTable, slot: number): void {
    if (thrown === 0) {
      thrown++;
      throw new RangeError('Array buffer allocation failed');
    }
    original.call(this, slot);
  };
  let outcome: { settled: 'resolved' } | { settled: 'rejected'; err: unknown } | 'timeout';
  try {
    const put = store.put(recordFor('alloc-fails', 1, DIM)).then(
      () => ({ settled: 'resolved' }) as const,
      (err: unknown) => ({ settled: 'rejected', err }) as const,
    );
    outcome = await within(put, 5000);
    // Let a rejection that nobody handled be reported before the listener goes.
    await new Promise((resolve) => setImmediate(resolve));
  } finally {
    RecordTable.prototype.ensure = original;
    process.off('unhandledRejection', onUnhandled);
    for (const l of runnerListeners) process.on('unhandledRejection', l);
  }
  assert.equal(thrown, 1, 'the put reached the slot allocation');
  assert.deepEqual(
    unhandled.map((e) => String(e)),
    [],
    `the failure must reach the put, not surface as an unhandled rejection (the put: ${
      outcome === 'timeout' ? 'still pending after 5 s' : outcome.settled
    })`,
  );
  assert.notEqual(outcome, 'timeout', 'the put is still pending 5 s after its allocation failed');
  assert.ok(outcome !== 'timeout' && outcome.settled === 'rejected', 'the put must not report success');
  assert.ok(
    WarmStoreError.is(outcome.err),
    `the put rejects with a WarmStoreError, not ${String(outcome.err)}`,
  );
  // The store goes on: a later write and read round-trip.
  const later = recordFor('after', 2, DIM);
  await store.put(later);
  expectSameRecord(await store.get('after'), later, { context: 'put after the failed allocation' });
  assert.equal(await store.get('alloc-fails'), undefined, 'the failed put left nothing behind');
});

test('a compactionProgress listener that throws is logged, and the compaction still succeeds', async (t) => {
  // Event listeners are observers: their exceptions are the caller's bug, logged through the
  // store's logger, and never change the outcome of the operation that emitted the event.
  const logger = new RecordingLogger();
  const { store } = await scratch(t, { ...OPTS, segmentBytes: 4096, logger });
  const kept = await fragment(store);
  const boom = new Error('progress listener boom');
  let calls = 0;
  store.on('compactionProgress', () => {
    calls++;
    throw boom;
  });
  const stats = await store.compact({ force: true });
  assert.ok(calls > 0, 'the listener was called');
  assert.ok(stats.segmentsCompacted > 0, `segments compacted: ${stats.segmentsCompacted}`);
  assert.ok(
    store.contentStorageStats().fragmentationRatio < 0.5,
    `fragmentation after: ${store.contentStorageStats().fragmentationRatio}`,
  );
  const logged = logger.calls.filter(
    (c) =>
      c.level === 'error' &&
      Object.values(c.obj).some((v) => v === boom || (v instanceof Error && v.message === boom.message)),
  );
  assert.ok(logged.length > 0, `the listener's error is logged: ${JSON.stringify(logger.calls)}`);
  await expectAll(store, kept, 'after the compaction');
});

/** The Node file layer reporting a full disk, so any compaction refuses to start. */
class FullDisk extends NodeFileSystem {
  override freeBytes(): Promise<number> {
    return Promise.resolve(0);
  }
}

test("a failed 'blocking' startup compaction rejects open and releases the store's lock", async (t) => {
  // An open that rejects leaves nothing held: no lock, no open files, so the caller can retry
  // (here with startup compaction off) in the same process.
  const dir = await tempDir(t, 'warmstore-regress-');
  const first = await WarmStore.open(dir, { ...OPTS, segmentBytes: 4096 });
  let kept: MemoryRecord[];
  try {
    kept = await fragment(first);
  } finally {
    await first.close();
  }
  await assert.rejects(
    WarmStore.open(dir, {
      ...OPTS,
      segmentBytes: 4096,
      fileSystem: new FullDisk(),
      maintenance: { startupCompaction: 'blocking', startupCompactRatio: 0.5 },
    }),
    (err: unknown) => {
      assert.ok(WarmStoreError.is(err), `a WarmStoreError, not ${String(err)}`);
      assert.notEqual(err.code, 'STORE_LOCKED', err.message);
      return true;
    },
    'the startup compaction cannot run on a full disk, so a blocking open fails',
  );
  let again: WarmStore;
  try {
    again = await WarmStore.open(dir, { ...OPTS, segmentBytes: 4096 });
  } catch (err) {
    assert.fail(`reopening after the failed open: ${String(err)}`);
  }
  try {
    await expectAll(again, kept, 'after the failed open');
  } finally {
    await again.close();
  }
});

test('recall scores stay within [-1, 1]; a memory recalled by its own embedding scores 1 within 1e-6', async (t) => {
  // A score is a cosine similarity, so callers may compare it with 1 or use it as a probability
  // weight: rounding must never push it outside [-1, 1].
  const dim = 64;
  const { store } = await scratch(t, { ...OPTS, dimension: dim });
  const r = new Rng(7_2026);
  const vectors = new Map<string, Float32Array>();
  const batch: MemoryRecord[] = [];
  for (let i = 0; i < 1000; i++) {
    const v = new Float32Array(dim);
    // Magnitudes over several orders, so the stored norm's rounding varies from memory to memory.
    const scale = 10 ** (r.next() * 6 - 3);
    for (let d = 0; d < dim; d++) v[d] = (r.next() * 2 - 1) * scale;
    vectors.set(`v${i}`, v);
    batch.push({ id: `v${i}`, embedding: v });
  }
  await store.putMany(batch);
  const above: string[] = [];
  for (const [id, v] of vectors) {
    const [hit] = await store.recall(v, { k: 1 });
    assert.ok(hit !== undefined, `recall by ${id} found something`);
    assert.equal(hit.memory.id, id, 'a memory is its own nearest neighbour');
    if (hit.score > 1) above.push(`${id}: ${hit.score}`);
    assert.ok(hit.score >= 1 - 1e-6, `${id} recalled by itself scores ${hit.score}`);
  }
  assert.deepEqual(above.slice(0, 5), [], `${above.length} of 1000 self-recalls scored above 1`);
  let n = 0;
  for (const [id, v] of vectors) {
    if (n++ % 20 !== 0) continue;
    const opposite = v.map((x) => -x);
    const all = await store.recall(opposite, { k: vectors.size });
    for (const h of all) assert.ok(h.score >= -1 && h.score <= 1, `score ${h.score} of ${h.memory.id}`);
    const self = all.find((h) => h.memory.id === id);
    assert.ok(self !== undefined && self.score <= -1 + 1e-6, `${id} by its opposite: ${self?.score}`);
  }
});

test('a records.dat shorter than the checkpoint wrote fails open with CORRUPTION_DETECTED', async (t) => {
  // Memories must never vanish silently: a record file cut short (a copy or a disk that lost its
  // tail) is corruption the open reports, naming the file and how many slots it lacks, rather
  // than a smaller store that verify() calls healthy.
  const dir = await tempDir(t, 'warmstore-regress-');
  await writeRecords(() => WarmStore.open(dir, OPTS), 400, 'm', DIM);
  const recordsPath = join(dir, 'records.dat');
  const size = (await stat(recordsPath)).size;
  assert.equal(size, RECORDS_DATA_START + 400 * SLOT_HEADER_BYTES, 'a clean close leaves 400 slots');
  await truncate(recordsPath, size - 1300);
  let opened: WarmStore | undefined;
  await assert.rejects(
    (async () => {
      opened = await WarmStore.open(dir, OPTS);
      const report = await opened.verify();
      throw new Error(
        `open succeeded with size ${opened.size}; verify ok=${report.ok}, ${report.problems.length} problems`,
      );
    })(),
    (err: unknown) => {
      assert.ok(WarmStoreError.is(err), String(err));
      assert.equal(err.code, 'CORRUPTION_DETECTED', err.message);
      assert.ok(
        String(err.details.file).endsWith('records.dat'),
        `details.file: ${String(err.details.file)}`,
      );
      assert.match(err.message, /\b400\b/, 'the message says how many slots were expected');
      assert.match(err.message, /\b396\b/, 'the message says how many whole slots were found');
      return true;
    },
  );
  await opened?.close();
});

test('a vectors.dat one vector short never makes a memory silently absent', async (t) => {
  // Same rule for the vector file: a memory whose vector is missing is reported as corrupt
  // (by open, or by reading it), never answered as "not found".
  const dir = await tempDir(t, 'warmstore-regress-');
  await writeRecords(() => WarmStore.open(dir, OPTS), 400, 'm', DIM);
  const vectorsPath = join(dir, 'vectors.dat');
  const size = (await stat(vectorsPath)).size;
  assert.equal(size, RECORDS_DATA_START + 400 * VECTOR_BYTES, 'a clean close leaves 400 vectors');
  await truncate(vectorsPath, size - VECTOR_BYTES);
  let store: WarmStore;
  try {
    store = await WarmStore.open(dir, OPTS);
  } catch (err) {
    assert.ok(WarmStoreError.is(err, 'CORRUPTION_DETECTED'), String(err));
    assert.ok(String(err.details.file).endsWith('vectors.dat'), `details.file: ${String(err.details.file)}`);
    return;
  }
  try {
    let corrupt = 0;
    for (let i = 0; i < 400; i++) {
      const id = `m${i}`;
      let got;
      try {
        got = await store.get(id);
      } catch (err) {
        assert.ok(WarmStoreError.is(err, 'CORRUPTION_DETECTED'), `${id}: ${String(err)}`);
        corrupt++;
        continue;
      }
      expectSameRecord(got, recordFor(id, i, DIM), { context: id });
    }
    assert.ok(corrupt > 0, 'the memory whose vector is missing reads as corrupt');
  } finally {
    await store.close();
  }
});
