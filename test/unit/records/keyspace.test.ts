/**
 * The keyspace's helpers that need no store: the counting sort relocation's planning uses for the
 * free list, against a comparison sort.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { descending } from '../../../src/records/keyspace.js';

test('descending sorts slot numbers highest first, as a comparison sort does', () => {
  fc.assert(
    fc.property(fc.array(fc.nat({ max: 5000 }), { maxLength: 2000 }), (slots) => {
      const want = [...slots].sort((a, b) => b - a);
      assert.deepEqual(descending(slots), want);
    }),
  );
  assert.deepEqual(descending([]), []);
  assert.deepEqual(descending([0]), [0]);
});
