/**
 * Crash-test child for a recall index build: fills a store of N clustered memories `a0, a1, ...`
 * with no index (the threshold above N), closes it, opens it again with the index on so that it
 * is built from the table, checkpoints once the build is part way (saving the index with the slot
 * it reached), prints `saved <built>`, and then keeps building and writing `b0, b1, ...` in
 * batches, printing `ack <count> <index state>` for each, until it is killed.
 *
 * Env: STORE_DIR, DIM (32), SEED (1), N (12000).
 * Run: node --import tsx test/crash/child-ann-build.ts
 */
import { WarmStore, type WarmStoreOptions } from '../../src/index.js';
import { Clustered } from '../unit/ann/data.js';
import { die, envInt, envStr, out } from './child-io.js';

const dir = envStr('STORE_DIR');
const dim = envInt('DIM', 32);
const n = envInt('N', 12_000);
const gen = new Clustered(dim, envInt('SEED', 1), 20);
const base: WarmStoreOptions = {
  dimension: dim,
  maintenanceIntervalMs: false,
  maintenance: { startupCompaction: 'off' },
};

try {
  const first = await WarmStore.open(dir, { ...base, annMinMemories: n + 1 });
  for (let i = 0; i < n; i += 1000) {
    await first.putMany(
      Array.from({ length: 1000 }, (_, j) => ({ id: `a${i + j}`, embedding: gen.next(), content: null })),
    );
  }
  await first.close();
  out('filled');
} catch (err) {
  die('fill', err);
}

let store: WarmStore;
try {
  store = await WarmStore.open(dir, { ...base, annMinMemories: 0 });
} catch (err) {
  die('open', err);
}
try {
  let saved = false;
  for (let b = 0; ; b += 50) {
    const s = store.indexStatus;
    if (!saved && s.state === 'building' && s.built > 0) {
      await store.checkpoint();
      saved = true;
      out(`saved ${store.indexStatus.built}`);
    }
    await store.putMany(
      Array.from({ length: 50 }, (_, j) => ({ id: `b${b + j}`, embedding: gen.next(), content: null })),
    );
    out(`ack ${b + 50} ${store.indexStatus.state}`);
    await new Promise((r) => setTimeout(r, 2));
  }
} catch (err) {
  die('workload', err);
}
