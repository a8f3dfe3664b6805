/**
 * The victim picker, from tables: given these segment figures and options, these victims in this
 * order, this sealing decision and these bytes to copy. No store on disk.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  pickVictims,
  type PickOptions,
  type SegmentStats,
  type VictimPlan,
} from '../../../src/compaction/picker.js';

/** A sealed segment of `total` entry bytes, `live` of them live; `extra` overrides the rest. */
function seg(id: number, total: number, live: number, extra: Partial<SegmentStats> = {}): SegmentStats {
  return {
    id,
    sealed: true,
    active: false,
    retired: false,
    totalBytes: total,
    liveBytes: live,
    deadBytes: total - live,
    ...extra,
  };
}

/** The active segment: not sealed, the target of writes. */
function active(id: number, total: number, live: number): SegmentStats {
  return seg(id, total, live, { sealed: false, active: true });
}

const BASE: PickOptions = { force: false, minSegmentDeadRatio: 0.5, resume: new Set() };

interface Row {
  name: string;
  segments: SegmentStats[];
  options?: Partial<PickOptions>;
  expect: VictimPlan;
}

const none: VictimPlan = { victims: [], sealActiveFirst: false, bytesToCopy: 0 };

const rows: Row[] = [
  { name: 'no segments', segments: [], expect: none },
  // ---- the dead-ratio threshold is strict
  {
    name: 'dead ratio exactly at minSegmentDeadRatio is not enough',
    segments: [seg(1, 1000, 500)],
    expect: none,
  },
  {
    name: 'dead ratio just above minSegmentDeadRatio qualifies',
    segments: [seg(1, 1000, 499)],
    expect: { victims: [1], sealActiveFirst: false, bytesToCopy: 499 },
  },
  {
    name: 'threshold 0: any dead byte qualifies',
    segments: [seg(1, 1000, 999), seg(2, 1000, 1000)],
    options: { minSegmentDeadRatio: 0 },
    expect: { victims: [1], sealActiveFirst: false, bytesToCopy: 999 },
  },
  {
    name: 'threshold 1: only segments with nothing live qualify',
    segments: [seg(1, 1000, 1), seg(2, 1000, 0)],
    options: { minSegmentDeadRatio: 1 },
    expect: { victims: [2], sealActiveFirst: false, bytesToCopy: 0 },
  },
  // ---- segments with nothing live always qualify; empty ones never
  {
    name: 'a segment with nothing live qualifies whatever the threshold',
    segments: [seg(1, 1000, 0)],
    options: { minSegmentDeadRatio: 2 },
    expect: { victims: [1], sealActiveFirst: false, bytesToCopy: 0 },
  },
  {
    name: 'an empty sealed segment (no bytes) is never a victim, even forced',
    segments: [seg(1, 0, 0)],
    options: { force: true },
    expect: none,
  },
  // ---- force
  {
    name: 'force picks a segment below the threshold that holds dead bytes',
    segments: [seg(1, 1000, 900)],
    options: { force: true },
    expect: { victims: [1], sealActiveFirst: false, bytesToCopy: 900 },
  },
  {
    name: 'force never picks a fully live segment',
    segments: [seg(1, 1000, 1000)],
    options: { force: true },
    expect: none,
  },
  // ---- resume victims of an interrupted run
  {
    name: 'a resume victim below the threshold qualifies',
    segments: [seg(1, 1000, 900), seg(2, 1000, 900)],
    options: { resume: new Set([2]) },
    expect: { victims: [2], sealActiveFirst: false, bytesToCopy: 900 },
  },
  {
    name: 'a resume victim with no dead bytes does not',
    segments: [seg(1, 1000, 1000)],
    options: { resume: new Set([1]) },
    expect: none,
  },
  {
    name: 'a resume id naming no segment changes nothing',
    segments: [seg(1, 1000, 400)],
    options: { resume: new Set([7]) },
    expect: { victims: [1], sealActiveFirst: false, bytesToCopy: 400 },
  },
  // ---- retired segments
  {
    name: 'a retired segment is never picked: not by ratio, force, resume or an empty live set',
    segments: [seg(1, 1000, 0, { retired: true }), seg(2, 1000, 100, { retired: true }), seg(3, 1000, 400)],
    options: { force: true, resume: new Set([1, 2]) },
    expect: { victims: [3], sealActiveFirst: false, bytesToCopy: 400 },
  },
  // ---- the active segment
  {
    name: 'an active segment above the threshold is sealed first and compacted',
    segments: [seg(1, 1000, 400), active(2, 1000, 300)],
    expect: { victims: [2, 1], sealActiveFirst: true, bytesToCopy: 700 },
  },
  {
    name: 'an active segment exactly at the threshold stays active',
    segments: [seg(1, 1000, 400), active(2, 1000, 500)],
    expect: { victims: [1], sealActiveFirst: false, bytesToCopy: 400 },
  },
  {
    name: 'force seals an active segment holding dead bytes',
    segments: [active(2, 1000, 990)],
    options: { force: true },
    expect: { victims: [2], sealActiveFirst: true, bytesToCopy: 990 },
  },
  {
    name: 'an active segment without dead bytes is left alone, even forced',
    segments: [active(2, 1000, 1000)],
    options: { force: true },
    expect: none,
  },
  {
    name: 'an empty active segment is left alone, even forced',
    segments: [seg(1, 1000, 100), active(2, 0, 0)],
    options: { force: true },
    expect: { victims: [1], sealActiveFirst: false, bytesToCopy: 100 },
  },
  {
    name: 'an active segment in the resume set is sealed first',
    segments: [active(2, 1000, 900)],
    options: { resume: new Set([2]) },
    expect: { victims: [2], sealActiveFirst: true, bytesToCopy: 900 },
  },
  {
    name: 'a retired active segment is never sealed',
    segments: [seg(2, 1000, 0, { sealed: false, active: true, retired: true })],
    options: { force: true },
    expect: none,
  },
  {
    name: 'an unsealed segment that is not the active one is never picked',
    segments: [seg(1, 1000, 0, { sealed: false }), seg(2, 1000, 100, { sealed: false })],
    options: { force: true },
    expect: none,
  },
  // ---- order and bytes to copy
  {
    name: 'most dead first; equal ratios keep the input order',
    segments: [seg(1, 1000, 400), seg(2, 1000, 0), seg(3, 2000, 800), seg(4, 1000, 100), seg(5, 1000, 900)],
    expect: { victims: [2, 4, 1, 3], sealActiveFirst: false, bytesToCopy: 1300 },
  },
  {
    name: 'only victims count towards the bytes to copy',
    segments: [seg(1, 1000, 200), seg(2, 1000, 700), seg(3, 1000, 1000)],
    expect: { victims: [1], sealActiveFirst: false, bytesToCopy: 200 },
  },
];

describe('pickVictims', () => {
  for (const row of rows) {
    it(row.name, () => {
      const plan = pickVictims(row.segments, { ...BASE, ...row.options });
      assert.deepEqual(plan, row.expect);
    });
  }

  it('does not modify its input', () => {
    const segments = [seg(2, 1000, 100), seg(1, 1000, 0)];
    const copy = structuredClone(segments);
    pickVictims(segments, { ...BASE, force: true });
    assert.deepEqual(segments, copy);
  });
});
