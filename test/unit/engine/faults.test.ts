import assert from 'node:assert/strict';
import { copyFile, cp, mkdir, readdir, rm, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import {
  FaultyFileSystem,
  type FaultErrorCode,
  type FaultOp,
  type FaultSpec,
} from '../../../src/testing/index.js';
import { WarmStore, WarmStoreError, type MemoryRecord, type WarmStoreOptions } from '../../../src/index.js';
import { expectSameRecord } from '../../helpers/assert.js';
import { recordFor, writeRecords } from '../../helpers/random.js';
import { tempDir } from '../../helpers/tmp.js';

const DIM = 8;
// No startup compaction: these tests are about the write path (verify during compaction: verify.test.ts).
const BASE: WarmStoreOptions = {
  dimension: DIM,
  maintenanceIntervalMs: false,
  maintenance: { startupCompaction: 'off' },
};

/** A record that always has content, so a put writes both a segment and the WAL. */
function rec(id: string, seed: number): MemoryRecord {
  return { ...recordFor(id, seed, DIM), content: `${id}#${seed} `.repeat(1 + (seed % 40)) };
}

/** A write that met ENOSPC is refused as DISK_FULL (the store gave its reserve back); EIO is IO_ERROR. */
function ioError(label: string, code: 'IO_ERROR' | 'DISK_FULL' = 'IO_ERROR') {
  return (err: unknown): boolean => {
    assert.ok(WarmStoreError.is(err), `${label}: not a WarmStoreError: ${String(err)}`);
    assert.equal(err.code, code, `${label}: ${err.message}`);
    return true;
  };
}

function codeFor(error: FaultErrorCode): 'IO_ERROR' | 'DISK_FULL' {
  return error === 'ENOSPC' ? 'DISK_FULL' : 'IO_ERROR';
}

/** The files of a live store copied as they are: what a kill -9 at this instant would leave. */
async function crashImage(dir: string, image: string): Promise<void> {
  await mkdir(image, { recursive: true });
  for (const n of await readdir(dir)) if (n !== 'LOCK') await copyFile(join(dir, n), join(image, n));
}

/** Runs fn(1..n), `width` at a time. */
async function inBatches(n: number, width: number, fn: (i: number) => Promise<void>): Promise<void> {
  for (let first = 1; first <= n; first += width) {
    const batch: Array<Promise<void>> = [];
    for (let i = first; i < first + width && i <= n; i++) batch.push(fn(i));
    await Promise.all(batch);
  }
}

class Model {
  acked = new Map<string, MemoryRecord>();
  /** Ids whose last attempted write failed: on reopen either the old value or this one. */
  failed = new Map<string, MemoryRecord | 'deleted'>();

  async checkAll(store: WarmStore, label: string): Promise<void> {
    for (const [id, r] of this.acked) {
      if (this.failed.has(id)) continue;
      expectSameRecord(await store.get(id), r, { context: label });
    }
  }
}

/** Reopens with the plain Node file layer: acknowledged data present, failed writes absent-or-present. */
/**
 * Puts `n` acknowledged memories, then one more (`probe`) with the file layer's counts reset first,
 * so that the counts afterwards are one put's operations. Returns the next seed.
 */
async function putBaseThenProbe(
  store: WarmStore,
  fs: FaultyFileSystem,
  model: Model,
  n: number,
): Promise<number> {
  let seed = 1;
  for (let i = 0; i < n; i++) {
    const r = rec(`base${i}`, seed++);
    await store.put(r);
    model.acked.set(r.id, r);
  }
  fs.resetCounts();
  const probe = rec('probe', seed++);
  await store.put(probe);
  model.acked.set(probe.id, probe);
  return seed;
}

async function checkAfterReopen(dir: string, model: Model, label: string): Promise<void> {
  const store = await WarmStore.open(dir, BASE);
  try {
    await model.checkAll(store, label);
    for (const [id, attempted] of model.failed) {
      let got;
      try {
        got = await store.get(id);
      } catch (err) {
        assert.fail(`${label}: ${id} (a failed write) is unreadable: ${String(err)}`);
      }
      const old = model.acked.get(id);
      if (got === undefined) {
        assert.ok(old === undefined || attempted === 'deleted', `${label}: acknowledged ${id} lost`);
        continue;
      }
      const candidates = [old, attempted === 'deleted' ? undefined : attempted].filter(
        (x): x is MemoryRecord => x !== undefined,
      );
      const matches = candidates.some((c) => {
        try {
          expectSameRecord(got, c);
          return true;
        } catch {
          return false;
        }
      });
      assert.ok(matches, `${label}: ${id} is neither the old nor the attempted value`);
    }
    const extra = [...store.ids()].filter((id) => !model.acked.has(id) && !model.failed.has(id));
    assert.deepEqual(extra, [], `${label}: unknown ids appeared`);
    const report = await store.verify();
    assert.equal(report.ok, true, `${label}: verify: ${JSON.stringify(report.problems)}`);
  } finally {
    await store.close();
  }
}

/**
 * A store on a fault-injecting file layer and an `add(n)` that puts n memories (ids cycling through
 * `ids` names with `prefix`) and records them as acknowledged.
 */
async function storeWithAdder(
  t: TestContext,
  prefix: string,
  ids: number,
): Promise<{
  dir: string;
  fs: FaultyFileSystem;
  model: Model;
  store: WarmStore;
  add: (n: number) => Promise<void>;
}> {
  const dir = await tempDir(t);
  const fs = new FaultyFileSystem();
  const model = new Model();
  const store = await WarmStore.open(dir, { ...BASE, fileSystem: fs });
  let seed = 1;
  const add = async (n: number): Promise<void> => {
    const recs = Array.from({ length: n }, () => rec(`${prefix}${seed % ids}`, seed++));
    await store.putMany(recs);
    for (const r of recs) model.acked.set(r.id, r);
  };
  return { dir, fs, model, store, add };
}

describe('fault injection', () => {
  for (const error of ['ENOSPC', 'EIO'] as FaultErrorCode[]) {
    test(`${error} at every write and fsync of a put or delete: rejected, store usable, nothing lost`, async (t) => {
      const dir = await tempDir(t);
      const fs = new FaultyFileSystem();
      const model = new Model();
      const store = await WarmStore.open(dir, { ...BASE, fileSystem: fs });
      let seed: number;
      try {
        // How many writes and fsyncs does one put make? And one delete?
        seed = await putBaseThenProbe(store, fs, model, 8);
        const putOps = { write: fs.counts.write, sync: fs.counts.sync };
        assert.ok(
          putOps.write >= 2,
          `a put with content writes a segment and the WAL (${putOps.write} writes)`,
        );
        assert.ok(putOps.sync >= 2, `a durable put fsyncs content and WAL (${putOps.sync} fsyncs)`);
        fs.resetCounts();
        assert.equal(await store.delete('probe'), true);
        model.acked.delete('probe');
        const delOps = { write: fs.counts.write, sync: fs.counts.sync };
        assert.ok(delOps.write >= 1 && delOps.sync >= 1, 'a delete writes and fsyncs the WAL');

        let attempts = 0;
        for (const op of ['write', 'sync'] as const satisfies readonly FaultOp[]) {
          for (let nth = 1; nth <= putOps[op]; nth++) {
            for (const update of [false, true]) {
              const id = update ? `base${nth % 8}` : `new-${op}-${nth}`;
              const attempt = rec(id, seed++);
              const before = model.acked.get(id);
              fs.failAt({ op, nth, error });
              const triggered = fs.triggered.length;
              await assert.rejects(store.put(attempt), ioError(`put, ${op} #${nth} fails`, codeFor(error)));
              assert.equal(fs.triggered.length, triggered + 1, 'the fault fired');
              assert.equal(fs.triggered.at(-1)?.op, op);
              assert.equal(fs.pendingFaults, 0);
              attempts++;
              // In memory: untouched.
              if (before)
                expectSameRecord(await store.get(id), before, { context: `after failed ${op} #${nth}` });
              else assert.equal(store.has(id), false, `failed put of ${id} is not visible`);
              model.failed.set(id, attempt);
              // Usable: the next put and get work, and everything acknowledged is intact.
              const next = rec(`ok-${op}-${nth}-${update}`, seed++);
              await store.put(next);
              model.acked.set(next.id, next);
              expectSameRecord(await store.get(next.id), next);
              expectSameRecord(store.getSync(next.id), next);
              if (update) {
                // A later successful write of the same id supersedes the failed one.
                const fixed = rec(id, seed++);
                await store.put(fixed);
                model.acked.set(id, fixed);
                model.failed.delete(id);
              }
              // New ids whose put failed stay failed: after reopen, absent or whole, never corrupt.
              await model.checkAll(store, `after ${op} #${nth}`);
            }
          }
          for (let nth = 1; nth <= delOps[op]; nth++) {
            const id = `base${nth}`;
            fs.failAt({ op, nth, error });
            if (error === 'ENOSPC') {
              // A delete that meets a full disk is retried once in the room the reserve leaves.
              assert.equal(await store.delete(id), true, `delete, ${op} #${nth} on a full disk`);
              assert.equal(fs.pendingFaults, 0, 'the fault fired');
              assert.equal(store.has(id), false);
              model.acked.delete(id);
            } else {
              await assert.rejects(store.delete(id), ioError(`delete, ${op} #${nth} fails`));
              expectSameRecord(await store.get(id), model.acked.get(id)!, {
                context: 'after a failed delete',
              });
              model.failed.set(id, 'deleted');
            }
            const r = rec(`after-del-${op}-${nth}`, seed++);
            await store.put(r);
            model.acked.set(r.id, r);
          }
        }
        assert.ok(attempts >= 8);
        // Leave the last failed writes as they are: reopen decides absent-or-present.
        const last = rec('last-failed', seed++);
        fs.failAt({ op: 'sync', nth: 2, error });
        await assert.rejects(store.put(last), ioError('last', codeFor(error)));
        model.failed.set(last.id, last);
        await model.checkAll(store, 'before close');
      } finally {
        fs.reset();
        await store.close();
      }
      await checkAfterReopen(dir, model, `${error} reopen`);
    });
  }

  test('a fault on each durable write of a put (content, vector, WAL): the batch fails and is cut back, the store stays usable', async (t) => {
    const dir = await tempDir(t);
    const fs = new FaultyFileSystem();
    const model = new Model();
    const store = await WarmStore.open(dir, { ...BASE, fileSystem: fs });
    let seed: number;
    /** Sizes of the files a failed batch must leave as they were (vectors.dat may keep garbage in free slots). */
    const sizes = async (): Promise<Record<string, number>> => {
      const out: Record<string, number> = {};
      for (const n of await readdir(dir))
        if (/^(seg-|wal-)/.test(n)) out[n] = (await stat(join(dir, n))).size;
      return out;
    };
    try {
      seed = await putBaseThenProbe(store, fs, model, 4);
      // Under synchronous durability every write of a commit is a durable one: no separate fsync.
      const durable = fs.counts.durableWrite;
      assert.equal(durable, 3, 'content, vector and WAL: one durable write each');
      assert.equal(fs.counts.write, durable, 'no plain write');
      assert.equal(fs.counts.sync, durable, 'no fsync besides the durable writes');
      const faults: { label: string; spec: Omit<FaultSpec, 'nth'>; code: 'IO_ERROR' | 'DISK_FULL' }[] = [
        { label: 'EIO before it lands', spec: { op: 'durableWrite', error: 'EIO' }, code: 'IO_ERROR' },
        {
          label: 'a full disk: short, then ENOSPC',
          spec: { op: 'durableWrite', error: 'ENOSPC', short: true, persistent: true },
          code: 'DISK_FULL',
        },
        { label: 'EIO after it landed', spec: { op: 'sync', error: 'EIO' }, code: 'IO_ERROR' },
      ];
      const hit = new Set<string>();
      for (const { label, spec, code } of faults) {
        for (let nth = 1; nth <= durable; nth++) {
          const ctx = `${label}, durable write #${nth}`;
          const attempt = rec(`fail-${spec.op}-${spec.error}-${nth}`, seed++);
          const before = await sizes();
          fs.failAt({ ...spec, nth });
          await assert.rejects(store.put(attempt), ioError(ctx, code));
          fs.clearFaults();
          hit.add(basename(fs.triggered.at(-1)!.path).replace(/\d+/, 'N'));
          assert.equal(store.has(attempt.id), false, `${ctx}: the failed put is not visible`);
          assert.deepEqual(await sizes(), before, `${ctx}: content and WAL cut back`);
          model.failed.set(attempt.id, attempt);
          const next = rec(`ok-${spec.op}-${spec.error}-${nth}`, seed++);
          await store.put(next);
          model.acked.set(next.id, next);
          expectSameRecord(await store.get(next.id), next, { context: ctx });
          await model.checkAll(store, ctx);
        }
      }
      assert.deepEqual([...hit].sort(), ['seg-N.dat', 'vectors.dat', 'wal-N.log']);
    } finally {
      fs.reset();
      await store.close();
    }
    await checkAfterReopen(dir, model, 'durable write faults reopen');
  });

  test('a segment rotation that fails while the batch is being written (its vectors too, or not): the batch fails whole, nothing unhandled, the next batch reuses its slots intact', async (t) => {
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown): void => {
      unhandled.push(reason);
    };
    process.on('unhandledRejection', onUnhandled);
    t.after(() => process.off('unhandledRejection', onUnhandled));
    for (const vectorsFail of [false, true]) {
      const dir = await tempDir(t);
      const fs = new FaultyFileSystem();
      const model = new Model();
      // Segments of 4 KiB: a batch of 24 memories with content fills the active one and rotates.
      const store = await WarmStore.open(dir, { ...BASE, fileSystem: fs, segmentBytes: 4096 });
      let seed = 1;
      const label = vectorsFail ? 'rotation and vector write fail' : 'rotation fails';
      try {
        await inBatches(6, 6, async (i) => {
          const r = rec(`base${i}`, seed + i);
          await store.put(r);
          model.acked.set(r.id, r);
        });
        seed += 10;
        // The rotation fails at its directory fsync, after real trips to the I/O pool (the new
        // segment's fsync): a vector write that failed at once has rejected long before.
        fs.failAt({ op: 'syncDir', nth: 1, error: 'EIO' });
        if (vectorsFail) fs.failAt({ op: 'durableWrite', nth: 1, error: 'EIO', pathIncludes: 'vectors.dat' });
        const attempts = Array.from({ length: 24 }, (_, i) => rec(`fail${i}`, seed + i));
        seed += 24;
        const results = await Promise.allSettled(attempts.map((r) => store.put(r)));
        fs.clearFaults();
        const ops = fs.triggered.map((f) => `${f.op} ${basename(f.path).replace(/\d+/, 'N')}`);
        assert.ok(
          fs.triggered.some((f) => f.op === 'syncDir'),
          `${label}: the rotation failed (${ops.join(', ')})`,
        );
        if (vectorsFail)
          assert.ok(ops.includes('durableWrite vectors.dat'), `${label}: the vector write failed too`);
        for (const [i, r] of results.entries()) {
          assert.equal(r.status, 'rejected', `${label}: put ${i} of the failed batch`);
          ioError(`${label}: put ${i}`)((r as PromiseRejectedResult).reason);
          assert.equal(store.has(attempts[i]!.id), false, `${label}: fail${i} is not visible`);
          model.failed.set(attempts[i]!.id, attempts[i]!);
        }
        // The next batch takes the slots the failed one gave back; its vectors must be its own.
        const next = Array.from({ length: 24 }, (_, i) => rec(`next${i}`, seed + i));
        seed += 24;
        await Promise.all(next.map((r) => store.put(r)));
        for (const r of next) {
          model.acked.set(r.id, r);
          expectSameRecord(store.getSync(r.id), r, { context: `${label}: ${r.id}` });
        }
        await model.checkAll(store, label);
      } finally {
        fs.reset();
        await store.close();
      }
      await checkAfterReopen(dir, model, `${label}, reopen`);
    }
    assert.deepEqual(unhandled, [], 'no rejection went unhandled');
  });

  test('touch and putMany report IO_ERROR under faults and leave the record as it was', async (t) => {
    const dir = await tempDir(t);
    const fs = new FaultyFileSystem();
    const model = new Model();
    const store = await WarmStore.open(dir, { ...BASE, fileSystem: fs });
    try {
      const a = rec('a', 1);
      await store.put(a);
      model.acked.set('a', a);
      fs.failAt({ op: 'sync', nth: 1, error: 'EIO' });
      await assert.rejects(store.get('a', { touch: true }), ioError('touch'));
      expectSameRecord(await store.get('a'), a);
      const many = Array.from({ length: 20 }, (_, i) => rec(`m${i}`, 100 + i));
      fs.failAt({ op: 'write', nth: 2, error: 'ENOSPC' });
      await assert.rejects(store.putMany(many), ioError('putMany', 'DISK_FULL'));
      for (const r of many) {
        assert.equal(store.has(r.id), false, `${r.id} from a failed batch is not visible`);
        model.failed.set(r.id, r);
      }
      await store.putMany(many);
      for (const r of many) {
        model.acked.set(r.id, r);
        model.failed.delete(r.id);
      }
      const touched = await store.get('a', { touch: true });
      assert.equal(touched?.accessCount, (a.accessCount ?? 0) + 1);
      model.acked.set('a', { ...a, accessCount: touched!.accessCount, lastAccess: touched!.lastAccess });
    } finally {
      fs.reset();
      await store.close();
    }
    await checkAfterReopen(dir, model, 'touch/putMany reopen');
  });

  test('short writes: a single short write is completed transparently; a disk that fills up is DISK_FULL', async (t) => {
    const dir = await tempDir(t);
    const fs = new FaultyFileSystem();
    const model = new Model();
    const store = await WarmStore.open(dir, { ...BASE, fileSystem: fs });
    let seed = 1;
    try {
      fs.resetCounts();
      const probe = rec('probe', seed++);
      await store.put(probe);
      model.acked.set(probe.id, probe);
      const writes = fs.counts.write;
      for (let nth = 1; nth <= writes; nth++) {
        // One short write: writeFully loops and the put succeeds with every byte right.
        const r = rec(`short-${nth}`, seed++);
        fs.failAt({ op: 'write', nth, error: 'ENOSPC', short: true });
        await store.put(r);
        assert.equal(fs.triggered.at(-1)?.short, true, 'a short write happened');
        model.acked.set(r.id, r);
        expectSameRecord(await store.get(r.id), r);

        // Short, then full: the put fails cleanly, and works again once space is back.
        const full = rec(`full-${nth}`, seed++);
        fs.failAt({ op: 'write', nth, error: 'ENOSPC', short: true, persistent: true });
        await assert.rejects(store.put(full), ioError(`disk full at write #${nth}`, 'DISK_FULL'));
        fs.clearFaults();
        assert.equal(store.has(full.id), false);
        model.failed.set(full.id, full);
        await model.checkAll(store, `after full disk #${nth}`);
        const again = rec(`again-${nth}`, seed++);
        await store.put(again);
        model.acked.set(again.id, again);
        expectSameRecord(await store.get(again.id), again);
      }
    } finally {
      fs.reset();
      await store.close();
    }
    await checkAfterReopen(dir, model, 'short writes reopen');
  });

  test('a fault at any mutating step of a checkpoint leaves the store usable and the data intact', async (t) => {
    const dir = await tempDir(t);
    const fs = new FaultyFileSystem();
    const model = new Model();
    const store = await WarmStore.open(dir, { ...BASE, fileSystem: fs });
    let seed = 1;
    try {
      const add = async (n: number): Promise<void> => {
        for (let i = 0; i < n; i++) {
          const r = rec(`c${seed % 25}`, seed++);
          await store.put(r);
          model.acked.set(r.id, r);
        }
      };
      await add(10);
      fs.resetCounts();
      await store.checkpoint();
      const steps = fs.counts['any-write'];
      assert.ok(steps >= 4, `a checkpoint makes several mutating calls (${steps})`);
      let rejected = 0;
      // Errors that are not WarmStoreError IO_ERROR: collected so every step still runs.
      const wrongErrors: string[] = [];
      for (let nth = 1; nth <= steps; nth++) {
        await add(3);
        fs.failAt({ op: 'any-write', nth, error: nth % 2 === 0 ? 'EIO' : 'ENOSPC' });
        try {
          await store.checkpoint();
        } catch (err) {
          rejected++;
          if (!WarmStoreError.is(err, 'IO_ERROR')) {
            wrongErrors.push(
              `step ${nth} (${fs.triggered.at(-1)?.op} ${fs.triggered.at(-1)?.path}): ${String(err)}`,
            );
          }
        }
        fs.clearFaults();
        await model.checkAll(store, `after checkpoint fault ${nth}`);
        await add(2);
        // A kill -9 right now must not lose anything either.
        const image = join(dir, '..', `${basename(dir)}-image-${nth}`);
        await crashImage(dir, image);
        const snapshot = new Model();
        snapshot.acked = new Map(model.acked);
        try {
          await checkAfterReopen(image, snapshot, `crash image after checkpoint fault ${nth}`);
        } finally {
          await rm(image, { recursive: true, force: true });
        }
      }
      assert.ok(rejected > 0, 'some checkpoint faults were reported');
      await store.checkpoint();
      await store.close();
      await checkAfterReopen(dir, model, 'checkpoint faults reopen');
      assert.deepEqual(wrongErrors, [], 'checkpoint() must reject only with WarmStoreError IO_ERROR');
    } finally {
      fs.reset();
      await store.close();
    }
  });

  test('a checkpoint whose header runs are in flight together: a fault at any of their reads or writes fails it whole; the next one completes', async (t) => {
    const { dir, fs, model, store, add } = await storeWithAdder(t, 'h', 5000);
    try {
      await add(3000);
      fs.resetCounts();
      await store.checkpoint();
      // 3000 dirty slots: 6 runs of at most 512 headers, several read back and written at once.
      const runs = fs.counts.write - 1; // and the MANIFEST
      assert.ok(runs >= 6, `the checkpoint wrote ${runs} header runs`);
      for (const op of ['read', 'write'] as const) {
        // The first run, a later one, and the last (a checkpoint of a few slots: one run).
        for (const [puts, nth] of [
          [3000, 1],
          [3000, runs],
          [10, 1],
        ] as const) {
          const ctx = `${op} #${nth} of records.dat, ${puts} puts`;
          await add(puts);
          fs.failAt({ op, nth, error: 'EIO', pathIncludes: 'records.dat' });
          await assert.rejects(store.checkpoint(), ioError(ctx));
          assert.equal(fs.pendingFaults, 0, `${ctx}: the fault fired`);
          await model.checkAll(store, ctx);
          // A kill -9 now: the previous checkpoint and the WAL still hold everything.
          const image = join(dir, '..', `${basename(dir)}-image-${op}-${nth}-${puts}`);
          await crashImage(dir, image);
          const snapshot = new Model();
          snapshot.acked = new Map(model.acked);
          try {
            await checkAfterReopen(image, snapshot, `crash image after ${ctx}`);
          } finally {
            await rm(image, { recursive: true, force: true });
          }
          await store.checkpoint();
        }
      }
    } finally {
      fs.reset();
      await store.close();
    }
    await checkAfterReopen(dir, model, 'header run faults reopen');
  });

  test('a fault at any mutating step of open fails the open cleanly; a later open recovers everything', async (t) => {
    const root = await tempDir(t);
    const base = join(root, 'base');
    const model = new Model();
    let s = await WarmStore.open(base, BASE);
    for (let i = 0; i < 10; i++) {
      const r = rec(`o${i}`, i);
      await s.put(r);
      model.acked.set(r.id, r);
    }
    await s.close();
    const probeDir = join(root, 'probe');
    await cp(base, probeDir, { recursive: true });
    const probeFs = new FaultyFileSystem();
    s = await WarmStore.open(probeDir, { ...BASE, fileSystem: probeFs });
    const steps = probeFs.counts['any-write'];
    await s.close();
    assert.ok(steps >= 3, `open makes mutating calls (${steps})`);
    // Each step on its own copy of the store, a few at a time.
    const leaks: Array<[number, string]> = [];
    await inBatches(steps, 4, async (nth) => {
      const dir = join(root, `step${nth}`);
      await cp(base, dir, { recursive: true });
      const m = new Model();
      m.acked = new Map(model.acked);
      const fs = new FaultyFileSystem();
      fs.failAt({ op: 'any-write', nth, error: 'EIO' });
      let opened: WarmStore | undefined;
      try {
        opened = await WarmStore.open(dir, { ...BASE, fileSystem: fs });
      } catch (err) {
        ioError(`open, step ${nth}`)(err);
      }
      const trig = fs.triggered.at(-1);
      fs.clearFaults();
      if (opened) {
        await m.checkAll(opened, `opened despite fault ${nth}`);
        const r = rec(`o${nth % 10}`, 100 + nth);
        await opened.put(r);
        m.acked.set(r.id, r);
        await opened.close();
      }
      for (const f of fs.openFiles()) {
        leaks.push([nth, `fault at step ${nth} (${trig?.op} ${trig?.path}) leaked a handle of ${f}`]);
      }
      // The lock was released whatever happened.
      await checkAfterReopen(dir, m, `after open fault ${nth}`);
      await rm(dir, { recursive: true, force: true });
    });
    assert.deepEqual(
      leaks.sort((a, b) => a[0] - b[0]).map((l) => l[1]),
      [],
      'a failed open or close must close every file it opened',
    );
  });

  test('a fault while creating a new store fails cleanly; a later open creates it', async (t) => {
    const root = await tempDir(t);
    const probeFs = new FaultyFileSystem();
    const probe = await WarmStore.open(join(root, 'probe'), { ...BASE, fileSystem: probeFs });
    await probe.close();
    const steps = probeFs.counts['any-write'];
    assert.ok(steps >= 10, `creating a store makes many mutating calls (${steps})`);
    const leaks: Array<[number, string]> = [];
    await inBatches(steps, 4, async (nth) => {
      const dir = join(root, `s${nth}`);
      const fs = new FaultyFileSystem();
      fs.failAt({ op: 'any-write', nth, error: 'ENOSPC' });
      try {
        const s = await WarmStore.open(dir, { ...BASE, fileSystem: fs });
        await s.close();
      } catch (err) {
        ioError(`create, step ${nth}`)(err);
      }
      const trig = fs.triggered.at(-1);
      for (const f of fs.openFiles()) {
        leaks.push([nth, `fault at step ${nth} (${trig?.op} ${trig?.path}) leaked a handle of ${f}`]);
      }
      const s = await WarmStore.open(dir, BASE);
      try {
        assert.equal(s.dimension, DIM);
        await s.put(rec('x', nth));
        expectSameRecord(await s.get('x'), rec('x', nth));
      } finally {
        await s.close();
      }
      await rm(dir, { recursive: true, force: true });
    });
    assert.deepEqual(
      leaks.sort((a, b) => a[0] - b[0]).map((l) => l[1]),
      [],
      'a failed open or close must close every file it opened',
    );
  });

  for (const rollbackFails of [false, true]) {
    test(`a checkpoint that fails after rotating the WAL, after a failed put${rollbackFails ? ' whose rollback also failed' : ''}: a crash image keeps every acknowledged write`, async (t) => {
      const root = await tempDir(t);
      const dir = join(root, 'live');
      const fs = new FaultyFileSystem();
      const model = new Model();
      const store = await WarmStore.open(dir, { ...BASE, fileSystem: fs });
      try {
        const a = rec('A', 1);
        await store.put(a);
        model.acked.set('A', a);
        // 1. A put fails at the WAL fsync (its bytes were written); maybe the rollback truncate fails too.
        const p1 = rec('P1', 2);
        fs.failAt({ op: 'sync', nth: 1, error: 'EIO', pathIncludes: 'wal-' });
        if (rollbackFails) fs.failAt({ op: 'truncate', nth: 1, error: 'EIO', persistent: true });
        await assert.rejects(store.put(p1), ioError('P1'));
        fs.clearFaults();
        model.failed.set('P1', p1);
        // 2. A checkpoint rotates the WAL, then fails before its manifest is written (or is killed there).
        fs.failAt({ op: 'sync', nth: 1, error: 'EIO', pathIncludes: 'records.dat' });
        await assert.rejects(store.checkpoint(), ioError('checkpoint'));
        fs.clearFaults();
        // 3. Later writes are acknowledged into the new WAL.
        for (const [i, id] of ['P2', 'P3', 'A'].entries()) {
          const r = rec(id, 10 + i);
          await store.put(r);
          model.acked.set(id, r);
        }
        await model.checkAll(store, 'live');
        // 4. kill -9 now.
        await crashImage(dir, join(root, 'image'));
      } finally {
        fs.reset();
        await store.close();
      }
      await checkAfterReopen(join(root, 'image'), model, 'crash image');
    });
  }
});

