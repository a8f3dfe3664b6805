/**
 * Open after a crash of a large store: copies DIR (a store built by open-profile.ts), opens the
 * copy, writes BURST new memories in durable batches of 1000, copies its files while it is still
 * open (what kill -9 leaves: a WAL tail not yet checkpointed) and times the open of that copy.
 *   node --import tsx tools/recover-large.ts DIR [BURST]
 * WS_DIST: another build's dist/.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Dataset } from '../lib/data.ts';
import { loadWarmstore } from '../engines/warmstore.ts';

const src = process.argv[2];
const burst = Number(process.argv[3] ?? 100_000);
if (!src) throw new Error('usage: recover-large.ts DIR [BURST]');
const { WarmStore } = await loadWarmstore(process.env.WS_DIST);
const opts = { dimension: 768, maintenanceIntervalMs: false as const };
const root = fs.mkdtempSync(path.join(path.dirname(path.resolve(src)), 'recover-large-'));
const copy = (from: string, to: string): void => {
  fs.mkdirSync(to);
  for (const f of fs.readdirSync(from))
    if (f !== 'LOCK') fs.copyFileSync(path.join(from, f), path.join(to, f));
};
try {
  const live = path.join(root, 'live');
  const crashed = path.join(root, 'crashed');
  copy(src, live);
  const store = await WarmStore.open(live, opts);
  const ds = new Dataset(Math.min(burst, 10_000), 768, 7);
  for (let i = 0; i < burst; i += 1000) {
    const batch = [];
    for (let j = i; j < Math.min(burst, i + 1000); j++)
      batch.push({ ...ds.records[j % ds.n]!, id: `burst-${j}` });
    await store.putMany(batch);
  }
  copy(live, crashed);
  const wal = fs.readdirSync(crashed).filter((f) => f.startsWith('wal-'));
  const walBytes = wal.reduce((n, f) => n + fs.statSync(path.join(crashed, f)).size, 0);
  await store.close();
  const t0 = performance.now();
  const again = await WarmStore.open(crashed, opts);
  const ms = performance.now() - t0;
  console.log(
    `open after a crash: ${again.size} memories in ${ms.toFixed(0)} ms (WAL left: ${wal.length} files, ${(walBytes / 2 ** 20).toFixed(1)} MiB)`,
  );
  await again.close();
} finally {
  fs.rmSync(root, { recursive: true, force: true });
}
