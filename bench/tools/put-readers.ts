/**
 * Writes behind busy readers: a store of N memories (half deleted, recall index off), R readers
 * each reading random live memories with `get` and yielding (setImmediate) every 20 reads, and one
 * writer putting batches of B memories (768 dimensions, 50-2050 bytes of content) one batch after
 * the other, each awaited. Prints the batches' latency (median, p90, max), puts/s and the readers'
 * reads/s; then the same with no readers. DIST picks the build (default ../dist).
 *   node --import tsx tools/put-readers.ts [N=20000] [R=100] [B=100] [BATCHES=200] [DIST]
 */
import * as fs from 'node:fs';
import { loadWarmstore } from '../engines/warmstore.ts';
import { halfDeletedScratch } from '../lib/fill.ts';
import { busyReaders } from '../lib/readers.ts';

const n = Number(process.argv[2] ?? 20_000);
const readers = Number(process.argv[3] ?? 100);
const batchSize = Number(process.argv[4] ?? 100);
const batches = Number(process.argv[5] ?? 200);
const dist = process.argv[6];
const dim = 768;
const { WarmStore } = await loadWarmstore(dist);

function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
}

async function run(withReaders: number): Promise<string> {
  const { dir, store, live } = await halfDeletedScratch(
    (d, o) => WarmStore.open(d, o),
    'put-readers-',
    n,
    dim,
  );
  try {
    const readers = busyReaders(store, live, withReaders);
    await new Promise((res) => setTimeout(res, 200));
    readers.reset();
    let seed = 7;
    const rnd = (): number => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
    const lat: number[] = [];
    const t0 = performance.now();
    for (let b = 0; b < batches; b++) {
      const recs = [];
      for (let j = 0; j < batchSize; j++) {
        const e = new Float32Array(dim);
        for (let d = 0; d < dim; d++) e[d] = rnd() - 0.5;
        recs.push({ id: `w${b}-${j}`, embedding: e, content: 'y'.repeat(50 + ((b * batchSize + j) % 2000)) });
      }
      const t = performance.now();
      await Promise.all(recs.map((m) => store.put(m)));
      lat.push(performance.now() - t);
    }
    const seconds = (performance.now() - t0) / 1000;
    await readers.stop();
    const reads = readers.reads;
    return (
      `${withReaders} readers: batch of ${batchSize} p50 ${quantile(lat, 0.5).toFixed(1)} ms, p90 ` +
      `${quantile(lat, 0.9).toFixed(1)}, max ${Math.max(...lat).toFixed(1)}; ` +
      `${Math.round((batches * batchSize) / seconds)} puts/s, ${Math.round(reads / seconds)} reads/s`
    );
  } finally {
    await store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

console.log(`N=${n} ${dist ?? '../dist'}: ${await run(0)} | ${await run(readers)}`);
