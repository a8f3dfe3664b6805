/**
 * The resource check of a compaction run, from tables: given the victims' live bytes, the memory
 * budget, the free disk and the headroom, either the run may start or it is refused with these
 * INSUFFICIENT_RESOURCES details. No store on disk.
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
  /** `ok`, or the refusal's details. */
  expect: 'ok' | Record<string, unknown>;
}

const memoryRefusal = (budget: number) => ({ budget, minimum: MIN });
const diskRefusal = (free: number, need: number) => ({ free, need, file: DIR });

const rows: Row[] = [
  // ---- nothing to do: nothing is checked
  {
    name: 'no victims: ok even with no budget and no free disk',
    input: { victimLiveBytes: [], memoryBudgetBytes: 0, freeBytes: 0 },
    expect: 'ok',
  },
  // ---- memory budget
  { name: 'budget exactly at the minimum is accepted', input: { memoryBudgetBytes: MIN }, expect: 'ok' },
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
  // ---- free disk: every live byte plus the headroom
  { name: 'free disk exactly at live + headroom is enough', input: { freeBytes: 3500 }, expect: 'ok' },
  {
    name: 'free disk one byte short of live + headroom is refused',
    input: { freeBytes: 3499 },
    expect: diskRefusal(3499, 3500),
  },
  {
    name: 'headroom alone is not enough: the live bytes come on top',
    input: { freeBytes: 500 },
    expect: diskRefusal(500, 3500),
  },
  {
    name: 'zero headroom: exactly the live bytes is enough',
    input: { diskHeadroomBytes: 0, freeBytes: 3000 },
    expect: 'ok',
  },
  {
    name: 'zero headroom: one byte short of the live bytes is refused',
    input: { diskHeadroomBytes: 0, freeBytes: 2999 },
    expect: diskRefusal(2999, 3000),
  },
  {
    name: 'victims with nothing live need only the headroom',
    input: { victimLiveBytes: [0], freeBytes: 500 },
    expect: 'ok',
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
      if (row.expect === 'ok') {
        assert.deepEqual(verdict, { ok: true });
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
    assert.equal(disk.message, 'compaction needs 3500 free bytes (live 3000 + headroom 500), 10 available');
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
