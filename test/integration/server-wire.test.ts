/**
 * The wire format over real HTTP on 127.0.0.1: base64 embeddings, `fields` and `encoding`,
 * spaces, and the batch routes.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, encodeEmbeddingBase64, type StartedServer } from '../../src/server/index.js';
import { DIM, embeddingOf, tempDir } from '../unit/server/fixtures.js';
import { call, errorOf, type Json } from './http-call.js';

const b64 = (values: number[] | Float32Array): string => encodeEmbeddingBase64(Float32Array.from(values));
const fromB64 = (s: string): Float32Array => {
  const bytes = Buffer.from(s, 'base64');
  return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
};

describe('HTTP wire format', () => {
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
      maxBatchItems: 50,
      batchBodyLimit: 32 * 1024,
      storeOptions: { dimension: DIM, maxContentBytes: 4096, maintenanceIntervalMs: false },
    });
    base = server.url;
    const put = await call(base, 'POST', '/api/v1/memories', {
      id: 'w1',
      embedding: b64(embeddingOf(1)),
      content: 'first',
      confidence: 0.5,
    });
    assert.equal(put.status, 201, put.text);
  });
  after(async () => {
    await server.close();
    await cleanup();
  });

  describe('embeddings and fields', () => {
    it('GET returns numbers by default, with the space, as application/json', async () => {
      const r = await call(base, 'GET', '/api/v1/memories/w1');
      assert.equal(r.status, 200);
      assert.match(r.headers.get('content-type') ?? '', /^application\/json/);
      assert.equal(r.json['space'], 'default');
      assert.deepEqual(Float32Array.from(r.json['embedding'] as number[]), embeddingOf(1));
      assert.deepEqual(Object.keys(r.json).sort(), [
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
    });

    it('GET ?encoding=base64 returns the same float32 bytes as a base64 string', async () => {
      const r = await call(base, 'GET', '/api/v1/memories/w1?encoding=base64');
      assert.equal(r.status, 200);
      assert.equal(typeof r.json['embedding'], 'string');
      assert.deepEqual(fromB64(r.json['embedding'] as string), embeddingOf(1));
      assert.equal(r.json['content'], 'first');
    });

    it('GET ?fields= chooses what the memory carries', async () => {
      const a = await call(base, 'GET', '/api/v1/memories/w1?fields=id,content');
      assert.deepEqual(a.json, { id: 'w1', content: 'first' });
      const m = await call(base, 'GET', '/api/v1/memories/w1?fields=metadata');
      assert.deepEqual(Object.keys(m.json).sort(), [
        'accessCount',
        'activation',
        'confidence',
        'createdAt',
        'decayRate',
        'lastAccess',
      ]);
      assert.equal(m.json['confidence'], 0.5);
      const e = await call(base, 'GET', '/api/v1/memories/w1?fields=embedding,space&encoding=base64');
      assert.deepEqual(Object.keys(e.json).sort(), ['embedding', 'space']);
      assert.deepEqual(fromB64(e.json['embedding'] as string), embeddingOf(1));
    });

    for (const [query, field] of [
      ['fields=id,colour', 'fields'],
      ['fields=', 'fields'],
      ['encoding=hex', 'encoding'],
      ['space=', 'space'],
      // 22 characters pass the schema's length; 66 bytes of UTF-8 do not pass the store's.
      [`space=${encodeURIComponent('€'.repeat(22))}`, 'space'],
    ] as const) {
      it(`GET ?${query} is 400 naming ${field}`, async () => {
        const r = await call(base, 'GET', `/api/v1/memories/w1?${query}`);
        assert.equal(r.status, 400, r.text);
        assert.equal(errorOf(r.json).code, 'INVALID_INPUT');
        assert.equal(errorOf(r.json).field, field);
      });
    }

    it('an explicit default space is the default; another space is another keyspace', async () => {
      assert.equal((await call(base, 'GET', '/api/v1/memories/w1?space=default')).status, 200);
      const e = b64(embeddingOf(2));
      const put = await call(base, 'POST', '/api/v1/memories', { id: 'sp', space: 'wire', embedding: e });
      assert.equal(put.status, 201, put.text);
      assert.equal((await call(base, 'GET', '/api/v1/memories/sp')).status, 404, 'not in default');
      const got = await call(base, 'GET', '/api/v1/memories/sp?space=wire&fields=id,space');
      assert.deepEqual(got.json, { id: 'sp', space: 'wire' });
      const del = await call(base, 'DELETE', '/api/v1/memories/w1?space=wire');
      assert.equal(del.status, 404, 'w1 lives in default only');
      const hits = await call(base, 'POST', '/api/v1/recall', { embedding: e, space: 'wire' });
      assert.deepEqual(
        (hits.json['results'] as Array<{ id: string }>).map((h) => h.id),
        ['sp'],
      );
      assert.equal((await call(base, 'DELETE', '/api/v1/memories/sp?space=wire')).status, 200);
      assert.equal((await call(base, 'GET', '/api/v1/memories/w1')).status, 200, 'default untouched');
    });

    const nan = Float32Array.from(embeddingOf(3));
    nan[2] = Number.NaN;
    const big = Array.from(embeddingOf(3));
    big[5] = 1e39;
    for (const [name, embedding, field] of [
      ['base64 of too few values', b64(new Float32Array(DIM - 1)), 'embedding'],
      ['base64 of too many values', b64(new Float32Array(DIM + 1)), 'embedding'],
      ['base64 that is not whole float32 values', Buffer.alloc(DIM * 4 - 2).toString('base64'), 'embedding'],
      ['invalid base64', `${b64(embeddingOf(3)).slice(0, -4)}!!!!`, 'embedding'],
      ['NaN in base64', encodeEmbeddingBase64(nan), 'embedding[2]'],
      ['a number that overflows float32', big, 'embedding[5]'],
    ] as const) {
      it(`400 naming ${field}: ${name}`, async () => {
        const r = await call(base, 'POST', '/api/v1/memories', { id: 'bad', embedding });
        assert.equal(r.status, 400, r.text);
        assert.equal(errorOf(r.json).code, 'INVALID_INPUT');
        assert.equal(errorOf(r.json).field, field);
        const q = await call(base, 'POST', '/api/v1/recall', { embedding });
        assert.equal(q.status, 400, q.text);
        assert.equal(errorOf(q.json).field, field);
        assert.equal((await call(base, 'GET', '/api/v1/memories/bad')).status, 404, 'nothing written');
      });
    }

    it('recall hits leave the embedding out unless fields asks for it', async () => {
      const query = b64(embeddingOf(1));
      const plain = await call(base, 'POST', '/api/v1/recall', { embedding: query, k: 1 });
      assert.equal(plain.status, 200, plain.text);
      const hit = (plain.json['results'] as Json[])[0]!;
      assert.equal(hit['id'], 'w1');
      const memory = hit['memory'] as Json;
      assert.equal(memory['content'], 'first');
      assert.equal(memory['space'], 'default');
      assert.equal('embedding' in memory, false);

      const withEmbedding = await call(base, 'POST', '/api/v1/recall', {
        embedding: query,
        k: 1,
        fields: ['id', 'embedding'],
        encoding: 'base64',
      });
      const m2 = (withEmbedding.json['results'] as Json[])[0]!['memory'] as Json;
      assert.deepEqual(Object.keys(m2).sort(), ['embedding', 'id']);
      assert.deepEqual(fromB64(m2['embedding'] as string), embeddingOf(1));

      const numbers = await call(base, 'POST', '/api/v1/recall', {
        embedding: query,
        k: 1,
        fields: ['embedding'],
      });
      const m3 = (numbers.json['results'] as Json[])[0]!['memory'] as Json;
      assert.deepEqual(Float32Array.from(m3['embedding'] as number[]), embeddingOf(1));

      const bad = await call(base, 'POST', '/api/v1/recall', { embedding: query, fields: ['vector'] });
      assert.equal(bad.status, 400);
      assert.equal(errorOf(bad.json).field, 'fields[0]');
    });
  });

  describe('batches', () => {
    interface PutItem {
      index: number;
      id?: string;
      ok: boolean;
      created?: boolean;
      error?: { code: string; message: string; field?: string };
    }

    it('puts many: valid items are written, each refused item is named', async () => {
      const e = (i: number): string => b64(embeddingOf(i));
      const memories: unknown[] = [
        { id: 'bp0', embedding: e(10), content: 'zero' },
        { id: 'bp1', embedding: b64(new Float32Array(DIM - 1)) },
        { id: 'bp2', embedding: e(12), colour: 'red' },
        { id: 'bp3', embedding: e(13), space: '€'.repeat(22) },
        { id: 'bp4', embedding: e(14), content: 'x'.repeat(5000) },
        { id: '€'.repeat(100), embedding: e(15) },
        { embedding: e(16) },
        'not an object',
        { id: 'bp8', embedding: Array.from(embeddingOf(18)), confidence: 0.25 },
        { id: 'bp0', embedding: e(19), content: 'zero again' },
      ];
      const r = await call(base, 'POST', '/api/v1/memories/batch', { memories });
      assert.equal(r.status, 200, r.text);
      const results = r.json['results'] as PutItem[];
      assert.equal(results.length, memories.length);
      results.forEach((x, i) => assert.equal(x.index, i));
      const refused = Object.fromEntries(
        results.filter((x) => !x.ok).map((x) => [x.index, [x.error?.code, x.error?.field]]),
      );
      assert.deepEqual(refused, {
        1: ['INVALID_INPUT', 'memories[1].embedding'],
        2: ['INVALID_INPUT', 'memories[2].colour'],
        3: ['INVALID_INPUT', 'memories[3].space'],
        4: ['INVALID_INPUT', 'memories[4].content'],
        5: ['INVALID_INPUT', 'memories[5].id'],
        6: ['INVALID_INPUT', 'memories[6].id'],
        7: ['INVALID_INPUT', 'memories[7]'],
      });
      assert.match(results[4]?.error?.message ?? '', /memories\[4\]\.content/);
      assert.equal(results[1]?.id, 'bp1', 'a refused item keeps its id when it had one');
      assert.deepEqual(
        results.filter((x) => x.ok).map((x) => [x.index, x.id, x.created]),
        [
          [0, 'bp0', true],
          [8, 'bp8', true],
          [9, 'bp0', false],
        ],
      );
      const got = await call(base, 'GET', '/api/v1/memories/bp0');
      assert.equal(got.json['content'], 'zero again', 'the later item of a repeated id wins');
      assert.equal((await call(base, 'GET', '/api/v1/memories/bp8')).json['confidence'], 0.25);
      for (const id of ['bp1', 'bp2', 'bp3', 'bp4']) {
        assert.equal((await call(base, 'GET', `/api/v1/memories/${id}`)).status, 404, `${id} not written`);
      }
    });

    it('puts many when every item is valid, reporting created and replaced', async () => {
      const memories = [0, 1, 2].map((i) => ({ id: `ok${i}`, embedding: b64(embeddingOf(20 + i)) }));
      const first = await call(base, 'POST', '/api/v1/memories/batch', { memories });
      assert.deepEqual(
        (first.json['results'] as PutItem[]).map((x) => [x.ok, x.created]),
        [
          [true, true],
          [true, true],
          [true, true],
        ],
      );
      const again = await call(base, 'POST', '/api/v1/memories/batch', { memories });
      assert.deepEqual(
        (again.json['results'] as PutItem[]).map((x) => x.created),
        [false, false, false],
      );
      const got = await call(base, 'GET', '/api/v1/memories/ok2?encoding=base64');
      assert.deepEqual(fromB64(got.json['embedding'] as string), embeddingOf(22));
    });

    it('413 with a JSON body past the item limit or the body limit, and nothing written', async () => {
      const many = Array.from({ length: 51 }, (_, i) => ({ id: `many${i}`, embedding: b64(embeddingOf(i)) }));
      const r = await call(base, 'POST', '/api/v1/memories/batch', { memories: many });
      assert.equal(r.status, 413, r.text);
      assert.equal(errorOf(r.json).code, 'PAYLOAD_TOO_LARGE');
      assert.match(errorOf(r.json).message, /at most 50 items/);
      assert.equal((await call(base, 'GET', '/api/v1/memories/many0')).status, 404);

      const big = Array.from({ length: 20 }, (_, i) => ({
        id: `big${i}`,
        embedding: b64(embeddingOf(i)),
        content: 'y'.repeat(2000),
      }));
      const r2 = await call(base, 'POST', '/api/v1/memories/batch', { memories: big });
      assert.equal(r2.status, 413, r2.text);
      assert.equal(errorOf(r2.json).code, 'PAYLOAD_TOO_LARGE');
      assert.equal((await call(base, 'GET', '/api/v1/memories/big0')).status, 404);

      const ids = Array.from({ length: 51 }, (_, i) => `id${i}`);
      for (const path of ['/api/v1/memories/batch/get', '/api/v1/memories/batch/delete']) {
        const r3 = await call(base, 'POST', path, { ids });
        assert.equal(r3.status, 413, `${path}: ${r3.text}`);
        assert.equal(errorOf(r3.json).field, 'ids');
      }
    });

    it('400 naming the field for a malformed batch request', async () => {
      for (const [path, body, field] of [
        ['/api/v1/memories/batch', { memories: 'all' }, 'memories'],
        ['/api/v1/memories/batch', {}, 'memories'],
        ['/api/v1/memories/batch/get', { ids: ['a', 5] }, 'ids[1]'],
        ['/api/v1/memories/batch/get', { ids: ['a'], space: '€'.repeat(22) }, 'space'],
        ['/api/v1/memories/batch/get', { ids: ['a'], space: '' }, 'space'],
        ['/api/v1/memories/batch/get', { ids: ['a'], encoding: 'hex' }, 'encoding'],
        ['/api/v1/memories/batch/get', { ids: ['€'.repeat(100)] }, 'ids[0]'],
        ['/api/v1/memories/batch/delete', { ids: [''] }, 'ids[0]'],
        ['/api/v1/memories/batch/delete', { ids: ['w1'], space: '€'.repeat(22) }, 'space'],
      ] as const) {
        const r = await call(base, 'POST', path, body);
        assert.equal(r.status, 400, `${path} ${JSON.stringify(body)}: ${r.text}`);
        assert.equal(errorOf(r.json).code, 'INVALID_INPUT');
        assert.equal(errorOf(r.json).field, field);
      }
      assert.equal((await call(base, 'GET', '/api/v1/memories/w1')).status, 200, 'nothing deleted');
    });

    it('gets many in order, with found false for missing ids, fields and base64', async () => {
      const r = await call(base, 'POST', '/api/v1/memories/batch/get', {
        ids: ['ok1', 'missing', 'ok0', 'ok1'],
        fields: ['id', 'embedding'],
        encoding: 'base64',
      });
      assert.equal(r.status, 200, r.text);
      const results = r.json['results'] as Array<{ id: string; found: boolean; memory?: Json }>;
      assert.deepEqual(
        results.map((x) => [x.id, x.found]),
        [
          ['ok1', true],
          ['missing', false],
          ['ok0', true],
          ['ok1', true],
        ],
      );
      assert.equal(results[1]?.memory, undefined);
      assert.deepEqual(Object.keys(results[0]?.memory ?? {}).sort(), ['embedding', 'id']);
      assert.deepEqual(fromB64(results[2]?.memory?.['embedding'] as string), embeddingOf(20));
      const plain = await call(base, 'POST', '/api/v1/memories/batch/get', { ids: ['w1'] });
      const m = (plain.json['results'] as Array<{ memory: Json }>)[0]!.memory;
      assert.equal(m['space'], 'default');
      assert.deepEqual(Float32Array.from(m['embedding'] as number[]), embeddingOf(1));
    });

    it('deletes many, answering deleted per id', async () => {
      const r = await call(base, 'POST', '/api/v1/memories/batch/delete', {
        ids: ['ok0', 'nope', 'ok1', 'ok0'],
      });
      assert.equal(r.status, 200, r.text);
      assert.deepEqual(r.json['results'], [
        { id: 'ok0', deleted: true },
        { id: 'nope', deleted: false },
        { id: 'ok1', deleted: true },
        { id: 'ok0', deleted: false },
      ]);
      assert.equal((await call(base, 'GET', '/api/v1/memories/ok0')).status, 404);
      assert.equal((await call(base, 'GET', '/api/v1/memories/ok2')).status, 200, 'others untouched');
    });

    it('the OpenAPI document lists the batch routes and the item schema', async () => {
      const doc = await call(base, 'GET', '/docs/json');
      const paths = doc.json['paths'] as Record<string, Record<string, Json>>;
      for (const p of [
        '/api/v1/memories/batch',
        '/api/v1/memories/batch/get',
        '/api/v1/memories/batch/delete',
      ]) {
        assert.ok(paths[p]?.['post'], `OpenAPI lacks ${p}`);
      }
      const body = JSON.stringify(paths['/api/v1/memories/batch']?.['post']?.['requestBody']);
      assert.match(body, /"accessCount"/, 'items are documented with the memory schema');
    });
  });
});
