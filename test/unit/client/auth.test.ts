/**
 * The client against a server with API keys: 401 and 403 arrive as typed errors and are never
 * retried; the key's access and spaces decide, as for any HTTP caller.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, type ApiKey, type StartedServer } from '../../../src/server/index.js';
import { WarmStoreClient, WarmStoreClientError } from '../../../src/client/index.js';
import { DIM, embeddingOf, tempDir } from '../server/fixtures.js';

const ADMIN = 'admin-0123456789abcdef';
const READER = 'reader-0123456789abcdef';
const DEFAULT_WRITER = 'default-writer-0123456789';
const KEYS: ApiKey[] = [
  { key: ADMIN, spaces: ['*'], access: 'write' },
  { key: READER, spaces: ['*'], access: 'read' },
  { key: DEFAULT_WRITER, spaces: ['default'], access: 'write' },
];

describe('WarmStoreClient with API keys', () => {
  let server: StartedServer;
  let cleanup: () => Promise<void>;
  let requests = 0;
  const counting: typeof fetch = (input, init) => {
    requests++;
    return fetch(input, init);
  };
  const clientWith = (apiKey?: string): WarmStoreClient =>
    new WarmStoreClient({ url: server.url, fetch: counting, ...(apiKey === undefined ? {} : { apiKey }) });

  before(async () => {
    const t = await tempDir('warmstore-client-auth-');
    cleanup = t.cleanup;
    server = await startServer({
      dataDir: t.dir,
      port: 0,
      logger: false,
      apiKeys: KEYS,
      storeOptions: { dimension: DIM, maintenanceIntervalMs: false },
    });
  });
  after(async () => {
    await server.close();
    await cleanup();
  });

  const rejectsWith = async (call: () => Promise<unknown>, code: string, status: number): Promise<void> => {
    const before = requests;
    await assert.rejects(call(), (err: unknown) => {
      assert.ok(err instanceof WarmStoreClientError, String(err));
      assert.equal(err.code, code);
      assert.equal(err.status, status);
      return true;
    });
    assert.equal(requests - before, 1, `${code} is not retried`);
  };

  it('401 UNAUTHORIZED without a key or with a wrong one; health stays open', async () => {
    await rejectsWith(() => clientWith().get('x'), 'UNAUTHORIZED', 401);
    await rejectsWith(() => clientWith('not-a-valid-key-at-all').contentStorageStats(), 'UNAUTHORIZED', 401);
    await clientWith().health();
  });

  it('a read key reads and gets 403 FORBIDDEN on writes', async () => {
    await clientWith(ADMIN).put({ id: 'a', embedding: embeddingOf(1), content: 'by admin' });
    const reader = clientWith(READER);
    assert.equal((await reader.get('a'))?.content, 'by admin');
    assert.equal((await reader.recall(embeddingOf(1), { k: 1 }))[0]?.memory.id, 'a');
    await rejectsWith(() => reader.put({ id: 'b', embedding: embeddingOf(2) }), 'FORBIDDEN', 403);
    await rejectsWith(() => reader.delete('a'), 'FORBIDDEN', 403);
    await rejectsWith(() => reader.compact(), 'FORBIDDEN', 403);
  });

  it("a key limited to 'default' writes there but may not act on the whole store", async () => {
    const writer = clientWith(DEFAULT_WRITER);
    await writer.putMany([{ id: 'w1', embedding: embeddingOf(3) }]);
    assert.deepEqual(await writer.deleteMany(['w1']), [true]);
    const ids: string[] = [];
    for await (const m of writer.entries()) ids.push(m.id);
    assert.deepEqual(ids, ['a']);
    await rejectsWith(() => writer.contentStorageStats(), 'FORBIDDEN', 403);
    await rejectsWith(() => writer.runMaintenance(), 'FORBIDDEN', 403);
    const admin = clientWith(ADMIN);
    assert.equal((await admin.contentStorageStats()).size, 1);
    assert.equal(typeof (await admin.compact({ force: true })).durationMs, 'number');
  });
});
