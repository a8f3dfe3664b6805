import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { BACKUP_INCOMPLETE_FILE, WarmStore, WarmStoreError, type WarmStoreOptions } from '../../src/index.js';
import { expectSameRecord } from '../helpers/assert.js';
import { dirDigest } from '../helpers/dir-digest.js';
import { recordFor } from '../helpers/random.js';
import { spawnWriter } from '../helpers/spawn.js';
import { tempDir } from '../helpers/tmp.js';

const DIM = 16;
const OPTS: WarmStoreOptions = {
  dimension: DIM,
  maintenanceIntervalMs: false,
  maintenance: { startupCompaction: 'off' },
};

test('kill -9 during a backup leaves the store untouched and the partial copy refused by open', async (t) => {
  const root = await tempDir(t);
  const src = join(root, 'store');
  const dst = join(root, 'backup');
  const child = spawnWriter('test/crash/child-backup.ts', { env: { STORE_DIR: src, BACKUP_DIR: dst } });
  t.after(() => child.kill().then(() => undefined));
  const ready = await child.waitForLine((l) => l.startsWith('ready ') || l.startsWith('error'), 60_000);
  assert.match(ready, /^ready /, child.stderr());
  const [, count, digest] = ready.split(' ');
  await child.waitForLine((l) => l === 'mid-backup' || l.startsWith('error'), 60_000);
  const exit = await child.kill('SIGKILL');
  assert.equal(exit.signal, 'SIGKILL');

  assert.equal(
    await dirDigest(src, new Set(['LOCK'])),
    digest,
    'the source store is byte for byte unchanged',
  );
  assert.ok((await readdir(dst)).includes(BACKUP_INCOMPLETE_FILE));
  await assert.rejects(WarmStore.open(dst, OPTS), (e: unknown) => {
    assert.ok(WarmStoreError.is(e, 'CORRUPTION_DETECTED'), String(e));
    assert.match(e.message, /incomplete backup/);
    return true;
  });
  assert.equal((await readdir(dst)).includes('LOCK'), false, 'the refused open wrote nothing there');

  const store = await WarmStore.open(src, OPTS);
  try {
    assert.equal(store.size, Number(count));
    const report = await store.verify();
    assert.equal(report.ok, true, JSON.stringify(report.problems));
    for (let i = 0; i < Number(count); i++)
      expectSameRecord((await store.get(`k${i}`))!, recordFor(`k${i}`, i + 1, DIM));
  } finally {
    await store.close();
  }
});
