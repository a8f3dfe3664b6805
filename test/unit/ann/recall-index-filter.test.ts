/**
 * The recall-filter guarantees on the index path (a store large enough, and `annMinMemories` low
 * enough, for the planner to pick the index): every result is in the space and satisfies the
 * filter, none is deleted, scores are exact cosines, best first, and k results whenever k match.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { WarmStore, type MetadataFilter } from '../../../src/index.js';
import { compileFilter, matchesMetadata } from '../../../src/engine/filter.js';
import { Rng } from '../../helpers/random.js';
import { tempDir } from '../../helpers/tmp.js';
import { Clustered, indexSettled } from './data.js';
import { cosine } from '../../helpers/vectors.js';

const DIM = 32;

interface Mem {
  space: string;
  id: string;
  embedding: Float32Array;
  confidence: number;
  createdAt: number;
}

test('spaces and filters stay exact when recall goes through the index', async (t) => {
  const dir = await tempDir(t);
  const store = await WarmStore.open(dir, {
    dimension: DIM,
    maintenanceIntervalMs: false,
    maintenance: { startupCompaction: 'off' },
    annMinMemories: 200,
  });
  t.after(() => store.close());
  const gen = new Clustered(DIM, 3, 20);
  const rng = new Rng(5);
  const model = new Map<string, Mem>();
  const spaces = ['default', 'u1', 'u2'];
  const put = (space: string, id: string): Mem => {
    const m = { space, id, embedding: gen.next(), confidence: rng.int(100) / 100, createdAt: rng.int(1000) };
    model.set(`${space}/${id}`, m);
    return m;
  };
  for (const space of spaces) {
    await store.putMany(Array.from({ length: 2000 }, (_, i) => ({ ...put(space, `m${i}`), content: null })));
  }
  await indexSettled(store);
  // Deletes and updates, some still unacknowledged by the index when the queries run.
  const writes: Promise<unknown>[] = [];
  for (let i = 0; i < 300; i++) {
    const space = spaces[rng.int(3)]!;
    const id = `m${rng.int(2000)}`;
    if (rng.bool()) {
      model.delete(`${space}/${id}`);
      writes.push(store.delete(id, { space }));
    } else {
      writes.push(store.put({ ...put(space, id), content: null }));
    }
  }
  await Promise.all(writes);

  const s0 = store.indexStatus.searches;
  let found = 0;
  let asked = 0;
  for (let n = 0; n < 80; n++) {
    const space = spaces[rng.int(3)]!;
    const k = 1 + rng.int(20);
    const lo = rng.int(60) / 100;
    const filter: MetadataFilter | undefined =
      n % 4 === 0
        ? undefined
        : n % 4 === 1
          ? { confidence: { gte: lo } }
          : { confidence: { gte: lo }, createdAt: { lt: 300 + rng.int(700) } };
    const q = gen.next();
    const res = await store.recall(q, { k, space, ...(filter ? { filter } : {}) });
    const exact = await store.recall(q, { k, space, exact: true, ...(filter ? { filter } : {}) });
    const f = compileFilter(filter);
    const matching = [...model.values()].filter(
      (m) =>
        m.space === space &&
        matchesMetadata(f, { ...m, activation: 0, accessCount: 0, decayRate: 0, lastAccess: 0 }),
    );
    assert.equal(res.length, Math.min(k, matching.length), 'k results whenever k match');
    for (let i = 0; i < res.length; i++) {
      const r = res[i]!;
      const m = model.get(`${r.memory.space}/${r.memory.id}`);
      assert.ok(m, `${r.memory.space}/${r.memory.id} is not deleted`);
      assert.equal(r.memory.space, space);
      assert.ok(matchesMetadata(f, r.memory), 'satisfies the filter');
      assert.deepEqual(r.memory.embedding, m.embedding, 'its current version');
      assert.ok(Math.abs(r.score - cosine(q, m.embedding)) < 1e-5, 'the score is the exact cosine');
      if (i > 0) assert.ok(res[i - 1]!.score >= r.score, 'best first');
    }
    const ids = new Set(exact.map((r) => r.memory.id));
    found += res.filter((r) => ids.has(r.memory.id)).length;
    asked += exact.length;
  }
  assert.ok(store.indexStatus.searches - s0 >= 40, `the index answered ${store.indexStatus.searches - s0}`);
  assert.ok(found / asked >= 0.9, `recall against exact ${found / asked}`);
});
