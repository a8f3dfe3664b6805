import assert from 'node:assert/strict';
import { describe, test, type TestContext } from 'node:test';
import { WarmStore, WarmStoreError, type MemoryRecord, type WarmStoreOptions } from '../../../src/index.js';
import { Rng } from '../../helpers/random.js';
import { makeTempDir, removeDir } from '../../helpers/tmp.js';

async function openScratch(t: TestContext, o: WarmStoreOptions): Promise<{ dir: string; store: WarmStore }> {
  const dir = await makeTempDir('warmstore-recall-');
  const holder: { store?: WarmStore } = {};
  t.after(async () => {
    await holder.store?.close().catch(() => undefined);
    await removeDir(dir);
  });
  holder.store = await WarmStore.open(dir, { maintenanceIntervalMs: false, ...o });
  return { dir, store: holder.store };
}

function gaussianVector(r: Rng, dim: number): Float32Array {
  const v = new Float32Array(dim);
  for (let i = 0; i < dim; i++) {
    // Box-Muller: directions spread over the sphere, so scores are varied.
    const u = 1 - r.next();
    const w = r.next();
    v[i] = Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * w);
  }
  return v;
}

/** Brute-force reference: cosine in float64 over the float32 values, best first, ties by id. */
function reference(
  records: ReadonlyMap<string, Float32Array>,
  q: Float32Array,
  k: number,
  minScore = -Infinity,
): Array<{ id: string; score: number }> {
  let qn = 0;
  for (const x of q) qn += x * x;
  qn = Math.sqrt(qn);
  const all: Array<{ id: string; score: number }> = [];
  for (const [id, e] of records) {
    let dot = 0;
    let n = 0;
    for (let i = 0; i < e.length; i++) {
      dot += e[i]! * q[i]!;
      n += e[i]! * e[i]!;
    }
    const score = n === 0 ? 0 : dot / (Math.sqrt(n) * qn);
    if (score >= minScore) all.push({ id, score });
  }
  all.sort((a, b) => b.score - a.score || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return all.slice(0, k);
}

describe('recall', () => {
  test('matches a brute-force cosine reference over 2000 random records (dim 64)', async (t) => {
    const DIM = 64;
    const { dir, store: first } = await openScratch(t, { dimension: DIM });
    let store = first;
    const r = new Rng(20240601);
    const vectors = new Map<string, Float32Array>();
    const batch: MemoryRecord[] = [];
    for (let i = 0; i < 2000; i++) {
      const id = `rec-${String(i).padStart(4, '0')}`;
      const e = gaussianVector(r, DIM);
      vectors.set(id, e);
      batch.push({ id, embedding: e, content: i % 3 === 0 ? `content ${i}` : null });
    }
    for (let i = 0; i < batch.length; i += 250) await store.putMany(batch.slice(i, i + 250));
    // Some churn, so freed and reused slots are exercised too.
    for (let i = 0; i < 2000; i += 17) {
      const id = `rec-${String(i).padStart(4, '0')}`;
      assert.equal(await store.delete(id), true);
      vectors.delete(id);
    }
    for (let i = 0; i < 40; i++) {
      const id = `new-${i}`;
      const e = gaussianVector(r, DIM);
      vectors.set(id, e);
      await store.put({ id, embedding: e });
    }

    const queries: Float32Array[] = [];
    for (let i = 0; i < 12; i++) queries.push(gaussianVector(r, DIM));
    // A query equal to a stored vector must find it first with score ~1.
    queries.push(vectors.get('rec-0001')!.slice());

    const check = async (label: string): Promise<void> => {
      for (const [qi, q] of queries.entries()) {
        for (const k of [1, 10, 57]) {
          const want = reference(vectors, q, k);
          const got = await store.recall(q, { k });
          assert.equal(got.length, want.length, `${label} q${qi} k${k}: count`);
          assert.deepEqual(
            got.map((h) => h.memory.id),
            want.map((h) => h.id),
            `${label} q${qi} k${k}: ids in order`,
          );
          for (let i = 0; i < got.length; i++) {
            assert.ok(
              Math.abs(got[i]!.score - want[i]!.score) <= 1e-5,
              `${label} q${qi} k${k} #${i}: score ${got[i]!.score} vs ${want[i]!.score}`,
            );
            if (i > 0) assert.ok(got[i - 1]!.score >= got[i]!.score, 'best first');
          }
        }
      }
      const self = await store.recall(queries[queries.length - 1]!, { k: 1 });
      assert.equal(self[0]?.memory.id, 'rec-0001');
      assert.ok(Math.abs(self[0]!.score - 1) < 1e-6);
      assert.equal(self[0]?.memory.content, null);
      const withContent = await store.recall(vectors.get('rec-0003')!, { k: 1 });
      assert.equal(withContent[0]?.memory.content, 'content 3', 'recall returns the full memory');
    };
    await check('open');
    await store.close();
    store = await WarmStore.open(dir, { maintenanceIntervalMs: false });
    try {
      await check('reopened');
      // k larger than the store returns everything, still sorted.
      const everything = await store.recall(queries[0]!, { k: 100_000 });
      assert.equal(everything.length, vectors.size);
      assert.deepEqual(
        everything.map((h) => h.memory.id),
        reference(vectors, queries[0]!, 100_000).map((h) => h.id),
      );
    } finally {
      await store.close();
    }
  });

  test('k defaults to 10 and minScore drops results below it', async (t) => {
    const DIM = 16;
    const { store } = await openScratch(t, { dimension: DIM });
    const r = new Rng(7);
    const vectors = new Map<string, Float32Array>();
    for (let i = 0; i < 300; i++) {
      const e = gaussianVector(r, DIM);
      vectors.set(`v${i}`, e);
      await store.put({ id: `v${i}`, embedding: e });
    }
    const q = gaussianVector(r, DIM);
    const dflt = await store.recall(q);
    assert.equal(dflt.length, 10);
    assert.deepEqual(
      dflt.map((h) => h.memory.id),
      reference(vectors, q, 10).map((h) => h.id),
    );
    for (const minScore of [0.9, 0.5, 0.2, 0, -0.3, 1.0000001]) {
      const want = reference(vectors, q, 1000, minScore);
      const got = await store.recall(Array.from(q), { k: 1000, minScore });
      assert.deepEqual(
        got.map((h) => h.memory.id),
        want.map((h) => h.id),
        `minScore ${minScore}`,
      );
      for (const h of got) assert.ok(h.score >= minScore, `score ${h.score} >= ${minScore}`);
    }
    // An embedding pointing the exact same way scores 1 and passes minScore 0.99999.
    const top = await store.recall(
      vectors.get('v42')!.map((x) => x * 3),
      { k: 1, minScore: 0.99999 },
    );
    assert.equal(top.length, 1);
    assert.equal(top[0]?.memory.id, 'v42');
    // Empty store answers with nothing.
    for (const id of vectors.keys()) await store.delete(id);
    assert.deepEqual(await store.recall(q, { k: 5 }), []);
  });

  test('ties are ordered by id, deterministically, whatever the insertion order', async (t) => {
    const { store } = await openScratch(t, { dimension: 8 });
    const same = Float32Array.from([1, 2, 3, 4, 5, 6, 7, 8]);
    const ids = ['delta', 'alpha', 'echo', 'charlie', 'bravo', 'Zulu', 'a', 'b-'];
    for (const id of ids) await store.put({ id, embedding: same });
    await store.put({ id: 'other', embedding: Float32Array.from([-1, 0, 0, 0, 0, 0, 0, 0]) });
    // Delete and re-add one so slot order differs from id order even more.
    await store.delete('alpha');
    await store.put({ id: 'alpha', embedding: same });
    const sorted = [...ids].sort();
    for (let i = 0; i < 3; i++) {
      const res = await store.recall(same, { k: ids.length + 1 });
      assert.deepEqual(
        res.map((h) => h.memory.id),
        [...sorted, 'other'],
      );
      const scores = new Set(res.slice(0, ids.length).map((h) => h.score));
      assert.equal(scores.size, 1, 'duplicates score the same');
    }
    const top3 = await store.recall(same, { k: 3 });
    assert.deepEqual(
      top3.map((h) => h.memory.id),
      sorted.slice(0, 3),
      'k cuts the tie group by id',
    );
  });

  test('bad queries are INVALID_INPUT: zero vector, wrong dimension, NaN, bad k or minScore', async (t) => {
    const { store } = await openScratch(t, { dimension: 8 });
    await store.put({ id: 'a', embedding: Float32Array.from([1, 0, 0, 0, 0, 0, 0, 0]) });
    const cases: Array<[string, () => Promise<unknown>, string]> = [
      ['zero query', () => store.recall(new Float32Array(8)), 'embedding'],
      ['-0 query', () => store.recall(new Float32Array(8).fill(-0)), 'embedding'],
      ['short query', () => store.recall(new Float32Array(7).fill(1)), 'embedding'],
      ['NaN query', () => store.recall(Float32Array.from([1, NaN, 0, 0, 0, 0, 0, 0])), 'embedding'],
      ['k 0', () => store.recall(new Float32Array(8).fill(1), { k: 0 }), 'k'],
      ['k 1.5', () => store.recall(new Float32Array(8).fill(1), { k: 1.5 }), 'k'],
      ['minScore NaN', () => store.recall(new Float32Array(8).fill(1), { minScore: NaN }), 'minScore'],
    ];
    for (const [name, fn, field] of cases) {
      await assert.rejects(fn(), (err: unknown) => {
        assert.ok(WarmStoreError.is(err, 'INVALID_INPUT'), `${name}: got ${String(err)}`);
        assert.ok(String(err.details.field).startsWith(field), `${name}: field ${String(err.details.field)}`);
        return true;
      });
    }
  });
});
