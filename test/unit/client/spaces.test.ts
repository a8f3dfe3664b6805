/**
 * The client's memory spaces and recall filters against a real server on 127.0.0.1: every method
 * that takes a space, the spaces list, deleting a space, and keys scoped to spaces.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, type ApiKey, type StartedServer } from '../../../src/server/index.js';
import { WarmStoreClient, WarmStoreClientError, WarmStoreError } from '../../../src/client/index.js';
import type { StoredMemory } from '../../../src/types.js';
import { DIM, embeddingOf, tempDir } from '../server/fixtures.js';

const ADMIN = 'admin-0123456789abcdef';
const ALICE = 'alice-0123456789abcdef';
const KEYS: ApiKey[] = [
  { key: ADMIN, spaces: ['*'], access: 'write' },
  { key: ALICE, spaces: ['alice'], access: 'write' },
];

const ids = (ms: ReadonlyArray<StoredMemory | undefined>): Array<string | undefined> =>
  ms.map((m) => (m === undefined ? undefined : `${m.space}/${m.id}`));

describe('WarmStoreClient with memory spaces', () => {
  let server: StartedServer;
  let cleanup: () => Promise<void>;
  let requests = 0;
  const counting: typeof fetch = (input, init) => {
    requests++;
    return fetch(input, init);
  };
  let admin: WarmStoreClient;
  let alice: WarmStoreClient;

  before(async () => {
    const t = await tempDir('warmstore-client-spaces-');
    cleanup = t.cleanup;
    server = await startServer({
      dataDir: t.dir,
      port: 0,
      logger: false,
      apiKeys: KEYS,
      storeOptions: { dimension: DIM, maintenanceIntervalMs: false },
    });
    admin = new WarmStoreClient({ url: server.url, apiKey: ADMIN, fetch: counting, retries: 0 });
    alice = new WarmStoreClient({ url: server.url, apiKey: ALICE, fetch: counting, retries: 0 });
  });
  after(async () => {
    await server.close();
    await cleanup();
  });

  it('round-trips the same ids in two spaces through every method', async () => {
    // '.' and '..' travel through the batch routes; they must keep their space there too.
    for (const id of ['k', '.', '..']) {
      await admin.put({ id, embedding: embeddingOf(1), content: `${id} in default` });
      await admin.put({ id, space: 'alice', embedding: embeddingOf(2), content: `${id} in alice` });
    }
    for (const id of ['k', '.', '..']) {
      const d = await admin.get(id);
      const a = await admin.get(id, { space: 'alice' });
      assert.deepEqual([d?.space, d?.content], ['default', `${id} in default`]);
      assert.deepEqual([a?.space, a?.content], ['alice', `${id} in alice`]);
      assert.equal(await admin.has(id, { space: 'alice' }), true);
      assert.equal(await admin.has(id, { space: 'nobody' }), false);
    }
    assert.deepEqual(ids(await admin.getMany(['k', 'missing', '.'], { space: 'alice' })), [
      'alice/k',
      undefined,
      'alice/.',
    ]);
    const touched = await admin.get('k', { space: 'alice', touch: true });
    assert.equal(touched?.accessCount, 1);
    assert.equal((await admin.get('k'))?.accessCount, 0, 'the touch counted in alice only');

    const hits = await admin.recall(embeddingOf(2), { space: 'alice', k: 10 });
    assert.deepEqual(hits.map((h) => `${h.memory.space}/${h.memory.id}`).sort(), [
      'alice/.',
      'alice/..',
      'alice/k',
    ]);

    const inAlice: string[] = [];
    for await (const m of admin.entries({ space: 'alice' })) inAlice.push(`${m.space}/${m.id}`);
    assert.deepEqual(inAlice.sort(), ['alice/.', 'alice/..', 'alice/k']);
    const everywhere: string[] = [];
    for await (const m of admin.entries()) everywhere.push(`${m.space}/${m.id}`);
    assert.equal(everywhere.length, 6);

    assert.equal(await admin.delete('k', { space: 'alice' }), true);
    assert.equal(await admin.delete('.', { space: 'alice' }), true);
    assert.deepEqual(await admin.deleteMany(['..', 'k'], { space: 'alice' }), [true, false]);
    assert.deepEqual(ids(await admin.getMany(['k', '.', '..'])), ['default/k', 'default/.', 'default/..']);
    assert.deepEqual(ids(await admin.getMany(['k', '.', '..'], { space: 'alice' })), [
      undefined,
      undefined,
      undefined,
    ]);
  });

  it('recall carries filter and exact; a refused filter names its field', async () => {
    const memories = Array.from({ length: 20 }, (_, i) => ({
      id: `c${i}`,
      space: 'scored',
      embedding: embeddingOf(i),
      confidence: i / 20,
    }));
    await admin.putMany(memories);
    for (const exact of [false, true]) {
      const hits = await admin.recall(embeddingOf(3), {
        space: 'scored',
        k: 100,
        filter: { confidence: { gte: 0.5, lt: 0.8 } },
        exact,
      });
      assert.deepEqual(hits.map((h) => h.memory.id).sort(), ['c10', 'c11', 'c12', 'c13', 'c14', 'c15']);
    }
    await assert.rejects(
      admin.recall(embeddingOf(3), { filter: { confidence: { gte: 'x' as unknown as number } } }),
      (err: unknown) => {
        assert.ok(WarmStoreError.is(err, 'INVALID_INPUT'), String(err));
        assert.equal(err.details.field, 'filter.confidence.gte');
        return true;
      },
    );
  });

  it('lists spaces, deletes one, and reports them in the storage stats', async () => {
    await admin.putMany([
      { id: 'a', space: 'doomed', embedding: embeddingOf(1) },
      { id: 'b', space: 'doomed', embedding: embeddingOf(2) },
    ]);
    const before = await admin.spaces();
    assert.deepEqual(
      before.find((s) => s.name === 'doomed'),
      { name: 'doomed', size: 2 },
    );
    assert.deepEqual((await admin.contentStorageStats()).spaces, before);
    assert.equal(await admin.deleteSpace('doomed'), 2);
    assert.equal(await admin.get('a', { space: 'doomed' }), undefined);
    assert.ok(!(await admin.spaces()).some((s) => s.name === 'doomed'));
    assert.equal(await admin.deleteSpace('doomed'), 0, 'deleting again is harmless');
    assert.equal((await admin.get('k'))?.space, 'default', 'other spaces intact');
  });

  it('refuses a bad space before sending anything', async () => {
    const sent = requests;
    const field = async (call: () => Promise<unknown>): Promise<string | undefined> => {
      try {
        await call();
      } catch (err) {
        assert.ok(WarmStoreError.is(err, 'INVALID_INPUT'), String(err));
        return err.details.field;
      }
      return 'no error';
    };
    assert.equal(await field(() => admin.get('k', { space: '' })), 'options.space');
    assert.equal(await field(() => admin.has('k', { space: 'x'.repeat(65) })), 'options.space');
    assert.equal(
      await field(() => admin.recall(embeddingOf(1), { space: 5 as unknown as string })),
      'options.space',
    );
    assert.equal(await field(() => admin.put({ id: 'k', space: '', embedding: embeddingOf(1) })), 'space');
    assert.equal(await field(() => admin.deleteSpace('..')), 'space');
    assert.equal(requests, sent, 'no request left');
  });

  it('a key scoped to one space sees only its spaces and gets FORBIDDEN elsewhere', async () => {
    await alice.put({ id: 'mine', space: 'alice', embedding: embeddingOf(5) });
    assert.deepEqual(
      (await alice.spaces()).map((s) => s.name),
      ['alice'],
    );
    const seen: string[] = [];
    for await (const m of alice.entries()) seen.push(m.space);
    assert.ok(seen.length > 0 && seen.every((s) => s === 'alice'), seen.join(', '));
    for (const call of [
      () => alice.get('k'),
      () => alice.recall(embeddingOf(1), { space: 'scored' }),
      () => alice.deleteSpace('scored'),
      () => alice.deleteMany(['c1'], { space: 'scored' }),
    ]) {
      await assert.rejects(call(), (err: unknown) => WarmStoreClientError.is(err, 'FORBIDDEN'));
    }
    assert.equal(await admin.has('c1', { space: 'scored' }), true);
    assert.equal(await alice.deleteSpace('alice'), 1);
  });
});
