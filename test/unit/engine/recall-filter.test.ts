/**
 * Recall with spaces and metadata filters against a brute-force model: every result is in the
 * space and satisfies the filter exactly, none is deleted, scores are exact cosines, results are
 * best first, and there are k of them whenever k memories match.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { WarmStore, WarmStoreError, type MetadataFilter, type WarmStoreOptions } from '../../../src/index.js';
import { makeTempDir, removeDir, tempDir } from '../../helpers/tmp.js';
import { cosine } from '../../helpers/vectors.js';

const DIM = 16;
const OPTS: WarmStoreOptions = {
  dimension: DIM,
  maintenanceIntervalMs: false,
  maintenance: { startupCompaction: 'off' },
};

interface Mem {
  space: string;
  id: string;
  embedding: Float32Array;
  confidence: number;
  activation: number;
  createdAt: number;
  accessCount: number;
}

const rangeArb = fc.record(
  {
    gt: fc.integer({ min: 0, max: 100 }),
    gte: fc.integer({ min: 0, max: 100 }),
    lt: fc.integer({ min: 0, max: 100 }),
    lte: fc.integer({ min: 0, max: 100 }),
  },
  { requiredKeys: [] },
);
const filterArb: fc.Arbitrary<MetadataFilter | undefined> = fc.option(
  fc.record(
    {
      confidence: rangeArb.map((r) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, v / 100]))),
      activation: rangeArb,
      createdAt: rangeArb,
      accessCount: rangeArb,
    },
    { requiredKeys: [] },
  ),
  { nil: undefined },
);

/** The filter as its words say, written here apart from the code under test (no compiled bounds). */
function modelMatches(filter: MetadataFilter | undefined, m: Record<string, unknown>): boolean {
  for (const [field, range] of Object.entries(filter ?? {})) {
    const x = m[field] as number;
    const r = range as { gt?: number; gte?: number; lt?: number; lte?: number } | undefined;
    if (r?.gt !== undefined && !(x > r.gt)) return false;
    if (r?.gte !== undefined && !(x >= r.gte)) return false;
    if (r?.lt !== undefined && !(x < r.lt)) return false;
    if (r?.lte !== undefined && !(x <= r.lte)) return false;
  }
  return true;
}

