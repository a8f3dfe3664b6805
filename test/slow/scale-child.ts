/**
 * The scale workload of scale.test.ts, run in a child process of its own: fill, delete half,
 * compact while 8 readers read and check, verify every record, reopen. It prints progress to
 * stderr and one `RESULT {json}` line to stdout; any wrong byte throws and exits non-zero.
 *
 * Why a child: node:test installs an async_hooks hook with destroy tracking for every promise
 * (node:internal/test_runner/harness init/destroy). Under that hook the readers' promises pile up
 * weak callbacks, and their destroy callbacks run in one batch after a GC: a CPU profile of the
 * in-process run attributed a 188 ms gap to `destroy node:internal/test_runner/harness` plus the
 * collector, none of it warmstore's. A production process has no such hook, so neither does this.
 *
 *   node --import tsx test/slow/scale-child.ts N [DIM] [SEGMENT_BYTES]
 *
 * Also run at small sizes by the default suite (scale.test.ts, and the event-loop test of
 * test/unit/compaction/resources.test.ts), so the workload and its checks cannot rot unnoticed.
 */
import assert from 'node:assert/strict';
import { createHistogram, monitorEventLoopDelay } from 'node:perf_hooks';
import { setImmediate as yieldNow } from 'node:timers/promises';
import { WarmStore } from '../../src/index.js';
import type { MemoryRecord } from '../../src/index.js';
import { contentOf, embeddingOf, expectValue } from '../unit/compaction/fixture.js';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const MiB = 1024 * 1024;
const SHAPE = { min: 50, max: 600 };

const idOf = (i: number): string => `m${i}`;
const isDeleted = (i: number): boolean => i % 2 === 1;
const contentFor = (i: number): string | null =>
  i % 50 === 7 ? null : i % 50 === 13 ? '' : contentOf(idOf(i), 1, SHAPE);

/** What the parent test asserts on. Times in milliseconds. */
export interface ScaleResult {
  n: number;
  fillMs: number;
  deleteMs: number;
  compactMs: number;
  reopenMs: number;
  fragmentationBefore: number;
  fragmentationAfter: number;
  liveBytesBefore: number;
  liveBytesAfter: number;
  recordsMoved: number;
  /** Live records whose content has at least one byte: what compaction has to move. */
  liveWithBytes: number;
  segmentsCompacted: number;
  bytesReclaimed: number;
  maxPauseMs: number;
  /** Synchronous steps the compaction reported (compactionPause events): how finely it yields. */
  pauses: number;
  reads: number;
  readP50Ms: number;
  readP99Ms: number;
  readMaxMs: number;
  loopP99Ms: number;
  loopMaxMs: number;
  sizeAfterReopen: number;
}

const note = (n: number, s: string): void => {
  process.stderr.write(`[scale ${n}] ${s}\n`);
};

