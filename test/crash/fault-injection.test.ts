/**
 * Invariants 1, 6 and 8 under I/O faults injected through FaultyFileSystem: every single file
 * operation of a put, of a compaction and of an open is made to fail in turn (ENOSPC and EIO),
 * and every write is made short. Each time: the failure surfaces as a WarmStoreError, nothing
 * acknowledged is lost, no file handle leaks, the store stays usable without a reopen, and what a
 * reopen finds equals what the store showed before it.
 */
import assert from 'node:assert/strict';
import { cpSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { WarmStore, WarmStoreError } from '../../src/index.js';
import { FaultyFileSystem, type FaultErrorCode } from '../../src/testing/index.js';
import { AckModel } from '../helpers/ack-model.js';
import { CRASH_DIM, crashStoreOptions, reopenAndVerify } from '../helpers/crash.js';
import { contentFor, recordFor } from '../helpers/random.js';
import { tempDir } from '../helpers/tmp.js';
import { runWorkload } from '../helpers/workload.js';

const ERRORS: readonly FaultErrorCode[] = ['ENOSPC', 'EIO'];

function assertStoreError(err: unknown, context: string, codes: readonly string[]): void {
  assert.ok(err instanceof WarmStoreError, `${context}: expected a WarmStoreError, got ${String(err)}`);
  assert.ok(codes.includes(err.code), `${context}: code ${err.code}, expected one of ${codes.join(', ')}`);
}

/** A seed >= from whose record for `id` carries content of at least `min` chars. */
function seedWithContent(id: string, from: number, min: number): number {
  let seed = from;
  while ((contentFor(id, seed) ?? '').length < min) seed++;
  return seed;
}

/** A store with churn (several segments, dead bytes), its model, and its directory. */
async function buildStore(t: TestContext): Promise<{ dir: string; model: AckModel }> {
  const dir = join(await tempDir(t, 'warmstore-fault-'), 'store');
  const model = new AckModel(CRASH_DIM);
  const store = await WarmStore.open(dir, crashStoreOptions());
  try {
    for (const [i, mix] of [
      { put: 0.7, putMany: 0.3, del: 0 },
      { put: 0.5, putMany: 0.1, del: 0.4 },
    ].entries()) {
      const res = await runWorkload(store, {
        seed: 77 + i,
        seedBase: (i + 1) * 1_000_000,
        dimension: CRASH_DIM,
        idSpace: 80,
        concurrency: 4,
        maxOps: 120,
        mix,
        emit: (l) => model.feed(l),
      });
      if (res.error !== undefined) throw res.error;
    }
  } finally {
    await store.close();
  }
  return { dir, model };
}

async function copyOf(t: TestContext, dir: string): Promise<string> {
  const to = join(await tempDir(t, 'warmstore-fault-'), 'store');
  cpSync(dir, to, { recursive: true });
  return to;
}

/**
 * After a fault: the store (still open) must agree with the model, accept a new put, and a reopen
 * must find exactly what the open store showed (a rejected write must not come back). Handles
 * still open after close are returned as a problem rather than thrown, so that one leak does not
 * hide the data checks of the remaining cases.
 */
async function checkUsableAndConsistent(
  store: WarmStore,
  fs: FaultyFileSystem,
  model: AckModel,
  dir: string,
  context: string,
  probeId: string,
  probeSeed: number,
): Promise<string[]> {
  fs.reset();
  await model.verify(store, `${context} (open store)`);
  model.begin(probeId, probeSeed);
  await store.put(recordFor(probeId, probeSeed, CRASH_DIM));
  model.ack(probeId, probeSeed);
  await model.verify(store, `${context} (after a new put)`);
  await store.close();
  const leaked = fs.openFiles();
  await reopenAndVerify(dir, model, context);
  return leaked.length === 0 ? [] : [`${context}: handles left open after close: ${leaked.join(', ')}`];
}

/** Fails with every collected problem at once (a failing case does not hide the others). */
function assertNoProblems(problems: readonly string[], what: string): void {
  if (problems.length === 0) return;
  const shown = problems.slice(0, 12).join('\n  ');
  assert.fail(`${what}: ${problems.length} problem(s):\n  ${shown}${problems.length > 12 ? '\n  ...' : ''}`);
}

describe('crash: injected I/O faults', () => {
  it(
    'a put failing at any file operation is refused cleanly and loses nothing',
    { timeout: 120_000 },
    async (t) => {
      const base = await buildStore(t);
      // Count the mutating operations of one put carrying content.
      const countDir = await copyOf(t, base.dir);
      const counter = new FaultyFileSystem();
      const s0 = await WarmStore.open(countDir, crashStoreOptions({ fileSystem: counter }));
      counter.resetCounts();
      await s0.put(recordFor('fresh', seedWithContent('fresh', 1, 2000), CRASH_DIM));
      const opsPerPut = counter.counts['any-write'];
      await s0.close();
      assert.ok(opsPerPut >= 2, `a put made only ${opsPerPut} mutating file operations`);
      const problems: string[] = [];

      for (let nth = 1; nth <= opsPerPut; nth++) {
        for (const error of ERRORS) {
          for (const id of ['m3', 'brand-new']) {
            const context = `put of ${id}, ${error} at mutating op ${nth}/${opsPerPut}`;
            const dir = await copyOf(t, base.dir);
            const model = base.model.clone();
            const fs = new FaultyFileSystem();
            const store = await WarmStore.open(dir, crashStoreOptions({ fileSystem: fs }));
            const seed = seedWithContent(id, 500 + nth, 2000);
            fs.failAt({ op: 'any-write', nth, error });
            model.begin(id, seed);
            try {
              await store.put(recordFor(id, seed, CRASH_DIM));
              model.ack(id, seed); // a fault the store absorbed (e.g. retried)
            } catch (err) {
              assertStoreError(err, context, ['IO_ERROR', 'DISK_FULL', 'INSUFFICIENT_RESOURCES']);
              assert.equal(fs.triggered.length, 1, `${context}: the fault did not fire`);
            }
            problems.push(
              ...(await checkUsableAndConsistent(
                store,
                fs,
                model,
                dir,
                context,
                'probe',
                seedWithContent('probe', nth, 1),
              )),
            );
          }
        }
      }
      assertNoProblems(problems, 'puts with a failing file operation');
    },
  );

  it('short writes are completed, never acknowledged half-written', { timeout: 60_000 }, async (t) => {
    const base = await buildStore(t);
    const dir = await copyOf(t, base.dir);
    const model = base.model.clone();
    const fs = new FaultyFileSystem();
    const store = await WarmStore.open(dir, crashStoreOptions({ fileSystem: fs }));
    for (let i = 0; i < 12; i++) {
      const id = `short-${i % 4}`;
      const seed = seedWithContent(id, 100 * (i + 1), 500);
      // Every write of this put comes back half done; the store must loop until it is whole.
      fs.failAt({ op: 'write', nth: 1, error: 'ENOSPC', short: true });
      fs.failAt({ op: 'write', nth: 2, error: 'ENOSPC', short: true });
      fs.failAt({ op: 'write', nth: 3, error: 'ENOSPC', short: true });
      model.begin(id, seed);
      await store.put(recordFor(id, seed, CRASH_DIM));
      model.ack(id, seed);
      fs.clearFaults();
    }
    assert.ok(
      fs.triggered.some((f) => f.short),
      'no short write happened',
    );
    assertNoProblems(
      await checkUsableAndConsistent(store, fs, model, dir, 'short writes', 'probe', 1),
      'short writes',
    );
  });

  it(
    'a full disk refuses writes; freeing space makes the same open store writable again',
    { timeout: 60_000 },
    async (t) => {
      const base = await buildStore(t);
      const dir = await copyOf(t, base.dir);
      const model = base.model.clone();
      const fs = new FaultyFileSystem();
      const store = await WarmStore.open(dir, crashStoreOptions({ fileSystem: fs }));
      fs.failAt({ op: 'any-write', nth: 1, error: 'ENOSPC', persistent: true });
      for (let i = 0; i < 5; i++) {
        const seed = seedWithContent('full', 10 + i, 100);
        model.begin('full', seed);
        await assert.rejects(store.put(recordFor('full', seed, CRASH_DIM)), (err) => {
          assertStoreError(err, `put ${i} on a full disk`, ['DISK_FULL']);
          return true;
        });
        // Reads keep working meanwhile, and the refused put is not visible.
        await model.verify(store, `full disk, after refused put ${i}`);
      }
      await assert.rejects(store.delete('m1'), (err) => {
        assertStoreError(err, 'delete on a full disk', ['IO_ERROR', 'INSUFFICIENT_RESOURCES']);
        return true;
      });
      assertNoProblems(
        await checkUsableAndConsistent(store, fs, model, dir, 'full disk', 'after-full', 3),
        'full disk',
      );
    },
  );

  it(
    'compaction failing at any file operation leaves every record readable and can run again',
    { timeout: 180_000 },
    async (t) => {
      const base = await buildStore(t);
      const countDir = await copyOf(t, base.dir);
      const counter = new FaultyFileSystem();
      const s0 = await WarmStore.open(countDir, crashStoreOptions({ fileSystem: counter }));
      counter.resetCounts();
      const stats = await s0.compact({ force: true });
      const opsPerCompaction = counter.counts['any-write'];
      await s0.close();
      assert.ok(
        stats.segmentsCompacted > 0,
        `nothing to compact in the base store: ${JSON.stringify(stats)}`,
      );

      // The first ones, the last one and an even spread (each case copies and reopens a store).
      const picks = new Set<number>([1, 2, 3, opsPerCompaction]);
      for (let i = 1; i <= 20; i++) picks.add(Math.max(1, Math.round((opsPerCompaction * i) / 20)));
      const problems: string[] = [];
      for (const nth of [...picks].sort((a, b) => a - b)) {
        const error = ERRORS[nth % 2] as FaultErrorCode;
        const context = `compaction, ${error} at mutating op ${nth}/${opsPerCompaction}`;
        const dir = await copyOf(t, base.dir);
        const model = base.model.clone();
        const fs = new FaultyFileSystem();
        const store = await WarmStore.open(dir, crashStoreOptions({ fileSystem: fs }));
        fs.failAt({ op: 'any-write', nth, error });
        let failed = false;
        try {
          await store.compact({ force: true });
        } catch (err) {
          failed = true;
          assertStoreError(err, context, ['COMPACTION_FAILED', 'IO_ERROR', 'INSUFFICIENT_RESOURCES']);
        }
        if (!failed) {
          // Faults after the commit point (retiring files) may be swallowed by design; one before
          // it must not be.
          assert.equal(fs.triggered.length, 1, `${context}: fault did not fire`);
        }
        fs.reset();
        await model.verify(store, `${context} (open store)`);
        assert.equal(store.isCompacting, false, `${context}: compaction still marked running`);
        await store.compact({ force: true });
        await model.verify(store, `${context} (after a second compaction)`);
        const report = await store.verify();
        assert.ok(report.ok, `${context}: verify(): ${JSON.stringify(report.problems.slice(0, 3))}`);
        problems.push(...(await checkUsableAndConsistent(store, fs, model, dir, context, 'probe', nth)));
      }
      assertNoProblems(problems, 'compactions with a failing file operation');
    },
  );

  it('compaction refuses up front when free disk space is short, writing nothing', async (t) => {
    const base = await buildStore(t);
    const dir = await copyOf(t, base.dir);
    const fs = new FaultyFileSystem();
    const store = await WarmStore.open(dir, crashStoreOptions({ fileSystem: fs }));
    try {
      fs.freeBytesOverride = 1024;
      fs.resetCounts();
      await assert.rejects(store.compact({ force: true }), (err) => {
        assertStoreError(err, 'compaction with 1 KiB free', ['INSUFFICIENT_RESOURCES']);
        return true;
      });
      assert.ok(fs.counts.freeBytes > 0, 'compaction never asked for free space');
      assert.equal(fs.counts.write + fs.counts.rename + fs.counts.truncate, 0, 'a refused compaction wrote');
      fs.freeBytesOverride = undefined;
      await store.compact({ force: true });
      const model = base.model.clone();
      await model.verify(store, 'after refusal then compaction');
    } finally {
      await store.close();
    }
  });

  it('a transient read error on the newest segment at open loses nothing, then or after a reopen', async (t) => {
    // Recovery must not take a segment it failed to read for one that was never created: the WAL
    // tail points into it, and a checkpoint of that belief would drop acknowledged records.
    const base = await buildStore(t);
    const live = await copyOf(t, base.dir);
    const model = base.model.clone();
    const s = await WarmStore.open(live, crashStoreOptions());
    for (let i = 0; i < 10; i++) {
      const id = `late-${i}`;
      const seed = seedWithContent(id, i + 1, 200);
      model.begin(id, seed);
      await s.put(recordFor(id, seed, CRASH_DIM));
      model.ack(id, seed);
    }
    const dir = await copyOf(t, live); // a crash: the WAL tail is not checkpointed
    await s.close();
    const newest = readdirSync(dir)
      .filter((n) => n.startsWith('seg-'))
      .sort()
      .at(-1);
    assert.ok(newest !== undefined);
    const fs = new FaultyFileSystem();
    fs.failAt({ op: 'read', nth: 1, error: 'EIO', pathIncludes: newest });
    let store: WarmStore | undefined;
    try {
      store = await WarmStore.open(dir, crashStoreOptions({ fileSystem: fs }));
    } catch (err) {
      assertStoreError(err, `open with EIO reading ${newest}`, ['IO_ERROR']);
    }
    assert.equal(fs.triggered.length, 1, `the read of ${newest} was never attempted`);
    // Both stages are checked and reported together: a wrong open store, then what its close left.
    const problems: string[] = [];
    if (store !== undefined) {
      fs.reset();
      await model
        .clone()
        .verify(store, `opened despite EIO on ${newest}`)
        .catch((err: Error) => problems.push(err.message));
      await store.close();
    }
    await reopenAndVerify(dir, model, `reopen after EIO on ${newest}`).catch((err: Error) =>
      problems.push(err.message),
    );
    assertNoProblems(problems, 'transient EIO at open');
  });

  it(
    'an open failing at any file operation releases everything and a later open recovers',
    { timeout: 120_000 },
    async (t) => {
      const base = await buildStore(t);
      // Leave a WAL to replay: the base store closed cleanly, so add writes and "crash" (no close)
      // by copying the directory while the store is still open.
      const live = await copyOf(t, base.dir);
      const model = base.model.clone();
      const s = await WarmStore.open(live, crashStoreOptions());
      for (let i = 0; i < 10; i++) {
        const id = `late-${i}`;
        model.begin(id, i + 1);
        await s.put(recordFor(id, i + 1, CRASH_DIM));
        model.ack(id, i + 1);
      }
      const crashed = await copyOf(t, live);
      await s.close();

      const counterDir = await copyOf(t, crashed);
      const counter = new FaultyFileSystem();
      const c = await WarmStore.open(counterDir, crashStoreOptions({ fileSystem: counter }));
      const opsPerOpen = counter.counts['any-write'];
      const readsPerOpen = counter.counts.read;
      await c.close();

      const problems: string[] = [];
      const note = async (fn: () => Promise<void> | void): Promise<void> => {
        try {
          await fn();
        } catch (err) {
          problems.push((err as Error).message);
        }
      };
      for (const op of ['any-write', 'read'] as const) {
        const total = op === 'read' ? readsPerOpen : opsPerOpen;
        for (let nth = 1; nth <= total; nth++) {
          const context = `open, EIO at ${op} #${nth}/${total}`;
          const dir = await copyOf(t, crashed);
          const fs = new FaultyFileSystem();
          fs.failAt({ op, nth, error: 'EIO' });
          let store: WarmStore | undefined;
          try {
            store = await WarmStore.open(dir, crashStoreOptions({ fileSystem: fs }));
          } catch (err) {
            await note(() => {
              // A fault on the lock file itself may read as "locked": the lock cannot be checked.
              const onLock = fs.triggered.some((f) => /LOCK/.test(f.path));
              assertStoreError(
                err,
                context,
                onLock ? ['IO_ERROR', 'STORE_LOCKED'] : ['IO_ERROR', 'CORRUPTION_DETECTED'],
              );
              if (WarmStoreError.is(err, 'CORRUPTION_DETECTED')) {
                assert.equal(op, 'read', `${context}: a write fault reported as corruption: ${err.message}`);
              }
            });
          }
          if (store !== undefined) {
            // Opened anyway (the fault hit something it could do without): it must then be right.
            fs.reset();
            const opened = store;
            await note(async () => {
              await model.clone().verify(opened, `${context} (opened despite the fault)`);
            });
            await store.close();
          }
          await note(() => assert.deepEqual(fs.openFiles(), [], `${context}: handles leaked`));
          // The in-process lock is released and nothing on disk was damaged by the failed attempt.
          await note(async () => {
            await reopenAndVerify(dir, model.clone(), context);
          });
        }
      }
      assertNoProblems(problems, 'opens with a failing file operation');
    },
  );
});
