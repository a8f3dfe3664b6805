// Runs VACUUM on its own connection in a worker thread, then checkpoints the WAL (TRUNCATE).
import { createRequire } from 'node:module';
import { parentPort, workerData } from 'node:worker_threads';

const require = createRequire(import.meta.url);
const Database = require(workerData.module);
const db = new Database(workerData.file);
db.pragma('busy_timeout = 60000');
db.pragma('synchronous = FULL');
const t0 = performance.now();
db.exec('VACUUM');
const vacuumMs = performance.now() - t0;
const ckpt = db.pragma('wal_checkpoint(TRUNCATE)');
const checkpointMs = performance.now() - t0 - vacuumMs;
db.close();
parentPort.postMessage({ vacuumMs, checkpointMs, checkpoint: ckpt });
