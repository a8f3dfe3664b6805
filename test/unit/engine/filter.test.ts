/**
 * Compiled filters: exclusive bounds become inclusive bounds on the next double, and the compiled
 * check agrees with the range's words for every double, at the bound and beside it.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { compileFilter, matchesMetadata, nextDouble } from '../../../src/engine/filter.js';
import type { MemoryMetadata } from '../../../src/types.js';

const meta = (confidence: number): MemoryMetadata => ({
  confidence,
  activation: 0,
  decayRate: 0,
  createdAt: 0,
  lastAccess: 0,
  accessCount: 0,
});
const finite = fc.double({ noNaN: true, noDefaultInfinity: true });

describe('compiled filters', () => {
  test('nextDouble steps one double up or down, through zero and to the ends', () => {
    assert.equal(nextDouble(1, true), 1 + Number.EPSILON);
    assert.equal(nextDouble(1, false), 1 - Number.EPSILON / 2);
    assert.equal(nextDouble(-1, true), -1 + Number.EPSILON / 2);
    assert.equal(nextDouble(0, true), Number.MIN_VALUE);
    assert.equal(nextDouble(-0, false), -Number.MIN_VALUE);
    assert.ok(Object.is(nextDouble(-Number.MIN_VALUE, true), -0));
    assert.equal(nextDouble(Number.MAX_VALUE, true), Infinity);
    assert.equal(nextDouble(-Number.MAX_VALUE, false), -Infinity);
    fc.assert(
      fc.property(finite, (v) => {
        const up = nextDouble(v, true);
        const down = nextDouble(v, false);
        assert.ok(up > v && down < v);
        // Each is the other's neighbour back: one step, not more.
        assert.ok(nextDouble(up, false) === v); // === : zero and minus zero are one bound
        assert.ok(nextDouble(down, true) === v);
      }),
    );
  });

  test('gt, gte, lt and lte as their words say, at the bound and one double beside it', () => {
    fc.assert(
      fc.property(
        finite,
        fc.constantFrom('gt', 'gte', 'lt', 'lte'),
        fc.integer({ min: -1, max: 1 }),
        (b, op, step) => {
          const x = step === 0 ? b : nextDouble(b, step > 0);
          const f = compileFilter({ confidence: { [op]: b } });
          const want = op === 'gt' ? x > b : op === 'gte' ? x >= b : op === 'lt' ? x < b : x <= b;
          assert.equal(matchesMetadata(f, meta(x)), want, `${x} ${op} ${b}`);
        },
      ),
    );
  });

  test('two bounds on one side keep the tighter, an empty range matches nothing', () => {
    const f = compileFilter({ confidence: { gt: 0.5, gte: 0.5, lt: 0.9, lte: 0.8 } });
    assert.equal(matchesMetadata(f, meta(0.5)), false);
    assert.equal(matchesMetadata(f, meta(0.8)), true);
    assert.equal(matchesMetadata(f, meta(nextDouble(0.8, true))), false);
    const g = compileFilter({ confidence: { gte: 0.5, lt: 0.5 } });
    assert.equal(matchesMetadata(g, meta(0.5)), false);
  });
});