describe('read faults while loading records', () => {
  test('EIO reading records.dat at any chunk of the open, or vectors.dat header: IO_ERROR naming the file, then a clean open', async (t) => {
    const dir = await tempDir(t);
    // Three table chunks (8192 slots each), so the open's read-ahead of the next chunk is in play.
    const n = 2 * WarmStore.chunkSlots + 100;
    await writeRecords(() => WarmStore.open(dir, BASE), n, 'r', DIM);
    // records.dat: the header read, then one read per chunk (reads are never split at this size);
    // vectors.dat: only its header is read at open (embeddings are read when used).
    for (const [file, reads] of [
      ['records.dat', 4],
      ['vectors.dat', 1],
    ] as const) {
      for (let nth = 1; nth <= reads; nth++) {
        const label = `EIO at read ${nth} of ${file}`;
        const fs = new FaultyFileSystem();
        fs.failAt({ op: 'read', nth, error: 'EIO', pathIncludes: file });
        await assert.rejects(WarmStore.open(dir, { ...BASE, fileSystem: fs }), (err: unknown) => {
          ioError(label)(err);
          assert.ok(String((err as WarmStoreError).details.file).endsWith(file), `${label}: names ${file}`);
          return true;
        });
        assert.equal(fs.triggered.length, 1, `${label}: the fault fired`);
        const again = await WarmStore.open(dir, BASE);
        try {
          assert.equal(again.size, n, label);
          for (const i of [0, WarmStore.chunkSlots, n - 1]) {
            expectSameRecord(again.getSync(`r${i}`), recordFor(`r${i}`, i, DIM), { context: label });
          }
        } finally {
          await again.close();
        }
      }
    }
  });
});

