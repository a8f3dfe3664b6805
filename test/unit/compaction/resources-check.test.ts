/**
 * The resource check of a compaction run, from tables: given the victims' live bytes, the memory
 * budget, the free disk and the headroom, either the run may start with the victims that fit (by
 * index) or it is refused with these INSUFFICIENT_RESOURCES details. No store on disk.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  MIN_MEMORY_BUDGET,
  checkMemoryBudget,
  checkResources,
  type ResourceInput,
} from '../../../src/compaction/resources.js';

const MIN = MIN_MEMORY_BUDGET;
const DIR = '/stores/a';

/** Plenty of everything; each row changes what it tests. */
const BASE: ResourceInput = {
  victimLiveBytes: [1000, 2000],
  memoryBudgetBytes: 4 * MIN,
  freeBytes: 1e12,
  diskHeadroomBytes: 500,
  dir: DIR,
};

interface Row {
  name: string;
  input: Partial<ResourceInput>;
  /** The victims taken (indexes), or the refusal's details. */
  expect: number[] | Record<string, unknown>;
}

const memoryRefusal = (budget: number) => ({ budget, minimum: MIN });
const diskRefusal = (free: number, need: number) => ({ free, need, file: DIR });

const rows: Row[] = [
  // ---- nothing to do: nothing is checked
  {
    name: 'no victims: ok even with no budget and no free disk',
    input: { victimLiveBytes: [], memoryBudgetBytes: 0, freeBytes: 0 },
    expect: [],
  },
  // ---- memory budget
  { name: 'budget exactly at the minimum is accepted', input: { memoryBudgetBytes: MIN }, expect: [0, 1] },
  {
    name: 'budget one byte below the minimum is refused',
    input: { memoryBudgetBytes: MIN - 1 },
    expect: memoryRefusal(MIN - 1),
  },
  { name: 'a tiny budget is refused', input: { memoryBudgetBytes: 1000 }, expect: memoryRefusal(1000) },
  {
    name: 'victims with nothing live still need the minimum budget',
    input: { victimLiveBytes: [0, 0], memoryBudgetBytes: MIN - 1 },
    expect: memoryRefusal(MIN - 1),
  },
  {
    name: 'memory is decided first when both are short',
    input: { memoryBudgetBytes: 0, freeBytes: 0 },
    expect: memoryRefusal(0),
  },
  // ---- free disk: the victims whose live bytes fit, plus the headroom
  {
    name: 'free disk exactly at live + headroom takes every victim',
    input: { freeBytes: 3500 },
    expect: [0, 1],
  },
  {
    name: 'one byte short of live + headroom: the victims that still fit are taken',
    input: { freeBytes: 3499 },
    expect: [0],
  },
  {
    name: 'headroom alone is not enough: not even the smallest victim fits',
    input: { freeBytes: 500 },
    expect: diskRefusal(500, 1500),
  },
  {
    name: 'zero headroom: exactly the live bytes is enough',
    input: { diskHeadroomBytes: 0, freeBytes: 3000 },
    expect: [0, 1],
  },
  {
    name: 'zero headroom: one byte short of the live bytes leaves the second victim',
    input: { diskHeadroomBytes: 0, freeBytes: 2999 },
    expect: [0],
  },
  {
    name: 'a victim too big for the disk is skipped and a later small one taken',
    input: { victimLiveBytes: [5000, 100, 200], freeBytes: 1000 },
    expect: [1, 2],
  },
  {
    name: 'the picker order decides between victims that do not fit together',
    input: { victimLiveBytes: [300, 200, 100], freeBytes: 1000 },
    expect: [0, 1],
  },
  {
    name: 'the refusal names what the smallest victim needs',
    input: { victimLiveBytes: [5000, 800], freeBytes: 1000 },
    expect: diskRefusal(1000, 1300),
  },
  {
    name: 'victims with nothing live need only the headroom',
    input: { victimLiveBytes: [0], freeBytes: 500 },
    expect: [0],
  },
  {
    name: 'a full disk: nothing-live victims are still taken (they free space without copying)',
    input: { victimLiveBytes: [4000, 0, 0], freeBytes: 500 },
    expect: [1, 2],
  },
  {
    name: 'victims with nothing live, one byte short of the headroom',
    input: { victimLiveBytes: [0], freeBytes: 499 },
    expect: diskRefusal(499, 500),
  },
];

describe('checkResources', () => {
  for (const row of rows) {
    it(row.name, () => {
      const verdict = checkResources({ ...BASE, ...row.input });
      if (Array.isArray(row.expect)) {
        assert.deepEqual(verdict, { ok: true, take: row.expect });
        return;
      }
      assert.equal(verdict.ok, false);
      if (verdict.ok) return;
      assert.deepEqual(verdict.details, row.expect);
      assert.ok(verdict.message.length > 0);
    });
  }

  it('names the figures in its messages', () => {
    const memory = checkResources({ ...BASE, memoryBudgetBytes: 1000 });
    assert.ok(!memory.ok);
    assert.equal(memory.message, `compaction.memoryBudgetBytes 1000 is below the minimum of ${MIN}`);
    const disk = checkResources({ ...BASE, freeBytes: 10 });
    assert.ok(!disk.ok);
    assert.equal(
      disk.message,
      'compaction needs 1500 free bytes (smallest victim live 1000 + headroom 500), 10 available',
    );
  });
});

describe('checkMemoryBudget (asked before the file system is)', () => {
  const table: Array<[name: string, live: number[], budget: number, ok: boolean]> = [
    ['no victims, no budget', [], 0, true],
    ['budget at the minimum', [1], MIN, true],
    ['budget one byte below the minimum', [1], MIN - 1, false],
    ['victims with nothing live, budget below the minimum', [0], MIN - 1, false],
  ];
  for (const [name, live, budget, ok] of table) {
    it(name, () => {
      const verdict = checkMemoryBudget(live, budget);
      assert.equal(verdict.ok, ok);
      if (!verdict.ok) assert.deepEqual(verdict.details, memoryRefusal(budget));
    });
  }

  it('agrees with checkResources whenever memory is the reason', () => {
    for (const budget of [0, 1, MIN - 1, MIN, MIN + 1]) {
      for (const live of [[], [0], [5, 7]]) {
        const alone = checkMemoryBudget(live, budget);
        const full = checkResources({ ...BASE, victimLiveBytes: live, memoryBudgetBytes: budget });
        if (!alone.ok) assert.deepEqual(full, alone, `budget ${budget}, live ${live.join(',')}`);
        else assert.equal(full.ok, true, `budget ${budget}, live ${live.join(',')}`);
      }
    }
  });
});
