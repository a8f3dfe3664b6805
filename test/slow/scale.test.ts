/**
 * Scale: a store of 100K and of 1M memories (dimension 768), half deleted, compacted while 8
 * readers read and check every byte, then verified and reopened. Read latency and event-loop
 * delay are recorded, and no compaction step may stall the event loop for 100 ms.
 *
 * The workload runs in a child process (scale-child.ts) so that what is measured is warmstore's
 * event loop, not node:test's: the runner's async_hooks destroy tracking of every promise cost a
 * single 188 ms stall in-process (see the child's header for the profile that showed it).
 *
 * The 100K and 1M runs are opt-in: `npm run test:slow` (WARMSTORE_SLOW=1). The default suite runs
 * the same workload and checks at 4,000 memories, with a wide timing margin (other processes
 * share the machine there), so the harness and its assertions stay exercised.
 */
import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import { spawnWriter } from '../helpers/spawn.js';
import type { ScaleResult } from './scale-child.js';

const SLOW = process.env.WARMSTORE_SLOW === '1';
const KiB = 1024;
const MiB = 1024 * KiB;
/** Compaction must never stall the event loop (or a read) for 100 ms; asserted on the quiet slow runs. */
const STALL_LIMIT_MS = 100;
/** The bar of the default-suite run: a loaded machine can deschedule a process for 100 ms or more. */
const LOADED_STALL_MARGIN_MS = 1000;
const fmt = (ms: number): string => `${ms.toFixed(ms < 1 ? 3 : 1)} ms`;

interface Run {
  n: number;
  dim: number;
  segmentBytes: number;
  timeoutMs: number;
  /** Bar for the event-loop delay, the longest compaction step and the slowest read. */
  stallMs: number;
  /** Reads that must have run during the compaction. */
  minReads: number;
}

async function runScale(t: TestContext, run: Run): Promise<ScaleResult> {
  const { n, stallMs } = run;
  const child = spawnWriter('test/slow/scale-child.ts', {
    args: [String(n), String(run.dim), String(run.segmentBytes)],
    echoStderr: process.env.WARMSTORE_TEST_TIMING === '1',
  });
  t.after(async () => {
    if (child.proc.exitCode === null && child.proc.signalCode === null) await child.kill();
  });
  const line = await child.waitForLine((l) => l.startsWith('RESULT '), run.timeoutMs);
  const exit = await child.exited;
  assert.deepEqual(exit, { code: 0, signal: null }, child.stderr().slice(-4000));
  const r = JSON.parse(line.slice('RESULT '.length)) as ScaleResult;
  for (const l of child.stderr().trim().split('\n')) t.diagnostic(l);
  t.diagnostic(
    `reads during compaction: ${r.reads}, p50 ${fmt(r.readP50Ms)}, p99 ${fmt(r.readP99Ms)}, ` +
      `max ${fmt(r.readMaxMs)}; event loop p99 ${fmt(r.loopP99Ms)}, max ${fmt(r.loopMaxMs)}; ` +
      `maxPauseMs ${fmt(r.maxPauseMs)} over ${r.pauses} steps`,
  );

  assert.equal(r.n, n);
  assert.ok(r.fragmentationBefore > 0.45, `fragmentation before: ${r.fragmentationBefore}`);
  assert.equal(r.recordsMoved, r.liveWithBytes, 'every live entry with bytes moved once');
  assert.ok(r.reads > run.minReads, `reads ran during the compaction (${r.reads})`);
  assert.ok(r.pauses >= r.segmentsCompacted, `${r.pauses} steps for ${r.segmentsCompacted} segments`);
  assert.ok(r.loopMaxMs < stallMs, `event loop stalled ${fmt(r.loopMaxMs)}`);
  assert.ok(r.maxPauseMs > 0 && r.maxPauseMs < stallMs, `maxPauseMs ${r.maxPauseMs}`);
  assert.ok(r.readMaxMs < stallMs, `slowest read ${fmt(r.readMaxMs)}`);
  assert.ok(r.fragmentationAfter < 0.01, `fragmentation after: ${r.fragmentationAfter}`);
  assert.equal(r.liveBytesAfter, r.liveBytesBefore);
  assert.ok(r.bytesReclaimed > 0);
  assert.equal(r.sizeAfterReopen, Math.ceil(n / 2));
  return r;
}

const full = (n: number, timeoutMs: number): Run => ({
  n,
  dim: 768,
  segmentBytes: 16 * MiB,
  timeoutMs,
  stallMs: STALL_LIMIT_MS,
  minReads: 1000,
});

if (SLOW) {
  describe('scale (WARMSTORE_SLOW=1)', { concurrency: false }, () => {
    it('100K memories x 768, half deleted, compacted while reading', { timeout: 30 * 60_000 }, async (t) => {
      await runScale(t, full(100_000, 30 * 60_000));
    });

    it('1M memories x 768, half deleted, compacted while reading', { timeout: 60 * 60_000 }, async (t) => {
      await runScale(t, full(1_000_000, 60 * 60_000));
    });
  });
} else {
  it('4,000 memories x 64 in 64 KiB segments, half deleted, compacted while reading', async (t) => {
    const r = await runScale(t, {
      n: 4000,
      dim: 64,
      segmentBytes: 64 * KiB,
      timeoutMs: 120_000,
      stallMs: LOADED_STALL_MARGIN_MS,
      minReads: 100,
    });
    // Small segments, so the compaction has many victims and many steps to interleave reads with.
    assert.ok(r.segmentsCompacted > 5, `segments compacted: ${r.segmentsCompacted}`);
  });
}
