/**
 * End to end over real HTTP: the server on 127.0.0.1 port 0, a real store, real fetch.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { WarmStore } from '../../src/index.js';
import { startServer, encodeEmbeddingBase64, type StartedServer } from '../../src/server/index.js';
import { sample } from '../unit/metrics/prom-text.js';
import {
  DIM,
  SLOW_COMPACTION_OPTIONS,
  assertRecordsIntact,
  contentOf,
  embeddingOf,
  fillForCompaction,
  tempDir,
  waitFor,
} from '../unit/server/fixtures.js';

interface Json {
  [k: string]: unknown;
}

async function call(
  base: string,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; json: Json; text: string; headers: Headers }> {
  const init: RequestInit = { method };
  if (body !== undefined) {
    init.body = typeof body === 'string' ? body : JSON.stringify(body);
    init.headers = { 'content-type': 'application/json' };
  }
  const res = await fetch(base + path, init);
  const text = await res.text();
  let json: Json = {};
  try {
    json = JSON.parse(text) as Json;
  } catch {
    // not JSON (metrics, docs)
  }
  return { status: res.status, json, text, headers: res.headers };
}

const errorOf = (json: Json): { code: string; message: string; field?: string } =>
  json['error'] as { code: string; message: string; field?: string };

describe('HTTP API end to end', () => {
  let server: StartedServer;
  let base: string;
  let cleanup: () => Promise<void>;

  before(async () => {
    const t = await tempDir();
    cleanup = t.cleanup;
    server = await startServer({
      dataDir: t.dir,
      port: 0,
      logger: false,
      bodyLimit: 64 * 1024,
      storeOptions: { dimension: DIM, maxContentBytes: 8192, maintenanceIntervalMs: false },
    });
    base = server.url;
  });
  after(async () => {
    await server.close();
    await cleanup();
  });

  it('creates, reads, replaces, touches and deletes a memory', async () => {
    const embedding = Array.from(embeddingOf(1));
    const created = await call(base, 'POST', '/api/v1/memories', {
      id: 'm1',
      embedding,
      content: 'héllo 🧠',
      confidence: 0.75,
      activation: 2,
      decayRate: 0.1,
      createdAt: 1000,
      accessCount: 3,
    });
    assert.equal(created.status, 201);
    assert.deepEqual(created.json, { id: 'm1', created: true });

    const got = await call(base, 'GET', '/api/v1/memories/m1');
    assert.equal(got.status, 200);
    assert.deepEqual(got.json, {
      id: 'm1',
      space: 'default',
      embedding: Array.from(Float32Array.from(embedding)),
      content: 'héllo 🧠',
      confidence: 0.75,
      activation: 2,
      decayRate: 0.1,
      createdAt: 1000,
      lastAccess: 1000,
      accessCount: 3,
    });

    const replaced = await call(base, 'POST', '/api/v1/memories', { id: 'm1', embedding, content: '' });
    assert.equal(replaced.status, 200);
    assert.equal((await call(base, 'GET', '/api/v1/memories/m1')).json['content'], '', 'empty stays empty');

    await call(base, 'GET', '/api/v1/memories/m1?touch=true');
    const touched = await call(base, 'GET', '/api/v1/memories/m1');
    assert.equal(touched.json['accessCount'], 1);

    const del = await call(base, 'DELETE', '/api/v1/memories/m1');
    assert.equal(del.status, 200);
    assert.deepEqual(del.json, { deleted: true });
    const gone = await call(base, 'GET', '/api/v1/memories/m1');
    assert.equal(gone.status, 404);
    assert.equal(errorOf(gone.json).code, 'NOT_FOUND');
    assert.equal((await call(base, 'DELETE', '/api/v1/memories/m1')).status, 404);
  });

  it('keeps absent content (null) distinct from empty content', async () => {
    const e = Array.from(embeddingOf(2));
    await call(base, 'POST', '/api/v1/memories', { id: 'absent', embedding: e });
    await call(base, 'POST', '/api/v1/memories', { id: 'null', embedding: e, content: null });
    await call(base, 'POST', '/api/v1/memories', { id: 'empty', embedding: e, content: '' });
    assert.equal((await call(base, 'GET', '/api/v1/memories/absent')).json['content'], null);
    assert.equal((await call(base, 'GET', '/api/v1/memories/null')).json['content'], null);
    assert.equal((await call(base, 'GET', '/api/v1/memories/empty')).json['content'], '');
  });

  it('accepts a base64 embedding and returns the same float32 values as numbers', async () => {
    const e = embeddingOf(3);
    const r = await call(base, 'POST', '/api/v1/memories', {
      id: 'b64',
      embedding: encodeEmbeddingBase64(e),
    });
    assert.equal(r.status, 201);
    const got = await call(base, 'GET', '/api/v1/memories/b64');
    assert.deepEqual(Float32Array.from(got.json['embedding'] as number[]), e);
  });

  it('recalls by cosine similarity, best first', async () => {
    for (let i = 10; i < 20; i++) {
      await call(base, 'POST', '/api/v1/memories', { id: `rec${i}`, embedding: Array.from(embeddingOf(i)) });
    }
    const r = await call(base, 'POST', '/api/v1/recall', { embedding: Array.from(embeddingOf(15)), k: 3 });
    assert.equal(r.status, 200);
    const results = r.json['results'] as Array<{ id: string; score: number; memory: { id: string } }>;
    assert.equal(results.length, 3);
    assert.equal(results[0]?.id, 'rec15');
    assert.ok(Math.abs((results[0]?.score ?? 0) - 1) < 1e-5);
    assert.equal(results[0]?.memory.id, 'rec15');
    for (let i = 1; i < results.length; i++)
      assert.ok((results[i - 1]?.score ?? 0) >= (results[i]?.score ?? 0));
    const strict = await call(base, 'POST', '/api/v1/recall', {
      embedding: Array.from(embeddingOf(15)),
      k: 10,
      minScore: 0.99999,
    });
    assert.deepEqual(
      (strict.json['results'] as Array<{ id: string }>).map((x) => x.id),
      ['rec15'],
    );
  });

  const e = Array.from(embeddingOf(0));
  for (const [name, body, field] of [
    ['wrong dimension', { id: 'x', embedding: [1, 2, 3] }, 'embedding'],
    [
      'base64 of the wrong dimension',
      { id: 'x', embedding: encodeEmbeddingBase64(new Float32Array(3)) },
      'embedding',
    ],
    ['non-number value', { id: 'x', embedding: [...e.slice(0, 7), 'a'] }, 'embedding[7]'],
    ['confidence out of range', { id: 'x', embedding: e, confidence: 2 }, 'confidence'],
    ['negative decayRate', { id: 'x', embedding: e, decayRate: -1 }, 'decayRate'],
    ['missing id', { embedding: e }, 'id'],
    // 100 three-byte characters: within 255 characters, over 255 bytes; refused by the engine.
    ['id over 255 bytes', { id: '€'.repeat(100), embedding: e }, 'id'],
    // Under the body limit, over maxContentBytes (8192): refused by the engine.
    ['content over maxContentBytes', { id: 'x', embedding: e, content: 'x'.repeat(9000) }, 'content'],
    ['unknown field', { id: 'x', embedding: e, colour: 'red' }, 'colour'],
  ] as const) {
    it(`400 naming the field: ${name}`, async () => {
      const r = await call(base, 'POST', '/api/v1/memories', body);
      assert.equal(r.status, 400, r.text);
      assert.equal(errorOf(r.json).code, 'INVALID_INPUT');
      assert.equal(errorOf(r.json).field, field);
      assert.equal((await call(base, 'GET', '/api/v1/memories/x')).status, 404, 'nothing written');
    });
  }

  it('400 for recall input, malformed JSON and bad query strings', async () => {
    const r1 = await call(base, 'POST', '/api/v1/recall', { embedding: e, k: 'ten' });
    assert.equal(r1.status, 400);
    assert.equal(errorOf(r1.json).field, 'k');
    const r2 = await call(base, 'POST', '/api/v1/recall', '{"embedding": [');
    assert.equal(r2.status, 400);
    assert.equal(errorOf(r2.json).field, 'body');
    const r3 = await call(base, 'GET', '/api/v1/memories/x?touch=maybe');
    assert.equal(r3.status, 400);
    assert.equal(errorOf(r3.json).field, 'touch');
  });

  it('413 for a body over bodyLimit', async () => {
    const r = await call(base, 'POST', '/api/v1/memories', {
      id: 'big',
      embedding: e,
      content: 'x'.repeat(100_000),
    });
    assert.equal(r.status, 413);
    assert.equal(errorOf(r.json).code, 'PAYLOAD_TOO_LARGE');
  });

  it('serves storage stats, maintenance, health and the OpenAPI document', async () => {
    const s = await call(base, 'GET', '/api/v1/metrics/storage');
    assert.equal(s.status, 200);
    for (const k of ['totalBytes', 'liveBytes', 'deadBytes', 'fragmentationRatio', 'segments', 'size']) {
      assert.equal(typeof s.json[k], 'number', k);
    }
    assert.equal(s.json['isCompacting'], false);
    assert.equal(s.json['size'], server.store.size);

    const m = await call(base, 'POST', '/api/v1/maintenance/run');
    assert.equal(m.status, 200, m.text);
    assert.ok(['compacted', 'skipped', 'failed', 'busy'].includes(m.json['decision'] as string));

    assert.deepEqual((await call(base, 'GET', '/healthz')).json, { status: 'ok' });

    const doc = await call(base, 'GET', '/docs/json');
    assert.equal(doc.status, 200);
    const paths = doc.json['paths'] as Record<string, unknown>;
    for (const p of [
      '/api/v1/memories',
      '/api/v1/memories/{id}',
      '/api/v1/recall',
      '/api/v1/maintenance/compact',
      '/api/v1/maintenance/run',
      '/api/v1/metrics/storage',
      '/metrics',
      '/healthz',
    ]) {
      assert.ok(paths[p], `OpenAPI lacks ${p}`);
    }
    const ui = await fetch(`${base}/docs`);
    assert.equal(ui.status, 200);
    assert.match(await ui.text(), /swagger/i);
  });

  it('exposes Prometheus metrics with warmstore_ series and process metrics', async () => {
    const before = await call(base, 'GET', '/metrics');
    assert.equal(before.status, 200);
    assert.match(before.headers.get('content-type') ?? '', /^text\/plain/);
    const putsBefore = sample(before.text, 'warmstore_operations_total', { op: 'put' }) ?? 0;
    await call(base, 'POST', '/api/v1/memories', { id: 'metric', embedding: e, content: 'abc' });
    await call(base, 'GET', '/api/v1/memories/metric');
    const after = (await call(base, 'GET', '/metrics')).text;
    assert.equal(sample(after, 'warmstore_operations_total', { op: 'put' }), putsBefore + 1);
    assert.ok((sample(after, 'warmstore_operation_duration_seconds_count', { op: 'get' }) ?? 0) >= 1);
    assert.equal(sample(after, 'warmstore_memories'), server.store.size);
    const stats = server.store.contentStorageStats();
    assert.equal(sample(after, 'warmstore_content_bytes_total'), stats.totalBytes);
    assert.equal(sample(after, 'warmstore_content_live_bytes'), stats.liveBytes);
    assert.equal(sample(after, 'warmstore_fragmentation_ratio'), stats.fragmentationRatio);
    for (const result of ['success', 'failure', 'aborted']) {
      assert.notEqual(sample(after, 'warmstore_compactions_total', { result }), undefined, result);
    }
    assert.notEqual(sample(after, 'process_cpu_user_seconds_total'), undefined);
    assert.notEqual(sample(after, 'nodejs_heap_size_used_bytes'), undefined);
  });

  it('404 JSON for an unknown route', async () => {
    const r = await call(base, 'GET', '/api/v2/nothing');
    assert.equal(r.status, 404);
    assert.equal(errorOf(r.json).code, 'NOT_FOUND');
  });
});

describe('compaction over HTTP', () => {
  let store: WarmStore;
  let server: StartedServer;
  let base: string;
  let cleanup: () => Promise<void>;
  let live: string[];

  before(async () => {
    const t = await tempDir();
    cleanup = t.cleanup;
    store = await WarmStore.open(t.dir, SLOW_COMPACTION_OPTIONS);
    live = await fillForCompaction(store);
    // The server serves a store opened here, so the test can write to it directly and keeps it
    // open across server.close().
    server = await startServer({ store, port: 0, logger: false });
    base = server.url;
  });
  after(async () => {
    await server.close();
    if (!store.closed) await store.close();
    await cleanup();
  });

  it('answers 409 to a compaction requested while one runs, and the metrics move', async () => {
    const before = (await call(base, 'GET', '/metrics')).text;
    const statsBefore = store.contentStorageStats();
    assert.ok(statsBefore.deadBytes > 0);

    const first = call(base, 'POST', '/api/v1/maintenance/compact', { force: true });
    await waitFor(() => store.isCompacting, 10_000, 'the compaction to start');
    const second = await call(base, 'POST', '/api/v1/maintenance/compact', { force: true });
    assert.equal(second.status, 409, second.text);
    assert.equal(errorOf(second.json).code, 'COMPACTION_IN_PROGRESS');
    const during = await call(base, 'GET', '/api/v1/metrics/storage');
    assert.equal(during.json['isCompacting'], true);
    const duringMetrics = (await call(base, 'GET', '/metrics')).text;
    assert.equal(sample(duringMetrics, 'warmstore_compaction_in_progress'), 1);

    const done = await first;
    assert.equal(done.status, 200, done.text);
    const stats = done.json as unknown as {
      bytesReclaimed: number;
      segmentsCompacted: number;
      recordsMoved: number;
    };
    assert.ok(stats.bytesReclaimed > 0);
    assert.ok(stats.segmentsCompacted > 0);

    const after = (await call(base, 'GET', '/metrics')).text;
    const delta = (name: string, labels: Record<string, string> = {}): number =>
      (sample(after, name, labels) ?? 0) - (sample(before, name, labels) ?? 0);
    assert.equal(delta('warmstore_compactions_total', { result: 'success' }), 1);
    assert.equal(delta('warmstore_compactions_total', { result: 'failure' }), 0);
    assert.equal(delta('warmstore_bytes_reclaimed_total'), stats.bytesReclaimed);
    assert.equal(delta('warmstore_compaction_duration_seconds_count', { result: 'success' }), 1);
    assert.ok(delta('warmstore_compaction_pause_seconds_count') > 0, 'pauses observed');
    assert.ok(delta('warmstore_content_bytes_total') < 0, 'total content bytes went down');
    assert.equal(
      sample(after, 'warmstore_fragmentation_ratio'),
      store.contentStorageStats().fragmentationRatio,
    );
    assert.equal(sample(after, 'warmstore_content_dead_bytes'), 0);
    assert.equal(sample(after, 'warmstore_compaction_in_progress'), 0);
    await assertRecordsIntact(store, live);
  });

  it('close() aborts a running compaction, answers it 503, and loses nothing', async () => {
    // Rewrite every live record: its old content becomes dead, giving compaction work again.
    for (let b = 0; b < live.length; b += 500) {
      await store.putMany(
        live.slice(b, b + 500).map((id) => {
          const i = Number(id.slice(1));
          return { id, embedding: embeddingOf(i), content: contentOf(i) };
        }),
      );
    }
    const before = (await call(base, 'GET', '/metrics')).text;
    const pending = call(base, 'POST', '/api/v1/maintenance/compact', { force: true });
    await waitFor(() => store.isCompacting, 10_000, 'the compaction to start');
    const aborted = sample(before, 'warmstore_compactions_total', { result: 'aborted' }) ?? 0;
    const closing = server.close();
    const r = await pending;
    await closing;
    assert.equal(r.status, 503, r.text);
    assert.equal(errorOf(r.json).code, 'SHUTTING_DOWN');
    assert.equal(store.isCompacting, false);
    assert.equal(store.closed, false, 'a store passed in is left open');
    assert.equal(
      (sample(await server.metrics.metrics(), 'warmstore_compactions_total', { result: 'aborted' }) ?? 0) -
        aborted,
      1,
      'the aborted run is counted before close() detaches the metrics',
    );
    await assertRecordsIntact(store, live);
    await assert.rejects(fetch(`${base}/healthz`), 'the port is closed');

    // Reopen from disk: every acknowledged record is there.
    const dir = store.dir;
    await store.close();
    store = await WarmStore.open(dir, SLOW_COMPACTION_OPTIONS);
    assert.equal(store.size, live.length);
    await assertRecordsIntact(store, live);
    const report = await store.verify();
    assert.deepEqual(report.problems, []);
  });
});

describe('a closed store', () => {
  it('answers 503 STORE_CLOSED', async () => {
    const t = await tempDir();
    const store = await WarmStore.open(t.dir, { dimension: DIM, maintenanceIntervalMs: false });
    const server = await startServer({ store, port: 0, logger: false });
    try {
      await store.close();
      const r = await call(server.url, 'GET', '/api/v1/memories/a');
      assert.equal(r.status, 503);
      assert.equal(errorOf(r.json).code, 'STORE_CLOSED');
      const p = await call(server.url, 'POST', '/api/v1/memories', {
        id: 'a',
        embedding: Array.from(embeddingOf(0)),
      });
      assert.equal(p.status, 503);
      const h = await call(server.url, 'GET', '/healthz');
      assert.equal(h.status, 503);
    } finally {
      await server.close();
      await t.cleanup();
    }
  });
});
