/**
 * Child process of the memory-budget test (resources.test.ts), run with --expose-gc so that the
 * samples measure live memory rather than garbage awaiting collection. Builds a store whose live
 * content is far larger than the compaction budget, compacts it while sampling
 * heapUsed + external + arrayBuffers every 3 ms (after a minor GC, and a full one every 20th
 * sample), checks every record afterwards, and prints one JSON line with the measurements.
 * Usage: node --expose-gc --import tsx memory-child.ts <dir> <budgetBytes> [liveMiB]
 */
import { WarmStore } from '../../../src/index.js';
import { DIM, MiB, contentOf, embeddingOf, idList } from './fixture.js';

const [dir, budgetText, liveText] = process.argv.slice(2);
if (!dir || !budgetText) throw new Error('usage: memory-child.ts <dir> <budgetBytes> [liveMiB]');
const budget = Number(budgetText);
const liveTarget = Number(liveText ?? '40') * MiB;
const gc = (globalThis as { gc?: () => void }).gc;

const SHAPE = { min: 3000, max: 5000 };
function usage(): number {
  const m = process.memoryUsage();
  return m.heapUsed + m.external + m.arrayBuffers;
}

const t0 = performance.now();
const store = await WarmStore.open(dir, {
  dimension: DIM,
  segmentBytes: 1 * MiB,
  maintenanceIntervalMs: false,
  maintenance: { startupCompaction: 'off' },
  compaction: { memoryBudgetBytes: budget },
});
// Twice the live target is written; every other record is deleted.
const n = Math.ceil((2 * liveTarget) / 4000);
const ids = idList(n, 'mem');
for (let i = 0; i < n; i += 250) {
  await store.putMany(
    ids
      .slice(i, i + 250)
      .map((id) => ({ id, embedding: embeddingOf(id, 1), content: contentOf(id, 1, SHAPE) })),
  );
}
const dead = ids.filter((_, i) => i % 2 === 1);
for (let i = 0; i < dead.length; i += 2000)
  await Promise.all(dead.slice(i, i + 2000).map((id) => store.delete(id)));
const before = store.contentStorageStats();

gc?.();
gc?.();
const base = usage();
const baseRss = process.memoryUsage().rss;
let peak = base;
let peakRss = baseRss;
let samples = 0;
// A full collection at every sample would slow the compaction 20-fold: a minor one (young
// garbage) at every sample and a full one every 20th keep the samples close to live memory.
const FULL_EVERY = 20;
const minorGc = gc as ((o: { type: 'minor' }) => void) | undefined;
let tick = 0;
const tFill = performance.now() - t0;
const timer = setInterval(() => {
  if (gc && minorGc) {
    if (++tick % FULL_EVERY === 0) gc();
    else minorGc({ type: 'minor' });
  }
  const u = usage();
  if (u > peak) peak = u;
  const r = process.memoryUsage().rss;
  if (r > peakRss) peakRss = r;
  samples++;
}, 3);
const stats = await store.compact({ force: true });
clearInterval(timer);
gc?.();
const endUsage = usage();

// Every live record intact, every deleted one absent.
let bad = 0;
ids.forEach((id, i) => {
  const got = store.getSync(id);
  if (i % 2 === 1) {
    if (got !== undefined) bad++;
  } else if (got?.content !== contentOf(id, 1, SHAPE)) bad++;
});
const after = store.contentStorageStats();
await store.close();
process.stdout.write(
  `${JSON.stringify({
    gcExposed: gc !== undefined,
    budget,
    liveBytes: before.liveBytes,
    totalBefore: before.totalBytes,
    totalAfter: after.totalBytes,
    base,
    peak,
    growth: peak - base,
    endGrowth: endUsage - base,
    rssGrowth: peakRss - baseRss,
    samples,
    fillMs: tFill,
    durationMs: stats.durationMs,
    recordsMoved: stats.recordsMoved,
    bad,
  })}\n`,
);
