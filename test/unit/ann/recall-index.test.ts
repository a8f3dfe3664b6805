/**
 * Recall through the approximate index on one store of clustered vectors: recall@10 against the
 * exact scan, never a deleted or replaced memory after deletes and updates, exact scores, the index
 * saved at close and loaded (not rebuilt) at open, and rebuilt in the background when its file is
 * gone while recall keeps answering exactly.
 */
import assert from 'node:assert/strict';
import { readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { WarmStore, type IndexStatus, type RecallResult, type WarmStoreOptions } from '../../../src/index.js';
import { indexFilesOf } from '../../../src/ann/ann-index.js';
import { readManifest } from '../../../src/format/manifest.js';
import { nodeFileSystem } from '../../../src/fs/node-fs.js';
import { Rng } from '../../helpers/random.js';
import { makeTempDir, removeDir } from '../../helpers/tmp.js';
import { Clustered, indexSettled } from './data.js';
import { cosine } from '../../helpers/vectors.js';

const DIM = 128;
const N = 20_000;
const OPTS: WarmStoreOptions = {
  dimension: DIM,
  maintenanceIntervalMs: false,
  maintenance: { startupCompaction: 'off' },
  annMinMemories: 1000,
};

function overlap(a: RecallResult[], b: RecallResult[]): number {
  const ids = new Set(b.map((r) => r.memory.id));
  return a.filter((r) => ids.has(r.memory.id)).length;
}

describe('recall through the index', () => {
  let dir: string;
  let store: WarmStore;
  const gen = new Clustered(DIM, 7);
  /** id -> current embedding of every live memory. */
  const live = new Map<string, Float32Array>();

  before(async () => {
    dir = await makeTempDir();
    store = await WarmStore.open(dir, OPTS);
    for (let i = 0; i < N; i += 1000) {
      const batch = Array.from({ length: 1000 }, (_, j) => {
        const embedding = gen.next();
        live.set(`m${i + j}`, embedding);
        return { id: `m${i + j}`, embedding, content: null };
      });
      await store.putMany(batch);
    }
    await indexSettled(store);
  });

  after(async () => {
    await store.close();
    await removeDir(dir);
  });

  test('recall@10 against the exact scan is at least 0.9, with exact scores', async () => {
    const s0 = store.indexStatus;
    assert.equal(s0.indexed, N);
    let found = 0;
    const Q = 100;
    for (let i = 0; i < Q; i++) {
      const q = gen.next();
      const approx = await store.recall(q, { k: 10 });
      const exact = await store.recall(q, { k: 10, exact: true });
      assert.equal(approx.length, 10);
      found += overlap(approx, exact);
      const exactScore = new Map(exact.map((r) => [r.memory.id, r.score]));
      for (const r of approx) {
        const e = exactScore.get(r.memory.id);
        if (e !== undefined) assert.equal(r.score, e, 'same score on both paths');
        assert.ok(Math.abs(r.score - cosine(q, live.get(r.memory.id)!)) < 1e-5);
      }
    }
    assert.equal(store.indexStatus.searches - s0.searches, Q, 'every recall went through the index');
    const recall = found / (Q * 10);
    assert.ok(recall >= 0.9, `recall@10 ${recall}`);
  });

  test('after random deletes and updates: never a deleted or stale memory', async () => {
    const rng = new Rng(11);
    const ids = [...live.keys()];
    const writes: Promise<unknown>[] = [];
    for (let i = 0; i < 1500; i++) {
      const id = ids[rng.int(ids.length)]!;
      if (rng.bool(0.5)) {
        live.delete(id);
        writes.push(store.delete(id));
      } else {
        const embedding = gen.next();
        live.set(id, embedding);
        writes.push(store.put({ id, embedding, content: null }));
      }
    }
    await Promise.all(writes);
    const s0 = store.indexStatus.searches;
    let found = 0;
    for (let i = 0; i < 60; i++) {
      // Half the queries aim at a just-written memory, which may still be in the unacknowledged tail.
      const q = i % 2 === 0 ? gen.next() : live.get(ids.find((id) => live.has(id))!)!;
      const approx = await store.recall(q, { k: 10 });
      const exact = await store.recall(q, { k: 10, exact: true });
      assert.equal(approx.length, 10);
      for (const r of approx) {
        const e = live.get(r.memory.id);
        assert.ok(e, `${r.memory.id} was deleted`);
        assert.deepEqual(r.memory.embedding, e, `${r.memory.id} is its current version`);
        assert.ok(Math.abs(r.score - cosine(q, e)) < 1e-5, 'score of the current embedding');
      }
      found += overlap(approx, exact);
    }
    assert.ok(store.indexStatus.searches > s0, 'the index answered');
    assert.ok(found / 600 >= 0.9, `recall@10 after updates ${found / 600}`);
  });

  test('saved at close, loaded at open without a rebuild; a deleted file is rebuilt meanwhile exact', async () => {
    await store.close();
    const m = await readManifest(nodeFileSystem, dir);
    assert.ok(m?.annIndex, 'the MANIFEST records the saved index');
    assert.equal(m.annIndex.lsn, m.checkpointLsn);
    assert.equal((await stat(join(dir, m.annIndex.file))).size, m.annIndex.bytes);
    const indexFiles = (await readdir(dir)).filter((f) => f.startsWith('ann-'));
    assert.deepEqual(indexFiles.sort(), indexFilesOf(m.annIndex).sort(), 'no other index file left');

    const states: IndexStatus['state'][] = [];
    store = await WarmStore.open(dir, OPTS);
    store.on('indexStatus', (s) => states.push(s.state));
    const s = await indexSettled(store);
    assert.equal(s.indexed, live.size);
    assert.ok(!states.includes('building'), `loaded, not rebuilt: ${states.join(',')}`);
    const q = gen.next();
    const exact = await store.recall(q, { k: 10, exact: true });
    const approx = await store.recall(q, { k: 10 });
    assert.equal(store.indexStatus.searches, 1);
    assert.ok(overlap(approx, exact) >= 8);

    await store.close();
    const named = (await readManifest(nodeFileSystem, dir))?.annIndex?.file;
    assert.ok(named);
    await rm(join(dir, named));
    const progress: IndexStatus[] = [];
    store = await WarmStore.open(dir, OPTS);
    store.on('indexStatus', (st) => progress.push(st));
    // Until the rebuild is done, recall scans exactly: the same results as asking for exact.
    assert.notEqual(store.indexStatus.state, 'ready');
    const during = await store.recall(q, { k: 10 });
    assert.deepEqual(
      during.map((r) => [r.memory.id, r.score]),
      exact.map((r) => [r.memory.id, r.score]),
    );
    assert.equal(store.indexStatus.searches, 0);
    const done = await indexSettled(store);
    assert.equal(done.indexed, live.size);
    assert.equal(done.built, live.size);
    assert.ok(progress.some((p) => p.state === 'building' && p.built > 0 && p.built < p.toBuild));
    const again = await store.recall(q, { k: 10 });
    assert.equal(store.indexStatus.searches, 1);
    assert.ok(overlap(again, exact) >= 8);
  });
});