describe('recall with spaces and filters against a brute-force model', () => {
  test('random memories, deletes and updates between queries, random filters and spaces', async () => {
    const memArb = fc.record({
      space: fc.constantFrom('default', 'u1', 'u2'),
      id: fc.integer({ min: 0, max: 40 }).map((i) => `m${i}`),
      embedding: fc.array(fc.float({ min: -1, max: 1, noNaN: true }), { minLength: DIM, maxLength: DIM }),
      confidence: fc.integer({ min: 0, max: 100 }).map((x) => x / 100),
      activation: fc.integer({ min: 0, max: 100 }),
      createdAt: fc.integer({ min: 0, max: 100 }),
      accessCount: fc.integer({ min: 0, max: 100 }),
    });
    const stepArb = fc.oneof(
      { weight: 5, arbitrary: fc.record({ t: fc.constant('put' as const), m: memArb }) },
      {
        weight: 2,
        arbitrary: fc.record({
          t: fc.constant('delete' as const),
          space: fc.constantFrom('default', 'u1', 'u2'),
          id: fc.integer({ min: 0, max: 40 }).map((i) => `m${i}`),
        }),
      },
      {
        weight: 2,
        arbitrary: fc.record({
          t: fc.constant('query' as const),
          space: fc.constantFrom('default', 'u1', 'u2'),
          k: fc.integer({ min: 1, max: 12 }),
          filter: filterArb,
          q: fc.array(fc.float({ min: -1, max: 1, noNaN: true }), { minLength: DIM, maxLength: DIM }),
        }),
      },
    );
    await fc.assert(
      fc.asyncProperty(fc.array(stepArb, { minLength: 5, maxLength: 60 }), async (steps) => {
        const dir = await makeTempDir();
        const store = await WarmStore.open(dir, OPTS);
        const model = new Map<string, Mem>();
        try {
          for (const s of steps) {
            if (s.t === 'put') {
              const e = Float32Array.from(s.m.embedding);
              if (e.every((x) => x === 0)) e[0] = 1;
              const m: Mem = { ...s.m, embedding: e };
              await store.put({ ...m, content: null });
              model.set(`${m.space}/${m.id}`, m);
            } else if (s.t === 'delete') {
              assert.equal(await store.delete(s.id, { space: s.space }), model.delete(`${s.space}/${s.id}`));
            } else {
              const q = Float32Array.from(s.q);
              if (q.every((x) => x === 0)) q[0] = 1;
              const res = await store.recall(q, {
                k: s.k,
                space: s.space,
                ...(s.filter ? { filter: s.filter } : {}),
              });
              const matching = [...model.values()]
                .filter((m) => m.space === s.space && modelMatches(s.filter, { ...m }))
                .map((m) => ({ m, score: cosine(q, m.embedding) }))
                .sort((a, b) => b.score - a.score);
              assert.equal(res.length, Math.min(s.k, matching.length), 'k results whenever k match');
              for (let i = 0; i < res.length; i++) {
                const r = res[i]!;
                const key = `${r.memory.space}/${r.memory.id}`;
                const m = model.get(key);
                assert.ok(m, `${key} is not deleted`);
                assert.equal(r.memory.space, s.space);
                assert.ok(modelMatches(s.filter, { ...r.memory }), `${key} satisfies the filter`);
                assert.ok(Math.abs(r.score - cosine(q, m.embedding)) < 1e-5, 'the score is the exact cosine');
                assert.ok(r.score <= 1 && r.score >= -1);
                if (i > 0) assert.ok(res[i - 1]!.score >= r.score, 'best first');
              }
              const lowest = res.at(-1)?.score ?? Infinity;
              const returned = new Set(res.map((r) => r.memory.id));
              for (const x of matching) {
                if (!returned.has(x.m.id))
                  assert.ok(x.score <= lowest + 1e-5, `${x.m.id} should have been returned`);
              }
            }
          }
        } finally {
          await store.close();
          await removeDir(dir);
        }
      }),
      { numRuns: 30 },
    );
  });

  test('bad filters are refused naming the field', async (t) => {
    const dir = await tempDir(t);
    const store = await WarmStore.open(dir, OPTS);
    t.after(() => store.close());
    const q = new Float32Array(DIM).fill(1);
    for (const [filter, field] of [
      [{ nope: { gt: 1 } }, 'filter.nope'],
      [{ confidence: { between: 1 } }, 'filter.confidence.between'],
      [{ confidence: { gte: Number.NaN } }, 'filter.confidence.gte'],
      [{ confidence: 5 }, 'filter.confidence'],
      [[1], 'filter'],
    ] as const) {
      await assert.rejects(
        store.recall(q, { filter: filter as unknown as MetadataFilter }),
        (err: unknown) => WarmStoreError.is(err, 'INVALID_INPUT') && err.details.field === field,
        field,
      );
    }
    await assert.rejects(
      store.recall(q, { exact: 'yes' as unknown as boolean }),
      (err: unknown) => WarmStoreError.is(err, 'INVALID_INPUT') && err.details.field === 'exact',
    );
  });

  test('a 1%-selective filter still returns k exact results', async (t) => {
    const dir = await tempDir(t);
    const store = await WarmStore.open(dir, OPTS);
    t.after(() => store.close());
    const recs = [];
    for (let i = 0; i < 2000; i++) {
      const e = new Float32Array(DIM);
      for (let d = 0; d < DIM; d++) e[d] = Math.sin(i * 7.1 + d * 1.3);
      recs.push({ id: `m${i}`, embedding: e, accessCount: i % 100 });
    }
    await store.putMany(recs);
    const res = await store.recall(recs[5]!.embedding, {
      k: 10,
      filter: { accessCount: { gte: 42, lte: 42 } },
    });
    assert.equal(res.length, 10);
    for (const r of res) assert.equal(r.memory.accessCount, 42);
  });
});
