/**
 * Resource limits of compaction: the memory-budget and free-disk checks refuse with
 * INSUFFICIENT_RESOURCES before anything is written (never failing halfway); the compaction runs
 * as short synchronous steps with reads served in between; and its extra memory stays within
 * `compaction.memoryBudgetBytes` (plus a fixed allowance) whatever the store's size, with no
 * spike proportional to the data.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { WarmStore, WarmStoreError } from '../../../src/index.js';
import { FaultyFileSystem } from '../../../src/testing/index.js';
import { spawnWriter } from '../../helpers/spawn.js';
import { tempDir } from '../../helpers/tmp.js';
import type { ScaleResult } from '../../slow/scale-child.js';
import {
  KiB,
  MiB,
  buildHalfDeleted,
  dirSnapshot,
  expectStoreEquals,
  idList,
  openStore,
  putAll,
  putVersion,
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
      // Enough for every live byte plus headroom: it runs. (Checkpointed first: the headroom
      // also counts what the run's closing checkpoint adds to the record files.)
      fs.freeBytesOverride = undefined;
      await store.checkpoint();
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
  /** Generous: a loaded machine can deschedule a process for 100 ms or more; a real stall is seconds. */
  const STALL_MARGIN_MS = 1000;

  it('20K memories compacted while 8 readers check every read: the event loop keeps turning', async (t) => {
    // Measured in a child process of its own (test/slow/scale-child.ts, the scale workload at a
    // small size): the test runner's promise tracking adds stalls of its own, and timings taken
    // in this process measure the runner rather than warmstore.
    const child = spawnWriter('test/slow/scale-child.ts', { args: ['20000', '16', String(256 * KiB)] });
    t.after(async () => {
      if (child.proc.exitCode === null && child.proc.signalCode === null) await child.kill();
    });
    const line = await child.waitForLine((l) => l.startsWith('RESULT '), 120_000);
    const exit = await child.exited;
    // The child checks the bytes of reads during the compaction and of every record after it and
    // after a reopen; any wrong byte fails it.
    assert.deepEqual(exit, { code: 0, signal: null }, child.stderr().slice(-4000));
    const r = JSON.parse(line.slice('RESULT '.length)) as ScaleResult;
    const ms = (x: number): string => `${x.toFixed(1)} ms`;
    t.diagnostic(
      `event-loop delay max ${ms(r.loopMaxMs)}, p99 ${ms(r.loopP99Ms)}; maxPauseMs ${ms(r.maxPauseMs)} over ` +
        `${r.pauses} steps; ${r.reads} reads, max ${ms(r.readMaxMs)}; compaction ${r.compactMs.toFixed(0)} ms`,
    );
    assert.equal(r.recordsMoved, r.liveWithBytes, 'every live entry with bytes moved once');
    assert.equal(r.recordsMoved, 10_000, 'the live half moved');
    assert.equal(r.sizeAfterReopen, 10_000);
    assert.ok(r.fragmentationAfter < 0.01, `fragmentation after: ${r.fragmentationAfter}`);
    // Structure, not time: the compaction ran as many short steps with reads served in between.
    assert.ok(r.segmentsCompacted > 10, `segments compacted: ${r.segmentsCompacted}`);
    assert.ok(r.pauses >= r.segmentsCompacted, `${r.pauses} steps for ${r.segmentsCompacted} segments`);
    assert.ok(r.reads > 100, `reads ran during the compaction (${r.reads})`);
    assert.ok(r.maxPauseMs > 0, 'maxPauseMs is measured');
    assert.ok(r.maxPauseMs < STALL_MARGIN_MS, `a synchronous compaction step took ${ms(r.maxPauseMs)}`);
    assert.ok(r.loopMaxMs < STALL_MARGIN_MS, `event loop stalled ${ms(r.loopMaxMs)}`);
    assert.ok(r.readMaxMs < STALL_MARGIN_MS, `a read took ${ms(r.readMaxMs)}`);
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
