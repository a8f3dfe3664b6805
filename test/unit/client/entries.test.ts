/**
 * `client.entries()` over `GET /api/v1/export`: complete streams from a real store, and streams
 * cut short by a store error, which must never read as a complete export.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, createServer, type StartedServer } from '../../../src/server/index.js';
import { WarmStoreClient, WarmStoreClientError, WarmStoreError } from '../../../src/client/index.js';
import type { MemoryRecord, StoredMemory } from '../../../src/types.js';
import { DIM, contentOf, embeddingOf, tempDir } from '../server/fixtures.js';
import { FakeStore } from '../server/fake-store.js';

describe('client.entries() and GET /api/v1/export', () => {
  let server: StartedServer;
  let client: WarmStoreClient;
  let cleanup: () => Promise<void>;
  const records: MemoryRecord[] = [];

  before(async () => {
    const t = await tempDir('warmstore-client-entries-');
    cleanup = t.cleanup;
    server = await startServer({
      dataDir: t.dir,
      port: 0,
      logger: false,
      storeOptions: { dimension: DIM, maintenanceIntervalMs: false },
    });
    client = new WarmStoreClient({ url: server.url, retries: 0 });
    // Enough to span several 64 KB chunks of the response.
    for (let i = 0; i < 300; i++) {
      records.push({
        id: `e-${i}-ü`,
        embedding: embeddingOf(i),
        ...(i % 5 === 0 ? {} : { content: i % 5 === 1 ? '' : contentOf(i, 700) }),
        accessCount: i,
      });
    }
    await Promise.all(records.map((r) => server.store.put(r)));
  });
  after(async () => {
    await server.close();
    await cleanup();
  });

  it('streams every memory, bit for bit, the same as the store iterates them', async () => {
    const remote: StoredMemory[] = [];
    for await (const m of client.entries()) remote.push(m);
    const local: StoredMemory[] = [];
    for await (const m of server.store.entries()) local.push(m);
    assert.equal(remote.length, records.length);
    assert.deepEqual(remote, local);
  });

  it('stops early on break and the server keeps serving', async () => {
    let n = 0;
    for await (const _m of client.entries()) {
      if (++n === 3) break;
    }
    assert.equal(n, 3);
    assert.equal((await client.contentStorageStats()).size, records.length);
  });

  it('serves lines in the format of `warmstore export` (number arrays by default)', async () => {
    const res = await fetch(`${server.url}/api/v1/export`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^application\/x-ndjson/);
    const lines = (await res.text()).split('\n');
    assert.equal(lines.pop(), '', 'the last line ends with a newline');
    assert.equal(lines.length, records.length);
    const first = JSON.parse(lines[0]!) as Record<string, unknown>;
    assert.deepEqual(Object.keys(first).sort(), [
      'accessCount',
      'activation',
      'confidence',
      'content',
      'createdAt',
      'decayRate',
      'embedding',
      'id',
      'lastAccess',
      'space',
    ]);
    assert.equal(first['space'], 'default');
    assert.ok(Array.isArray(first['embedding']));
    const refused = await fetch(`${server.url}/api/v1/export?encoding=hex`);
    assert.equal(refused.status, 400);
  });
});

describe('an export cut short by the store', () => {
  // 1000-byte contents make ~65 lines per 64 KB chunk: 350 of 400 fails after five chunks went out.
  for (const [name, count, failAfter, someArrive] of [
    ['before the first chunk', 10, 2, false],
    ['after several chunks', 400, 350, true],
  ] as const) {
    it(`rejects ${name}, never ends as if complete`, async () => {
      const store = new FakeStore(DIM);
      for (let i = 0; i < count; i++)
        await store.put({ id: `f${i}`, embedding: embeddingOf(i), content: contentOf(i) });
      store.entriesErrorAfter = failAfter;
      const server = await createServer({
        store,
        logger: false,
        port: 0,
        metrics: { defaultMetrics: false },
      });
      const url = await server.listen();
      try {
        const client = new WarmStoreClient({ url, retries: 0 });
        let received = 0;
        await assert.rejects(
          (async () => {
            for await (const _m of client.entries()) received++;
          })(),
          (err: unknown) => {
            assert.ok(err instanceof WarmStoreClientError || err instanceof WarmStoreError, String(err));
            return true;
          },
        );
        assert.ok(received < failAfter, `received ${received} of ${count}`);
        if (someArrive) assert.ok(received > 0, 'the failure came mid-stream');
      } finally {
        await server.close();
      }
    });
  }
});
