/**
 * Crash-test child for a full disk: opens the store in STORE_DIR (on a small tmpfs), puts records
 * 8 at a time until the disk is full, printing `ack N` once each put resolved and `full` at the
 * first DISK_FULL; then deletes acknowledged records one by one (`del N` once resolved) while
 * still trying puts, until killed. Any other error is printed as `error ...` and ends the child.
 * Run: STORE_DIR=... node --import tsx test/crash/child-full-disk.ts
 */
import { WarmStore, WarmStoreError } from '../../src/index.js';
import { FULL_DISK_OPTS, fullDiskRecord } from '../helpers/full-disk.js';
import { die, envStr, out } from './child-io.js';

const dir = envStr('STORE_DIR');
let store: WarmStore;
try {
  store = await WarmStore.open(dir, FULL_DISK_OPTS);
} catch (err) {
  die('open', err);
}
out(`ready ${store.size}`);

const acked: number[] = [];
let full = false;
let next = 0;

async function put(n: number): Promise<void> {
  try {
    await store.put(fullDiskRecord(n));
    acked.push(n);
    out(`ack ${n}`);
  } catch (err) {
    if (!WarmStoreError.is(err, 'DISK_FULL')) die('put', err);
    if (!full) out('full');
    full = true;
  }
}

while (!full) await Promise.all(Array.from({ length: 8 }, () => put(next++)));
for (;;) {
  const n = acked.shift();
  if (n === undefined) break;
  try {
    if (!(await store.delete(`k${n}`))) die('delete', new Error(`k${n} was not there`));
    out(`del ${n}`);
  } catch (err) {
    die('delete', err);
  }
  // Puts on the full disk meanwhile: refused (or, once deletes made room... still refused until
  // a compaction frees space; either answer is fine, nothing else is).
  await put(next++);
}
out('done');
await new Promise(() => undefined);
