/**
 * Resource limits of compaction (brief §4.5, §4.6; seeds: "2x memory overhead", "2 s pause",
 * "abort if insufficient memory"): the budget and free-disk checks refuse before anything is
 * written, the event loop never stalls for 100 ms, and extra memory stays within the budget.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { describe, it } from 'node:test';
import { setImmediate as yieldNow } from 'node:timers/promises';
import { WarmStore, WarmStoreError } from '../../../src/index.js';
import { FaultyFileSystem } from '../../../src/testing/index.js';
import { tempDir } from '../../helpers/tmp.js';
import {
  KiB,
  MiB,
  buildHalfDeleted,
  dirSnapshot,
  expectStoreEquals,
  expectValue,
  idList,
  openStore,
  putAll,
  putVersion,
  stopwatch,
  versions,
  type Model,
} from './fixture.js';

function isInsufficient(ctx: string) {
  return (err: unknown): boolean => {
    assert.ok(
      WarmStoreError.is(err, 'INSUFFICIENT_RESOURCES'),
      `${ctx}: expected INSUFFICIENT_RESOURCES, got ${String(err)}`,
    );
    return true;
  };
}

/** Refused with INSUFFICIENT_RESOURCES, and nothing at all changed on disk or in the store. */
async function expectRefusedUntouched(
  store: WarmStore,
  fs: FaultyFileSystem,
  dir: string,
  model: Model,
  ctx: string,
) {
  const files = dirSnapshot(dir);
  const stats = store.contentStorageStats();
  fs.resetCounts();
  await assert.rejects(store.compact({ force: true }), isInsufficient(ctx));
  assert.equal(store.isCompacting, false, `${ctx}: isCompacting released`);
  assert.equal(fs.counts['any-write'], 0, `${ctx}: no write, fsync, create or unlink before refusing`);
  assert.deepEqual(dirSnapshot(dir), files, `${ctx}: no new segment file, no file changed`);
  assert.deepEqual(store.contentStorageStats(), stats, `${ctx}: stats unchanged`);
  expectStoreEquals(store, model, ctx);
}

describe('INSUFFICIENT_RESOURCES is decided before anything is written', () => {
  /** A fragmented store; with `cleanActive`, the active segment holds no dead bytes. */
  async function fragmented(dir: string, fs: FaultyFileSystem, budget: number, cleanActive: boolean) {
    const store = await openStore(dir, {
      fileSystem: fs,
      segmentBytes: 64 * KiB,
      compaction: { memoryBudgetBytes: budget, diskHeadroomBytes: 1 * MiB },
    });
    const { model } = await buildHalfDeleted(store, 600);
    // Fresh records fill a new active segment after the deletes.
    if (cleanActive) await putAll(store, model, versions(idList(100, 'z'), 1), { min: 1000, max: 1500 });
    return { store, model };
  }

  for (const cleanActive of [true, false]) {
    const which = cleanActive ? 'clean active segment' : 'active segment with dead bytes';
    it(`memoryBudgetBytes below the minimum (1000), ${which}`, async (t) => {
      const dir = await tempDir(t);
      const fs = new FaultyFileSystem();
      const { store, model } = await fragmented(dir, fs, 1000, cleanActive);
      t.after(() => store.close());
      await expectRefusedUntouched(store, fs, dir, model, `budget 1000, ${which}`);
      await assert.rejects(store.compact(), isInsufficient('without force'));
      // Still fully usable.
      await putVersion(store, model, 'after', 1);
      expectStoreEquals(store, model, 'after a put');
      const report = await store.runMaintenance();
      assert.ok(report.decision === 'skipped' || report.decision === 'failed', report.decision);
    });

    it(`free disk below live bytes + headroom, ${which}`, async (t) => {
      const dir = await tempDir(t);
      const fs = new FaultyFileSystem();
      const { store, model } = await fragmented(dir, fs, 4 * MiB, cleanActive);
      t.after(() => store.close());
      fs.freeBytesOverride = 1000;
      await expectRefusedUntouched(store, fs, dir, model, `1000 bytes free, ${which}`);
      // Headroom alone is not enough: the live bytes to copy are needed on top.
      fs.freeBytesOverride = 1 * MiB;
      await expectRefusedUntouched(store, fs, dir, model, `headroom only, ${which}`);
      // Enough for every live byte plus headroom: it runs.
      fs.freeBytesOverride = store.contentStorageStats().liveBytes + 1 * MiB;
      const stats = await store.compact({ force: true });
      assert.ok(stats.recordsMoved > 0);
      assert.ok(store.contentStorageStats().fragmentationRatio < 0.05);
      expectStoreEquals(store, model, 'after compaction');
    });
  }

  it('the minimum budget (256 KiB) is accepted and compacts correctly', async (t) => {
    const dir = await tempDir(t);
    const store = await openStore(dir, {
      segmentBytes: 64 * KiB,
      compaction: { memoryBudgetBytes: 256 * KiB },
    });
    t.after(() => store.close());
    const { model } = await buildHalfDeleted(store, 1500);
    const stats = await store.compact({ force: true });
    assert.equal(stats.recordsMoved, 750);
    expectStoreEquals(store, model, 'after');
  });
});

