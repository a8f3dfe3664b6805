import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { WarmStore, WarmStoreError, type MemoryRecord, type WarmStoreOptions } from '../../../src/index.js';
import { tempDir } from '../../helpers/tmp.js';

const DIM = 8;
const MAX_CONTENT = 100;

const good = (): Float32Array => Float32Array.from([1, 2, 3, 4, 5, 6, 7, 8]);

function withNaNAt(i: number, v: number): Float32Array {
  const e = good();
  e[i] = v;
  return e;
}

/** Asserts an INVALID_INPUT error whose details.field matches. */
function invalidInput(field: string | RegExp, label: string) {
  return (err: unknown): boolean => {
    assert.ok(
      WarmStoreError.is(err, 'INVALID_INPUT'),
      `${label}: expected INVALID_INPUT, got ${String(err)}`,
    );
    const f = String(err.details.field);
    if (typeof field === 'string') assert.equal(f, field, `${label}: details.field`);
    else assert.match(f, field, `${label}: details.field`);
    assert.ok(err.message.length > 0, `${label}: says why`);
    return true;
  };
}

async function dirSizes(dir: string): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const n of (await readdir(dir)).sort()) out[n] = (await stat(join(dir, n))).size;
  return out;
}

// Each case: what to put, and the field the error must name.
const BAD_RECORDS: Array<[string, unknown, string | RegExp]> = [
  ['embedding too short', { id: 'x', embedding: new Float32Array(DIM - 1) }, 'embedding'],
  ['embedding too long', { id: 'x', embedding: new Float32Array(DIM + 1) }, 'embedding'],
  ['embedding empty', { id: 'x', embedding: new Float32Array(0) }, 'embedding'],
  ['embedding missing', { id: 'x' }, 'embedding'],
  ['embedding a string', { id: 'x', embedding: '1,2,3' }, 'embedding'],
  [
    'embedding array with a string',
    { id: 'x', embedding: [1, 2, 3, '4', 5, 6, 7, 8] },
    /^embedding(\[3\])?$/,
  ],
  ['embedding NaN', { id: 'x', embedding: withNaNAt(3, NaN) }, /^embedding(\[3\])?$/],
  ['embedding Infinity', { id: 'x', embedding: withNaNAt(0, Infinity) }, /^embedding(\[0\])?$/],
  ['embedding -Infinity', { id: 'x', embedding: withNaNAt(7, -Infinity) }, /^embedding(\[7\])?$/],
  ['embedding number[] NaN', { id: 'x', embedding: [1, 2, NaN, 4, 5, 6, 7, 8] }, /^embedding(\[2\])?$/],
  ['embedding overflows float32', { id: 'x', embedding: [1e39, 2, 3, 4, 5, 6, 7, 8] }, /^embedding(\[0\])?$/],
  ['id empty', { id: '', embedding: good() }, 'id'],
  ['id 256 ASCII bytes', { id: 'a'.repeat(256), embedding: good() }, 'id'],
  ['id 256 UTF-8 bytes in 128 chars', { id: 'é'.repeat(128), embedding: good() }, 'id'],
  ['id 256 UTF-8 bytes of emoji', { id: '🧠'.repeat(64), embedding: good() }, 'id'],
  ['id a number', { id: 42, embedding: good() }, 'id'],
  ['id missing', { embedding: good() }, 'id'],
  ['id null', { id: null, embedding: good() }, 'id'],
  ['id lone high surrogate', { id: 'ab\ud800', embedding: good() }, 'id'],
  ['id lone low surrogate', { id: '\udc00x', embedding: good() }, 'id'],
  [
    'content over maxContentBytes',
    { id: 'x', embedding: good(), content: 'a'.repeat(MAX_CONTENT + 1) },
    'content',
  ],
  [
    'content over maxContentBytes in UTF-8 only',
    { id: 'x', embedding: good(), content: 'é'.repeat(MAX_CONTENT / 2 + 1) },
    'content',
  ],
  [
    'content over maxContentBytes in emoji',
    { id: 'x', embedding: good(), content: '🙂'.repeat(26) },
    'content',
  ],
  ['content a number', { id: 'x', embedding: good(), content: 5 }, 'content'],
  ['content an object', { id: 'x', embedding: good(), content: { text: 'a' } }, 'content'],
  ['content lone surrogate', { id: 'x', embedding: good(), content: 'abc\ud83e' }, 'content'],
  ['confidence below 0', { id: 'x', embedding: good(), confidence: -0.001 }, 'confidence'],
  ['confidence above 1', { id: 'x', embedding: good(), confidence: 1.0001 }, 'confidence'],
  ['confidence NaN', { id: 'x', embedding: good(), confidence: NaN }, 'confidence'],
  ['confidence a string', { id: 'x', embedding: good(), confidence: '0.5' }, 'confidence'],
  ['activation Infinity', { id: 'x', embedding: good(), activation: Infinity }, 'activation'],
  ['activation NaN', { id: 'x', embedding: good(), activation: NaN }, 'activation'],
  ['decayRate negative', { id: 'x', embedding: good(), decayRate: -0.5 }, 'decayRate'],
  ['decayRate Infinity', { id: 'x', embedding: good(), decayRate: Infinity }, 'decayRate'],
  ['createdAt NaN', { id: 'x', embedding: good(), createdAt: NaN }, 'createdAt'],
  ['lastAccess Infinity', { id: 'x', embedding: good(), lastAccess: -Infinity }, 'lastAccess'],
  ['accessCount not an integer', { id: 'x', embedding: good(), accessCount: 1.5 }, 'accessCount'],
  ['accessCount negative', { id: 'x', embedding: good(), accessCount: -1 }, 'accessCount'],
  ['accessCount beyond safe integers', { id: 'x', embedding: good(), accessCount: 2 ** 53 }, 'accessCount'],
  ['record null', null, 'record'],
  ['record an array', [], 'record'],
  ['record a string', 'x', 'record'],
];