describe('a slow disk under get', () => {
  test('after a slow synchronous read, get reads through the thread pool for a while; getSync stays synchronous', async (t) => {
    const dir = await tempDir(t);
    const fs = new FaultyFileSystem();
    const store = await WarmStore.open(dir, { ...BASE, fileSystem: fs });
    t.after(() => store.close());
    const recs = Array.from({ length: 8 }, (_, i) => rec(`s${i}`, i));
    await store.putMany(recs);
    const syncReadsOf = async (fn: () => Promise<unknown> | unknown): Promise<number> => {
      const before = fs.syncReads;
      await fn();
      return fs.syncReads - before;
    };
    // A cached read: synchronous (the embedding from vectors.dat, the content from its segment).
    assert.equal(await syncReadsOf(() => store.get('s0')), 2);
    // A miss on a busy disk (simulated: each synchronous segment read blocks 30 ms).
    fs.slowSyncReads = { path: 'seg-', ms: 30 };
    const t0 = performance.now();
    expectSameRecord(await store.get('s1'), recs[1]!);
    assert.ok(performance.now() - t0 >= 29, 'the slow read happened');
    // From now on get leaves the event loop free: no synchronous reads, same answers.
    for (let i = 2; i < 8; i++) {
      assert.equal(
        await syncReadsOf(async () => expectSameRecord(await store.get(`s${i}`), recs[i]!)),
        0,
        `s${i}`,
      );
    }
    // getSync is the caller's explicit choice of a synchronous read.
    assert.equal(await syncReadsOf(() => expectSameRecord(store.getSync('s2'), recs[2]!)), 2);
    // The window closes after about a second; then get tries the synchronous path again.
    fs.slowSyncReads = undefined;
    await new Promise((r) => setTimeout(r, 1100));
    assert.equal(await syncReadsOf(() => store.get('s3')), 2);
  });
});

