/**
 * Model-based: random sequences of bulk puts, deletes, compactions (which relocate slots and cut
 * the record files), reopens and power cuts (between steps, and at a random file operation of a
 * compaction, torn or not; the store runs on the power-cut file layer) against a Map.
 * After every step the store holds exactly the model; at the end iteration yields each memory once
 * and verify() is clean.
 */
import assert from 'node:assert/strict';
import { mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import type { WarmStore } from '../../../src/index.js';
import { PowerCutFileSystem } from '../../../src/testing/index.js';
import { makeTempDir, removeDir } from '../../helpers/tmp.js';
import { DIM, expectStoreEquals, openStore, putAll, type Model } from './fixture.js';

const IDS = 120;

type Op =
  | { op: 'put'; from: number; count: number; v: number }
  | { op: 'delete'; from: number; count: number; stride: number }
  | { op: 'compact' }
  | { op: 'reopen' }
  | { op: 'powerCut' }
  | { op: 'compactCut'; at: number; torn: boolean };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      op: fc.constant('put' as const),
      from: fc.integer({ min: 0, max: IDS - 1 }),
      count: fc.integer({ min: 1, max: 60 }),
      v: fc.integer({ min: 1, max: 1000 }),
    }),
  },
  {
    weight: 4,
    arbitrary: fc.record({
      op: fc.constant('delete' as const),
      from: fc.integer({ min: 0, max: IDS - 1 }),
      count: fc.integer({ min: 1, max: 60 }),
      stride: fc.integer({ min: 1, max: 3 }),
    }),
  },
  { weight: 3, arbitrary: fc.constant({ op: 'compact' as const }) },
  { weight: 1, arbitrary: fc.constant({ op: 'reopen' as const }) },
  { weight: 1, arbitrary: fc.constant({ op: 'powerCut' as const }) },
  {
    weight: 2,
    arbitrary: fc.record({
      op: fc.constant('compactCut' as const),
      at: fc.integer({ min: 1, max: 120 }),
      torn: fc.boolean(),
    }),
  },
);

const idOf = (i: number): string => `k${String(i % IDS).padStart(4, '0')}`;

function headerSlots(dir: string): number {
  return Math.floor((statSync(join(dir, 'records.dat')).size - 4096) / 352);
}

describe('model-based relocation', () => {
  test('random puts/deletes/compactions/reopens/power cuts match a Map', { timeout: 300_000 }, async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(opArb, { minLength: 4, maxLength: 24 }), async (ops) => {
        const root = await makeTempDir('warmstore-reloc-model-');
        const dir = join(root, 'store');
        mkdirSync(dir);
        let pc = new PowerCutFileSystem(root);
        let store: WarmStore = await openStore(dir, { fileSystem: pc });
        const model: Model = new Map();
        try {
          for (const [step, o] of ops.entries()) {
            const label = `step ${step} ${JSON.stringify(o)}`;
            switch (o.op) {
              case 'put': {
                const items: [string, number][] = [];
                for (let i = 0; i < o.count; i++) items.push([idOf(o.from + i), o.v]);
                await putAll(store, model, items, { min: 0, max: 300 }, 25);
                break;
              }
              case 'delete': {
                const ids: string[] = [];
                for (let i = 0; i < o.count; i += o.stride) ids.push(idOf(o.from + i));
                const unique = [...new Set(ids)];
                const res = await Promise.all(unique.map((id) => store.delete(id)));
                unique.forEach((id, j) => {
                  assert.equal(res[j], model.has(id), `${label}: delete(${id})`);
                  model.delete(id);
                });
                break;
              }
              case 'compact': {
                await store.compact({ force: true });
                // A compaction ends with a checkpoint that cuts the files to the slot limit.
                assert.ok(
                  headerSlots(dir) <= model.size + (store.storageStatus().diskFull ? IDS : 0),
                  `${label}: ${headerSlots(dir)} slots on disk for ${model.size} memories`,
                );
                break;
              }
              case 'reopen':
                await store.close();
                pc.dispose();
                pc = new PowerCutFileSystem(root);
                store = await openStore(dir, { fileSystem: pc });
                break;
              case 'compactCut':
                // The power goes at the nth file operation of a compaction (or right after it).
                pc.cutAtOp(o.at, o.torn ? { tornSeed: o.at } : {});
                await store.compact({ force: true }).catch(() => undefined);
                if (!pc.isCut) pc.cut();
                await store.close().catch(() => undefined);
                pc = new PowerCutFileSystem(root);
                store = await openStore(dir, { fileSystem: pc });
                break;
              case 'powerCut':
                pc.cut({ tornSeed: step + 1 });
                await store.close().catch(() => undefined);
                pc = new PowerCutFileSystem(root);
                store = await openStore(dir, { fileSystem: pc });
                break;
            }
            expectStoreEquals(store, model, label);
          }
          await store.close();
          pc.dispose();
          store = await openStore(dir);
          expectStoreEquals(store, model, 'final reopen');
          const seen = new Set<string>();
          for await (const m of store.entries()) {
            assert.ok(!seen.has(m.id), `entries() yielded ${m.id} twice`);
            seen.add(m.id);
          }
          assert.equal(seen.size, model.size);
          const report = await store.verify();
          assert.equal(report.ok, true, `verify: ${JSON.stringify(report.problems)}`);
          assert.equal(store.dimension, DIM);
        } finally {
          await store.close().catch(() => undefined);
          await removeDir(root);
        }
      }),
      { numRuns: 25 },
    );
  });
});
