/**
 * Memory spaces and recall filters over real HTTP on 127.0.0.1, against a real store: the same id
 * in two spaces is two memories on every route, API keys scoped to spaces, filtered recall
 * checked against a brute force, and deleting a space.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer,
  encodeEmbeddingBase64,
  type ApiKey,
  type StartedServer,
} from '../../src/server/index.js';
import { DIM, tempDir } from '../unit/server/fixtures.js';
import { call, errorOf, type Json } from './http-call.js';
import { cosine } from '../helpers/vectors.js';

const ADMIN = 'admin-0123456789abcdef';
const ALICE = 'alice-0123456789abcdef';
const ALICE_READER = 'alice-reader-0123456789';
const KEYS: ApiKey[] = [
  { key: ADMIN, spaces: ['*'], access: 'write' },
  { key: ALICE, spaces: ['alice', 'alice-tmp'], access: 'write' },
  { key: ALICE_READER, spaces: ['alice'], access: 'read' },
];
const as = (key: string): { headers: Record<string, string> } => ({
  headers: { authorization: `Bearer ${key}` },
});

/** A deterministic pseudo-random generator, so that a failure can be replayed. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const random = rng(42);
const vector = (): Float32Array => Float32Array.from({ length: DIM }, () => random() * 2 - 1);
const b64 = (e: Float32Array): string => encodeEmbeddingBase64(e);

interface Hit {
  id: string;
  score: number;
  memory: Json;
}

describe('memory spaces over HTTP', () => {
  let server: StartedServer;
  let base: string;
  let cleanup: () => Promise<void>;

  const admin = (method: string, path: string, body?: unknown): ReturnType<typeof call> =>
    call(base, method, path, body, as(ADMIN));
  const exportLines = async (query: string, key = ADMIN): Promise<Json[]> => {
    const r = await call(base, 'GET', `/api/v1/export${query}`, undefined, as(key));
    assert.equal(r.status, 200, r.text);
    return r.text
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l) as Json);
  };

  before(async () => {
    const t = await tempDir();
    cleanup = t.cleanup;
    server = await startServer({
      dataDir: t.dir,
      port: 0,
      logger: false,
      apiKeys: KEYS,
      storeOptions: { dimension: DIM, maintenanceIntervalMs: false },
    });
    base = server.url;
  });
  after(async () => {
    await server.close();
    await cleanup();
  });

  it('the same id in two spaces is two memories through every route', async () => {
    const e = vector();
    for (const [space, content] of [
      [undefined, 'in default'],
      ['alice', 'in alice'],
    ] as const) {
      const r = await admin('POST', '/api/v1/memories', {
        id: 'same',
        embedding: b64(e),
        content,
        ...(space === undefined ? {} : { space }),
      });
      assert.equal(r.status, 201, `created in ${space ?? 'default'}: ${r.text}`);
    }
    const d = await admin('GET', '/api/v1/memories/same');
    assert.deepEqual([d.json['space'], d.json['content']], ['default', 'in default']);
    const a = await admin('GET', '/api/v1/memories/same?space=alice');
    assert.deepEqual([a.json['space'], a.json['content']], ['alice', 'in alice']);

    // Batch put: one id in three spaces is three new memories, then three replacements.
    const items = ['alice', undefined, 'bob'].map((space) => ({
      id: 'pair',
      embedding: b64(vector()),
      content: `pair in ${space ?? 'default'}`,
      ...(space === undefined ? {} : { space }),
    }));
    for (const created of [true, false]) {
      const r = await admin('POST', '/api/v1/memories/batch', { memories: items });
      assert.equal(r.status, 200, r.text);
      const results = r.json['results'] as Array<{ ok: boolean; created: boolean }>;
      assert.deepEqual(
        results.map((x) => [x.ok, x.created]),
        [
          [true, created],
          [true, created],
          [true, created],
        ],
      );
    }

    const got = await admin('POST', '/api/v1/memories/batch/get', { ids: ['same', 'pair'], space: 'alice' });
    const found = got.json['results'] as Array<{ found: boolean; memory: Json }>;
    assert.deepEqual(
      found.map((x) => [x.memory['space'], x.memory['content']]),
      [
        ['alice', 'in alice'],
        ['alice', 'pair in alice'],
      ],
    );

    const hits = await admin('POST', '/api/v1/recall', { embedding: b64(e), space: 'alice', k: 10 });
    const results = hits.json['results'] as Hit[];
    assert.deepEqual(results.map((h) => h.id).sort(), ['pair', 'same']);
    assert.ok(results.every((h) => h.memory['space'] === 'alice'));
    assert.equal(results[0]?.id, 'same', 'its own embedding scores best');
    assert.equal(results[0]?.memory['content'], 'in alice');

    const aliceLines = await exportLines('?space=alice');
    assert.deepEqual(aliceLines.map((l) => `${l['space']}/${l['id']}`).sort(), ['alice/pair', 'alice/same']);
    const every = await exportLines('');
    assert.deepEqual(every.map((l) => `${l['space']}/${l['id']}`).sort(), [
      'alice/pair',
      'alice/same',
      'bob/pair',
      'default/pair',
      'default/same',
    ]);

    assert.equal((await admin('DELETE', '/api/v1/memories/same?space=alice')).status, 200);
    assert.equal((await admin('GET', '/api/v1/memories/same?space=alice')).status, 404);
    assert.equal((await admin('GET', '/api/v1/memories/same')).json['content'], 'in default');

    const del = await admin('POST', '/api/v1/memories/batch/delete', { ids: ['pair', 'pair'], space: 'bob' });
    assert.deepEqual(
      (del.json['results'] as Array<{ deleted: boolean }>).map((x) => x.deleted),
      [true, false],
    );
    assert.equal((await admin('GET', '/api/v1/memories/pair')).status, 200);
    assert.equal((await admin('GET', '/api/v1/memories/pair?space=alice')).status, 200);

    const spaces = (await admin('GET', '/api/v1/spaces')).json['spaces'] as Array<{
      name: string;
      size: number;
    }>;
    const sizes = Object.fromEntries(spaces.map((s) => [s.name, s.size]));
    assert.equal(sizes['default'], 2);
    assert.equal(sizes['alice'], 1);
    assert.equal(sizes['bob'] ?? 0, 0);
    const stats = await admin('GET', '/api/v1/metrics/storage');
    assert.deepEqual(stats.json['spaces'], spaces, 'storage stats list the same spaces');
  });

  it('a key scoped to one space gets 403 on another, on every route', async () => {
    await admin('POST', '/api/v1/memories', { id: 'secret', space: 'bob', embedding: b64(vector()) });
    const e = b64(vector());
    const attempts: Array<[string, string, unknown?]> = [
      ['GET', '/api/v1/memories/secret?space=bob'],
      ['DELETE', '/api/v1/memories/secret?space=bob'],
      ['POST', '/api/v1/memories', { id: 'x', space: 'bob', embedding: e }],
      [
        'POST',
        '/api/v1/memories/batch',
        {
          memories: [
            { id: 'x', space: 'alice', embedding: e },
            { id: 'y', space: 'bob', embedding: e },
          ],
        },
      ],
      [
        'POST',
        '/api/v1/memories/batch',
        {
          memories: [
            { id: 'x', space: 'alice', embedding: e },
            { id: 'y', embedding: e },
          ],
        },
      ],
      ['POST', '/api/v1/memories/batch/get', { ids: ['secret'], space: 'bob' }],
      ['POST', '/api/v1/memories/batch/delete', { ids: ['secret'], space: 'bob' }],
      ['POST', '/api/v1/recall', { embedding: e, space: 'bob' }],
      ['GET', '/api/v1/export?space=bob'],
      ['DELETE', '/api/v1/spaces/bob'],
      ['DELETE', '/api/v1/spaces/default'],
      ['GET', '/api/v1/metrics/storage'],
    ];
    for (const [method, path, body] of attempts) {
      const r = await call(base, method, path, body, as(ALICE));
      assert.equal(r.status, 403, `${method} ${path} ${JSON.stringify(body)}: ${r.text}`);
      assert.equal(errorOf(r.json).code, 'FORBIDDEN');
    }
    assert.equal((await admin('GET', '/api/v1/memories/secret?space=bob')).status, 200, 'nothing deleted');
    assert.equal((await admin('GET', '/api/v1/memories/x?space=alice')).status, 404, 'nothing written');

    // A read key cannot delete its own space.
    const ro = await call(base, 'DELETE', '/api/v1/spaces/alice', undefined, as(ALICE_READER));
    assert.equal(ro.status, 403, ro.text);

    // Without a named space, listing and exporting show the key's own spaces only.
    const listed = await call(base, 'GET', '/api/v1/spaces', undefined, as(ALICE));
    assert.deepEqual(
      (listed.json['spaces'] as Array<{ name: string }>).map((s) => s.name),
      ['alice'],
    );
    const lines = await exportLines('', ALICE);
    assert.ok(lines.length > 0);
    assert.ok(
      lines.every((l) => l['space'] === 'alice'),
      'no memory of another space is exported',
    );

    // In its own spaces the key works, deleting a space included.
    const put = await call(
      base,
      'POST',
      '/api/v1/memories',
      { id: 't', space: 'alice-tmp', embedding: e },
      as(ALICE),
    );
    assert.equal(put.status, 201, put.text);
    const gone = await call(base, 'DELETE', '/api/v1/spaces/alice-tmp', undefined, as(ALICE));
    assert.deepEqual(gone.json, { space: 'alice-tmp', deleted: 1 });
  });

  it('recall with a filter returns what a brute force over the stored memories returns', async () => {
    const t0 = 1_700_000_000_000;
    const stored: Array<{
      id: string;
      embedding: Float32Array;
      confidence: number;
      createdAt: number;
      accessCount: number;
    }> = [];
    for (let i = 0; i < 150; i++) {
      stored.push({
        id: `f${i}`,
        embedding: vector(),
        confidence: Math.round(random() * 1000) / 1000,
        createdAt: t0 + i * 1000,
        accessCount: i % 7,
      });
    }
    const memories = stored.map((m) => ({ ...m, space: 'filtered', embedding: b64(m.embedding) }));
    assert.equal((await admin('POST', '/api/v1/memories/batch', { memories })).status, 200);
    // Memories of another space that match the filter must not come back.
    const decoys = stored
      .slice(0, 20)
      .map((m) => ({ ...m, id: `decoy-${m.id}`, embedding: b64(m.embedding) }));
    assert.equal((await admin('POST', '/api/v1/memories/batch', { memories: decoys })).status, 200);

    const filter = {
      confidence: { gte: 0.3 },
      createdAt: { gte: t0 + 10_000, lt: t0 + 120_000 },
      accessCount: { gt: 1, lte: 5 },
    };
    const matches = (m: (typeof stored)[number]): boolean =>
      m.confidence >= 0.3 &&
      m.createdAt >= t0 + 10_000 &&
      m.createdAt < t0 + 120_000 &&
      m.accessCount > 1 &&
      m.accessCount <= 5;
    const query = vector();
    const expected = stored
      .filter(matches)
      .map((m) => ({ id: m.id, score: cosine(query, m.embedding) }))
      .sort((a, b) => b.score - a.score);
    assert.ok(expected.length > 20 && expected.length < 100, `a selective filter (${expected.length} match)`);

    for (const exact of [undefined, true, false]) {
      for (const k of [1, 10, 1000]) {
        const r = await admin('POST', '/api/v1/recall', {
          embedding: b64(query),
          space: 'filtered',
          filter,
          k,
          ...(exact === undefined ? {} : { exact }),
        });
        assert.equal(r.status, 200, r.text);
        const hits = r.json['results'] as Hit[];
        const want = expected.slice(0, k);
        assert.deepEqual(
          hits.map((h) => h.id),
          want.map((w) => w.id),
          `k=${k} exact=${String(exact)}`,
        );
        hits.forEach((h, i) => assert.ok(Math.abs(h.score - want[i]!.score) < 1e-5, `score of ${h.id}`));
      }
    }
  });

  it('a refused filter, exact or space is a 400 naming the field', async () => {
    const e = b64(vector());
    for (const [filter, field] of [
      [{ confidence: { gte: 'high' } }, 'filter.confidence.gte'],
      [{ confidence: { eq: 0.5 } }, 'filter.confidence.eq'],
      [{ colour: { gte: 1 } }, 'filter.colour'],
      [{ createdAt: 5 }, 'filter.createdAt'],
      [[], 'filter'],
    ] as const) {
      const r = await admin('POST', '/api/v1/recall', { embedding: e, filter });
      assert.equal(r.status, 400, r.text);
      assert.equal(errorOf(r.json).code, 'INVALID_INPUT');
      assert.equal(errorOf(r.json).field, field, JSON.stringify(filter));
    }
    const r = await admin('POST', '/api/v1/recall', { embedding: e, exact: 'yes' });
    assert.equal(errorOf(r.json).field, 'exact');
    const long = await admin('POST', '/api/v1/recall', { embedding: e, space: '€'.repeat(22) });
    assert.equal(long.status, 400);
    assert.equal(errorOf(long.json).field, 'space');
  });

  it('deleting a space removes its memories and leaves the other spaces intact', async () => {
    const gone = Array.from({ length: 5 }, (_, i) => ({
      id: `m${i}`,
      space: 'gone',
      embedding: b64(vector()),
    }));
    const kept = Array.from({ length: 3 }, (_, i) => ({
      id: `m${i}`,
      space: 'kept',
      embedding: b64(vector()),
    }));
    assert.equal(
      (await admin('POST', '/api/v1/memories/batch', { memories: [...gone, ...kept] })).status,
      200,
    );

    const r = await admin('DELETE', '/api/v1/spaces/gone');
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json, { space: 'gone', deleted: 5 });

    for (const m of gone)
      assert.equal((await admin('GET', `/api/v1/memories/${m.id}?space=gone`)).status, 404);
    const none = await admin('POST', '/api/v1/recall', { embedding: gone[0]!.embedding, space: 'gone' });
    assert.deepEqual(none.json['results'], []);
    assert.deepEqual(await exportLines('?space=gone'), []);
    const names = ((await admin('GET', '/api/v1/spaces')).json['spaces'] as Array<{ name: string }>).map(
      (s) => s.name,
    );
    assert.ok(!names.includes('gone'), `listed: ${names.join(', ')}`);

    for (const m of kept) {
      const got = await admin('GET', `/api/v1/memories/${m.id}?space=kept&encoding=base64`);
      assert.equal(got.json['embedding'], m.embedding, `${m.id} of kept intact`);
    }
    const hits = await admin('POST', '/api/v1/recall', { embedding: kept[0]!.embedding, space: 'kept' });
    assert.equal((hits.json['results'] as Hit[]).length, 3);

    assert.deepEqual((await admin('DELETE', '/api/v1/spaces/gone')).json, { space: 'gone', deleted: 0 });
    const again = await admin('POST', '/api/v1/memories', gone[0]);
    assert.equal(again.status, 201, 'a deleted space can be used again, empty');
    const spaces = (await admin('GET', '/api/v1/spaces')).json['spaces'] as Array<{
      name: string;
      size: number;
    }>;
    assert.deepEqual(
      spaces.find((s) => s.name === 'gone'),
      { name: 'gone', size: 1 },
    );
  });
});
