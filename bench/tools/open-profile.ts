/**
 * Profiles `WarmStore.open` of a store of N records x 768 (content 50..2000 B) after a clean
 * close. The store is built once in DIR and reused on later runs.
 *   node --import tsx tools/open-profile.ts N DIR [profile.cpuprofile]
 */
import * as fs from 'node:fs';
import { Dataset } from '../lib/data.ts';
import { loadWarmstore } from '../engines/warmstore.ts';
import { withCpuProfile } from '../lib/measure.ts';

const n = Number(process.argv[2] ?? 100_000);
const dir = process.argv[3];
const out = process.argv[4];
if (!dir) throw new Error('usage: open-profile.ts N DIR [profile.cpuprofile]');
// WS_DIST: another build's dist/, to compare two builds on the same store.
const { WarmStore } = await loadWarmstore(process.env.WS_DIST);
const opts = { dimension: 768, maintenanceIntervalMs: false as const };
if (!fs.existsSync(dir)) {
  // 10K generated records repeated under new ids: a million distinct records without holding
  // 3 GB of generated embeddings.
  const ds = new Dataset(Math.min(n, 10_000), 768, 42);
  const store = await WarmStore.open(dir, opts);
  for (let i = 0; i < n; i += 1000) {
    const round = Math.floor(i / ds.n);
    const batch = [];
    for (let j = i; j < Math.min(n, i + 1000); j++) {
      const r = ds.records[j % ds.n]!;
      batch.push(round === 0 ? r : { ...r, id: `${r.id}-${round}` });
    }
    await store.putMany(batch);
  }
  await store.close();
}
const t0 = performance.now();
const store = await withCpuProfile(out, () => WarmStore.open(dir, opts));
const ms = performance.now() - t0;
console.log(
  `open ${store.size} records in ${ms.toFixed(0)} ms (${((ms * 1000) / store.size).toFixed(1)} us/record)`,
);
await store.close();
