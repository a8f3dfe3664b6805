/**
 * The index file across opens: a damaged file is detected (size and CRC32C recorded in the
 * MANIFEST) and rebuilt; a checkpoint with nothing new to index keeps the file as it is; and when
 * the index leaves fewer than k of many matching memories, the exact scan answers.
 */
import assert from 'node:assert/strict';
import { open as openFile, readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { WarmStore, type IndexStatus, type WarmStoreOptions } from '../../../src/index.js';
import { readManifest } from '../../../src/format/manifest.js';
import { nodeFileSystem } from '../../../src/fs/node-fs.js';
import { Rng } from '../../helpers/random.js';
import { tempDir } from '../../helpers/tmp.js';
import { withTestHooks } from '../../../src/testing/index.js';
import { Clustered, indexSettled } from './data.js';

const DIM = 32;
const OPTS: WarmStoreOptions = {
  dimension: DIM,
  maintenanceIntervalMs: false,
  maintenance: { startupCompaction: 'off' },
  annMinMemories: 100,
};

async function filled(dir: string, n: number): Promise<{ store: WarmStore; gen: Clustered }> {
  const store = await WarmStore.open(dir, OPTS);
  const gen = new Clustered(DIM, 9, 10);
  await store.putMany(
    Array.from({ length: n }, (_, i) => ({ id: `m${i}`, embedding: gen.next(), content: null })),
  );
  await indexSettled(store);
  return { store, gen };
}

/** Opens `dir` and waits for its index, which must load from its files, not be rebuilt. */
async function openLoaded(
  t: TestContext,
  dir: string,
  opts: WarmStoreOptions,
): Promise<{ store: WarmStore; status: IndexStatus }> {
  const store = await WarmStore.open(dir, opts);
  t.after(() => store.close());
  const states: IndexStatus['state'][] = [];
  store.on('indexStatus', (st) => states.push(st.state));
  const status = await indexSettled(store);
  assert.ok(!states.includes('building'), `loaded, not rebuilt: ${states.join(',')}`);
  return { store, status };
}

test('a damaged index file is rebuilt, and recall is exact meanwhile', async (t) => {
  const dir = await tempDir(t);
  const { store, gen } = await filled(dir, 3000);
  await store.close();
  const file = join(dir, (await readManifest(nodeFileSystem, dir))!.annIndex!.file);
  const { size } = await stat(file);
  const f = await openFile(file, 'r+');
  await f.write(Buffer.from([0xff, 0x00, 0xff, 0x00]), 0, 4, Math.floor(size / 2));
  await f.close();

  const again = await WarmStore.open(dir, OPTS);
  t.after(() => again.close());
  const states: IndexStatus['state'][] = [];
  again.on('indexStatus', (s) => states.push(s.state));
  const q = gen.next();
  assert.notEqual(again.indexStatus.state, 'ready');
  const during = await again.recall(q, { k: 10 });
  const exact = await again.recall(q, { k: 10, exact: true });
  assert.deepEqual(during, exact);
  assert.equal(again.indexStatus.searches, 0, 'scanned while rebuilding');
  const s = await indexSettled(again);
  assert.ok(states.includes('building'), `rebuilt: ${states.join(',')}`);
  assert.equal(s.indexed, 3000);
  const after = await again.recall(q, { k: 10 });
  assert.equal(again.indexStatus.searches, 1);
  assert.ok(after.filter((r) => exact.some((e) => e.memory.id === r.memory.id)).length >= 9);
});

test('a checkpoint with nothing new keeps the saved files; a write saves only a delta beside the base', async (t) => {
  const dir = await tempDir(t);
  const { store, gen } = await filled(dir, 500);
  t.after(() => store.close());
  await store.checkpoint();
  const m1 = (await readManifest(nodeFileSystem, dir))!;
  assert.ok(m1.annIndex?.file, 'a built index is a base file');
  assert.equal(m1.annIndex.delta, undefined);
  const st1 = await stat(join(dir, m1.annIndex.file));
  await store.checkpoint();
  const m2 = (await readManifest(nodeFileSystem, dir))!;
  const st2 = await stat(join(dir, m2.annIndex!.file));
  assert.deepEqual(m2.annIndex, { ...m1.annIndex, lsn: m2.checkpointLsn });
  assert.equal(st2.mtimeMs, st1.mtimeMs, 'not rewritten');
  assert.equal(st2.ino, st1.ino, 'not replaced');

  await store.put({ id: 'new', embedding: gen.next(), content: null });
  await store.checkpoint();
  const m3 = (await readManifest(nodeFileSystem, dir))!;
  assert.equal(m3.annIndex?.lsn, m3.checkpointLsn);
  assert.ok(m3.checkpointLsn > m2.checkpointLsn);
  assert.equal(m3.annIndex.file, m1.annIndex.file, 'the base stays');
  assert.equal((await stat(join(dir, m3.annIndex.file))).ino, st1.ino, 'never rewritten');
  const delta = m3.annIndex.delta;
  assert.ok(delta, 'the write is in a delta file');
  assert.equal((await stat(join(dir, delta.file))).size, delta.bytes);
  assert.equal((await stat(join(dir, delta.keys.file))).size, 8, 'one key');

  await store.delete('m0');
  await store.checkpoint();
  const m4 = (await readManifest(nodeFileSystem, dir))!;
  assert.ok(m4.annIndex?.dead, 'a base vector deleted is listed dead');
  assert.equal((await stat(join(dir, m4.annIndex.dead.file))).size, 8);
  // Once the MANIFEST names the new delta, the old one goes.
  for (let i = 0; (await readdir(dir)).includes(delta.file); i++) {
    assert.ok(i < 500, 'the old delta file was pruned');
    await new Promise((r) => setTimeout(r, 10));
  }
});

test('when the index leaves fewer than k of many matches, the exact scan answers', async (t) => {
  const dir = await tempDir(t);
  const { store, gen } = await filled(dir, 1000);
  t.after(() => store.close());
  const q = gen.next();
  const exact = await store.recall(q, { k: 200, exact: true });
  // k = 200 asks for 600 candidates, more than half the store: the planner scans instead.
  const wide = await store.recall(q, { k: 200 });
  assert.deepEqual(wide, exact);
  assert.equal(store.indexStatus.searches, 0, 'k too large for the index');
  // k = 10 with a minScore only a few memories pass: the index yields fewer than 10 candidates
  // above it while 1000 match the (empty) filter, so the scan answers: the same as exact.
  const floor = exact[4]!.score;
  const few = await store.recall(q, { k: 10, minScore: floor });
  const fewExact = await store.recall(q, { k: 10, minScore: floor, exact: true });
  assert.deepEqual(few, fewExact);
  assert.equal(few.length, 5);
  assert.equal(store.indexStatus.searches, 1, 'asked the index, then scanned');
});

test('a backup carries the saved index file, so the copy opens without rebuilding it', async (t) => {
  const dir = await tempDir(t);
  const target = join(await tempDir(t), 'copy');
  const { store, gen } = await filled(dir, 1500);
  await store.checkpoint();
  const m = (await readManifest(nodeFileSystem, dir))!;
  await store.backup(target);
  await store.close();
  const src = await stat(join(dir, m.annIndex!.file));
  const copy = await stat(join(target, m.annIndex!.file));
  assert.equal(copy.ino, src.ino, 'an index file is never written again after its save: linked');
  assert.deepEqual((await readManifest(nodeFileSystem, target))!.annIndex, m.annIndex);

  const { store: restored, status: s } = await openLoaded(t, target, OPTS);
  assert.equal(s.indexed, 1500);
  const q = gen.next();
  const viaIndex = await restored.recall(q, { k: 10 });
  assert.equal(restored.indexStatus.searches, 1);
  const exact = await restored.recall(q, { k: 10, exact: true });
  assert.ok(viaIndex.filter((r) => exact.some((e) => e.memory.id === r.memory.id)).length >= 9);
});

test('a backup whose index file vanished leaves the index out and the copy rebuilds it', async (t) => {
  const dir = await tempDir(t);
  const target = join(await tempDir(t), 'copy');
  const { store } = await filled(dir, 600);
  await store.checkpoint();
  const m = (await readManifest(nodeFileSystem, dir))!;
  await rm(join(dir, m.annIndex!.file));
  await store.backup(target);
  await store.close();
  assert.equal((await readManifest(nodeFileSystem, target))!.annIndex, undefined);
  assert.ok(!(await readdir(target)).some((f) => f.startsWith('ann-')));
  const restored = await WarmStore.open(target, OPTS);
  t.after(() => restored.close());
  assert.equal((await indexSettled(restored)).indexed, 600);
});

test('a build saved part way goes on at the next open from the slot it had reached', async (t) => {
  const dir = await tempDir(t);
  const target = join(await tempDir(t), 'copy');
  const n = 24_000;
  const gen = new Clustered(DIM, 21, 10);
  // Written before the index exists (threshold above n), so that the next open builds it.
  const first = await WarmStore.open(dir, { ...OPTS, annMinMemories: n + 1 });
  for (let b = 0; b < n; b += 2000) {
    await first.putMany(
      Array.from({ length: 2000 }, (_, i) => ({ id: `m${b + i}`, embedding: gen.next(), content: null })),
    );
  }
  await first.close();

  const building = await WarmStore.open(dir, OPTS);
  let checkpointed: Promise<void> | undefined;
  await new Promise<void>((resolve) => {
    building.on('indexStatus', (s) => {
      if (checkpointed === undefined && s.state === 'building' && s.built > 0) {
        checkpointed = building.checkpoint();
        resolve();
      }
    });
  });
  await checkpointed;
  // The backup keeps that MANIFEST and index file as they are, whatever the build does next.
  await building.backup(target);
  await building.close();
  const saved = (await readManifest(nodeFileSystem, target))!.annIndex;
  assert.ok(saved?.builtTo !== undefined && saved.builtTo < n, `saved mid-build: ${JSON.stringify(saved)}`);

  const again = await WarmStore.open(target, OPTS);
  t.after(() => again.close());
  const seen: IndexStatus[] = [];
  again.on('indexStatus', (st) => seen.push(st));
  const s = await indexSettled(again);
  assert.equal(s.indexed, n);
  const firstBuilding = seen.find((st) => st.state === 'building');
  assert.ok(firstBuilding, `built on: ${seen.map((st) => st.state).join(',')}`);
  // Every memory below the slot the saved file reached counts as built from the start.
  assert.ok(firstBuilding.built >= saved.builtTo, `resumed: ${JSON.stringify(firstBuilding)}`);
  const q = gen.next();
  const viaIndex = await again.recall(q, { k: 10 });
  assert.equal(again.indexStatus.searches, 1);
  const exact = await again.recall(q, { k: 10, exact: true });
  assert.ok(viaIndex.filter((r) => exact.some((e) => e.memory.id === r.memory.id)).length >= 9);
});

test('an index saved while writes still wait for it covers only what it holds; the copy catches up', async (t) => {
  const dir = await tempDir(t);
  const target = join(await tempDir(t), 'copy');
  const { store, gen } = await filled(dir, 2000);
  const burst = Array.from({ length: 12_000 }, (_, i) => ({
    id: `b${i}`,
    embedding: gen.next(),
    content: null,
  }));
  await store.putMany(burst);
  const waiting = store.indexStatus.tail;
  await store.checkpoint();
  await store.backup(target);
  await store.close();
  const m = (await readManifest(nodeFileSystem, target))!;
  assert.ok(m.annIndex);
  assert.ok(m.annIndex.lsn <= m.checkpointLsn);
  if (waiting > 4096) assert.ok(m.annIndex.lsn < m.checkpointLsn, `${waiting} waiting: ${JSON.stringify(m)}`);

  const again = await WarmStore.open(target, OPTS);
  t.after(() => again.close());
  assert.equal((await indexSettled(again)).indexed, 14_000);
  for (let i = 0; i < burst.length; i += 997) {
    const [top] = await again.recall(burst[i]!.embedding, { k: 1 });
    assert.equal(top?.memory.id, burst[i]!.id);
  }
  assert.ok(again.indexStatus.searches > 0);
});

test('merges under updates and deletes: live memories are found at their current vectors, never a deleted one', async (t) => {
  const dir = await tempDir(t);
  const opts = withTestHooks(OPTS, { annMergeMin: 300 });
  let store = await WarmStore.open(dir, opts);
  const gen = new Clustered(DIM, 33, 10);
  const live = new Map<string, Float32Array>();
  const put = async (ids: string[]): Promise<void> => {
    const batch = ids.map((id) => ({ id, embedding: gen.next(), content: null }));
    await store.putMany(batch);
    for (const r of batch) live.set(r.id, r.embedding);
  };
  await put(Array.from({ length: 3000 }, (_, i) => `m${i}`));
  let s = await indexSettled(store);
  assert.equal(s.resident, 0, 'a finished build is a base file, not memory');
  assert.ok(s.merges >= 1);
  const rng = new Rng(5);
  const deleted = new Set<string>();
  for (let round = 0; round < 6; round++) {
    const ids = [...live.keys()];
    await put(Array.from({ length: 400 }, () => ids[rng.int(ids.length)]!));
    for (let i = 0; i < 60; i++) {
      const id = ids[rng.int(ids.length)]!;
      if (await store.delete(id)) {
        live.delete(id);
        deleted.add(id);
      }
    }
    // New ids too, some reusing freed slots.
    await put(Array.from({ length: 50 }, (_, i) => `r${round}-${i}`));
  }
  // Merges run one at a time in the background: wait until what is resident is below a merge's worth.
  for (let i = 0; ; i++) {
    s = await indexSettled(store);
    if (s.resident < 300) break;
    assert.ok(i < 6000, `merges keep up: ${JSON.stringify(s)}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.ok(s.merges >= 2, `merged while written: ${JSON.stringify(s)}`);

  const check = async (): Promise<void> => {
    assert.equal(store.indexStatus.indexed, live.size);
    const before = store.indexStatus.searches;
    let asked = 0;
    let found = 0;
    for (const [id, e] of live) {
      if (asked++ % 3 !== 0) continue;
      const hits = await store.recall(e, { k: 3 });
      if (hits[0]?.memory.id === id) found++;
      for (const h of hits) {
        assert.ok(live.has(h.memory.id), `${h.memory.id} was deleted`);
        assert.deepEqual(h.memory.embedding, live.get(h.memory.id), 'its current vector');
      }
    }
    // The graph is approximate: a memory now and then is not reached from its own vector (about
    // 1 in 1000 here, the same with or without merges); a stale or lost entry would miss far more.
    const asked3 = Math.ceil(live.size / 3);
    assert.ok(found >= asked3 * 0.99, `found ${found} of ${asked3} at their current vectors`);
    assert.ok(store.indexStatus.searches > before, 'through the index');
  };
  await check();
  await store.close();
  ({ store } = await openLoaded(t, dir, opts));
  await check();
});

test('a delta that outgrows the base is merged from the delta: the base memories are the ones added again', async (t) => {
  const dir = await tempDir(t);
  const merged: Array<Record<string, unknown>> = [];
  const logger = {
    info: (o: object, msg?: string) => {
      if (msg?.startsWith('recall index merged')) merged.push(o as Record<string, unknown>);
    },
    warn: () => undefined,
    error: () => undefined,
  };
  const opts = withTestHooks({ ...OPTS, logger }, { annMergeMin: 300 });
  let store = await WarmStore.open(dir, opts);
  const gen = new Clustered(DIM, 44, 10);
  const all: Array<{ id: string; embedding: Float32Array }> = [];
  const put = async (n: number): Promise<void> => {
    const from = all.length;
    const batch = Array.from({ length: n }, (_, i) => ({
      id: `m${from + i}`,
      embedding: gen.next(),
      content: null,
    }));
    await store.putMany(batch);
    all.push(...batch);
  };
  await put(200);
  await indexSettled(store);
  await put(4000);
  let s = await indexSettled(store);
  for (let i = 0; s.resident >= 300; i++) {
    assert.ok(i < 6000, `merges keep up: ${JSON.stringify(s)}`);
    await new Promise((r) => setTimeout(r, 20));
    s = await indexSettled(store);
  }
  assert.ok(
    merged.some((m) => m.from === 'delta'),
    `merged from the delta: ${JSON.stringify(merged)}`,
  );
  assert.equal(s.indexed, 4200);
  const check = async (): Promise<void> => {
    let found = 0;
    for (let i = 0; i < all.length; i += 7) {
      const [top] = await store.recall(all[i]!.embedding, { k: 1 });
      if (top?.memory.id === all[i]!.id) found++;
    }
    assert.ok(found >= Math.ceil(all.length / 7) * 0.99, `found ${found}`);
  };
  await check();
  await store.close();
  store = await WarmStore.open(dir, opts);
  t.after(() => store.close());
  assert.equal((await indexSettled(store)).indexed, 4200);
  await check();
});

test('memories compaction moved keep their index keys across a reopen (the saved aliases)', async (t) => {
  const dir = await tempDir(t);
  const { store } = await filled(dir, 3000);
  const live = new Map<string, Float32Array>();
  for (let i = 0; i < 3000; i++) {
    const m = await store.get(`m${i}`);
    if (m) live.set(m.id, m.embedding);
  }
  // Holes low in the file, memories high up: relocation moves those into these.
  for (let i = 0; i < 1500; i += 2) {
    assert.ok(await store.delete(`m${i}`));
    live.delete(`m${i}`);
  }
  await store.compact({ force: true });
  await indexSettled(store);
  await store.close();
  const saved = (await readManifest(nodeFileSystem, dir))!.annIndex!;
  assert.ok(saved.alias, 'moved memories kept their keys, saved as aliases');

  const { store: again, status: s } = await openLoaded(t, dir, OPTS);
  assert.equal(s.indexed, live.size);
  let found = 0;
  for (const [id, e] of live) {
    const hits = await again.recall(e, { k: 3 });
    if (hits[0]?.memory.id === id) found++;
    for (const h of hits) assert.ok(live.has(h.memory.id), `${h.memory.id} was deleted`);
  }
  assert.ok(found >= live.size * 0.99, `found ${found} of ${live.size} by their own vectors`);
  assert.equal(again.indexStatus.searches, live.size, 'every recall through the index');
});
