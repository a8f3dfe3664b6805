/**
 * Profiles one compaction and nothing else: builds a store (N records x 768, content 50..2000 B,
 * batches of 1000), deletes every other record, closes and reopens, then takes a V8 CPU profile
 * of `compact()` alone and prints its phases' timings.
 *   node --import tsx tools/compact-profile.ts [N] [profile.cpuprofile]
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Dataset } from '../lib/data.ts';
import { loadWarmstore } from '../engines/warmstore.ts';
import { withCpuProfile } from '../lib/measure.ts';

const n = Number(process.argv[2] ?? 100_000);
const out = process.argv[3];
const { WarmStore } = await loadWarmstore();
const dir = fs.mkdtempSync(path.join(process.env.BENCH_DIR ?? os.tmpdir(), 'ws-compact-prof-'));
try {
  const ds = new Dataset(n, 768, 42);
  let store = await WarmStore.open(dir, { dimension: 768, maintenanceIntervalMs: false });
  for (let i = 0; i < n; i += 1000) await store.putMany(ds.records.slice(i, i + 1000));
  for (let i = 1; i < n; i += 2000) {
    const ps = [];
    for (let j = i; j < Math.min(n, i + 2000); j += 2) ps.push(store.delete(ds.records[j]!.id));
    await Promise.all(ps);
  }
  await store.close();
  store = await WarmStore.open(dir, { dimension: 768, maintenanceIntervalMs: false });
  const phases: Record<string, number> = {};
  let last = performance.now();
  let lastPhase = 'start';
  const t0 = performance.now();
  const stats = await withCpuProfile(
    out,
    () =>
      store.compact({
        force: true,
        onProgress: (p) => {
          const now = performance.now();
          phases[lastPhase] = (phases[lastPhase] ?? 0) + now - last;
          last = now;
          lastPhase = p.phase;
        },
      }),
    200,
  );
  const ms = performance.now() - t0;
  phases[lastPhase] = (phases[lastPhase] ?? 0) + performance.now() - last;
  console.log(
    `compact ${ms.toFixed(0)} ms; moved ${stats.recordsMoved}; maxPauseMs ${stats.maxPauseMs.toFixed(1)}`,
  );
  console.log(
    'by phase (ms):',
    Object.fromEntries(Object.entries(phases).map(([k, v]) => [k, Math.round(v)])),
  );
  await store.close();
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}
