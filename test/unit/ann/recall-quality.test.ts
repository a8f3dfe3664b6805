/**
 * Sampled recall: the store compares some index answers with exact ones; good data keeps the
 * index, data that defeats it (uniform random vectors) sends recall to the exact scan.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { WarmStore, type WarmStoreOptions } from '../../../src/index.js';
import { withTestHooks } from '../../../src/testing/index.js';
import { Rng } from '../../helpers/random.js';
import { tempDir } from '../../helpers/tmp.js';
import { Clustered, indexSettled } from './data.js';

async function waitForEstimate(store: WarmStore, next: () => Float32Array): Promise<number> {
  for (let i = 0; i < 400; i++) {
    await store.recall(next(), { k: 10 });
    // Samples of the index path run beside it: give them a moment.
    await new Promise((r) => setTimeout(r, 5));
    const e = store.indexStatus.recallEstimate;
    if (e !== undefined) return e;
  }
  throw new Error(`no estimate: ${JSON.stringify(store.indexStatus)}`);
}

test('clustered data: the sampled recall is high and recall stays on the index', async (t) => {
  const dir = await tempDir(t);
  const store = await WarmStore.open(dir, {
    dimension: 32,
    maintenanceIntervalMs: false,
    annMinMemories: 100,
  });
  t.after(() => store.close());
  const gen = new Clustered(32, 8, 10);
  await store.putMany(
    Array.from({ length: 3000 }, (_, i) => ({ id: `m${i}`, embedding: gen.next(), content: null })),
  );
  await indexSettled(store);
  const estimate = await waitForEstimate(store, () => gen.next());
  assert.ok(estimate >= 0.9, `estimate ${estimate}`);
  const before = store.indexStatus.searches;
  for (let i = 0; i < 10; i++) await store.recall(gen.next(), { k: 10 });
  assert.equal(store.indexStatus.searches, before + 10, 'answered by the index');
});

test('the sampled recall is saved with the index: a reopened store knows it before its first recall', async (t) => {
  const dir = await tempDir(t);
  const opts: WarmStoreOptions = { dimension: 32, maintenanceIntervalMs: false, annMinMemories: 100 };
  const gen = new Clustered(32, 8, 11);
  {
    const store = await WarmStore.open(dir, opts);
    await store.putMany(
      Array.from({ length: 3000 }, (_, i) => ({ id: `m${i}`, embedding: gen.next(), content: null })),
    );
    await indexSettled(store);
    await waitForEstimate(store, () => gen.next());
    await store.checkpoint();
    await store.close();
  }
  const store = await WarmStore.open(dir, opts);
  t.after(() => store.close());
  await indexSettled(store);
  const estimate = store.indexStatus.recallEstimate;
  assert.ok(estimate !== undefined && estimate >= 0.9, `estimate ${estimate} before any recall`);
});

test('data the index answers poorly: recall scans exactly', async (t) => {
  const dim = 256;
  const dir = await tempDir(t);
  const rng = new Rng(3);
  const next = (): Float32Array => Float32Array.from({ length: dim }, () => rng.next() * 2 - 1);
  // Uniform random vectors give this small index a recall@10 near 0.9; the floor is raised above
  // that to reach the path that real, larger stores of such data take at the default floor.
  const opts: WarmStoreOptions = withTestHooks(
    { dimension: dim, maintenanceIntervalMs: false, annMinMemories: 100 },
    { annMinRecall: 0.99 },
  );
  const store = await WarmStore.open(dir, opts);
  t.after(() => store.close());
  for (let b = 0; b < 5000; b += 1000) {
    await store.putMany(
      Array.from({ length: 1000 }, (_, i) => ({ id: `u${b + i}`, embedding: next(), content: null })),
    );
  }
  await indexSettled(store);
  const estimate = await waitForEstimate(store, next);
  assert.ok(estimate < 0.99, `estimate ${estimate}`);
  const before = store.indexStatus.searches;
  for (let i = 0; i < 60; i++) {
    const q = next();
    assert.deepEqual(
      (await store.recall(q, { k: 10 })).map((h) => h.memory.id),
      (await store.recall(q, { k: 10, exact: true })).map((h) => h.memory.id),
      'the exact answer',
    );
  }
  const asked = store.indexStatus.searches - before;
  assert.ok(asked <= 1, `the index asked only to sample: ${asked} of 60`);
});
