/**
 * The typed client against a real server on 127.0.0.1 with a real store in a temporary directory.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { WarmStore } from '../../../src/index.js';
import { startServer, type StartedServer } from '../../../src/server/index.js';
import { WarmStoreClient, WarmStoreClientError, WarmStoreError } from '../../../src/client/index.js';
import type { MemoryRecord, StoredMemory } from '../../../src/types.js';
import {
  DIM,
  SLOW_COMPACTION_OPTIONS,
  assertRecordsIntact,
  embeddingOf,
  fillForCompaction,
  tempDir,
  waitFor,
} from '../server/fixtures.js';

/** Bit-for-bit equality of two float32 arrays (NaN-safe, and -0 is not 0). */
function assertSameBits(actual: Float32Array, expected: Float32Array): void {
  assert.ok(actual instanceof Float32Array, 'a Float32Array');
  assert.equal(actual.length, expected.length);
  assert.deepEqual(
    Buffer.from(actual.buffer, actual.byteOffset, actual.byteLength),
    Buffer.from(expected.buffer, expected.byteOffset, expected.byteLength),
  );
}

function assertMemory(m: StoredMemory | undefined, r: MemoryRecord): void {
  assert.ok(m, `memory ${r.id} is there`);
  assert.equal(m.id, r.id);
  assert.equal(m.content, r.content ?? null);
  assertSameBits(m.embedding, r.embedding);
}

/** A fetch that counts the requests it sends. */
function countingFetch(): { fetch: typeof fetch; count: () => number } {
  let n = 0;
  return {
    fetch: (input, init) => {
      n++;
      return fetch(input, init);
    },
    count: () => n,
  };
}

