import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, test } from 'node:test';
import { WarmStore, type MemoryRecord, type WarmStoreOptions } from '../../../src/index.js';
import { expectSameRecord } from '../../helpers/assert.js';
import { tempDir } from '../../helpers/tmp.js';

const DIM = 8;
const OPTS: WarmStoreOptions = { dimension: DIM, maintenanceIntervalMs: false, segmentBytes: 4096 };
const emb = (x: number): Float32Array => Float32Array.from([x + 1, 1, 2, 3, 4, 5, 6, 7]);

/**
 * Fills `dir` with small segments that each keep one live anchor among mostly dead versions, so
 * the store is over the startup compaction ratio (0.9) when it is reopened.
 */
async function fragmented(dir: string): Promise<Map<string, MemoryRecord>> {
  const live = new Map<string, MemoryRecord>();
  const s = await WarmStore.open(dir, OPTS);
  try {
    for (let i = 0; i < 100; i++) {
      const batch: MemoryRecord[] = [{ id: `anchor${i}`, embedding: emb(i), content: `anchor ${i}` }];
      for (let k = 0; k < 3; k++)
        batch.push({ id: `k${k}`, embedding: emb(100 + k), content: `v${i}-`.repeat(60 + k) });
      await s.putMany(batch);
      for (const r of batch) live.set(r.id, r);
    }
    assert.ok(s.contentStorageStats().fragmentationRatio > 0.9, 'the store is fragmented enough');
  } finally {
    await s.close();
  }
  return live;
}

async function untilIdle(s: WarmStore): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (s.isCompacting && Date.now() < deadline) await sleep(5);
  assert.equal(s.isCompacting, false, 'the compaction finished');
}

describe('verify', () => {
  test('a healthy store verifies clean, with exact counts and progress', async (t) => {
    const dir = await tempDir(t);
    const live = await fragmented(dir);
    const s = await WarmStore.open(dir, { ...OPTS, maintenance: { startupCompaction: 'off' } });
    try {
      const progress: Array<[number, number]> = [];
      const r = await s.verify({ onProgress: (done, total) => progress.push([done, total]) });
      assert.equal(r.ok, true, JSON.stringify(r.problems));
      assert.deepEqual(r.problems, []);
      assert.equal(r.records, live.size);
      assert.equal(r.segments, s.contentStorageStats().segments);
      assert.equal(r.bytesChecked, s.contentStorageStats().liveBytes, 'every live content byte was read');
      assert.deepEqual(progress.at(-1), [live.size, live.size]);
    } finally {
      await s.close();
    }
  });

  test('verify while the startup compaction runs in the background reports no false problems', async (t) => {
    const dir = await tempDir(t);
    const live = await fragmented(dir);
    // Default startupCompaction is 'background': it starts right after open.
    const s = await WarmStore.open(dir, OPTS);
    try {
      assert.equal(s.isCompacting, true, 'a startup compaction is running');
      // Verify over and over while it runs, so the two interleave at many points.
      const during: string[] = [];
      let runs = 0;
      while (s.isCompacting) {
        const r = await s.verify();
        runs++;
        for (const p of r.problems) during.push(JSON.stringify(p));
      }
      await untilIdle(s);
      const after = await s.verify();
      assert.equal(after.ok, true, `after compaction: ${JSON.stringify(after.problems)}`);
      for (const [id, r] of live) expectSameRecord(await s.get(id), r);
      assert.ok(runs > 0);
      assert.deepEqual(during.slice(0, 3), [], `problems reported by ${runs} verify runs during compaction`);
    } finally {
      await s.close();
    }
  });

  test('verify concurrent with an explicit compact() reports no false problems', async (t) => {
    const dir = await tempDir(t);
    const live = await fragmented(dir);
    const s = await WarmStore.open(dir, { ...OPTS, maintenance: { startupCompaction: 'off' } });
    try {
      let finished = false;
      const compaction = s.compact({ force: true }).finally(() => {
        finished = true;
      });
      // Verify over and over while the compaction runs, so the two interleave at many points.
      const during: string[] = [];
      let runs = 0;
      do {
        const r = await s.verify();
        runs++;
        for (const p of r.problems) during.push(JSON.stringify(p));
      } while (!finished);
      const stats = await compaction;
      assert.ok(stats.segmentsCompacted > 0, 'the compaction had work to do');
      const after = await s.verify();
      assert.equal(after.ok, true, `after compaction: ${JSON.stringify(after.problems)}`);
      for (const [id, r] of live) expectSameRecord(await s.get(id), r);
      assert.deepEqual(during.slice(0, 3), [], `problems reported by ${runs} verify runs during compaction`);
    } finally {
      await s.close();
    }
  });
});
