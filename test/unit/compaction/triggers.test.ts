/**
 * When compaction runs by itself, at open and at runtime: the startup check (warn above
 * `startupWarnRatio`, compact above `startupCompactRatio` as `startupCompaction` says), the
 * maintenance thresholds and their strict boundaries, and the periodic loop.
 */
import assert from 'node:assert/strict';
import { cpSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { WarmStore } from '../../../src/index.js';
import type { MaintenanceReport } from '../../../src/index.js';
import { makeTempDir, removeDir, tempDir } from '../../helpers/tmp.js';
import {
  KiB,
  RecordingLogger,
  DIM,
  expectStoreEquals,
  openStore,
  recordOf,
  sleep,
  waitFor,
  type Model,
} from './fixture.js';

const N = 1000;
const SEG = 32 * KiB;
/** Every record's entry has the same size, so fragmentation is exactly (deleted / N). */
const id = (i: number): string => `b${String(i).padStart(4, '0')}`;
const contentFor = (i: number): string => `${id(i)}:`.padEnd(400, String.fromCharCode(97 + (i % 26)));

async function fill(store: WarmStore): Promise<Model> {
  const model: Model = new Map();
  const recs = Array.from({ length: N }, (_, i) => recordOf(id(i), 1, contentFor(i)));
  for (let i = 0; i < N; i += 250) await store.putMany(recs.slice(i, i + 250));
  recs.forEach((r) => model.set(r.id, { v: 1, content: r.content ?? null }));
  return model;
}

/** Deletes the given indexes (spread over every segment, so no segment is ever wholly dead). */
async function del(store: WarmStore, model: Model, idx: number[]): Promise<void> {
  const res = await Promise.all(idx.map((i) => store.delete(id(i))));
  assert.ok(res.every(Boolean));
  for (const i of idx) model.delete(id(i));
}

const range = (pred: (i: number) => boolean): number[] => Array.from({ length: N }, (_, i) => i).filter(pred);

/** A closed store at `dir` whose fragmentation is exactly `keepEvery`-th records kept. */
async function buildAt(dir: string, deleted: (i: number) => boolean): Promise<Model> {
  const store = await openStore(dir, { segmentBytes: SEG });
  const model = await fill(store);
  await del(store, model, range(deleted));
  await store.close();
  return model;
}

describe('startup check', () => {
  let dir95 = '';
  let dir80 = '';
  let dir60 = '';
  let model95: Model = new Map();
  let model80: Model = new Map();
  let model60: Model = new Map();
  before(async () => {
    dir95 = await makeTempDir();
    dir80 = await makeTempDir();
    dir60 = await makeTempDir();
    [model95, model80, model60] = await Promise.all([
      buildAt(dir95, (i) => i % 20 !== 0),
      buildAt(dir80, (i) => i % 5 !== 0),
      buildAt(dir60, (i) => i % 5 === 1 || i % 5 === 2 || i % 5 === 3),
    ]);
  });
  after(async () => {
    await Promise.all([removeDir(dir95), removeDir(dir80), removeDir(dir60)]);
  });

  async function copy(t: { after: (fn: () => Promise<void>) => void }, from: string): Promise<string> {
    const dir = await tempDir(t as Parameters<typeof tempDir>[0]);
    cpSync(from, join(dir, 's'), { recursive: true });
    return join(dir, 's');
  }

  const fragmentationWarnings = (log: RecordingLogger): object[] =>
    log
      .at('warn')
      .filter((c) => /fragment/i.test(c.msg ?? ''))
      .map((c) => c.obj);

  it("> 90% dead, 'blocking': compacted before open resolves", async (t) => {
    const dir = await copy(t, dir95);
    const log = new RecordingLogger();
    const store = await openStore(dir, {
      segmentBytes: SEG,
      logger: log,
      maintenance: { startupCompaction: 'blocking' },
    });
    t.after(() => store.close());
    assert.equal(store.isCompacting, false);
    const s = store.contentStorageStats();
    assert.ok(s.fragmentationRatio < 0.05, `fragmentation right after open: ${s.fragmentationRatio}`);
    assert.equal(fragmentationWarnings(log).length, 1, 'warned too (above 0.7)');
    expectStoreEquals(store, model95, 'after blocking startup compaction');
  });

  it("> 90% dead, 'background' (the default): open returns at once, fragmentation drops soon after", async (t) => {
    const dir = await copy(t, dir95);
    const store = await openStore(dir, {
      segmentBytes: SEG,
      maintenance: { startupCompaction: 'background' },
    });
    t.after(() => store.close());
    assert.equal(store.isCompacting, true, 'the compaction runs after open resolved');
    assert.ok(store.contentStorageStats().fragmentationRatio > 0.9);
    // Reads meanwhile are correct.
    expectStoreEquals(store, model95, 'during background compaction');
    assert.ok(
      await waitFor(
        () => store.contentStorageStats().fragmentationRatio < 0.05 && !store.isCompacting,
        20_000,
      ),
      `fragmentation ${store.contentStorageStats().fragmentationRatio}`,
    );
    expectStoreEquals(store, model95, 'after background compaction');
    await store.close();
    // 'background' is the default.
    const dir2 = await copy(t, dir95);
    const s2 = await WarmStore.open(dir2, {
      dimension: DIM,
      segmentBytes: SEG,
      maintenanceIntervalMs: false,
    });
    t.after(() => s2.close());
    assert.equal(s2.isCompacting, true, "startupCompaction defaults to 'background'");
  });

  it("> 90% dead, 'off': left alone (but warned)", async (t) => {
    const dir = await copy(t, dir95);
    const log = new RecordingLogger();
    const store = await openStore(dir, {
      segmentBytes: SEG,
      logger: log,
      maintenance: { startupCompaction: 'off' },
    });
    t.after(() => store.close());
    assert.equal(store.isCompacting, false);
    const s = store.contentStorageStats();
    assert.equal(s.fragmentationRatio, 0.95);
    await sleep(100);
    assert.equal(store.isCompacting, false);
    assert.equal(store.contentStorageStats().fragmentationRatio, 0.95);
    const w = fragmentationWarnings(log);
    assert.equal(w.length, 1);
    expectStoreEquals(store, model95, 'off');
  });

  it('between 70% and 90% dead: a warning through the logger, no compaction', async (t) => {
    const dir = await copy(t, dir80);
    const log = new RecordingLogger();
    const store = await openStore(dir, {
      segmentBytes: SEG,
      logger: log,
      maintenance: { startupCompaction: 'blocking' },
    });
    t.after(() => store.close());
    assert.equal(store.isCompacting, false);
    assert.equal(store.contentStorageStats().fragmentationRatio, 0.8);
    const w = fragmentationWarnings(log);
    assert.equal(w.length, 1, `one fragmentation warning (${JSON.stringify(log.calls)})`);
    const obj = w[0] as { fragmentationRatio?: number };
    assert.equal(obj.fragmentationRatio, 0.8, 'the warning carries the ratio');
    expectStoreEquals(store, model80, '80%');
  });

  it('below 70% dead: silent', async (t) => {
    const dir = await copy(t, dir60);
    const log = new RecordingLogger();
    const store = await openStore(dir, {
      segmentBytes: SEG,
      logger: log,
      maintenance: { startupCompaction: 'blocking' },
    });
    t.after(() => store.close());
    assert.equal(store.contentStorageStats().fragmentationRatio, 0.6);
    assert.equal(fragmentationWarnings(log).length, 0);
    assert.equal(store.isCompacting, false);
    expectStoreEquals(store, model60, '60%');
  });

  it('the ratios are options: startupWarnRatio / startupCompactRatio are honoured and strict', async (t) => {
    const dir = await copy(t, dir80);
    const log = new RecordingLogger();
    // 0.8 is not above 0.8: neither a warning nor a compaction.
    const a = await openStore(dir, {
      segmentBytes: SEG,
      logger: log,
      maintenance: { startupWarnRatio: 0.8, startupCompactRatio: 0.8, startupCompaction: 'blocking' },
    });
    assert.equal(fragmentationWarnings(log).length, 0);
    assert.equal(a.contentStorageStats().fragmentationRatio, 0.8);
    await a.close();
    // Just below 0.8: both.
    const b = await openStore(dir, {
      segmentBytes: SEG,
      logger: log,
      maintenance: { startupWarnRatio: 0.79, startupCompactRatio: 0.79, startupCompaction: 'blocking' },
    });
    t.after(() => b.close());
    assert.equal(fragmentationWarnings(log).length, 1);
    assert.ok(b.contentStorageStats().fragmentationRatio < 0.05);
    expectStoreEquals(b, model80, 'custom ratios');
  });
});

describe('maintenance thresholds', () => {
  function expectReport(r: MaintenanceReport, decision: MaintenanceReport['decision'], ctx: string): void {
    assert.equal(r.decision, decision, `${ctx}: decision (${r.reason})`);
    assert.ok(r.reason.length > 0, `${ctx}: a reason is given`);
    assert.deepEqual(r.thresholds, { fragmentationThreshold: 0.5, minTotalBytes: 0 }, `${ctx}: thresholds`);
    if (decision === 'compacted') assert.ok(r.compaction, `${ctx}: stats attached`);
    else assert.equal(r.compaction, undefined, `${ctx}: no stats`);
  }

  it('fragmentation 0.499 and exactly 0.5 are skipped, 0.501 compacts (strict >)', async (t) => {
    const dir = await tempDir(t);
    const store = await openStore(dir, {
      segmentBytes: SEG,
      maintenance: { fragmentationThreshold: 0.5, minTotalBytes: 0 },
    });
    t.after(() => store.close());
    const model = await fill(store);
    const odd = range((i) => i % 2 === 1);
    await del(store, model, odd.slice(0, 499));
    let r = await store.runMaintenance();
    assert.equal(r.stats.fragmentationRatio, 0.499);
    expectReport(r, 'skipped', '0.499');
    assert.match(r.reason, /not above/);

    await del(store, model, odd.slice(499));
    r = await store.runMaintenance();
    assert.equal(r.stats.fragmentationRatio, 0.5, 'exactly one half');
    expectReport(r, 'skipped', '0.5');
    assert.match(r.reason, /not above/);
    assert.equal(store.contentStorageStats().fragmentationRatio, 0.5, 'nothing compacted');

    await del(store, model, [0]);
    r = await store.runMaintenance();
    assert.equal(r.stats.fragmentationRatio, 0.501);
    expectReport(r, 'compacted', '0.501');
    assert.ok(r.compaction!.recordsMoved > 0);
    assert.ok(store.contentStorageStats().fragmentationRatio < 0.05);
    assert.deepEqual(store.lastMaintenance, r);
    expectStoreEquals(store, model, 'after');
  });

  it('totalBytes must be strictly above minTotalBytes', async (t) => {
    const dir = await tempDir(t);
    const model = await buildAt(dir, (i) => i % 5 === 1 || i % 5 === 2 || i % 5 === 3);
    const probe = await openStore(dir, { segmentBytes: SEG });
    const total = probe.contentStorageStats().totalBytes;
    await probe.close();

    const equal = await openStore(dir, {
      segmentBytes: SEG,
      maintenance: { fragmentationThreshold: 0.5, minTotalBytes: total },
    });
    const r1 = await equal.runMaintenance();
    await equal.close();
    assert.equal(r1.stats.totalBytes, total);
    assert.equal(r1.decision, 'skipped');
    assert.match(r1.reason, /not above/);
    assert.match(r1.reason, new RegExp(String(total)));

    const below = await openStore(dir, {
      segmentBytes: SEG,
      maintenance: { fragmentationThreshold: 0.5, minTotalBytes: total - 1 },
    });
    t.after(() => below.close());
    const r2 = await below.runMaintenance();
    assert.equal(r2.decision, 'compacted', r2.reason);
    assert.ok(below.contentStorageStats().fragmentationRatio < 0.05);
    expectStoreEquals(below, model, 'after');
  });

  it('the default minTotalBytes (100 MiB) keeps a small fragmented store from compacting', async (t) => {
    const dir = await tempDir(t);
    await buildAt(dir, (i) => i % 5 !== 0);
    const store = await openStore(dir, { segmentBytes: SEG, maintenance: { startupCompaction: 'off' } });
    t.after(() => store.close());
    const r = await store.runMaintenance();
    assert.equal(r.decision, 'skipped');
    assert.equal(r.thresholds.minTotalBytes, 100 * 1024 * 1024);
    assert.equal(r.thresholds.fragmentationThreshold, 0.5);
  });
});

describe('the periodic maintenance loop', () => {
  it('maintenanceIntervalMs: 50 compacts a fragmented store by itself', async (t) => {
    const dir = await tempDir(t);
    const model = await buildAt(dir, (i) => i % 5 === 1 || i % 5 === 2 || i % 5 === 3);
    const store = await openStore(dir, {
      segmentBytes: SEG,
      maintenanceIntervalMs: 50,
      maintenance: { fragmentationThreshold: 0.5, minTotalBytes: 0 },
    });
    t.after(() => store.close());
    // The loop may run again before a poll sees its 'compacted' report (a loaded machine delays
    // timers), so the compaction is observed through its event, and only the loop can start one
    // here (fragmentation 0.6 is below the startup ratio).
    let compactions = 0;
    store.on('compactionEnd', (r) => {
      if (r.outcome === 'success') compactions++;
    });
    assert.equal(store.contentStorageStats().fragmentationRatio, 0.6);
    assert.ok(
      await waitFor(() => compactions > 0 && store.lastMaintenance !== undefined, 20_000),
      `last maintenance: ${JSON.stringify(store.lastMaintenance)}`,
    );
    assert.ok(store.contentStorageStats().fragmentationRatio < 0.05);
    expectStoreEquals(store, model, 'after the loop compacted');
    // The loop keeps running and now finds nothing to do.
    const at = store.lastMaintenance!.at;
    assert.ok(await waitFor(() => (store.lastMaintenance?.at ?? 0) > at, 5000), 'the loop runs again');
    assert.equal(store.lastMaintenance?.decision, 'skipped');
  });

  it('the loop leaves a store below the threshold alone', async (t) => {
    const dir = await tempDir(t);
    const model = await buildAt(dir, (i) => i % 5 === 1 || i % 5 === 2);
    const store = await openStore(dir, {
      segmentBytes: SEG,
      maintenanceIntervalMs: 50,
      maintenance: { fragmentationThreshold: 0.5, minTotalBytes: 0 },
    });
    t.after(() => store.close());
    assert.ok(await waitFor(() => store.lastMaintenance !== undefined, 5000), 'the loop ran');
    await sleep(150);
    assert.equal(store.lastMaintenance?.decision, 'skipped');
    assert.equal(store.contentStorageStats().fragmentationRatio, 0.4);
    expectStoreEquals(store, model, 'untouched');
  });

  it('maintenanceIntervalMs: false never runs maintenance', async (t) => {
    const dir = await tempDir(t);
    await buildAt(dir, (i) => i % 5 === 1 || i % 5 === 2 || i % 5 === 3);
    const store = await openStore(dir, {
      segmentBytes: SEG,
      maintenanceIntervalMs: false,
      maintenance: { fragmentationThreshold: 0.5, minTotalBytes: 0 },
    });
    t.after(() => store.close());
    await sleep(200);
    assert.equal(store.lastMaintenance, undefined);
    assert.equal(store.contentStorageStats().fragmentationRatio, 0.6);
  });
});