describe('WarmStoreClient against a real server', () => {
  let server: StartedServer;
  let client: WarmStoreClient;
  let cleanup: () => Promise<void>;
  const counter = countingFetch();

  before(async () => {
    const t = await tempDir('warmstore-client-');
    cleanup = t.cleanup;
    server = await startServer({
      dataDir: t.dir,
      port: 0,
      logger: false,
      storeOptions: { dimension: DIM, maxContentBytes: 64 * 1024, maintenanceIntervalMs: false },
    });
    client = new WarmStoreClient({ url: server.url, retries: 0, fetch: counter.fetch });
  });
  after(async () => {
    await server.close();
    await cleanup();
  });

  it('round-trips put and get: unicode, empty vs absent content, 10 KB content, metadata', async () => {
    const records: MemoryRecord[] = [
      { id: 'unicode-ü-🧠', embedding: embeddingOf(1), content: 'naïve café — 記憶 🧠 "quoted"\n\\' },
      { id: 'empty', embedding: embeddingOf(2), content: '' },
      { id: 'absent', embedding: embeddingOf(3) },
      { id: 'null', embedding: embeddingOf(4), content: null },
      { id: 'ten-kb', embedding: embeddingOf(5), content: 'é'.repeat(5 * 1024) },
      {
        id: 'meta',
        embedding: embeddingOf(6),
        content: 'with metadata',
        confidence: 0.25,
        activation: -3.5,
        decayRate: 0.01,
        createdAt: 1_700_000_000_000,
        lastAccess: 1_700_000_000_500,
        accessCount: 42,
      },
      // Ids that need escaping in a path, and the two the URL parser would swallow.
      { id: 'a/b?c=d#e%20f', embedding: embeddingOf(7), content: 'path-hostile id' },
      { id: '.', embedding: embeddingOf(8), content: 'dot' },
      { id: '..', embedding: embeddingOf(9), content: 'dot dot' },
    ];
    for (const r of records) await client.put(r);
    for (const r of records) assertMemory(await client.get(r.id), r);

    const meta = await client.get('meta');
    assert.deepEqual(
      {
        confidence: meta?.confidence,
        activation: meta?.activation,
        decayRate: meta?.decayRate,
        createdAt: meta?.createdAt,
        lastAccess: meta?.lastAccess,
        accessCount: meta?.accessCount,
      },
      {
        confidence: 0.25,
        activation: -3.5,
        decayRate: 0.01,
        createdAt: 1_700_000_000_000,
        lastAccess: 1_700_000_000_500,
        accessCount: 42,
      },
    );
    assert.equal((await client.get('empty'))?.content, '');
    assert.equal((await client.get('absent'))?.content, null);
    assert.equal((await client.get('ten-kb'))?.content?.length, 5 * 1024);
    // The server's own store saw the same thing.
    assert.equal((await server.store.get('unicode-ü-🧠'))?.content, records[0]?.content);
    assert.equal((await server.store.get('..'))?.content, 'dot dot');
  });

  it('carries embeddings bit for bit through base64, both ways', async () => {
    const e = new Float32Array(DIM);
    e.set([-0, 1.401298464324817e-45, 3.4028234663852886e38, -1.1754943508222875e-38, 0.1, 1 / 3, -2.5, 7]);
    await client.put({ id: 'bits', embedding: e });
    const m = await client.get('bits');
    assert.ok(m);
    assertSameBits(m.embedding, e);
    assert.ok(Object.is(m.embedding[0], -0), '-0 stays -0');
    // A number array is converted to float32 on the client, as the embedded store would.
    await client.put({ id: 'from-array', embedding: Array.from(e) as unknown as Float32Array });
    assertSameBits((await client.get('from-array'))!.embedding, e);
    const [hit] = await client.recall(e, { k: 1 });
    assertSameBits(hit!.memory.embedding, e);
  });

  it('get of a missing id is undefined, has and delete answer booleans', async () => {
    await client.put({ id: 'to-delete', embedding: embeddingOf(20), content: 'x' });
    assert.equal(await client.has('to-delete'), true);
    assert.equal(await client.has('never-there'), false);
    assert.equal(await client.get('never-there'), undefined);
    assert.equal(await client.delete('to-delete'), true);
    assert.equal(await client.delete('to-delete'), false);
    assert.equal(await client.get('to-delete'), undefined);
    assert.equal(await client.has('to-delete'), false);
    await client.put({ id: '.', embedding: embeddingOf(21) });
    assert.equal(await client.has('.'), true);
    assert.equal(await client.delete('.'), true);
    assert.equal(await client.delete('.'), false);
    assert.equal(await client.get('.'), undefined);
  });

  it('touch bumps accessCount, a plain get does not', async () => {
    await client.put({ id: 'touched', embedding: embeddingOf(22), accessCount: 3 });
    assert.equal((await client.get('touched'))?.accessCount, 3);
    assert.equal((await client.get('touched'))?.accessCount, 3);
    assert.equal((await client.get('touched', { touch: true }))?.accessCount, 4);
    assert.equal((await client.get('touched'))?.accessCount, 4);
  });

  it('putMany, getMany and deleteMany work in one request each, in order', async () => {
    const records: MemoryRecord[] = Array.from({ length: 20 }, (_, i) => ({
      id: `batch-${i}`,
      embedding: embeddingOf(100 + i),
      ...(i % 3 === 0 ? {} : { content: i % 3 === 1 ? '' : `content ${i} ✓` }),
    }));
    const before = counter.count();
    await client.putMany(records);
    assert.equal(counter.count() - before, 1, 'one request for the whole batch');
    const ids = [...records.map((r) => r.id), 'batch-missing'];
    const got = await client.getMany(ids);
    assert.equal(got.length, ids.length);
    records.forEach((r, i) => assertMemory(got[i], r));
    assert.equal(got[records.length], undefined);
    const deleted = await client.deleteMany(['batch-0', 'batch-missing', 'batch-1']);
    assert.deepEqual(deleted, [true, false, true]);
    assert.deepEqual(await client.getMany([]), []);
    assert.deepEqual(await client.deleteMany([]), []);
  });

  it('putMany writes the valid records and rejects naming every refused one, as records[i]', async () => {
    const records: MemoryRecord[] = [
      { id: 'pm-ok-0', embedding: embeddingOf(200) },
      { id: 'pm-bad-dim', embedding: new Float32Array(DIM + 1) },
      { id: 'pm-ok-2', embedding: embeddingOf(202), content: 'kept' },
      { id: 'pm-bad-conf', embedding: embeddingOf(203), confidence: 7 },
    ];
    await assert.rejects(client.putMany(records), (err: unknown) => {
      assert.ok(err instanceof WarmStoreError, String(err));
      assert.equal(err.code, 'INVALID_INPUT');
      assert.equal(err.details.field, 'records[1].embedding');
      assert.equal(err.details.id, 'pm-bad-dim');
      assert.equal(err.details['index'], 1);
      const refused = err.details['refused'] as Array<{ index: number; field: string }>;
      assert.deepEqual(
        refused.map((r) => [r.index, r.field]),
        [
          [1, 'records[1].embedding'],
          [3, 'records[3].confidence'],
        ],
      );
      return true;
    });
    assert.deepEqual(
      (await client.getMany(records.map((r) => r.id))).map((m) => m?.content),
      [null, undefined, 'kept', undefined],
    );
  });

  it('splits batches at maxBatchItems', async () => {
    const small = countingFetch();
    const c = new WarmStoreClient({ url: server.url, maxBatchItems: 3, fetch: small.fetch });
    const records = Array.from({ length: 7 }, (_, i) => ({
      id: `split-${i}`,
      embedding: embeddingOf(400 + i),
    }));
    await c.putMany(records);
    assert.equal(small.count(), 3);
    const got = await c.getMany([...records.map((r) => r.id), 'split-missing']);
    assert.equal(small.count(), 6);
    assert.deepEqual(
      got.map((m) => m?.id),
      [...records.map((r) => r.id), undefined],
    );
    assert.deepEqual(await c.deleteMany(['split-0', 'split-0', 'split-6', 'x', 'y']), [
      true,
      false,
      true,
      false,
      false,
    ]);
    assert.equal(small.count(), 8);
  });

  it('recalls best first with scores and full memories', async () => {
    const q = embeddingOf(300);
    await client.put({ id: 'recall-exact', embedding: q, content: 'the closest' });
    const results = await client.recall(q, { k: 3 });
    assert.equal(results.length, 3);
    assert.equal(results[0]?.memory.id, 'recall-exact');
    assert.equal(results[0]?.memory.content, 'the closest');
    assert.ok(Math.abs((results[0]?.score ?? 0) - 1) < 1e-6);
    for (let i = 1; i < results.length; i++) assert.ok(results[i - 1]!.score >= results[i]!.score);
    const local = await server.store.recall(q, { k: 3 });
    assert.deepEqual(
      results.map((r) => [r.memory.id, r.score]),
      local.map((r) => [r.memory.id, r.score]),
    );
    assert.deepEqual(await client.recall(q, { k: 5, minScore: 2 }), []);
  });

  it('reads storage stats, compacts and runs maintenance', async () => {
    const stats = await client.contentStorageStats();
    assert.equal(stats.size, server.store.size);
    assert.deepEqual(
      {
        ...server.store.contentStorageStats(),
        size: server.store.size,
        isCompacting: false,
        diskFull: false,
        readOnly: false,
        spaces: server.store.spaces(),
        index: server.store.indexStatus,
        scrub: server.store.scrubStatus?.(),
      },
      stats,
    );
    const compaction = await client.compact({ force: true });
    assert.equal(typeof compaction.durationMs, 'number');
    assert.equal(typeof compaction.segmentsCompacted, 'number');
    const report = await client.runMaintenance();
    assert.ok(['compacted', 'skipped', 'failed', 'busy'].includes(report.decision));
    const check = await client.verify();
    assert.equal(check.ok, true, JSON.stringify(check.problems));
    assert.equal(check.records, server.store.size);
    assert.equal(report.stats.totalBytes, server.store.contentStorageStats().totalBytes);
    await client.health();
  });

  it('400 arrives as WarmStoreError INVALID_INPUT naming the field, with the status', async () => {
    const cases: Array<[MemoryRecord, string]> = [
      [{ id: 'bad-dim', embedding: new Float32Array(DIM - 1) }, 'embedding'],
      [{ id: 'bad-conf', embedding: embeddingOf(1), confidence: 2 }, 'confidence'],
      [{ id: 'bad-count', embedding: embeddingOf(1), accessCount: 1.5 }, 'accessCount'],
      [{ id: 'big', embedding: embeddingOf(1), content: 'x'.repeat(64 * 1024 + 1) }, 'content'],
    ];
    for (const [record, field] of cases) {
      const before = counter.count();
      await assert.rejects(client.put(record), (err: unknown) => {
        assert.ok(err instanceof WarmStoreError, `${field}: ${String(err)}`);
        assert.equal(err.code, 'INVALID_INPUT');
        assert.equal(err.details.field, field);
        assert.equal(err.details['status'], 400);
        return true;
      });
      assert.equal(counter.count() - before, 1, `${field}: a 400 is not retried`);
      assert.equal(await client.has(record.id), false);
    }
    const nan = embeddingOf(1);
    nan[3] = Number.NaN;
    await assert.rejects(client.put({ id: 'nan', embedding: nan }), (err: unknown) => {
      assert.ok(WarmStoreError.is(err, 'INVALID_INPUT'));
      assert.equal(err.details.field, 'embedding[3]');
      return true;
    });
    await assert.rejects(client.recall(new Float32Array(3)), (err: unknown) => {
      assert.ok(WarmStoreError.is(err, 'INVALID_INPUT'));
      assert.equal(err.details.field, 'embedding');
      return true;
    });
  });

  it('refuses input it cannot send before sending anything', async () => {
    const before = counter.count();
    const refused: Array<[Promise<unknown>, string]> = [
      [client.put({ id: '', embedding: embeddingOf(1) }), 'id'],
      [client.put({ id: 'x'.repeat(256), embedding: embeddingOf(1) }), 'id'],
      [client.put({ id: 'bad-emb', embedding: 'AAAA' as unknown as Float32Array }), 'embedding'],
      [client.put(null as unknown as MemoryRecord), 'record'],
      [client.get(42 as unknown as string), 'id'],
      [client.get('\ud800'), 'id'],
      [client.getMany(['ok', ''] as string[]), 'ids[1]'],
      [
        client.putMany([
          { id: 'ok', embedding: embeddingOf(1) },
          { id: '', embedding: embeddingOf(1) },
        ]),
        'records[1].id',
      ],
      [client.delete(''), 'id'],
      [client.recall(['x'] as unknown as number[]), 'embedding[0]'],
      [client.get('ok', { timeoutMs: -1 }), 'options.timeoutMs'],
    ];
    for (const [p, field] of refused) {
      await assert.rejects(p, (err: unknown) => {
        assert.ok(WarmStoreError.is(err, 'INVALID_INPUT'), `${field}: ${String(err)}`);
        assert.equal(err.details.field, field);
        return true;
      });
    }
    assert.equal(counter.count(), before, 'no request was sent');
    for (const [options, field] of [
      [{ url: 'not a url' }, 'url'],
      [{ url: 'ftp://127.0.0.1/' }, 'url'],
      [{ url: 'http://127.0.0.1/?q=1' }, 'url'],
      [{ url: 'http://127.0.0.1/', retries: -1 }, 'retries'],
      [{ url: 'http://127.0.0.1/', timeoutMs: 0 }, 'timeoutMs'],
      [{ url: 'http://127.0.0.1/', apiKey: '' }, 'apiKey'],
      [{ url: 'http://127.0.0.1/', backoffMs: Number.NaN }, 'backoffMs'],
    ] as const) {
      assert.throws(
        () => new WarmStoreClient(options as never),
        (err: unknown) => WarmStoreError.is(err, 'INVALID_INPUT') && err.details.field === field,
        field,
      );
    }
  });

  it('a 404 for a missing route is an error, not a missing memory', async () => {
    const wrong = new WarmStoreClient({ url: `${server.url}/not-the-api/`, retries: 0 });
    await assert.rejects(wrong.get('m'), (err: unknown) => WarmStoreClientError.is(err, 'NOT_FOUND'));
    await assert.rejects(wrong.delete('m'), (err: unknown) => WarmStoreClientError.is(err, 'NOT_FOUND'));
    await assert.rejects(wrong.put({ id: 'm', embedding: embeddingOf(1) }), (err: unknown) => {
      assert.ok(WarmStoreClientError.is(err, 'NOT_FOUND'));
      assert.equal(err.status, 404);
      return true;
    });
  });

  it('after close() calls reject with STORE_CLOSED, as the embedded store does', async () => {
    const c = new WarmStoreClient({ url: server.url });
    await c.close();
    assert.equal(c.closed, true);
    await assert.rejects(c.get('x'), (err: unknown) => WarmStoreError.is(err, 'STORE_CLOSED'));
  });
});

