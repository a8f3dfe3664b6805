/**
 * Crash-test child for the recall index: puts deterministic clustered memories `a0, a1, ...` in
 * batches of BATCH, printing `ack <count>` once a batch resolved, and checkpoints (which saves the
 * index) every CHECKPOINT_EVERY memories, printing `checkpointed <count>`. The index worker is
 * inserting all the while, so a SIGKILL lands in the middle of index insertion.
 *
 * With MERGE_MIN set, the index merges its delta into a new base file whenever that many vectors
 * changed, so a SIGKILL also lands in the middle of merges.
 *
 * Env: STORE_DIR, DIM (32), SEED (1), BATCH (100), CHECKPOINT_EVERY (1000), MAX (20000), MERGE_MIN.
 * Run: node --import tsx test/crash/child-ann.ts
 */
import { WarmStore, type WarmStoreOptions } from '../../src/index.js';
import { withTestHooks } from '../../src/testing/index.js';
import { Clustered } from '../unit/ann/data.js';
import { die, envInt, envStr, out } from './child-io.js';

const dir = envStr('STORE_DIR');
const dim = envInt('DIM', 32);
const batch = envInt('BATCH', 100);
const every = envInt('CHECKPOINT_EVERY', 1000);
const max = envInt('MAX', 20_000);
const gen = new Clustered(dim, envInt('SEED', 1), 20);
const mergeMin = envInt('MERGE_MIN', 0);

let store: WarmStore;
try {
  const options: WarmStoreOptions = {
    dimension: dim,
    maintenanceIntervalMs: false,
    maintenance: { startupCompaction: 'off' },
    annMinMemories: 0,
  };
  store = await WarmStore.open(
    dir,
    mergeMin > 0 ? withTestHooks(options, { annMergeMin: mergeMin }) : options,
  );
} catch (err) {
  die('open', err);
}
// The first checkpoint must find the index ready, or it records none and the reopen rebuilds.
while (store.indexStatus.state !== 'ready') await new Promise((r) => setTimeout(r, 5));
out('ready');
try {
  for (let n = 0; n < max; n += batch) {
    await store.putMany(
      Array.from({ length: batch }, (_, j) => ({ id: `a${n + j}`, embedding: gen.next(), content: null })),
    );
    out(`ack ${n + batch}`);
    if ((n + batch) % every === 0) {
      await store.checkpoint();
      out(`checkpointed ${n + batch}`);
    }
  }
  await store.close();
} catch (err) {
  die('workload', err);
}
out('done');
