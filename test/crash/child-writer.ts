/**
 * Crash-test child: opens a store and runs random concurrent puts, batch puts, updates and
 * deletes until killed (or MAX_OPS), printing `begin ...` before each op and `ack ...` once its
 * promise resolved (protocol in test/helpers/ack-model.ts).
 *
 * Env: STORE_DIR, SEED, ROUND (makes put seeds unique per round), DIM (16), SEGMENT_BYTES (64 KiB),
 * CONCURRENCY (6), ID_SPACE (60), MAX_OPS (unbounded).
 * Run: node --import tsx test/crash/child-writer.ts
 */
import { WarmStore } from '../../src/index.js';
import { runWorkload } from '../helpers/workload.js';
import { awaitGo, die, envInt, envStr, out } from './child-io.js';

await awaitGo();

const dir = envStr('STORE_DIR');
const seed = envInt('SEED', 1);
const round = envInt('ROUND', 0);
const dimension = envInt('DIM', 16);
const maxOps = envInt('MAX_OPS', Infinity);

out('opening');
let store: WarmStore;
try {
  store = await WarmStore.open(dir, {
    dimension,
    segmentBytes: envInt('SEGMENT_BYTES', 64 * 1024),
    maintenanceIntervalMs: false,
    maintenance: { startupCompaction: 'off' },
  });
} catch (err) {
  die('open', err);
}
out(`ready ${store.size}`);

const result = await runWorkload(store, {
  seed,
  seedBase: (round + 1) * 1_000_000,
  dimension,
  idSpace: envInt('ID_SPACE', 60),
  concurrency: envInt('CONCURRENCY', 6),
  maxOps,
  emit: out,
});
if (result.error !== undefined) die('workload', result.error);
try {
  await store.close();
} catch (err) {
  die('close', err);
}
out(`done ${result.acked}`);
