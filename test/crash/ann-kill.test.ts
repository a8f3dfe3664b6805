/**
 * kill -9 while the recall index worker is inserting, and while it merges its delta into a new
 * base file: after reopening, the index is loaded from its last save (not rebuilt), catches up
 * from the table, and recall through it finds every acknowledged memory.
 */
import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { WarmStore, type IndexStatus } from '../../src/index.js';
import { spawnWriter } from '../helpers/spawn.js';
import { tempDir } from '../helpers/tmp.js';
import { Clustered, indexSettled } from '../unit/ann/data.js';

const DIM = 32;

/** The crashed store opened again as the children opened it, its index on from the first memory. */
function reopen(dir: string): Promise<WarmStore> {
  return WarmStore.open(dir, {
    dimension: DIM,
    maintenanceIntervalMs: false,
    maintenance: { startupCompaction: 'off' },
    annMinMemories: 0,
  });
}

async function killAndRecall(
  t: TestContext,
  env: Record<string, string>,
  checkpoints: number,
): Promise<string> {
  const dir = join(await tempDir(t, 'warmstore-crash-ann-'), 'store');
  const child = spawnWriter('test/crash/child-ann.ts', { env: { STORE_DIR: dir, DIM: String(DIM), ...env } });
  t.after(() => child.kill('SIGKILL'));
  await child.waitForCount((l) => l.startsWith('checkpointed'), checkpoints, 90_000);
  const saved = child.lines.filter((l) => l.startsWith('checkpointed')).length;
  // Past the save, several batches more: the worker is inserting when the kill lands.
  await child.waitForCount((l) => l.startsWith('ack '), saved * 10 + 6, 60_000);
  const exit = await child.kill('SIGKILL');
  assert.equal(exit.signal, 'SIGKILL', `child exited by itself: ${child.stderr()}`);
  assert.ok(!child.lines.some((l) => l.startsWith('error')), child.lines.join('\n'));
  const acked = Math.max(...child.lines.filter((l) => l.startsWith('ack ')).map((l) => Number(l.slice(4))));
  const filesAtKill = (await readdir(dir)).filter((f) => f.startsWith('ann-')).join(',');

  const store = await reopen(dir);
  t.after(() => store.close());
  const states: IndexStatus['state'][] = [];
  store.on('indexStatus', (s) => states.push(s.state));
  const s = await indexSettled(store);
  assert.ok(!states.includes('building'), `loaded and caught up, not rebuilt: ${states.join(',')}`);
  assert.ok(s.indexed >= acked, `indexed ${s.indexed} of ${acked} acknowledged`);
  const gen = new Clustered(DIM, 1, 20);
  for (let i = 0; i < acked; i++) {
    const e = gen.next();
    const [top] = await store.recall(e, { k: 1 });
    assert.equal(top?.memory.id, `a${i}`, `acknowledged memory a${i} is recalled`);
  }
  assert.equal(store.indexStatus.searches, acked, 'every recall went through the index');
  return filesAtKill;
}

test(
  'kill -9 during index insertion: every acknowledged memory is recalled',
  { timeout: 120_000 },
  async (t) => {
    await killAndRecall(t, {}, 1);
  },
);

test(
  'kill -9 while the index merges its delta into new base files: every acknowledged memory is recalled',
  { timeout: 180_000 },
  async (t) => {
    // A merge every 400 changed vectors, a checkpoint every 1000: several merges before the kill.
    const files = await killAndRecall(t, { MERGE_MIN: '400', MAX: '40000' }, 4);
    assert.match(files, /ann-base-/, `a merge had written a base file: ${files}`);
  },
);

test(
  'kill -9 during an index build: the next open goes on from the saved part, and the memories are recalled',
  { timeout: 180_000 },
  async (t) => {
    const dir = join(await tempDir(t, 'warmstore-crash-ann-build-'), 'store');
    const n = 12_000;
    const child = spawnWriter('test/crash/child-ann-build.ts', {
      env: { STORE_DIR: dir, DIM: String(DIM), N: String(n) },
    });
    t.after(() => child.kill('SIGKILL'));
    await child.waitForLine((l) => l.startsWith('saved '), 120_000);
    await child.waitForCount((l) => l.startsWith('ack '), 4, 60_000);
    const last = child.lines.filter((l) => l.startsWith('ack ')).at(-1)!;
    const exit = await child.kill('SIGKILL');
    assert.match(last, /building$/, 'killed while the build ran');
    assert.equal(exit.signal, 'SIGKILL', `child exited by itself: ${child.stderr()}`);
    assert.ok(!child.lines.some((l) => l.startsWith('error')), child.lines.join('\n'));
    const acked = Math.max(
      ...child.lines.filter((l) => l.startsWith('ack ')).map((l) => Number(l.split(' ')[1])),
    );

    const store = await reopen(dir);
    t.after(() => store.close());
    const seen: IndexStatus[] = [];
    store.on('indexStatus', (s) => seen.push(s));
    const s = await indexSettled(store);
    const building = seen.find((st) => st.state === 'building');
    assert.ok(building && building.built > 0, `went on from the saved part: ${JSON.stringify(building)}`);
    assert.ok(s.indexed >= n + acked, `indexed ${s.indexed} of ${n + acked}`);
    const gen = new Clustered(DIM, 1, 20);
    let found = 0;
    const ids = [
      ...Array.from({ length: n }, (_, i) => `a${i}`),
      ...Array.from({ length: acked }, (_, i) => `b${i}`),
    ];
    for (const id of ids) {
      const [top] = await store.recall(gen.next(), { k: 1 });
      if (top?.memory.id === id) found++;
    }
    // Every memory is found from its own vector but for the graph's rare unreachable node.
    assert.ok(found >= ids.length * 0.995, `found ${found} of ${ids.length}`);
    assert.ok(store.indexStatus.searches >= ids.length * 0.99, 'through the index');
  },
);
