/**
 * A full disk seen over HTTP (real server on 127.0.0.1, real store on the fault file layer): new
 * content answers 507 DISK_FULL, deletes and reads still work, /healthz stays 200 but says
 * degraded and why, the storage route and the `warmstore_disk_full` gauge show the state; all of
 * it clears once space returns. A read-only store answers 405 READ_ONLY to writes.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { WarmStore, type WarmStoreOptions } from '../../src/index.js';
import { startServer } from '../../src/server/index.js';
import { FaultyFileSystem } from '../../src/testing/index.js';
import { tempDir } from '../helpers/tmp.js';
import { call } from './http-call.js';

const DIM = 4;
const OPTS: WarmStoreOptions = {
  dimension: DIM,
  diskReserveBytes: 256 * 1024,
  maintenanceIntervalMs: false,
  maintenance: { startupCompaction: 'off' },
};

function memory(id: string) {
  return { id, embedding: [1, 2, 3, 4], content: `content of ${id}` };
}

function gauge(text: string, name: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line === undefined ? undefined : Number(line.slice(name.length + 1));
}

describe('a full disk over HTTP', () => {
  it('507 for new content, deletes and reads work, healthz degraded, diskFull shown; all clears', async (t) => {
    const dir = await tempDir(t);
    const fs = new FaultyFileSystem();
    const store = await WarmStore.open(dir, { ...OPTS, fileSystem: fs });
    const server = await startServer({ store, port: 0, logger: false, metrics: { defaultMetrics: false } });
    t.after(async () => {
      await server.close();
      await store.close();
    });
    const base = server.url;
    for (const id of ['a', 'b'])
      assert.equal((await call(base, 'POST', '/api/v1/memories', memory(id))).status, 201);
    assert.deepEqual((await call(base, 'GET', '/healthz')).json, { status: 'ok' });

    fs.failAt({ op: 'write', nth: 1, error: 'ENOSPC', pathIncludes: 'seg-', persistent: true });
    fs.freeBytesOverride = 0;
    const refused = await call(base, 'POST', '/api/v1/memories', memory('c'));
    assert.equal(refused.status, 507, refused.text);
    assert.equal((refused.json['error'] as { code: string }).code, 'DISK_FULL');
    const again = await call(base, 'POST', '/api/v1/memories', memory('d'));
    assert.equal(again.status, 507, 'refused while full, before anything is written');

    const health = await call(base, 'GET', '/healthz');
    assert.equal(health.status, 200);
    assert.equal(health.json['status'], 'degraded');
    assert.match(String((health.json['reasons'] as string[])[0]), /disk full/);
    const storage = await call(base, 'GET', '/api/v1/metrics/storage');
    assert.equal(storage.json['diskFull'], true);
    assert.equal(storage.json['readOnly'], false);
    assert.equal(gauge((await call(base, 'GET', '/metrics')).text, 'warmstore_disk_full'), 1);

    assert.equal((await call(base, 'GET', '/api/v1/memories/a')).json['content'], 'content of a');
    assert.equal((await call(base, 'DELETE', '/api/v1/memories/b')).status, 200);
    assert.equal((await call(base, 'GET', '/api/v1/memories/b')).status, 404);

    fs.reset();
    assert.equal((await call(base, 'POST', '/api/v1/memories', memory('c'))).status, 201);
    assert.deepEqual((await call(base, 'GET', '/healthz')).json, { status: 'ok' });
    assert.equal((await call(base, 'GET', '/api/v1/metrics/storage')).json['diskFull'], false);
    assert.equal(gauge((await call(base, 'GET', '/metrics')).text, 'warmstore_disk_full'), 0);
  });

  it('a read-only store: writes answer 405 READ_ONLY, reads work, healthz says why', async (t) => {
    const dir = await tempDir(t);
    const w = await WarmStore.open(dir, OPTS);
    await w.put({ ...memory('a'), embedding: Float32Array.from([1, 2, 3, 4]) });
    await w.close();
    const store = await WarmStore.open(dir, { ...OPTS, readOnly: true });
    const server = await startServer({ store, port: 0, logger: false, metrics: { defaultMetrics: false } });
    t.after(async () => {
      await server.close();
      await store.close();
    });
    const base = server.url;
    const r = await call(base, 'POST', '/api/v1/memories', memory('b'));
    assert.equal(r.status, 405, r.text);
    assert.equal((r.json['error'] as { code: string }).code, 'READ_ONLY');
    assert.equal((await call(base, 'DELETE', '/api/v1/memories/a')).status, 405);
    assert.equal((await call(base, 'GET', '/api/v1/memories/a')).json['content'], 'content of a');
    const health = await call(base, 'GET', '/healthz');
    assert.equal(health.status, 200);
    assert.equal(health.json['status'], 'degraded');
    assert.match(String((health.json['reasons'] as string[])[0]), /read-only/);
    assert.equal((await call(base, 'GET', '/api/v1/metrics/storage')).json['readOnly'], true);
  });
});
