/**
 * The raw usearch index (the store's settings: i8, cos, connectivity 16) at other expansions:
 * build time on every core, then for each search expansion the recall@10 after rescoring the top
 * k' by exact float32 cosine (what the store does; each k' from one search of the largest) and the
 * median search time on one thread of the largest k'.
 *
 *   node --import tsx tools/hnsw-params.ts N DATA.f32 QUERIES.f32 ADD,ADD SEARCH,SEARCH [K',K']
 */
import { openSync, readSync, closeSync, readFileSync, rmSync } from 'node:fs';
import { cpus } from 'node:os';
import { createRequire } from 'node:module';

const require = createRequire(new URL('../../package.json', import.meta.url));
const usearch = require('usearch') as typeof import('usearch');

const [nArg, dataFile, qFile, addArg, searchArg, kArg] = process.argv.slice(2);
if (!nArg || !dataFile || !qFile || !addArg || !searchArg) {
  console.error('usage: hnsw-params.ts N DATA.f32 QUERIES.f32 ADD,.. SEARCH,.. [K]');
  process.exit(2);
}
const n = Number(nArg);
const dim = 768;
const kPrimes = (kArg ?? '30').split(',').map(Number);
const kMax = Math.max(...kPrimes);
const data = new Float32Array(n * dim);
const fd = openSync(dataFile, 'r');
for (let pos = 0; pos < data.byteLength;) {
  const got = readSync(
    fd,
    new Uint8Array(data.buffer, pos, Math.min(1 << 30, data.byteLength - pos)),
    0,
    Math.min(1 << 30, data.byteLength - pos),
    pos,
  );
  if (got === 0) throw new Error(`${dataFile} holds fewer than ${n} vectors`);
  pos += got;
}
closeSync(fd);
const qbuf = readFileSync(qFile);
const queries = new Float32Array(qbuf.buffer.slice(qbuf.byteOffset, qbuf.byteOffset + qbuf.byteLength));
const nq = queries.length / dim;

function cos(a: Float32Array, ao: number, b: Float32Array, bo: number): number {
  let d = 0,
    na = 0,
    nb = 0;
  for (let i = 0; i < dim; i++) {
    const x = a[ao + i]!,
      y = b[bo + i]!;
    d += x * y;
    na += x * x;
    nb += y * y;
  }
  return d / Math.sqrt(na * nb);
}

const truth = usearch.exactSearch(
  data,
  queries,
  dim,
  10,
  'cos' as never,
  cpus().length,
) as import('usearch').BatchMatches;
const truthSets = Array.from(
  { length: nq },
  (_, q) => new Set(Array.from(truth.keys.subarray(q * 10, q * 10 + 10), Number)),
);
const keys = new BigUint64Array(n);
for (let i = 0; i < n; i++) keys[i] = BigInt(i);

/** An index with the store's settings (src/ann/worker-source.ts) at the given expansions. */
const newIndex = (add: number, search: number): import('usearch').Index =>
  new usearch.Index({
    dimensions: dim,
    metric: 'cos' as never,
    quantization: 'i8' as never,
    connectivity: 16,
    expansion_add: add,
    expansion_search: search,
    multi: false,
  });

for (const add of addArg.split(',').map(Number)) {
  const index = newIndex(add, 64);
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  index.add(keys, data, cpus().length);
  const build = (performance.now() - t0) / 1000;
  const used = process.cpuUsage(c0);
  const cpu = (used.user + used.system) / 1e6;
  const file = `/tmp/hnsw-params-${process.pid}.usearch`;
  index.save(file);
  for (const search of searchArg.split(',').map(Number)) {
    const view = newIndex(add, search);
    view.view(file);
    const hits = kPrimes.map(() => 0);
    const times: number[] = [];
    for (let q = 0; q < nq; q++) {
      const qv = queries.slice(q * dim, (q + 1) * dim);
      const s = performance.now();
      const m = view.search(qv, kMax, 1) as import('usearch').Matches;
      times.push(performance.now() - s);
      kPrimes.forEach((kp, i) => {
        const scored = Array.from(m.keys.subarray(0, kp), (k) => ({
          k: Number(k),
          s: cos(data, Number(k) * dim, queries, q * dim),
        }));
        scored.sort((a, b) => b.s - a.s);
        for (const h of scored.slice(0, 10)) if (truthSets[q]!.has(h.k)) hits[i]!++;
      });
    }
    times.sort((a, b) => a - b);
    const recall = Object.fromEntries(
      kPrimes.map((kp, i) => [`recall10_k${kp}`, +(hits[i]! / (nq * 10)).toFixed(4)]),
    );
    console.log(
      JSON.stringify({
        n,
        expansion_add: add,
        build_s: +build.toFixed(1),
        build_cpu_s: +cpu.toFixed(1),
        expansion_search: search,
        ...recall,
        search_p50_ms: +times[Math.floor(nq / 2)]!.toFixed(3),
        search_p99_ms: +times[Math.floor(nq * 0.99)]!.toFixed(3),
      }),
    );
  }
  rmSync(file, { force: true });
}
