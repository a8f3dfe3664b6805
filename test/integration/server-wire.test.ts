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
      ['space=alice', 'space'],
    ] as const) {
      it(`GET ?${query} is 400 naming ${field}`, async () => {
        const r = await call(base, 'GET', `/api/v1/memories/w1?${query}`);
        assert.equal(r.status, 400, r.text);
        assert.equal(errorOf(r.json).code, 'INVALID_INPUT');
        assert.equal(errorOf(r.json).field, field);
      });
    }

    it('an explicit default space is accepted; another space is refused on every route', async () => {
      assert.equal((await call(base, 'GET', '/api/v1/memories/w1?space=default')).status, 200);
      const e = b64(embeddingOf(2));
      const refused = [
        await call(base, 'POST', '/api/v1/memories', { id: 'sp', space: 'alice', embedding: e }),
        await call(base, 'DELETE', '/api/v1/memories/w1?space=alice'),
        await call(base, 'POST', '/api/v1/recall', { embedding: e, space: 'alice' }),
      ];
      for (const r of refused) {
        assert.equal(r.status, 400, r.text);
        assert.equal(errorOf(r.json).field, 'space');
        assert.equal(errorOf(r.json).message, 'memory spaces are not supported by this store yet');
      }
      assert.equal((await call(base, 'GET', '/api/v1/memories/sp')).status, 404, 'nothing written');
      assert.equal((await call(base, 'GET', '/api/v1/memories/w1')).status, 200, 'nothing deleted');
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
});
