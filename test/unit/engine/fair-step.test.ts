import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FairStep } from '../../../src/engine/fair-step.js';

describe('FairStep', () => {
  it('takes share of what the others held the loop, within its bounds and the turn it keeps to', () => {
    const s = new FairStep(2, 8, 0.5, 40);
    assert.equal(s.budgetMs, 2);
    s.observe(0.1);
    assert.equal(s.budgetMs, 2, 'an idle loop keeps the short step');
    s.observe(10);
    assert.equal(s.budgetMs, 5);
    s.observe(16);
    assert.equal(s.budgetMs, 8, 'never past the longest step');
    s.observe(36);
    assert.equal(s.budgetMs, 4, 'no longer than what keeps the turn within 40 ms');
    s.observe(100);
    assert.equal(s.budgetMs, 2, 'the short step when the others alone take the whole turn');
    s.observe(1);
    assert.equal(s.budgetMs, 2, 'back to the short step once the loop is free');
  });

  it('measures the turn other work holds', async () => {
    const s = new FairStep(2, 8, 0.5, 40);
    let stop = false;
    // Stand-in for busy readers: every turn of the loop spends 16 ms.
    const spin = (): void => {
      const until = performance.now() + 16;
      while (performance.now() < until);
      if (!stop) setImmediate(spin);
    };
    setImmediate(spin);
    try {
      await s.yield();
      await s.yield();
    } finally {
      stop = true;
    }
    assert.ok(s.othersMs >= 15.9, `the wait covered the others' turn (${s.othersMs} ms)`);
    assert.equal(s.budgetMs, Math.max(2, Math.min(8, s.othersMs / 2, 40 - s.othersMs)));
  });
});