describe('a slow disk under a checkpoint', () => {
  test('header runs are read back synchronously until one read is slow; the rest of that checkpoint reads through the pool', async (t) => {
    const { dir, fs, model, store, add } = await storeWithAdder(t, 'c', 4000);
    try {
      // 3000 dirty slots: 6 runs of at most 512 headers.
      await add(3000);
      let before = fs.syncReads;
      await store.checkpoint();
      const cached = fs.syncReads - before;
      assert.ok(cached >= 6, `a page-cached checkpoint reads its runs back synchronously (${cached})`);
      await add(3000);
      // A miss on a busy disk (simulated: each synchronous read of records.dat blocks 10 ms).
      fs.slowSyncReads = { path: 'records.dat', ms: 10 };
      before = fs.syncReads;
      const reads = fs.counts.read;
      await store.checkpoint();
      assert.equal(fs.syncReads - before, 1, 'one slow synchronous read, then none');
      assert.ok(fs.counts.read - reads >= 6, 'the other runs were still read back, through the pool');
      fs.slowSyncReads = undefined;
      await model.checkAll(store, 'after the slow checkpoint');
      // The next checkpoint starts synchronous again.
      await add(1000);
      before = fs.syncReads;
      await store.checkpoint();
      assert.ok(fs.syncReads - before >= 2, 'a later checkpoint reads synchronously again');
    } finally {
      fs.reset();
      await store.close();
    }
    await checkAfterReopen(dir, model, 'slow checkpoint reopen');
  });
});
