/**
 * Crash-test child for backups: writes COUNT records (`k<i>`, seed i+1), checkpoints, prints
 * `ready <count> <digest of the store directory>`, then starts a backup and, at its first
 * progress report, prints `mid-backup` and blocks until the parent kills it.
 *
 * Env: STORE_DIR, BACKUP_DIR, COUNT (400), DIM (16).
 * Run: node --import tsx test/crash/child-backup.ts
 */
import { WarmStore } from '../../src/index.js';
import { dirDigest } from '../helpers/dir-digest.js';
import { recordFor } from '../helpers/random.js';
import { die, envInt, envStr, out } from './child-io.js';

const dim = envInt('DIM', 16);
const count = envInt('COUNT', 400);
let store: WarmStore;
try {
  store = await WarmStore.open(envStr('STORE_DIR'), {
    dimension: dim,
    segmentBytes: 32 * 1024,
    maintenanceIntervalMs: false,
    maintenance: { startupCompaction: 'off' },
  });
  for (let i = 0; i < count; i++) await store.put(recordFor(`k${i}`, i + 1, dim));
  await store.checkpoint();
} catch (err) {
  die('setup', err);
}
out(`ready ${count} ${await dirDigest(envStr('STORE_DIR'), new Set(['LOCK']))}`);
const hold = new Int32Array(new SharedArrayBuffer(4));
try {
  await store.backup(envStr('BACKUP_DIR'), {
    onProgress: () => {
      out('mid-backup');
      // Hold the event loop mid-copy so the parent's SIGKILL lands inside the backup.
      Atomics.wait(hold, 0, 0, 60_000);
    },
  });
} catch (err) {
  die('backup', err);
}
out('error backup finished before the kill');