describe('WarmStoreClient compaction conflicts', () => {
  let store: WarmStore;
  let server: StartedServer;
  let cleanup: () => Promise<void>;
  let live: string[];

  before(async () => {
    const t = await tempDir('warmstore-client-');
    cleanup = t.cleanup;
    store = await WarmStore.open(t.dir, SLOW_COMPACTION_OPTIONS);
    live = await fillForCompaction(store);
    server = await startServer({ store, port: 0, logger: false });
  });
  after(async () => {
    await server.close();
    await store.close();
    await cleanup();
  });

  it('409 arrives as COMPACTION_IN_PROGRESS and is not retried; the running compaction completes', async () => {
    const counter = countingFetch();
    const client = new WarmStoreClient({ url: server.url, fetch: counter.fetch });
    const first = client.compact({ force: true });
    await waitFor(() => store.isCompacting, 10_000, 'the compaction to start');
    const before = counter.count();
    await assert.rejects(client.compact({ force: true }), (err: unknown) => {
      assert.ok(err instanceof WarmStoreError, String(err));
      assert.equal(err.code, 'COMPACTION_IN_PROGRESS');
      assert.equal(err.details['status'], 409);
      return true;
    });
    assert.equal(counter.count() - before, 1);
    const stats = await first;
    assert.ok(stats.segmentsCompacted > 0);
    assert.ok(stats.bytesReclaimed > 0);
    await assertRecordsIntact(store, live);
  });
});
