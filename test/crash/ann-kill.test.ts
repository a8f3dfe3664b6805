/**
 * kill -9 while the recall index worker is inserting: after reopening, the index is loaded from
 * its last save (not rebuilt), catches up from the table, and recall through it finds every
 * acknowledged memory.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { WarmStore, type IndexStatus } from '../../src/index.js';
import { spawnWriter } from '../helpers/spawn.js';
import { tempDir } from '../helpers/tmp.js';
import { Clustered, indexSettled } from '../unit/ann/data.js';

const DIM = 32;

test(
  'kill -9 during index insertion: every acknowledged memory is recalled',
  { timeout: 120_000 },
  async (t) => {
    const dir = join(await tempDir(t, 'warmstore-crash-ann-'), 'store');
    const child = spawnWriter('test/crash/child-ann.ts', { env: { STORE_DIR: dir, DIM: String(DIM) } });
    t.after(() => child.kill('SIGKILL'));
    await child.waitForLine((l) => l.startsWith('checkpointed'), 60_000);
    const saved = child.lines.filter((l) => l.startsWith('checkpointed')).length;
    // Past the save, several batches more: the worker is inserting when the kill lands.
    await child.waitForCount((l) => l.startsWith('ack '), saved * 10 + 6, 60_000);
    const exit = await child.kill('SIGKILL');
    assert.equal(exit.signal, 'SIGKILL', `child exited by itself: ${child.stderr()}`);
    assert.ok(!child.lines.some((l) => l.startsWith('error')), child.lines.join('\n'));
    const acked = Math.max(...child.lines.filter((l) => l.startsWith('ack ')).map((l) => Number(l.slice(4))));

    const store = await WarmStore.open(dir, {
      dimension: DIM,
      maintenanceIntervalMs: false,
      maintenance: { startupCompaction: 'off' },
      annMinMemories: 0,
    });
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
  },
);
