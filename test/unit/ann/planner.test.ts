import assert from 'node:assert/strict';
import { test } from 'node:test';
import { planRecall, type Plan, type PlanInput } from '../../../src/ann/planner.js';

const BASE: PlanInput = {
  k: 10,
  exact: false,
  ready: true,
  total: 100_000,
  spaceSize: 100_000,
  matches: 100_000,
  tail: 0,
  minMemories: 20_000,
};

const cases: [string, Partial<PlanInput>, Plan][] = [
  ['whole store, k=10: 30 candidates', {}, { path: 'index', candidates: 30 }],
  ['k=50: 3k candidates', { k: 50 }, { path: 'index', candidates: 150 }],
  ['exact requested', { exact: true }, { path: 'exact', reason: 'requested' }],
  ['index not ready', { ready: false }, { path: 'exact', reason: 'not-ready' }],
  ['sampled recall too low', { lowQuality: true }, { path: 'exact', reason: 'quality' }],
  ['sampled recall good enough', { lowQuality: false }, { path: 'index', candidates: 30 }],
  ['space at the minimum', { spaceSize: 20_000, matches: 20_000 }, { path: 'exact', reason: 'small' }],
  ['filter leaves too few', { matches: 15_000 }, { path: 'exact', reason: 'small' }],
  [
    'half the store in the space: twice the candidates',
    { spaceSize: 50_000, matches: 50_000 },
    { path: 'index', candidates: 60 },
  ],
  [
    'space and filter: 10% match, 10x candidates',
    { spaceSize: 50_000, matches: 10_000, minMemories: 5_000 },
    { path: 'index', candidates: 300 },
  ],
  [
    'under 5% of the store matches',
    { total: 1_000_000, spaceSize: 1_000_000, matches: 40_000 },
    { path: 'exact', reason: 'selective' },
  ],
  ['tail over 10% of the store', { tail: 10_001 }, { path: 'exact', reason: 'tail' }],
  ['tail at 10% still uses the index', { tail: 10_000 }, { path: 'index', candidates: 30 }],
  ['k so large the candidates reach half the store', { k: 20_000 }, { path: 'exact', reason: 'wide' }],
  [
    'minimum 0: tiny stores may use it',
    { total: 100, spaceSize: 100, matches: 100, minMemories: 0 },
    { path: 'index', candidates: 30 },
  ],
];

for (const [name, input, want] of cases) {
  test(`planRecall: ${name}`, () => {
    assert.deepEqual(planRecall({ ...BASE, ...input }), want);
  });
}