describe('validation', () => {
  test('every invalid record is refused with INVALID_INPUT naming the field, and nothing is written', async (t) => {
    const dir = await tempDir(t);
    const opts: WarmStoreOptions = {
      dimension: DIM,
      maintenanceIntervalMs: false,
      maxContentBytes: MAX_CONTENT,
    };
    let store = await WarmStore.open(dir, opts);
    try {
      await store.put({ id: 'keep', embedding: good(), content: 'kept' });
      // Boundary values are accepted.
      await store.put({ id: 'a'.repeat(255), embedding: good(), content: 'b'.repeat(MAX_CONTENT) });
      await store.put({ id: 'é'.repeat(127) + 'x', embedding: good(), content: 'é'.repeat(MAX_CONTENT / 2) });
      await store.put({ id: 'edges', embedding: good(), confidence: 0, decayRate: 0, accessCount: 0 });
      await store.put({
        id: 'edges2',
        embedding: good(),
        confidence: 1,
        accessCount: Number.MAX_SAFE_INTEGER,
      });
      await store.checkpoint();
      const sizeBefore = store.size;
      const filesBefore = await dirSizes(dir);

      for (const [label, rec, field] of BAD_RECORDS) {
        await assert.rejects(store.put(rec as MemoryRecord), invalidInput(field, label));
        // The same record as an update of an existing id must not change it either.
        if (rec !== null && typeof rec === 'object' && !Array.isArray(rec) && 'id' in rec && rec.id === 'x') {
          await assert.rejects(
            store.put({ ...(rec as MemoryRecord), id: 'keep' }),
            invalidInput(field, `${label} (update)`),
          );
        }
        assert.equal(store.size, sizeBefore, `${label}: size unchanged`);
        assert.equal(store.has('x'), false, `${label}: not stored`);
      }
      // putMany validates every record before writing any, and names the index.
      await assert.rejects(
        store.putMany([
          { id: 'pm-ok', embedding: good() },
          { id: 'pm-bad', embedding: good(), confidence: 2 },
        ]),
        invalidInput('records[1].confidence', 'putMany'),
      );
      assert.equal(store.has('pm-ok'), false, 'putMany wrote nothing');
      await assert.rejects(
        store.putMany('nope' as unknown as MemoryRecord[]),
        invalidInput('records', 'putMany'),
      );

      const kept = await store.get('keep');
      assert.equal(kept?.content, 'kept');
      assert.deepEqual(Array.from(kept!.embedding), [1, 2, 3, 4, 5, 6, 7, 8]);
      assert.deepEqual(await dirSizes(dir), filesBefore, 'no file grew or appeared');
    } finally {
      await store.close();
    }
    store = await WarmStore.open(dir, opts);
    try {
      assert.equal(store.size, 5, 'reopen shows only the valid records');
      assert.equal(store.has('x'), false);
      assert.equal(store.has('pm-ok'), false);
      assert.equal((await store.get('keep'))?.content, 'kept');
    } finally {
      await store.close();
    }
  });

  test('maxContentBytes 0 allows only absent and empty content', async (t) => {
    const dir = await tempDir(t);
    const store = await WarmStore.open(dir, {
      dimension: DIM,
      maintenanceIntervalMs: false,
      maxContentBytes: 0,
    });
    try {
      await store.put({ id: 'empty', embedding: good(), content: '' });
      await store.put({ id: 'absent', embedding: good(), content: null });
      await assert.rejects(
        store.put({ id: 'one', embedding: good(), content: 'a' }),
        invalidInput('content', 'one byte'),
      );
      assert.equal((await store.get('empty'))?.content, '');
      assert.equal(store.size, 2);
    } finally {
      await store.close();
    }
  });

  test('id arguments of get, getSync, has and delete are validated', async (t) => {
    const dir = await tempDir(t);
    const store = await WarmStore.open(dir, { dimension: DIM, maintenanceIntervalMs: false });
    try {
      await store.put({ id: 'a', embedding: good() });
      for (const bad of ['', 'x'.repeat(256), 7, undefined, '\ud800'] as unknown[]) {
        const label = JSON.stringify(bad) ?? 'undefined';
        await assert.rejects(store.get(bad as string), invalidInput('id', `get ${label}`));
        await assert.rejects(store.delete(bad as string), invalidInput('id', `delete ${label}`));
        assert.throws(() => store.has(bad as string), invalidInput('id', `has ${label}`));
        assert.throws(() => store.getSync(bad as string), invalidInput('id', `getSync ${label}`));
      }
      assert.equal(store.size, 1);
    } finally {
      await store.close();
    }
  });

  test('bad options are refused with INVALID_INPUT naming the option, before anything is created', async (t) => {
    const root = await tempDir(t);
    const cases: Array<[string, unknown, string]> = [
      ['dimension 0', { dimension: 0 }, 'dimension'],
      ['dimension negative', { dimension: -8 }, 'dimension'],
      ['dimension fractional', { dimension: 8.5 }, 'dimension'],
      ['dimension a string', { dimension: '8' }, 'dimension'],
      ['durability unknown', { durability: 'fast' }, 'durability'],
      ['maxContentBytes above 2^32-1', { maxContentBytes: 2 ** 32 }, 'maxContentBytes'],
      ['maxContentBytes negative', { maxContentBytes: -1 }, 'maxContentBytes'],
      ['maintenanceIntervalMs 0', { maintenanceIntervalMs: 0 }, 'maintenanceIntervalMs'],
      ['segmentBytes tiny', { segmentBytes: 10 }, 'segmentBytes'],
      ['relaxedSyncIntervalMs 0', { relaxedSyncIntervalMs: 0 }, 'relaxedSyncIntervalMs'],
      ['options not an object', 'sync', 'options'],
    ];
    for (const [i, [label, opts, field]] of cases.entries()) {
      const dir = join(root, `s${i}`);
      await assert.rejects(WarmStore.open(dir, opts as WarmStoreOptions), invalidInput(field, label));
      assert.equal(existsSync(dir), false, `${label}: nothing created`);
    }
    await assert.rejects(WarmStore.open('', {}), invalidInput('dir', 'empty dir'));
  });

  test('a refused dimension on an existing store leaves it intact', async (t) => {
    const dir = await tempDir(t);
    const s = await WarmStore.open(dir, { dimension: DIM, maintenanceIntervalMs: false });
    await s.put({ id: 'a', embedding: good(), content: 'c' });
    await s.close();
    const before = await dirSizes(dir);
    await assert.rejects(
      WarmStore.open(dir, { dimension: 0, maintenanceIntervalMs: false }),
      invalidInput('dimension', 'dimension 0'),
    );
    await assert.rejects(
      WarmStore.open(dir, { dimension: 768, maintenanceIntervalMs: false }),
      invalidInput('dimension', 'dimension 768'),
    );
    assert.deepEqual(Object.keys(await dirSizes(dir)), Object.keys(before));
    const again = await WarmStore.open(dir, { maintenanceIntervalMs: false });
    try {
      assert.equal((await again.get('a'))?.content, 'c');
    } finally {
      await again.close();
    }
  });
});

test('get settles instead of throwing, and counts every call once as an op', async (t) => {
  const dir = await tempDir(t);
  const store = await WarmStore.open(dir, { dimension: DIM, maintenanceIntervalMs: false });
  const ops: string[] = [];
  store.on('op', (name) => ops.push(name));
  await store.put({ id: 'a', embedding: good(), content: 'x' });
  ops.length = 0;
  assert.equal((await store.get('a'))?.content, 'x');
  assert.equal(await store.get('missing'), undefined);
  assert.equal((await store.get('a', { touch: true }))?.accessCount, 1);
  let p: Promise<unknown> | undefined;
  assert.doesNotThrow(() => {
    p = store.get('');
  });
  await assert.rejects(p!, invalidInput('id', 'empty id'));
  assert.deepEqual(
    ops.filter((o) => o === 'get'),
    ['get', 'get', 'get', 'get'],
  );
  await store.close();
  assert.doesNotThrow(() => {
    p = store.get('a');
  });
  await assert.rejects(p!, (err: unknown) => WarmStoreError.is(err, 'STORE_CLOSED'));
});
