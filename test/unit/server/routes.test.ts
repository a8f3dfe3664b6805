import { describe, it, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { WarmStoreError } from '../../../src/errors.js';
import { createServer, encodeEmbeddingBase64, type WarmStoreServer } from '../../../src/server/index.js';
import { FakeStore, ZERO_STATS } from './fake-store.js';

const DIM = 4;

describe('server routes (fake store)', () => {
  let store: FakeStore;
  let server: WarmStoreServer;

  beforeEach(async () => {
    store = new FakeStore(DIM);
    server = await createServer({ store, logger: false, metrics: { defaultMetrics: false } });
  });
  afterEach(async () => {
    await server.close();
  });

  const inject = (method: 'GET' | 'POST' | 'DELETE', url: string, payload?: unknown) =>
    server.app.inject(payload === undefined ? { method, url } : { method, url, payload: payload as object });

  it('creates (201) then replaces (200) a memory and reads it back', async () => {
    const body = { id: 'a', embedding: [1, 2, 3, 4], content: 'hello' };
    const r1 = await inject('POST', '/api/v1/memories', body);
    assert.equal(r1.statusCode, 201);
    assert.deepEqual(r1.json(), { id: 'a', created: true });
    const r2 = await inject('POST', '/api/v1/memories', { ...body, content: null });
    assert.equal(r2.statusCode, 200);
    assert.deepEqual(r2.json(), { id: 'a', created: false });
    const g = await inject('GET', '/api/v1/memories/a');
    assert.equal(g.statusCode, 200);
    assert.equal(g.json().content, null);
    assert.deepEqual(g.json().embedding, [1, 2, 3, 4]);
  });

  it('accepts a base64 embedding of little-endian float32', async () => {
    const e = Float32Array.from([0.1, -2.5, 3, 1e-7]);
    const r = await inject('POST', '/api/v1/memories', { id: 'b', embedding: encodeEmbeddingBase64(e) });
    assert.equal(r.statusCode, 201);
    assert.deepEqual(store.records.get('b')?.embedding, e);
  });

  it('refuses a base64 embedding of the wrong length, naming the field', async () => {
    const e = Float32Array.from([1, 2, 3]);
    const r = await inject('POST', '/api/v1/memories', { id: 'b', embedding: encodeEmbeddingBase64(e) });
    assert.equal(r.statusCode, 400);
    assert.equal(r.json().error.field, 'embedding');
    assert.equal(r.json().error.code, 'INVALID_INPUT');
  });

  it('refuses malformed base64 rather than storing other numbers', async () => {
    const r = await inject('POST', '/api/v1/memories', { id: 'b', embedding: 'AAAA!AAAAAAAAAAAAAAAAAAA' });
    assert.equal(r.statusCode, 400);
    assert.equal(r.json().error.field, 'embedding');
  });

  for (const [name, body, field] of [
    ['missing id', { embedding: [1, 2, 3, 4] }, 'id'],
    ['missing embedding', { id: 'x' }, 'embedding'],
    ['short embedding', { id: 'x', embedding: [1, 2] }, 'embedding'],
    ['non-number in embedding', { id: 'x', embedding: [1, 2, 'z', 4] }, 'embedding[2]'],
    ['confidence above 1', { id: 'x', embedding: [1, 2, 3, 4], confidence: 1.5 }, 'confidence'],
    ['string where number', { id: 'x', embedding: [1, 2, 3, 4], activation: '5' }, 'activation'],
    ['negative accessCount', { id: 'x', embedding: [1, 2, 3, 4], accessCount: -1 }, 'accessCount'],
    ['fractional accessCount', { id: 'x', embedding: [1, 2, 3, 4], accessCount: 1.5 }, 'accessCount'],
    ['unknown field', { id: 'x', embedding: [1, 2, 3, 4], decay_rate: 1 }, 'decay_rate'],
    ['empty id', { id: '', embedding: [1, 2, 3, 4] }, 'id'],
    ['content of wrong type', { id: 'x', embedding: [1, 2, 3, 4], content: 5 }, 'content'],
  ] as const) {
    it(`400 naming the field: ${name}`, async () => {
      const r = await inject('POST', '/api/v1/memories', body);
      assert.equal(r.statusCode, 400, r.body);
      const err = r.json().error;
      assert.equal(err.code, 'INVALID_INPUT');
      assert.equal(err.field, field);
      assert.match(err.message, new RegExp(field.replace(/[[\]]/g, '\\$&')));
    });
  }

  it('400 naming the field from the engine (WarmStoreError INVALID_INPUT details.field)', async () => {
    const r = await inject('POST', '/api/v1/memories', {
      id: 'x',
      embedding: [1, 2, 3, 4],
      content: 'x'.repeat(2000),
    });
    assert.equal(r.statusCode, 400);
    assert.equal(r.json().error.field, 'content');
  });

  it('400 on malformed JSON and on a missing body', async () => {
    const r = await server.app.inject({
      method: 'POST',
      url: '/api/v1/memories',
      headers: { 'content-type': 'application/json' },
      payload: '{"id": ',
    });
    assert.equal(r.statusCode, 400);
    assert.equal(r.json().error.field, 'body');
    const r2 = await server.app.inject({ method: 'POST', url: '/api/v1/memories' });
    assert.equal(r2.statusCode, 400);
    assert.equal(r2.json().error.field, 'body');
  });

  it('400 on a bad query parameter and a bad recall k', async () => {
    const r = await inject('GET', '/api/v1/memories/a?touch=yes');
    assert.equal(r.statusCode, 400);
    assert.equal(r.json().error.field, 'touch');
    const r2 = await inject('POST', '/api/v1/recall', { embedding: [1, 2, 3, 4], k: 0 });
    assert.equal(r2.statusCode, 400);
    assert.equal(r2.json().error.field, 'k');
  });

  it('404 for a missing memory on GET and DELETE, and for an unknown route', async () => {
    assert.equal((await inject('GET', '/api/v1/memories/nope')).statusCode, 404);
    const d = await inject('DELETE', '/api/v1/memories/nope');
    assert.equal(d.statusCode, 404);
    assert.equal(d.json().error.code, 'NOT_FOUND');
    assert.equal((await inject('GET', '/api/v1/nothing')).json().error.code, 'NOT_FOUND');
  });

  it('touch=true bumps accessCount', async () => {
    await inject('POST', '/api/v1/memories', { id: 'a', embedding: [1, 2, 3, 4] });
    await inject('GET', '/api/v1/memories/a?touch=true');
    assert.equal((await inject('GET', '/api/v1/memories/a')).json().accessCount, 1);
  });

  it('ids with slashes and unicode travel percent-encoded', async () => {
    const id = 'a/b ü 🧠';
    await inject('POST', '/api/v1/memories', { id, embedding: [1, 2, 3, 4] });
    const g = await inject('GET', `/api/v1/memories/${encodeURIComponent(id)}`);
    assert.equal(g.statusCode, 200);
    assert.equal(g.json().id, id);
  });

  it('maps store error codes to statuses', async () => {
    const cases: Array<[WarmStoreError, number]> = [
      [new WarmStoreError('COMPACTION_IN_PROGRESS', 'busy'), 409],
      [new WarmStoreError('INSUFFICIENT_RESOURCES', 'disk'), 507],
      [new WarmStoreError('COMPACTION_FAILED', 'boom'), 500],
      [new WarmStoreError('IO_ERROR', 'eio'), 500],
    ];
    for (const [err, status] of cases) {
      store.compactImpl = async () => {
        throw err;
      };
      const r = await inject('POST', '/api/v1/maintenance/compact');
      assert.equal(r.statusCode, status, err.code);
      assert.equal(r.json().error.code, err.code);
    }
    store.getError = new WarmStoreError('CORRUPTION_DETECTED', 'bad crc', { id: 'a', file: 'seg-1' });
    const g = await inject('GET', '/api/v1/memories/a');
    assert.equal(g.statusCode, 500);
    assert.equal(g.json().error.code, 'CORRUPTION_DETECTED');
  });

  it('compact passes force and accepts an empty JSON body', async () => {
    const r = await server.app.inject({
      method: 'POST',
      url: '/api/v1/maintenance/compact',
      headers: { 'content-type': 'application/json' },
      payload: '',
    });
    assert.equal(r.statusCode, 200, r.body);
    assert.deepEqual(r.json(), ZERO_STATS);
    assert.equal(store.lastCompactOptions?.force, false);
    await inject('POST', '/api/v1/maintenance/compact', { force: true });
    assert.equal(store.lastCompactOptions?.force, true);
    const bad = await inject('POST', '/api/v1/maintenance/compact', { force: 'yes' });
    assert.equal(bad.statusCode, 400);
    assert.equal(bad.json().error.field, 'force');
  });

  it('maintenance/run returns the report', async () => {
    const r = await inject('POST', '/api/v1/maintenance/run');
    assert.equal(r.statusCode, 200);
    assert.equal(r.json().decision, 'skipped');
    assert.equal(r.json().stats.segments, 2);
  });

  it('maintenance/verify returns the report, clean or not, and refuses a body with fields', async () => {
    const clean = await inject('POST', '/api/v1/maintenance/verify');
    assert.equal(clean.statusCode, 200);
    assert.deepEqual(clean.json(), { ok: true, records: 0, segments: 1, bytesChecked: 0, problems: [] });
    store.verifyProblems = [
      { kind: 'corrupt-content', id: 'x', file: '/d/seg-00000001.dat', message: 'checksum' },
    ];
    const bad = await inject('POST', '/api/v1/maintenance/verify');
    assert.equal(bad.statusCode, 200);
    assert.equal(bad.json().ok, false);
    assert.deepEqual(bad.json().problems, store.verifyProblems);
    const extra = await inject('POST', '/api/v1/maintenance/verify', { deep: true });
    assert.equal(extra.statusCode, 400);
  });

  it('recall returns id, score and memory', async () => {
    await inject('POST', '/api/v1/memories', { id: 'a', embedding: [1, 2, 3, 4] });
    const r = await inject('POST', '/api/v1/recall', { embedding: [1, 2, 3, 4], k: 5, minScore: 0 });
    assert.equal(r.statusCode, 200);
    assert.equal(r.json().results[0].id, 'a');
    assert.equal(r.json().results[0].memory.id, 'a');
    assert.equal(typeof r.json().results[0].score, 'number');
  });

  it('passes space, filter and exact to the store, and lists and deletes spaces', async () => {
    await inject('POST', '/api/v1/memories', { id: 'a', embedding: [1, 2, 3, 4], confidence: 0.2 });
    for (const [id, confidence] of [
      ['a', 0.9],
      ['b', 0.1],
    ] as const) {
      await inject('POST', '/api/v1/memories', { id, space: 's', embedding: [1, 2, 3, 4], confidence });
    }
    const r = await inject('POST', '/api/v1/recall', {
      embedding: [1, 2, 3, 4],
      space: 's',
      filter: { confidence: { gte: 0.5 } },
      exact: true,
    });
    assert.deepEqual(
      r.json().results.map((h: { id: string; memory: { space: string } }) => `${h.memory.space}/${h.id}`),
      ['s/a'],
    );
    assert.deepEqual((await inject('GET', '/api/v1/spaces')).json(), {
      spaces: [
        { name: 'default', size: 1 },
        { name: 's', size: 2 },
      ],
    });
    assert.deepEqual((await inject('DELETE', '/api/v1/spaces/s')).json(), { space: 's', deleted: 2 });
    assert.equal(store.has('a', { space: 's' }), false);
    assert.equal(store.has('a'), true);
  });

  it('storage stats, healthz, metrics and the OpenAPI document', async () => {
    const s = await inject('GET', '/api/v1/metrics/storage');
    assert.deepEqual(s.json(), {
      totalBytes: 100,
      liveBytes: 60,
      deadBytes: 40,
      fragmentationRatio: 0.4,
      segments: 2,
      size: 0,
      isCompacting: false,
      diskFull: false,
      readOnly: false,
      spaces: [{ name: 'default', size: 0 }],
      index: { state: 'off', indexed: 0, tail: 0, built: 0, toBuild: 0, searches: 0, resident: 0, merges: 0 },
    });
    assert.deepEqual((await inject('GET', '/healthz')).json(), { status: 'ok' });
    const m = await inject('GET', '/metrics');
    assert.match(m.headers['content-type'] as string, /text\/plain/);
    assert.match(m.body, /warmstore_fragmentation_ratio 0.4/);
    const doc = (await inject('GET', '/docs/json')).json();
    assert.equal(doc.openapi, '3.1.0');
    for (const p of [
      '/api/v1/memories',
      '/api/v1/memories/{id}',
      '/api/v1/recall',
      '/api/v1/spaces',
      '/api/v1/spaces/{space}',
      '/api/v1/maintenance/compact',
    ]) {
      assert.ok(doc.paths[p], `OpenAPI document lacks ${p}`);
    }
    assert.ok(doc.components.schemas.Memory, 'shared schemas are named by $id');
    assert.ok(doc.components.schemas.SpaceInfo, 'the spaces list names its item schema');
    const recallBody = doc.paths['/api/v1/recall'].post.requestBody.content['application/json'].schema;
    assert.deepEqual(Object.keys(recallBody.properties.filter.properties).sort(), [
      'accessCount',
      'activation',
      'confidence',
      'createdAt',
      'decayRate',
      'lastAccess',
    ]);
    assert.equal(recallBody.properties.exact.type, 'boolean');
  });

  it('batch put: an item refused by the store alone is named, the others are written', async () => {
    const r = await inject('POST', '/api/v1/memories/batch', {
      memories: [
        { id: 'a', embedding: [1, 2, 3, 4], content: 'x'.repeat(2000) },
        { id: 'b', embedding: [1, 2, 3, 4] },
      ],
    });
    assert.equal(r.statusCode, 200, r.body);
    const [a, b] = r.json().results;
    assert.deepEqual(a.error, {
      code: 'INVALID_INPUT',
      message: 'invalid memories[0].content: too long',
      field: 'memories[0].content',
    });
    assert.deepEqual(b, { index: 1, id: 'b', ok: true, created: true });
    assert.deepEqual([...store.records.keys()], ['b']);
  });

  it('batch put: bodies parsed item by item answer as one parse would (spacing, poisoning, malformed)', async () => {
    const post = (payload: string) =>
      server.app.inject({
        method: 'POST',
        url: '/api/v1/memories/batch',
        headers: { 'content-type': 'application/json' },
        payload,
      });
    const e = encodeEmbeddingBase64(Float32Array.from([1, 2, 3, 4]));
    const ok = await post(
      `\n{ "memories" : [ {"id":"a","embedding":"${e}"} ,\n {"id":"b","embedding":[1,2,3,4]} ] }\n`,
    );
    assert.equal(ok.statusCode, 200, ok.body);
    assert.deepEqual([...store.records.keys()], ['a', 'b']);
    for (const bad of [
      `{"memories":[{"id":"c","embedding":"${e}","__proto__":{"x":1}}]}`,
      `{"memories":[{"id":"c","embedding":"${e}","constructor":{"prototype":{"x":1}}}]}`,
      `{"memories":[{"id":"c","embedding":"${e}"} {"id":"d","embedding":"${e}"}]}`,
      `{"memories":[{"id":"c","embedding":"${e}"}]`,
    ]) {
      const r = await post(bad);
      assert.equal(r.statusCode, 400, bad);
      assert.equal(r.json().error.field, 'body', bad);
    }
    // Twice: the last wins, as in JSON.parse.
    const twice = await post(`{"memories":[{"id":"c","embedding":"${e}"}],"memories":[]}`);
    assert.deepEqual(twice.json(), { results: [] });
    const extra = await post(`{"memories":[{"id":"c","embedding":"${e}"}],"other":1}`);
    assert.equal(extra.statusCode, 400, 'a member the schema does not know');
    assert.deepEqual([...store.records.keys()], ['a', 'b']);
  });

  it('batch put: a store failure fails the whole request with its status', async () => {
    store.putMany = async () => {
      throw new WarmStoreError('IO_ERROR', 'disk on fire');
    };
    const r = await inject('POST', '/api/v1/memories/batch', {
      memories: [{ id: 'a', embedding: [1, 2, 3, 4] }],
    });
    assert.equal(r.statusCode, 500);
    assert.equal(r.json().error.code, 'IO_ERROR');
    store.getError = new WarmStoreError('CORRUPTION_DETECTED', 'bad crc');
    const g = await inject('POST', '/api/v1/memories/batch/get', { ids: ['a'] });
    assert.equal(g.statusCode, 500);
    assert.equal(g.json().error.code, 'CORRUPTION_DETECTED');
  });

  it('batch limits come from the options', async () => {
    const small = await createServer({
      store,
      logger: false,
      metrics: { defaultMetrics: false },
      maxBatchItems: 2,
      batchBodyLimit: 200,
    });
    try {
      const ids = await small.app.inject({
        method: 'POST',
        url: '/api/v1/memories/batch/delete',
        payload: { ids: ['a', 'b', 'c'] },
      });
      assert.equal(ids.statusCode, 413);
      assert.equal(ids.json().error.code, 'PAYLOAD_TOO_LARGE');
      const body = await small.app.inject({
        method: 'POST',
        url: '/api/v1/memories/batch/get',
        payload: { ids: ['x'.repeat(250)] },
      });
      assert.equal(body.statusCode, 413);
      assert.equal(body.json().error.code, 'PAYLOAD_TOO_LARGE');
    } finally {
      await small.close();
    }
  });

  it('503 STORE_CLOSED once the store is closed', async () => {
    await store.close();
    const r = await inject('GET', '/api/v1/memories/a');
    assert.equal(r.statusCode, 503);
    assert.equal(r.json().error.code, 'STORE_CLOSED');
    assert.equal((await inject('GET', '/healthz')).statusCode, 503);
  });

  it('close() aborts a compaction started through the API and answers it 503', async () => {
    let started!: () => void;
    const running = new Promise<void>((r) => (started = r));
    store.compactImpl = (options) =>
      new Promise((_resolve, reject) => {
        started();
        options.signal?.addEventListener('abort', () => reject(options.signal?.reason));
      });
    const pending = inject('POST', '/api/v1/maintenance/compact');
    await running;
    await server.close();
    const r = await pending;
    assert.equal(r.statusCode, 503);
    assert.equal(r.json().error.code, 'SHUTTING_DOWN');
    assert.equal(store.closed, false, 'an injected store stays open: its owner closes it');
  });
});

describe('server shutdown (fake store)', () => {
  it('refuses new requests with 503 while in-flight store calls finish before the store closes', async () => {
    const store = new FakeStore(DIM);
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const realPut = store.put.bind(store);
    store.put = async (r) => {
      await gate;
      await realPut(r);
    };
    const server = await createServer({ store, logger: false, metrics: { defaultMetrics: false } });
    const inflight = server.app.inject({
      method: 'POST',
      url: '/api/v1/memories',
      payload: { id: 'slow', embedding: [1, 2, 3, 4] },
    });
    await new Promise((r) => setTimeout(r, 20));
    const closing = server.close();
    assert.equal(server.closing, true);
    const refused = await server.app.inject({ method: 'GET', url: '/healthz' });
    assert.equal(refused.statusCode, 503);
    assert.equal(refused.json().error.code, 'SHUTTING_DOWN');
    let closed = false;
    void closing.then(() => (closed = true));
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(closed, false, 'close() waits for the in-flight put');
    release();
    assert.equal((await inflight).statusCode, 201);
    await closing;
    assert.ok(store.records.has('slow'), 'the in-flight write completed');
  });
});
