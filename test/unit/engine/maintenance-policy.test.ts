/**
 * The maintenance decision from tables: given the storage figures, the thresholds, whether a
 * compaction runs, an interrupted run and the disk-full state, compact (forced or not), skip or
 * busy. No store on disk.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decideMaintenance, type RecordSlack } from '../../../src/engine/maintenance-policy.js';
import type { ContentStorageStats, InterruptedCompaction } from '../../../src/types.js';

const T = { fragmentationThreshold: 0.5, minTotalBytes: 1000 };
const INTERRUPTED: InterruptedCompaction = {
  runId: 7,
  committedChunks: 1,
  discardedBytes: 0,
  victimsRemaining: [3],
};

function stats(totalBytes: number, deadBytes: number): ContentStorageStats {
  return {
    totalBytes,
    liveBytes: totalBytes - deadBytes,
    deadBytes,
    fragmentationRatio: totalBytes > 0 ? deadBytes / totalBytes : 0,
    segments: 1,
  };
}

interface Row {
  name: string;
  stats: ContentStorageStats;
  compacting?: boolean;
  interrupted?: InterruptedCompaction;
  diskFull?: boolean;
  records?: RecordSlack;
  expect: 'compact' | 'forced' | 'skip' | 'busy';
}

const rows: Row[] = [
  { name: 'fragmented and big enough', stats: stats(2000, 1200), expect: 'compact' },
  { name: 'exactly at the threshold does not trigger', stats: stats(2000, 1000), expect: 'skip' },
  { name: 'fragmented but small', stats: stats(1000, 900), expect: 'skip' },
  {
    name: 'busy wins over everything',
    stats: stats(2000, 1200),
    compacting: true,
    diskFull: true,
    expect: 'busy',
  },
  { name: 'an interrupted run resumes', stats: stats(10, 0), interrupted: INTERRUPTED, expect: 'compact' },
  {
    name: 'full disk: a few dead bytes are enough, forced',
    stats: stats(500, 1),
    diskFull: true,
    expect: 'forced',
  },
  {
    name: 'full disk with nothing dead: nothing to win',
    stats: stats(5000, 0),
    diskFull: true,
    expect: 'skip',
  },
  { name: 'full disk and fragmented: forced', stats: stats(2000, 1200), diskFull: true, expect: 'forced' },
  {
    name: 'slack record files and big enough',
    stats: stats(10, 0),
    records: { freeSlots: 61, slots: 100, slotBytes: 20 },
    expect: 'compact',
  },
  {
    name: 'record slack exactly at the threshold does not trigger',
    stats: stats(10, 0),
    records: { freeSlots: 50, slots: 100, slotBytes: 100 },
    expect: 'skip',
  },
  {
    name: 'slack record files, but their free slots take no more than the minimum',
    stats: stats(10, 0),
    records: { freeSlots: 90, slots: 100, slotBytes: 1000 / 90 },
    expect: 'skip',
  },
  {
    name: 'slack record files on a full disk: relocation waits for room',
    stats: stats(10, 0),
    diskFull: true,
    records: { freeSlots: 90, slots: 100, slotBytes: 100 },
    expect: 'skip',
  },
  {
    name: 'no slots at all',
    stats: stats(10, 0),
    records: { freeSlots: 0, slots: 0, slotBytes: 100 },
    expect: 'skip',
  },
];

describe('decideMaintenance', () => {
  for (const row of rows) {
    it(row.name, () => {
      const d = decideMaintenance(
        row.stats,
        T,
        row.compacting ?? false,
        row.interrupted,
        row.diskFull ?? false,
        row.records,
      );
      const got = d.action === 'compact' && d.force === true ? 'forced' : d.action;
      assert.equal(got, row.expect, d.reason);
      assert.ok(d.reason.length > 0);
    });
  }

  it('says why on a full disk', () => {
    const d = decideMaintenance(stats(500, 40), T, false, undefined, true);
    assert.equal(d.reason, 'the disk is full and 40 dead bytes can be reclaimed');
  });
});
