/**
 * The recall index built from nothing over a store that has none (as after its files were lost),
 * while writes go on: the build's adds run on every core once the index holds 100K vectors, the
 * writes' adds on the cores the event loop leaves, and both share the index's per-thread contexts.
 * Afterwards every sampled memory must be found through the index by its own vector (a node the
 * concurrent insertion left unreachable is not), as must every memory written during the build.
 *
 * The 150K run, which crosses the multi-threaded threshold, is opt-in (`npm run test:slow`); the
 * default suite builds 3,000 on one thread with the same checks.
 */
import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import { WarmStore, type WarmStoreOptions } from '../../src/index.js';
import { Clustered, indexSettled } from '../unit/ann/data.js';
import { tempDir } from '../helpers/tmp.js';

const SLOW = process.env.WARMSTORE_SLOW === '1';
const DIM = 128;

async function buildWhileWriting(t: TestContext, n: number): Promise<void> {
  const dir = await tempDir(t);
  const gen = new Clustered(DIM, 11);
  const vectors: Float32Array[] = [];
  const base: WarmStoreOptions = { dimension: DIM, maintenanceIntervalMs: false };
  // Filled with the index off, so that the reopen below builds it from the whole table.
  let store = await WarmStore.open(dir, { ...base, annMinMemories: 2 ** 31 });
  for (let i = 0; i < n; i += 1000) {
    const ps: Promise<void>[] = [];
    for (let j = i; j < Math.min(n, i + 1000); j++) {
      const v = gen.next();
      vectors.push(v);
      ps.push(store.put({ id: `m${j}`, embedding: v }));
    }
    await Promise.all(ps);
  }
  await store.close();

  store = await WarmStore.open(dir, { ...base, annMinMemories: 1000 });
  t.after(() => store.close());
  while (store.indexStatus.state === 'loading') await new Promise((r) => setTimeout(r, 5));
  assert.equal(store.indexStatus.state, 'building', 'no index file: the open builds one');
  // Writes while the build runs: new memories, and replacements of memories the build may or may
  // not have reached yet.
  const written = new Map<string, Float32Array>();
  let round = 0;
  while (store.indexStatus.state === 'building') {
    const ps: Promise<void>[] = [];
    for (let j = 0; j < 50; j++) {
      const v = gen.next();
      const id = j % 2 === 0 ? `w${round}-${j}` : `m${(round * 7919 + j * 104729) % n}`;
      written.set(id, v);
      if (id.startsWith('m')) vectors[Number(id.slice(1))] = v;
      ps.push(store.put({ id, embedding: v }));
    }
    await Promise.all(ps);
    round++;
    await new Promise((r) => setTimeout(r, 200));
  }
  const status = await indexSettled(store, SLOW ? 1_800_000 : 120_000);
  assert.equal(status.indexed, store.size, 'the index holds every memory');
  t.diagnostic(`${round} write rounds during the build; ${status.indexed} indexed`);

  // Recall through the index (the store is far above annMinMemories; no filter, not exact).
  const missed: string[] = [];
  const SAMPLE = Math.min(2000, n);
  for (let s = 0; s < SAMPLE; s++) {
    const j = Math.floor((s * n) / SAMPLE);
    const [hit] = await store.recall(vectors[j]!, { k: 1 });
    if (hit?.memory.id !== `m${j}`) missed.push(`m${j}`);
  }
  for (const [id, v] of written) {
    const [hit] = await store.recall(v, { k: 1 });
    if (hit?.memory.id !== id) missed.push(id);
  }
  const checked = SAMPLE + written.size;
  t.diagnostic(
    `${missed.length} of ${checked} not found by their own vector: ${missed.slice(0, 10).join(', ')}`,
  );
  // A graph index may leave a rare node unreachable (one thread does too); contexts shared between
  // threads left hundreds.
  assert.ok(missed.length <= Math.ceil(checked * 0.005), `${missed.length} of ${checked} missed`);
}

describe('recall index build from nothing, with writes', () => {
  it(
    `builds ${SLOW ? '150,000' : '3,000'} memories and finds each by its own vector`,
    { timeout: 2_400_000 },
    (t) => buildWhileWriting(t, SLOW ? 150_000 : 3_000),
  );
});