async function runScale(dir: string, n: number, dim: number, segmentBytes: number): Promise<ScaleResult> {
  const options = {
    dimension: dim,
    segmentBytes,
    maintenanceIntervalMs: false as const,
    maintenance: { startupCompaction: 'off' as const },
  };
  const store = await WarmStore.open(dir, options);

  // Fill: batches of 1000 in one group commit each.
  let t0 = performance.now();
  const BATCH = 1000;
  for (let i = 0; i < n; i += BATCH) {
    const recs: MemoryRecord[] = [];
    for (let j = i; j < Math.min(n, i + BATCH); j++) {
      recs.push({ id: idOf(j), embedding: embeddingOf(idOf(j), 1, dim), content: contentFor(j) });
    }
    await store.putMany(recs);
  }
  const fillMs = performance.now() - t0;
  note(n, `filled ${n} x dim ${dim} in ${(fillMs / 1000).toFixed(1)} s`);

  t0 = performance.now();
  for (let i = 1; i < n; i += 20_000) {
    const ps: Promise<boolean>[] = [];
    for (let j = i; j < Math.min(n, i + 20_000); j += 2) ps.push(store.delete(idOf(j)));
    const res = await Promise.all(ps);
    assert.ok(res.every(Boolean));
  }
  const deleteMs = performance.now() - t0;
  const before = store.contentStorageStats();
  note(n, `deleted half in ${(deleteMs / 1000).toFixed(1)} s; ${JSON.stringify(before)}`);
  assert.equal(store.size, Math.ceil(n / 2));

  // Compaction with readers: 8 async readers (get and getSync), every read timed and checked.
  const reads = createHistogram();
  const loop = monitorEventLoopDelay({ resolution: 1 });
  let compacting = true;
  let failure: unknown;
  let maxReadMs = 0;
  let count = 0;
  let pauses = 0;
  store.on('compactionPause', () => {
    pauses++;
  });
  loop.enable();
  t0 = performance.now();
  const compaction = store.compact({ force: true }).finally(() => {
    compacting = false;
  });
  const readers = Array.from({ length: 8 }, async (_, r) => {
    let x = (r + 1) * 2654435761;
    while (compacting && failure === undefined) {
      x = (Math.imul(x, 1103515245) + 12345) >>> 0;
      const i = x % n;
      const id = idOf(i);
      const s = performance.now();
      try {
        const got = count % 2 === 0 ? store.getSync(id) : await store.get(id);
        const ms = performance.now() - s;
        reads.record(Math.max(1, Math.round(ms * 1e6)));
        if (ms > maxReadMs) maxReadMs = ms;
        // Check the bytes outside the timed part; every 4th read, to keep the readers quick.
        if (count % 4 === 0) {
          expectValue(
            got,
            id,
            isDeleted(i) ? undefined : { v: 1, content: contentFor(i) },
            `read during compaction`,
          );
        } else {
          assert.equal(got === undefined, isDeleted(i), `${id} presence`);
        }
      } catch (err) {
        failure ??= err;
      }
      count++;
      await yieldNow();
    }
  });
  const stats = await compaction;
  await Promise.all(readers);
  loop.disable();
  const compactMs = performance.now() - t0;
  if (failure !== undefined) throw failure;
  const after = store.contentStorageStats();
  note(
    n,
    `compacted in ${(compactMs / 1000).toFixed(1)} s: moved ${stats.recordsMoved}, ` +
      `${stats.segmentsCompacted} segments, reclaimed ${(stats.bytesReclaimed / MiB).toFixed(0)} MiB, ` +
      `maxPauseMs ${stats.maxPauseMs.toFixed(1)}`,
  );

  // Every record after the compaction (getSync: the cheap path).
  let liveWithBytes = 0;
  for (let i = 0; i < n; i++) {
    if (!isDeleted(i) && (contentFor(i) ?? '') !== '') liveWithBytes++;
    const id = idOf(i);
    const got = store.getSync(id);
    if (isDeleted(i)) assert.equal(got, undefined, id);
    else if (i % 10 === 0) expectValue(got, id, { v: 1, content: contentFor(i) }, 'after compaction');
    else assert.equal(got?.content, contentFor(i), id);
  }
  await store.close();

  t0 = performance.now();
  const again = await WarmStore.open(dir, options);
  const reopenMs = performance.now() - t0;
  note(n, `reopened in ${reopenMs.toFixed(0)} ms`);
  for (let i = 0; i < n; i += 101) {
    expectValue(
      again.getSync(idOf(i)),
      idOf(i),
      isDeleted(i) ? undefined : { v: 1, content: contentFor(i) },
      'reopen',
    );
  }
  const sizeAfterReopen = again.size;
  await again.close();
  return {
    n,
    fillMs,
    deleteMs,
    compactMs,
    reopenMs,
    fragmentationBefore: before.fragmentationRatio,
    fragmentationAfter: after.fragmentationRatio,
    liveBytesBefore: before.liveBytes,
    liveBytesAfter: after.liveBytes,
    recordsMoved: stats.recordsMoved,
    liveWithBytes,
    segmentsCompacted: stats.segmentsCompacted,
    bytesReclaimed: stats.bytesReclaimed,
    maxPauseMs: stats.maxPauseMs,
    pauses,
    reads: count,
    readP50Ms: reads.percentile(50) / 1e6,
    readP99Ms: reads.percentile(99) / 1e6,
    readMaxMs: maxReadMs,
    loopP99Ms: loop.percentile(99) / 1e6,
    loopMaxMs: loop.max / 1e6,
    sizeAfterReopen,
  };
}

const n = Number(process.argv[2]);
const dim = Number(process.argv[3] ?? 768);
const segmentBytes = Number(process.argv[4] ?? 16 * MiB);
if (
  !Number.isInteger(n) ||
  n < 1000 ||
  !Number.isInteger(dim) ||
  dim < 1 ||
  !Number.isInteger(segmentBytes) ||
  segmentBytes < 4096
) {
  process.stderr.write('usage: scale-child.ts N [DIM] [SEGMENT_BYTES] (N >= 1000, SEGMENT_BYTES >= 4096)\n');
  process.exit(2);
}
const dir = await mkdtemp(join(process.env.WARMSTORE_TEST_TMP ?? tmpdir(), 'warmstore-scale-'));
try {
  const result = await runScale(dir, n, dim, segmentBytes);
  process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
} finally {
  await rm(dir, { recursive: true, force: true });
}
