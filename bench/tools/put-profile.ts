/**
 * Profiles the put path: N records x 768 (content 50..2000 B) stored the way `run.ts`'s put phase
 * stores them (batches of 1000 concurrent `put` calls under `durability: 'sync'`, each batch
 * awaited), into a fresh store, under a V8 CPU profile. A warm-up store of 5000 puts runs first
 * so that the profile shows optimized code. The same fill runs twice, each into a fresh store:
 * first unprofiled, for wall time, the main thread's CPU time per put (from
 * /proc/self/task/PID/stat: the thread pool's writes and syncs not counted) and the process's
 * minor page faults per put (fresh buffers faulted in), then under the
 * profiler. The profile's samples are wall-clock: on a loaded machine a sample taken while the
 * main thread waits for a core is charged to whatever it was running (a large `writeBuffer` is
 * often that), so the CPU figure is the one to compare.
 *   node --import tsx tools/put-profile.ts [N] [out.cpuprofile] [dist]
 * `dist` is a build directory (default: the root's `dist`), to profile two builds alike.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Dataset } from '../lib/data.ts';
import { loadWarmstore } from '../engines/warmstore.ts';
import { gc, withCpuProfile } from '../lib/measure.ts';

const n = Number(process.argv[2] ?? 20_000);
const out = process.argv[3] || path.join(os.tmpdir(), `put-profile-${process.pid}.cpuprofile`);
const dist = process.argv[4];
const BATCH = 1000;
const { WarmStore } = await loadWarmstore(dist);
const opts = {
  dimension: 768,
  durability: 'sync' as const,
  maintenanceIntervalMs: false as const,
  maintenance: { startupCompaction: 'off' as const },
};
const root = fs.mkdtempSync(path.join(process.env.BENCH_DIR ?? os.tmpdir(), 'ws-put-prof-'));
type Store = Awaited<ReturnType<typeof WarmStore.open>>;

async function fill(store: Store, ds: Dataset): Promise<void> {
  for (let i = 0; i < ds.n; i += BATCH) {
    const recs = ds.records.slice(i, i + BATCH);
    await Promise.all(recs.map((r) => store.put(r)));
  }
}

/** User + system CPU of the main thread, in ms (clock ticks of 10 ms). */
function mainThreadCpuMs(): number {
  const stat = fs.readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) * 10;
}

try {
  const warm = await WarmStore.open(path.join(root, 'warm'), opts);
  await fill(warm, new Dataset(5000, 768, 7));
  await warm.close();
  const ds = new Dataset(n, 768, 42);
  const plain = await WarmStore.open(path.join(root, 'plain'), opts);
  gc();
  const c0 = mainThreadCpuMs();
  const f0 = process.resourceUsage().minorPageFault;
  const t0 = performance.now();
  await fill(plain, ds);
  const ms = performance.now() - t0;
  const cpu = mainThreadCpuMs() - c0;
  const faults = process.resourceUsage().minorPageFault - f0;
  await plain.close();
  console.log(
    `${n} puts in ${ms.toFixed(0)} ms: ${fmt((n * 1000) / ms)} puts/s, ${((ms * 1000) / n).toFixed(1)} us/put wall, ` +
      `main thread CPU ${((cpu * 1000) / n).toFixed(1)} us/put, ${(faults / n).toFixed(2)} minor page faults/put (process)`,
  );
  const store = await WarmStore.open(path.join(root, 'store'), opts);
  gc();
  const t1 = performance.now();
  await withCpuProfile(out, () => fill(store, ds), 100);
  const pms = performance.now() - t1;
  await store.close();
  const prof = JSON.parse(fs.readFileSync(out, 'utf8')) as {
    nodes: { id: number; callFrame: { functionName: string } }[];
    samples: number[];
    timeDeltas: number[];
  };
  const idle = new Set(prof.nodes.filter((x) => x.callFrame.functionName === '(idle)').map((x) => x.id));
  let busy = 0;
  let total = 0;
  for (let i = 0; i < prof.samples.length; i++) {
    const dt = prof.timeDeltas[i] ?? 0;
    total += dt;
    if (!idle.has(prof.samples[i]!)) busy += dt;
  }
  console.log(
    `profiled: ${((pms * 1000) / n).toFixed(1)} us/put wall, samples outside (idle) ${(busy / n).toFixed(1)} us/put ` +
      `(${((100 * busy) / total).toFixed(0)}% of the profile)`,
  );
  console.log(`profile: ${out} (node tools/cpuprofile-top.mjs ${out} --total)`);
} finally {
  fs.rmSync(root, { recursive: true, force: true });
}

function fmt(x: number): string {
  return Math.round(x).toLocaleString('en-US');
}
