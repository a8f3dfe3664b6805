import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { WarmStore, type MemoryRecord, type WarmStoreOptions } from '../../../src/index.js';
import { expectSameRecord } from '../../helpers/assert.js';
import { makeTempDir, removeDir } from '../../helpers/tmp.js';

const DIM = 8;
const OPTS: WarmStoreOptions = {
  dimension: DIM,
  maintenanceIntervalMs: false,
  // Small segments so content spreads over several, and compaction has sealed victims.
  segmentBytes: 4096,
  maintenance: { startupCompaction: 'off' },
};
const IDS = ['a', 'b', 'c', 'ключ', '漢字🧠', 'x'.repeat(255)];

type Content = null | undefined | '' | { text: string; repeat: number };

type Op =
  | { op: 'put'; id: number; content: Content; seed: number; partial: boolean }
  | { op: 'putMany'; items: Array<{ id: number; content: Content; seed: number }> }
  | { op: 'delete'; id: number }
  | { op: 'get'; id: number; touch: boolean }
  | { op: 'reopen' }
  | { op: 'checkpoint' }
  | { op: 'compact' };

const contentArb: fc.Arbitrary<Content> = fc.oneof(
  { weight: 1, arbitrary: fc.constant(null) },
  { weight: 1, arbitrary: fc.constant(undefined) },
  { weight: 1, arbitrary: fc.constant('' as const) },
  {
    weight: 5,
    arbitrary: fc.record({
      text: fc.string({ unit: 'grapheme', minLength: 5, maxLength: 20 }),
      // Short contents, and ones of several KB so segments fill, seal and become compaction victims.
      repeat: fc.oneof(fc.integer({ min: 1, max: 5 }), fc.integer({ min: 100, max: 400 })),
    }),
  },
);
const idArb = fc.integer({ min: 0, max: IDS.length - 1 });
const seedArb = fc.integer({ min: 0, max: 1_000_000 });

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 8,
    arbitrary: fc.record({
      op: fc.constant('put' as const),
      id: idArb,
      content: contentArb,
      seed: seedArb,
      partial: fc.boolean(),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      op: fc.constant('putMany' as const),
      items: fc.array(fc.record({ id: idArb, content: contentArb, seed: seedArb }), {
        minLength: 1,
        maxLength: 4,
      }),
    }),
  },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('delete' as const), id: idArb }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('get' as const), id: idArb, touch: fc.boolean() }) },
  { weight: 1, arbitrary: fc.constant({ op: 'reopen' as const }) },
  { weight: 1, arbitrary: fc.constant({ op: 'checkpoint' as const }) },
  { weight: 2, arbitrary: fc.constant({ op: 'compact' as const }) },
);

function recordOf(id: string, content: Content, seed: number, partial: boolean): MemoryRecord {
  const embedding = new Float32Array(DIM);
  for (let i = 0; i < DIM; i++) embedding[i] = ((seed * 7919 + i * 104729) % 2001) / 1000 - 1;
  embedding[0] = embedding[0]! + 2; // never the zero vector
  const text =
    content === null || content === undefined || content === ''
      ? content
      : content.text.repeat(content.repeat);
  const r: MemoryRecord = { id, embedding, createdAt: 1_600_000_000_000 + seed };
  if (text !== undefined) r.content = text;
  if (!partial) {
    r.confidence = (seed % 101) / 100;
    r.activation = (seed % 37) - 18.5;
    r.decayRate = (seed % 13) / 8;
    r.lastAccess = 1_650_000_000_000 + seed;
    r.accessCount = seed % 1000;
  }
  return r;
}

async function assertMatches(
  store: WarmStore,
  model: Map<string, MemoryRecord>,
  label: string,
): Promise<void> {
  assert.equal(store.size, model.size, `${label}: size`);
  for (const id of IDS) {
    const want = model.get(id);
    const got = await store.get(id);
    if (want === undefined) assert.equal(got, undefined, `${label}: ${id} should be absent`);
    else expectSameRecord(got, want, { context: label });
    assert.equal(store.has(id), want !== undefined, `${label}: has(${id})`);
  }
}

describe('model-based', () => {
  test('random put/update/delete/get/touch/reopen/checkpoint/compact sequences match a Map', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(opArb, { minLength: 1, maxLength: 32, size: 'max' }), async (ops) => {
        const dir = await makeTempDir('warmstore-model-');
        let store = await WarmStore.open(dir, OPTS);
        const model = new Map<string, MemoryRecord>();
        try {
          for (const [step, o] of ops.entries()) {
            const label = `step ${step} ${o.op}`;
            switch (o.op) {
              case 'put': {
                const r = recordOf(IDS[o.id]!, o.content, o.seed, o.partial);
                await store.put(r);
                model.set(r.id, r);
                break;
              }
              case 'putMany': {
                const rs = o.items.map((it) => recordOf(IDS[it.id]!, it.content, it.seed, false));
                await store.putMany(rs);
                for (const r of rs) model.set(r.id, r);
                break;
              }
              case 'delete': {
                const id = IDS[o.id]!;
                assert.equal(await store.delete(id), model.has(id), `${label}: delete result`);
                model.delete(id);
                break;
              }
              case 'get': {
                const id = IDS[o.id]!;
                const want = model.get(id);
                const before = Date.now();
                const got = await store.get(id, { touch: o.touch });
                if (want === undefined) {
                  assert.equal(got, undefined, `${label}: ${id}`);
                } else if (o.touch) {
                  expectSameRecord(got, want, { context: label, ignore: ['lastAccess', 'accessCount'] });
                  assert.equal(got.accessCount, (want.accessCount ?? 0) + 1, `${label}: accessCount bumped`);
                  assert.ok(got.lastAccess >= before, `${label}: lastAccess bumped`);
                  model.set(id, { ...want, accessCount: got.accessCount, lastAccess: got.lastAccess });
                } else {
                  expectSameRecord(got, want, { context: label });
                }
                break;
              }
              case 'reopen':
                await store.close();
                store = await WarmStore.open(dir, OPTS);
                break;
              case 'checkpoint':
                await store.checkpoint();
                break;
              case 'compact':
                await store.compact({ force: true });
                break;
            }
            await assertMatches(store, model, label);
          }
          await store.close();
          // The last open takes the dimension from the store.
          const { dimension: _dimension, ...withoutDimension } = OPTS;
          store = await WarmStore.open(dir, withoutDimension);
          await assertMatches(store, model, 'final reopen');
          const seen = new Set<string>();
          for await (const m of store.entries()) {
            assert.ok(!seen.has(m.id), `entries() yielded ${m.id} twice`);
            seen.add(m.id);
            expectSameRecord(m, model.get(m.id) ?? assert.fail(`entries() yielded unknown ${m.id}`), {
              context: 'entries',
            });
          }
          assert.equal(seen.size, model.size);
          const report = await store.verify();
          assert.equal(report.ok, true, `verify: ${JSON.stringify(report.problems)}`);
          const stats = store.contentStorageStats();
          assert.ok(stats.liveBytes >= 0 && stats.liveBytes <= stats.totalBytes, JSON.stringify(stats));
        } finally {
          await store.close();
          await removeDir(dir);
        }
      }),
      { numRuns: 16 },
    );
  });
});
