/**
 * Crash-test child for slot moves under a ready recall index: puts N deterministic clustered
 * memories `a0, a1, ...`, waits for the index to hold them, deletes three in five (`i % 5 < 3`),
 * checkpoints (the index is saved without any moved key), then compacts, which relocates the
 * survivors from the top slots into the holes. The index keeps their vectors under their old keys
 * and re-points them.
 *
 * With KILL_AT_MOVES=n the child kills itself with SIGKILL after the nth committed move batch:
 * the reopen finds an index saved before any move and must catch up from the table. Without it,
 * the compaction finishes (its checkpoint saves the re-pointed keys), the child prints
 * `compacted <moved> <tail> <resident before> <resident after>`, then puts `b0, b1, ...` in batches
 * of BATCH, printing `ack <count>`, with a checkpoint every CHECKPOINT_EVERY, until killed.
 *
 * Env: STORE_DIR, DIM (32), N (6000), BATCH (100), CHECKPOINT_EVERY (1000), KILL_AT_MOVES (0).
 * Run: node --import tsx test/crash/child-ann-move.ts
 */
import { WarmStore } from '../../src/index.js';
import { withTestHooks } from '../../src/testing/index.js';
import { Clustered, indexSettled } from '../unit/ann/data.js';
import { die, envInt, envStr, out } from './child-io.js';

const dir = envStr('STORE_DIR');
const dim = envInt('DIM', 32);
const n = envInt('N', 6000);
const batch = envInt('BATCH', 100);
const every = envInt('CHECKPOINT_EVERY', 1000);
const killAt = envInt('KILL_AT_MOVES', 0);
const gen = new Clustered(dim, 1, 20);

let store: WarmStore;
let batches = 0;
try {
  store = await WarmStore.open(
    dir,
    withTestHooks(
      {
        dimension: dim,
        maintenanceIntervalMs: false,
        maintenance: { startupCompaction: 'off' },
        annMinMemories: 0,
      },
      {
        onKillPoint: (name) => {
          if (name === 'slots-moved' && ++batches === killAt) {
            out(`killed after ${batches} move batches`);
            process.kill(process.pid, 'SIGKILL');
          }
        },
      },
    ),
  );
} catch (err) {
  die('open', err);
}
try {
  for (let i = 0; i < n; i += batch) {
    await store.putMany(
      Array.from({ length: batch }, (_, j) => ({ id: `a${i + j}`, embedding: gen.next(), content: null })),
    );
  }
  const gone = Array.from({ length: n }, (_, i) => i).filter((i) => i % 5 < 3);
  await Promise.all(gone.map((i) => store.delete(`a${i}`)));
  await indexSettled(store);
  await store.checkpoint();
  out('deleted');
  const before = store.indexStatus.resident;
  const stats = await store.compact({ force: true });
  const s = store.indexStatus;
  out(`compacted ${stats.slotsMoved} ${s.tail} ${before} ${s.resident}`);
  for (let i = 0; ; i += batch) {
    await store.putMany(
      Array.from({ length: batch }, (_, j) => ({ id: `b${i + j}`, embedding: gen.next(), content: null })),
    );
    out(`ack ${i + batch}`);
    if ((i + batch) % every === 0) await store.checkpoint();
  }
} catch (err) {
  die('workload', err);
}