describe('the event loop keeps running during compaction', () => {
  it('20K memories: event-loop delay max < 100 ms, maxPauseMs in (0, 100), reads stay fast', async (t) => {
    const lap = stopwatch('event loop');
    const dir = await tempDir(t);
    const store = await openStore(dir, { segmentBytes: 256 * KiB });
    t.after(() => store.close());
    const { model, ids } = await buildHalfDeleted(store, 20_000);
    lap('fill');

    let compacting = true;
    let maxReadMs = 0;
    let reads = 0;
    let failure: unknown;
    const h = monitorEventLoopDelay({ resolution: 1 });
    h.enable();
    const compaction = store.compact({ force: true }).finally(() => {
      compacting = false;
    });
    // A few readers alongside, timing each read.
    const readers = Array.from({ length: 4 }, async (_, n) => {
      let i = n;
      while (compacting && failure === undefined) {
        const id = ids[(i += 7919) % ids.length]!;
        const t0 = performance.now();
        try {
          const got = i % 2 === 0 ? store.getSync(id) : await store.get(id);
          maxReadMs = Math.max(maxReadMs, performance.now() - t0);
          expectValue(got, id, model.get(id));
        } catch (err) {
          failure ??= err;
        }
        reads++;
        await yieldNow();
      }
    });
    const stats = await compaction;
    await Promise.all(readers);
    h.disable();
    lap('compaction');
    if (failure !== undefined) throw failure;
    const maxDelayMs = h.max / 1e6;
    t.diagnostic(
      `event-loop delay max ${maxDelayMs.toFixed(1)} ms, p99 ${(h.percentile(99) / 1e6).toFixed(1)} ms; ` +
        `maxPauseMs ${stats.maxPauseMs.toFixed(2)}; ${reads} reads, max ${maxReadMs.toFixed(2)} ms; ` +
        `compaction ${stats.durationMs.toFixed(0)} ms`,
    );
    assert.equal(stats.recordsMoved, 10_000);
    assert.ok(maxDelayMs < 100, `event loop stalled ${maxDelayMs.toFixed(1)} ms`);
    assert.ok(stats.maxPauseMs > 0, 'maxPauseMs is measured');
    assert.ok(stats.maxPauseMs < 100, `maxPauseMs ${stats.maxPauseMs}`);
    assert.ok(maxReadMs < 100, `a read took ${maxReadMs.toFixed(1)} ms`);
    assert.ok(reads > 100, `reads ran during the compaction (${reads})`);
    expectStoreEquals(store, model, 'after');
  });
});

describe('compaction memory stays within its budget', () => {
  it('40 MB of live content, budget 1 MiB: peak heapUsed+external+arrayBuffers growth < budget + 16 MiB', async (t) => {
    const dir = await tempDir(t);
    const budget = 1 * MiB;
    const child = fileURLToPath(new URL('./memory-child.ts', import.meta.url));
    const out = await new Promise<string>((resolve, reject) => {
      const p = spawn(
        process.execPath,
        ['--expose-gc', '--import', 'tsx', child, dir, String(budget), '40'],
        {
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      );
      let stdout = '';
      let stderr = '';
      p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      p.on('error', reject);
      p.on('close', (code) =>
        code === 0 ? resolve(stdout) : reject(new Error(`child exited ${code}: ${stderr.slice(-2000)}`)),
      );
    });
    const r = JSON.parse(out.trim().split('\n').pop()!) as {
      gcExposed: boolean;
      liveBytes: number;
      totalBefore: number;
      totalAfter: number;
      growth: number;
      endGrowth: number;
      rssGrowth: number;
      samples: number;
      durationMs: number;
      recordsMoved: number;
      bad: number;
    };
    t.diagnostic(
      `live ${(r.liveBytes / MiB).toFixed(1)} MiB; peak growth ${(r.growth / MiB).toFixed(2)} MiB ` +
        `(after: ${(r.endGrowth / MiB).toFixed(2)} MiB, rss +${(r.rssGrowth / MiB).toFixed(1)} MiB); ` +
        `${r.samples} samples over ${r.durationMs.toFixed(0)} ms`,
    );
    assert.equal(r.gcExposed, true);
    assert.equal(r.bad, 0, 'every record intact after compaction');
    assert.ok(r.liveBytes > 38 * MiB, `live content ${r.liveBytes}`);
    assert.ok(r.totalAfter < r.totalBefore * 0.6, 'the compaction reclaimed the dead half');
    assert.ok(r.recordsMoved > 9000, `moved ${r.recordsMoved}`);
    assert.ok(r.samples >= 10, `sampled during the compaction (${r.samples})`);
    assert.ok(r.growth < budget + 16 * MiB, `memory grew ${(r.growth / MiB).toFixed(2)} MiB`);
  });
});
