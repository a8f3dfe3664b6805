/**
 * Scale (brief §4.5, §7, §9; seeds: "Scale tests: 100K, 1M"): a store of 100K and of 1M memories
 * (dimension 768), half deleted, compacted while 8 readers read and check every byte. Read
 * latency and event-loop delay are recorded and the 100 ms bar is asserted.
 *
 * The workload runs in a child process (scale-child.ts) so that what is measured is warmstore's
 * event loop, not node:test's: the runner's async_hooks destroy tracking of every promise cost a
 * single 188 ms stall in-process (see the child's header for the profile that showed it).
 *
 * Opt-in: `npm run test:slow` (WARMSTORE_SLOW=1). Without the flag this file registers a single
 * test that only checks the gate, so the default suite stays fast.
 */
import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import { spawnWriter } from '../helpers/spawn.js';
import type { ScaleResult } from './scale-child.js';

const SLOW = process.env.WARMSTORE_SLOW === '1';
/** The 100 ms bar of the seeds (brief §4.5). */
const STALL_LIMIT_MS = 100;
const fmt = (ms: number): string => `${ms.toFixed(ms < 1 ? 3 : 1)} ms`;

async function runScale(t: TestContext, n: number, timeoutMs: number): Promise<ScaleResult> {
  const child = spawnWriter('test/slow/scale-child.ts', {
    args: [String(n), '768'],
    echoStderr: process.env.WARMSTORE_TEST_TIMING === '1',
  });
  t.after(async () => {
    if (child.proc.exitCode === null && child.proc.signalCode === null) await child.kill();
  });
  const line = await child.waitForLine((l) => l.startsWith('RESULT '), timeoutMs);
  const exit = await child.exited;
  assert.deepEqual(exit, { code: 0, signal: null }, child.stderr().slice(-4000));
  const r = JSON.parse(line.slice('RESULT '.length)) as ScaleResult;
  for (const l of child.stderr().trim().split('\n')) t.diagnostic(l);
  t.diagnostic(
    `reads during compaction: ${r.reads}, p50 ${fmt(r.readP50Ms)}, p99 ${fmt(r.readP99Ms)}, ` +
      `max ${fmt(r.readMaxMs)}; event loop p99 ${fmt(r.loopP99Ms)}, max ${fmt(r.loopMaxMs)}; ` +
      `maxPauseMs ${fmt(r.maxPauseMs)}`,
  );

  assert.equal(r.n, n);
  assert.ok(r.fragmentationBefore > 0.45, `fragmentation before: ${r.fragmentationBefore}`);
  assert.equal(r.recordsMoved, r.liveWithBytes, 'every live entry with bytes moved once');
  assert.ok(r.reads > 1000, `reads ran during the compaction (${r.reads})`);
  assert.ok(r.loopMaxMs < STALL_LIMIT_MS, `event loop stalled ${fmt(r.loopMaxMs)}`);
  assert.ok(r.maxPauseMs > 0 && r.maxPauseMs < STALL_LIMIT_MS, `maxPauseMs ${r.maxPauseMs}`);
  assert.ok(r.readMaxMs < STALL_LIMIT_MS, `slowest read ${fmt(r.readMaxMs)}`);
  assert.ok(r.fragmentationAfter < 0.01, `fragmentation after: ${r.fragmentationAfter}`);
  assert.equal(r.liveBytesAfter, r.liveBytesBefore);
  assert.ok(r.bytesReclaimed > 0);
  assert.equal(r.sizeAfterReopen, Math.ceil(n / 2));
  return r;
}

if (SLOW) {
  describe('scale (WARMSTORE_SLOW=1)', { concurrency: false }, () => {
    it('100K memories x 768, half deleted, compacted while reading', { timeout: 30 * 60_000 }, async (t) => {
      await runScale(t, 100_000, 30 * 60_000);
    });

    it('1M memories x 768, half deleted, compacted while reading', { timeout: 60 * 60_000 }, async (t) => {
      await runScale(t, 1_000_000, 60 * 60_000);
    });
  });
} else {
  it('scale tests run only with WARMSTORE_SLOW=1 (npm run test:slow)', () => {
    assert.notEqual(process.env.WARMSTORE_SLOW, '1');
  });
}
