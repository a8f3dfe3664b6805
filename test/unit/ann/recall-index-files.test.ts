/**
 * The index file across opens: a damaged file is detected (size and CRC32C recorded in the
 * MANIFEST) and rebuilt; a checkpoint with nothing new to index keeps the file as it is; and when
 * the index leaves fewer than k of many matching memories, the exact scan answers.
 */
import assert from 'node:assert/strict';
import { open as openFile, readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { WarmStore, type IndexStatus, type WarmStoreOptions } from '../../../src/index.js';
import { readManifest } from '../../../src/format/manifest.js';
import { nodeFileSystem } from '../../../src/fs/node-fs.js';
import { tempDir } from '../../helpers/tmp.js';
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

test('a checkpoint with nothing new keeps the saved file; a write makes the next one save again', async (t) => {
  const dir = await tempDir(t);
  const { store, gen } = await filled(dir, 500);
  t.after(() => store.close());
  await store.checkpoint();
  const m1 = (await readManifest(nodeFileSystem, dir))!;
  const st1 = await stat(join(dir, m1.annIndex!.file));
  await store.checkpoint();
  const m2 = (await readManifest(nodeFileSystem, dir))!;
  const st2 = await stat(join(dir, m2.annIndex!.file));
  assert.deepEqual(m2.annIndex, { ...m1.annIndex!, lsn: m2.checkpointLsn });
  assert.equal(st2.mtimeMs, st1.mtimeMs, 'not rewritten');
  assert.equal(st2.ino, st1.ino, 'not replaced');

  await store.put({ id: 'new', embedding: gen.next(), content: null });
  await store.checkpoint();
  const m3 = (await readManifest(nodeFileSystem, dir))!;
  assert.equal(m3.annIndex?.lsn, m3.checkpointLsn);
  assert.ok(m3.checkpointLsn > m2.checkpointLsn);
  assert.notEqual(m3.annIndex?.file, m1.annIndex!.file, 'a new file, never the named one rewritten');
  assert.equal((await stat(join(dir, m3.annIndex!.file))).size, m3.annIndex?.bytes);
  // Once the MANIFEST names the new file, the old one goes.
  for (let i = 0; (await readdir(dir)).includes(m1.annIndex!.file); i++) {
    assert.ok(i < 500, 'the old index file was pruned');
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

  const restored = await WarmStore.open(target, OPTS);
  t.after(() => restored.close());
  const states: IndexStatus['state'][] = [];
  restored.on('indexStatus', (s) => states.push(s.state));
  const s = await indexSettled(restored);
  assert.ok(!states.includes('building'), `loaded, not rebuilt: ${states.join(',')}`);
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
