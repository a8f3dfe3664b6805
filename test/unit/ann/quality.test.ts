import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MIN_RECALL, RecallQuality, overlap } from '../../../src/ann/quality.js';

test('samples the first recall, then one in five until five samples, then one in `every`', () => {
  const q = new RecallQuality(MIN_RECALL, { every: 50, gapMs: 0 });
  const sampled: number[] = [];
  for (let i = 1; i <= 200; i++) {
    if (q.wantSample()) {
      sampled.push(i);
      q.done(10, 10);
    }
  }
  assert.deepEqual(sampled.slice(0, 5), [1, 6, 11, 16, 21]);
  assert.deepEqual(sampled.slice(5), [71, 121, 171]);
});

test('once the estimate stands, samples are at least gapMs apart and one in 1000 by default', () => {
  const gapped = new RecallQuality(MIN_RECALL, { every: 1, gapMs: 60_000 });
  let n = 0;
  for (let i = 0; i < 200; i++) {
    if (gapped.wantSample()) {
      n++;
      gapped.done(10, 10);
    }
  }
  assert.equal(n, 5, 'five to settle; the next waits a minute after the last');
  const slow = new RecallQuality(MIN_RECALL, { gapMs: 0 });
  n = 0;
  for (let i = 0; i < 2100; i++) {
    if (slow.wantSample()) {
      n++;
      slow.done(10, 10);
    }
  }
  assert.equal(n, 7, 'five to settle, then one in a thousand');
});

test('one sample at a time: none is started while one runs', () => {
  const q = new RecallQuality();
  assert.equal(q.wantSample(), true);
  for (let i = 0; i < 20; i++) assert.equal(q.wantSample(), false);
  q.done(9, 10);
  assert.equal(q.wantSample(), true);
});

test('the estimate needs five samples, averages the last twenty and says when it is low', () => {
  const q = new RecallQuality(MIN_RECALL, { every: 50, gapMs: 0 });
  const sample = (found: number, of: number): void => {
    for (let i = 0; !q.wantSample(); i++) assert.ok(i < 1000);
    q.done(found, of);
  };
  for (let i = 0; i < 4; i++) sample(1, 10);
  assert.equal(q.estimate, undefined);
  assert.equal(q.low, false, 'unknown is not low');
  sample(1, 10);
  assert.ok(Math.abs(q.estimate! - 0.1) < 1e-9);
  assert.equal(q.low, true);
  sample(0, 0);
  assert.ok(Math.abs(q.estimate! - 0.1) < 1e-9, 'an empty sample is not counted');
  for (let i = 0; i < 20; i++) sample(10, 10);
  assert.equal(q.estimate, 1, 'only the last twenty count');
  assert.equal(q.low, false);
  assert.equal(new RecallQuality(0.99).low, false);
  const strict = new RecallQuality(1, { gapMs: 0 });
  for (let i = 0; i < 5; i++) {
    while (!strict.wantSample());
    strict.done(9, 10);
  }
  assert.equal(strict.low, true);
  assert.ok(MIN_RECALL > 0.5 && MIN_RECALL < 1);
});

test('overlap counts the exact ids the approximate answer holds', () => {
  const ids = (...xs: string[]) => xs.map((id) => ({ id }));
  assert.equal(overlap(ids('a', 'b', 'c'), ids('c', 'd', 'a')), 2);
  assert.equal(overlap([], ids('a')), 0);
});

test('samples saved with the index seed a new estimate; anything malformed is ignored', () => {
  for (const bad of [undefined, null, 'x', [0.9, 'a'], [0.9, 1.5], [Number.NaN], { 0: 0.9 }]) {
    const q = new RecallQuality();
    q.seed(bad);
    assert.deepEqual(q.samples, [], JSON.stringify(bad));
  }
  const q = new RecallQuality(MIN_RECALL, { every: 1000, gapMs: 0 });
  q.seed(Array.from({ length: 30 }, (_, i) => (i < 10 ? 0 : 0.9)));
  assert.equal(q.samples.length, 20, 'the last twenty');
  assert.ok(Math.abs(q.estimate! - 0.9) < 1e-9);
  // A seeded estimate stands: the next sample waits for the slow cadence.
  let first = 0;
  for (let i = 1; i <= 1000 && first === 0; i++) if (q.wantSample()) first = i;
  assert.equal(first, 1000);
  // Samples of its own come first: a later seed does not replace them.
  const own = new RecallQuality();
  own.done(1, 10);
  own.seed([0.9, 0.9, 0.9, 0.9, 0.9]);
  assert.deepEqual(own.samples, [0.1]);
});
