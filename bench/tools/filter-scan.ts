/**
 * Exact recall with a metadata filter, one query at a time, on a store without a recall index (the
 * path a selective filter takes whether or not an index exists): fills DIR from the recall
 * benchmark's clustered vectors once (N rows, `activation` uniform in [0, 1) as there), then times
 * exact recalls keeping 1% and 10% of the memories, and none filtered, for each build given.
 *   node --import tsx tools/filter-scan.ts N DIR [DIST,DIST...] [Q]
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { MemoryRecord } from '../../src/index.js';
import { loadWarmstore } from '../engines/warmstore.ts';
import { activations, ensureVectors, readRows, rowId } from '../recall/data.ts';

const [nArg, dir, distArg, qArg] = process.argv.slice(2);
if (!nArg || !dir) throw new Error('usage: filter-scan.ts N DIR [DIST,DIST...] [Q]');
const n = Number(nArg);
const dim = 768;
const nq = Number(qArg ?? 100);
const dists = distArg ? distArg.split(',') : [undefined];
const files = ensureVectors(path.join(import.meta.dirname, '../.data/recall-data'), 'clustered', n, 200, dim);
const noIndex = { dimension: dim, maintenanceIntervalMs: false as const, annMinMemories: 2 ** 32 };

if (!fs.existsSync(path.join(dir, 'MANIFEST'))) {
  const { WarmStore } = await loadWarmstore(dists[0]);
  const act = activations(n);
  const store = await WarmStore.open(dir, noIndex);
  const t0 = performance.now();
  for (let from = 0; from < n; from += 1000) {
    const count = Math.min(1000, n - from);
    const rows = readRows(files.base, dim, from, count);
    const recs: MemoryRecord[] = [];
    for (let j = 0; j < count; j++)
      recs.push({
        id: rowId(from + j),
        embedding: rows.subarray(j * dim, (j + 1) * dim),
        content: `memory ${from + j}`,
        activation: act[from + j]!,
      });
    await store.putMany(recs);
  }
  await store.close();
  console.log(`filled ${n} in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
}

const queries = readRows(files.queries, dim, 0, Math.min(nq, 200));
const median = (a: number[]): number => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;
const p99 = (a: number[]): number => [...a].sort((x, y) => x - y)[Math.floor(a.length * 0.99)]!;
for (const dist of dists) {
  const { WarmStore } = await loadWarmstore(dist);
  const store = await WarmStore.open(dir, noIndex);
  const answers: string[] = [];
  for (const below of [0.01, 0.1, undefined]) {
    const opts =
      below === undefined
        ? { k: 10, exact: true }
        : { k: 10, exact: true, filter: { activation: { lt: below } } };
    for (let i = 0; i < 10; i++) await store.recall(queries.subarray(i * dim, (i + 1) * dim), opts);
    const ms: number[] = [];
    const c0 = process.cpuUsage();
    for (let i = 0; i < queries.length / dim; i++) {
      const t = performance.now();
      const hits = await store.recall(queries.subarray(i * dim, (i + 1) * dim), opts);
      ms.push(performance.now() - t);
      answers.push(hits.map((h) => h.memory.id).join(','));
    }
    const cpu = process.cpuUsage(c0);
    console.log(
      `${dist ?? 'dist'} ${below === undefined ? 'unfiltered' : `${below * 100}%`}: p50 ${median(ms).toFixed(2)} ms, ` +
        `p99 ${p99(ms).toFixed(2)} ms, process CPU (all threads) ${((cpu.user + cpu.system) / 1000 / ms.length).toFixed(2)} ms a query`,
    );
  }
  // The same answers from every build: a digest to compare.
  let h = 0;
  for (const a of answers) for (let i = 0; i < a.length; i++) h = (h * 31 + a.charCodeAt(i)) | 0;
  console.log(`${dist ?? 'dist'} answers digest ${h >>> 0}`);
  await store.close();
}
