/**
 * Profiles the open of a store left by a crash: N records x 768 are written (batches of 1000),
 * the files are copied while the store is still open (what kill -9 leaves: a WAL tail not yet
 * checkpointed), and the copy is opened under a V8 CPU profile.
 *   node --import tsx tools/recover-profile.ts [N] [out.cpuprofile]
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
const opts = { dimension: 768, maintenanceIntervalMs: false as const };
const root = fs.mkdtempSync(path.join(process.env.BENCH_DIR ?? os.tmpdir(), 'ws-recover-prof-'));
try {
  const dir = path.join(root, 'live');
  const crashed = path.join(root, 'crashed');
  const ds = new Dataset(n, 768, 42);
  const store = await WarmStore.open(dir, opts);
  for (let i = 0; i < n; i += 1000) await store.putMany(ds.records.slice(i, i + 1000));
  fs.mkdirSync(crashed);
  for (const f of fs.readdirSync(dir))
    if (f !== 'LOCK') fs.copyFileSync(path.join(dir, f), path.join(crashed, f));
  const wal = fs.readdirSync(crashed).filter((f) => f.startsWith('wal-'));
  console.log(
    `WAL files left: ${wal.map((f) => `${f} ${fs.statSync(path.join(crashed, f)).size} B`).join(', ')}`,
  );
  await store.close();
  const t0 = performance.now();
  const again = await withCpuProfile(out, () => WarmStore.open(crashed, opts));
  const ms = performance.now() - t0;
  console.log(`recovered ${again.size} records in ${ms.toFixed(0)} ms`);
  await again.close();
} finally {
  fs.rmSync(root, { recursive: true, force: true });
}
