/**
 * The first recalls of a freshly opened store, as the recall benchmark times them: opens DIR (a
 * store kept by `run.ts --only recall --keep`), waits for its index, runs 20 warm-up recalls and
 * then times Q single recalls at once, without waiting for the quality sampling's exact scans
 * (which the first recalls start) to finish. For each build given, in turn.
 *   node --import tsx tools/recall-first.ts DIR QUERIES.f32 [DIST,DIST...] [Q=200]
 */
import * as fs from 'node:fs';
import { loadWarmstore } from '../engines/warmstore.ts';

const [dir, file, distArg, qArg] = process.argv.slice(2);
if (!dir || !file) throw new Error('usage: recall-first.ts DIR QUERIES.f32 [DIST,DIST...] [Q]');
const dim = 768;
const raw = fs.readFileSync(file);
const all = new Float32Array(raw.buffer, raw.byteOffset, raw.length / 4);
const q = Math.min(Number(qArg ?? 200), all.length / dim);
const query = (i: number): Float32Array => all.subarray(i * dim, (i + 1) * dim);
for (const dist of distArg ? distArg.split(',') : [undefined]) {
  const { WarmStore } = await loadWarmstore(dist);
  const store = await WarmStore.open(dir, { dimension: dim, maintenanceIntervalMs: false });
  while (store.indexStatus.state !== 'ready' || store.indexStatus.tail > 0)
    await new Promise((r) => setTimeout(r, 20));
  for (let i = 0; i < 20; i++) await store.recall(query(q - 1 - i), { k: 10 });
  const ms: number[] = [];
  for (let i = 0; i < q; i++) {
    const t = performance.now();
    await store.recall(query(i), { k: 10 });
    ms.push(performance.now() - t);
  }
  await store.close();
  ms.sort((a, b) => a - b);
  const at = (p: number): string => ms[Math.min(ms.length - 1, Math.floor(ms.length * p))]!.toFixed(2);
  console.log(`${dist ?? 'dist'}: p50 ${at(0.5)} ms, p90 ${at(0.9)}, p99 ${at(0.99)}, max ${at(1)} ms`);
}
