/**
 * Recall latency and recall@10 of an existing store, one query at a time: opens DIR (a store of
 * 768-dimensional vectors, e.g. one a recall benchmark kept with `--keep`), waits for its index,
 * runs Q queries from a float32 file (exact answers first, as the ground truth; then the same
 * queries through the index) and prints p50/p99 and recall@10. With ACTIVATION_LT=x, every recall
 * keeps only memories whose activation is below x (the recall benchmark sets activation uniform in
 * [0, 1), so 0.01 keeps 1%).
 *
 * With WARMUP=n and DATA=file (the store's own vectors as float32 rows, e.g. the recall
 * benchmark's `clustered-1000000x768.f32`), n recalls of perturbed random rows run first, as a
 * server that has answered a while would have: the quality sampling settled (it scans exactly
 * every few recalls at first) and the index's pages mapped. The measured queries are never among
 * them. Without WARMUP the figures are a freshly opened store's.
 *   node --import tsx tools/recall-latency.ts DIR QUERIES.f32 [Q]
 */
import * as fs from 'node:fs';
import { loadWarmstore } from '../engines/warmstore.ts';

const [dir, file, qArg] = process.argv.slice(2);
if (!dir || !file) throw new Error('usage: recall-latency.ts DIR QUERIES.f32 [Q]');
const dim = 768;
const raw = fs.readFileSync(file);
const all = new Float32Array(raw.buffer, raw.byteOffset, raw.length / 4);
const q = Math.min(Number(qArg ?? 200), all.length / dim);
const { WarmStore } = await loadWarmstore();
const t0 = performance.now();
const store = await WarmStore.open(dir, { dimension: dim, maintenanceIntervalMs: false });
while (store.indexStatus.state !== 'ready' || store.indexStatus.tail > 0)
  await new Promise((r) => setTimeout(r, 20));
console.log(`open + index ready ${(performance.now() - t0).toFixed(0)} ms; ${store.size} memories`);
const query = (i: number): Float32Array => all.subarray(i * dim, (i + 1) * dim);
const lt = process.env.ACTIVATION_LT;
const filter = lt === undefined ? {} : { filter: { activation: { lt: Number(lt) } } };
const truth: string[][] = [];
const exactMs: number[] = [];
for (let i = 0; i < q; i++) {
  const t = performance.now();
  truth.push((await store.recall(query(i), { k: 10, exact: true, ...filter })).map((h) => h.memory.id));
  exactMs.push(performance.now() - t);
}
exactMs.sort((a, b) => a - b);
console.log(
  `exact: p50 ${exactMs[Math.floor(q / 2)]!.toFixed(1)} ms, p99 ${exactMs[Math.floor(q * 0.99)]!.toFixed(1)} ms; ` +
    `RssAnon ${/RssAnon:\s+(\d+)/.exec(fs.readFileSync('/proc/self/status', 'utf8'))?.[1] ?? '?'} kB`,
);
const warmup = Number(process.env.WARMUP ?? 0);
if (warmup > 0) {
  const data = process.env.DATA;
  if (!data) throw new Error('WARMUP needs DATA: the float32 rows the store was filled from');
  const fd = fs.openSync(data, 'r');
  const rows = fs.fstatSync(fd).size / (dim * 4);
  const v = new Float32Array(dim);
  const buf = Buffer.from(v.buffer);
  let seed = 7;
  const rnd = (): number => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
  const tw = performance.now();
  for (let w = 0; w < warmup; w++) {
    fs.readSync(fd, buf, 0, dim * 4, Math.floor(rnd() * rows) * dim * 4);
    for (let d = 0; d < dim; d++) v[d]! += (rnd() - 0.5) * 0.05;
    await store.recall(v, { k: 10, ...filter });
  }
  fs.closeSync(fd);
  console.log(`warm-up: ${warmup} recalls of perturbed rows in ${(performance.now() - tw).toFixed(0)} ms`);
}
for (let i = 0; i < 20; i++) await store.recall(query(i), { k: 10, ...filter });
// The first recalls are also sampled against exact scans (off the caller's path, one at a time):
// let those finish, so the figures below are the steady state's.
await new Promise((r) => setTimeout(r, 3000));
const ms: number[] = [];
let found = 0;
const c0 = process.cpuUsage();
const s0 = store.indexStatus.searches;
for (let i = 0; i < q; i++) {
  const t = performance.now();
  const hits = await store.recall(query(i), { k: 10, ...filter });
  ms.push(performance.now() - t);
  const want = new Set(truth[i]);
  for (const h of hits) if (want.has(h.memory.id)) found++;
}
const cpu = process.cpuUsage(c0);
ms.sort((a, b) => a - b);
console.log(
  `${q} queries${lt === undefined ? '' : ` (activation < ${lt})`}: recall@10 ${(found / (10 * q)).toFixed(4)}, p50 ${ms[Math.floor(q / 2)]!.toFixed(2)} ms, ` +
    `p99 ${ms[Math.floor(q * 0.99)]!.toFixed(2)} ms, CPU ${((cpu.user + cpu.system) / 1000 / q).toFixed(2)} ms/query, ` +
    `${store.indexStatus.searches - s0} through the index; ${JSON.stringify(store.indexStatus)}`,
);
await store.close();
