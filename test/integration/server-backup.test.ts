/**
 * `POST /api/v1/maintenance/backup` over real HTTP on 127.0.0.1 against a real store: keys, names,
 * and a backup that opens and verifies clean.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { WarmStore } from '../../src/index.js';
import {
  encodeEmbeddingBase64,
  startServer,
  type ApiKey,
  type StartedServer,
} from '../../src/server/index.js';
import { DIM, embeddingOf, tempDir } from '../unit/server/fixtures.js';
import { call, errorOf } from './http-call.js';

const ADMIN = 'admin-0123456789abcdef';
const READER = 'reader-0123456789abcdef';
const DEFAULT_WRITER = 'default-writer-0123456789';
const KEYS: ApiKey[] = [
  { key: ADMIN, spaces: ['*'], access: 'write' },
  { key: READER, spaces: ['*'], access: 'read' },
  { key: DEFAULT_WRITER, spaces: ['default'], access: 'write' },
];
const bearer = (key: string): { headers: Record<string, string> } => ({
  headers: { authorization: `Bearer ${key}` },
});
const PATH = '/api/v1/maintenance/backup';

describe('POST /api/v1/maintenance/backup', () => {
  let server: StartedServer;
  let root: string;
  let cleanup: () => Promise<void>;

  before(async () => {
    const t = await tempDir();
    root = t.dir;
    cleanup = t.cleanup;
    server = await startServer({
      dataDir: join(root, 'store'),
      backupDir: join(root, 'backups'),
      port: 0,
      logger: false,
      metrics: { defaultMetrics: false },
      apiKeys: KEYS,
      storeOptions: { dimension: DIM, maintenanceIntervalMs: false },
    });
    for (let i = 0; i < 50; i++) {
      const r = await call(
        server.url,
        'POST',
        '/api/v1/memories',
        { id: `m${i}`, embedding: encodeEmbeddingBase64(embeddingOf(i)), content: `memory ${i}` },
        bearer(ADMIN),
      );
      assert.equal(r.status, 201, r.text);
    }
  });
  after(async () => {
    await server.close();
    await cleanup();
  });

  it('needs a write key covering every space', async () => {
    assert.equal((await call(server.url, 'POST', PATH, { name: 'x' })).status, 401);
    assert.equal((await call(server.url, 'POST', PATH, { name: 'x' }, bearer(READER))).status, 403);
    assert.equal((await call(server.url, 'POST', PATH, { name: 'x' }, bearer(DEFAULT_WRITER))).status, 403);
    assert.equal(
      (await readdir(join(root, 'backups')).catch(() => [])).length,
      0,
      'no refused request wrote anything',
    );
  });

  it('writes a backup that opens, verifies clean and holds every acknowledged write', async () => {
    const r = await call(server.url, 'POST', PATH, { name: 'nightly' }, bearer(ADMIN));
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json['dir'], join(root, 'backups', 'nightly'));
    assert.ok((r.json['lsn'] as number) >= 50);
    const copy = await WarmStore.open(join(root, 'backups', 'nightly'), { maintenanceIntervalMs: false });
    try {
      assert.equal(copy.size, 50);
      assert.equal((await copy.verify()).ok, true);
      assert.equal((await copy.get('m7'))?.content, 'memory 7');
    } finally {
      await copy.close();
    }
    // Without a name the backup gets a timestamped one.
    const unnamed = await call(server.url, 'POST', PATH, undefined, bearer(ADMIN));
    assert.equal(unnamed.status, 200, unnamed.text);
    assert.match(String(unnamed.json['dir']), /backups\/backup-\d{4}-\d\d-\d\dT/);
  });

  it('400 naming `name` for a path instead of a name, or a name already used', async () => {
    for (const name of ['../escape', '..', 'a/b', '', 'x'.repeat(129)]) {
      const r = await call(server.url, 'POST', PATH, { name }, bearer(ADMIN));
      assert.equal(r.status, 400, `${name}: ${r.text}`);
      assert.equal(errorOf(r.json).field, 'name', name);
    }
    assert.equal((await readdir(root)).includes('escape'), false);
    await call(server.url, 'POST', PATH, { name: 'twice' }, bearer(ADMIN));
    const again = await call(server.url, 'POST', PATH, { name: 'twice' }, bearer(ADMIN));
    assert.equal(again.status, 400, again.text);
    assert.equal(errorOf(again.json).field, 'name');
    assert.match(errorOf(again.json).message, /not empty/);
  });

  it('400 when the server has no backup directory', async () => {
    const t = await tempDir();
    const plain = await startServer({
      dataDir: t.dir,
      port: 0,
      logger: false,
      metrics: { defaultMetrics: false },
      storeOptions: { dimension: DIM, maintenanceIntervalMs: false },
    });
    try {
      const r = await call(plain.url, 'POST', PATH, { name: 'x' });
      assert.equal(r.status, 400, r.text);
      assert.match(errorOf(r.json).message, /--backup-dir/);
    } finally {
      await plain.close();
      await t.cleanup();
    }
  });
});
