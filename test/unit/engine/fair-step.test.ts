import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FairStep } from '../../../src/engine/fair-step.js';

describe('FairStep', () => {
  it('takes share of what the others held the loop, within its bounds', () => {
    const s = new FairStep(2, 8, 0.5);
    assert.equal(s.budgetMs, 2);
    s.observe(0.1);
    assert.equal(s.budgetMs, 2, 'an idle loop keeps the short step');
    s.observe(10);
    assert.equal(s.budgetMs, 5);
    s.observe(100);
    assert.equal(s.budgetMs, 8, 'never past the longest step');
    s.observe(1);
    assert.equal(s.budgetMs, 2, 'back to the short step once the loop is free');
  });

  it('measures the turn other work holds: a busy loop lengthens the next step', async () => {
    const s = new FairStep(2, 8, 0.5);
    let stop = false;
    // Stand-in for busy readers: every turn of the loop spends 20 ms.
    const spin = (): void => {
      const until = performance.now() + 20;
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
    assert.equal(s.budgetMs, 8);
  });
});
