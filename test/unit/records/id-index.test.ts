/**
 * The id index against a Map model: random sets, deletes and space drops, with colliding hashes
 * forced (every id of a run may share one checksum) and growth from the smallest capacity, so
 * probing, backward-shift deletion and rehashing are all exercised.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { IdIndex, idHashOfBytes, idHashOfString } from '../../../src/records/id-index.js';
import { CHUNK_MASK, RecordTable } from '../../../src/records/table.js';

type Op =
  | { t: 'set'; space: number; id: number }
  | { t: 'delete'; space: number; id: number }
  | { t: 'drop'; space: number };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ t: fc.constant('set' as const), space: fc.nat(3), id: fc.nat(60) }) },
  {
    weight: 3,
    arbitrary: fc.record({ t: fc.constant('delete' as const), space: fc.nat(3), id: fc.nat(60) }),
  },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('drop' as const), space: fc.nat(3) }) },
);

describe('id index', () => {
  test('the checksum of a string is the checksum of its UTF-8 bytes, never 0', () => {
    for (const id of ['a', 'ключ', '漢字🧠', 'x'.repeat(255), 'é'.repeat(127)]) {
      assert.equal(idHashOfString(id), idHashOfBytes(Buffer.from(id, 'utf8')));
      assert.notEqual(idHashOfString(id), 0);
    }
  });

  test('agrees with a Map model under random sets, deletes and space drops', () => {
    fc.assert(
      fc.property(
        fc.array(opArb, { minLength: 50, maxLength: 600 }),
        fc.integer({ min: 0, max: 3 }),
        (ops, hashBits) => {
          const table = new RecordTable(4);
          const index = new IdIndex(table);
          // hashBits 0: every id collides; otherwise the checksum keeps that many low bits.
          const hashOf = (id: string): number => idHashOfString(id) & ((1 << (hashBits * 4)) - 1) || 1;
          const model = new Map<string, number>();
          let nextSlot = 0;
          const keyOf = (space: number, id: string): string => `${space}/${id}`;
          for (const op of ops) {
            if (op.t === 'drop') {
              const n = [...model.keys()].filter((k) => k.startsWith(`${op.space}/`)).length;
              assert.equal(index.dropSpace(op.space), n);
              for (const k of [...model.keys()]) if (k.startsWith(`${op.space}/`)) model.delete(k);
              continue;
            }
            const id = `id-${op.id}`;
            const k = keyOf(op.space, id);
            if (op.t === 'set') {
              // A new slot each time, as a put takes; the old one is cleared after the index moves.
              const slot = nextSlot++;
              table.ensure(slot);
              const c = table.chunk(slot);
              c.ids[slot & CHUNK_MASK] = id;
              c.space[slot & CHUNK_MASK] = op.space;
              const old = model.get(k);
              assert.equal(index.set(op.space, id, slot, hashOf(id)), old === undefined);
              if (old !== undefined) table.clear(old);
              model.set(k, slot);
            } else {
              assert.equal(index.delete(op.space, id, hashOf(id)), model.has(k));
              const old = model.get(k);
              if (old !== undefined) table.clear(old);
              model.delete(k);
            }
          }
          assert.equal(index.size, model.size);
          for (let space = 0; space <= 3; space++) {
            const ids = [...model.keys()].filter((k) => k.startsWith(`${space}/`));
            assert.equal(index.sizeOf(space), ids.length);
            assert.deepEqual(
              [...index.ids(space)].sort(),
              ids.map((k) => k.slice(k.indexOf('/') + 1)).sort(),
            );
            for (let i = 0; i <= 60; i++) {
              const id = `id-${i}`;
              assert.equal(index.get(space, id, hashOf(id)), model.get(keyOf(space, id)));
            }
          }
        },
      ),
      { numRuns: 150 },
    );
  });

  test('getOrSet inserts once and then returns the slot held', () => {
    const table = new RecordTable(4);
    const index = new IdIndex(table);
    index.reserve(5000);
    for (let slot = 0; slot < 5000; slot++) {
      table.ensure(slot);
      table.chunk(slot).ids[slot & CHUNK_MASK] = `m${slot}`;
      assert.equal(index.getOrSet(0, `m${slot}`, slot, idHashOfString(`m${slot}`)), undefined);
    }
    assert.equal(index.getOrSet(0, 'm42', 9999, idHashOfString('m42')), 42);
    assert.equal(index.size, 5000);
    assert.equal(index.get(1, 'm42'), undefined, 'another space is another key');
  });
});
