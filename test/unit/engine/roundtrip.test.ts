import assert from 'node:assert/strict';
import { copyFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import {
  WarmStore,
  WarmStoreError,
  type MemoryRecord,
  type StoredMemory,
  type WarmStoreOptions,
} from '../../../src/index.js';
import { expectSameRecord } from '../../helpers/assert.js';
import { embeddingFor, recordFor } from '../../helpers/random.js';
import { makeTempDir, removeDir } from '../../helpers/tmp.js';

const DIM = 8;

interface Scratch {
  dir: string;
  open(o?: WarmStoreOptions): Promise<WarmStore>;
}

/** A temp dir whose stores are closed, then the dir removed, when the test ends. */
async function scratch(t: TestContext): Promise<Scratch> {
  const dir = await makeTempDir('warmstore-roundtrip-');
  const stores: WarmStore[] = [];
  t.after(async () => {
    for (const s of stores) await s.close().catch(() => undefined);
    await removeDir(dir);
  });
  return {
    dir,
    async open(o: WarmStoreOptions = {}): Promise<WarmStore> {
      const s = await WarmStore.open(dir, { dimension: DIM, maintenanceIntervalMs: false, ...o });
      stores.push(s);
      return s;
    },
  };
}

function emb(seed: number, dim = DIM): Float32Array {
  return embeddingFor(seed, dim);
}

function bitsOf(a: Float32Array): Uint32Array {
  return new Uint32Array(a.buffer, a.byteOffset, a.length);
}

function assertBitsEqual(actual: Float32Array, expected: Float32Array, msg: string): void {
  assert.equal(actual.length, expected.length, `${msg}: length`);
  const x = bitsOf(actual);
  const y = bitsOf(expected);
  for (let i = 0; i < x.length; i++) assert.equal(x[i], y[i], `${msg}: bits of value ${i}`);
}

/** Every field of a stored memory, compared exactly (Object.is for numbers, bits for the embedding). */
function assertStoredEqual(
  actual: StoredMemory | undefined,
  expected: StoredMemory,
  msg = expected.id,
): void {
  assert.ok(actual !== undefined, `${msg}: missing`);
  assert.equal(actual.id, expected.id, `${msg}: id`);
  assertBitsEqual(actual.embedding, expected.embedding, `${msg}: embedding`);
  assert.equal(actual.content, expected.content, `${msg}: content`);
  for (const f of [
    'confidence',
    'activation',
    'decayRate',
    'createdAt',
    'lastAccess',
    'accessCount',
  ] as const) {
    assert.ok(Object.is(actual[f], expected[f]), `${msg}: ${f} is ${actual[f]}, want ${expected[f]}`);
  }
}

const UNICODE = 'héllo wörld — Ж漢字 ßø ∑ \u0000 tab\tnewline\n€ Ελληνικά العربية';
const EMOJI = '🧠🙂 family: 👩‍👩‍👧‍👦 flag: 🇫🇷 skin: 👍🏽 keycap: 1️⃣ 𝕳𝖊𝖑𝖑𝖔';

describe('round trip', () => {
  test('contents of every size and alphabet read back exactly, before and after reopen', async (t) => {
    const s = await scratch(t);
    const cases: Record<string, string> = {
      short: 'x',
      ascii: 'the quick brown fox',
      tenKb: 'abcdefghij'.repeat(1024),
      oneMb: Array.from({ length: 1024 * 1024 }, (_, i) => String.fromCharCode(33 + (i % 90))).join(''),
      unicode: UNICODE,
      emoji: EMOJI,
      mixedLong: (UNICODE + EMOJI).repeat(300),
    };
    let store = await s.open();
    let seed = 1;
    for (const [id, content] of Object.entries(cases))
      await store.put({ id, embedding: emb(seed++), content });
    const check = async (label: string): Promise<void> => {
      for (const [id, content] of Object.entries(cases)) {
        const got = await store.get(id);
        assert.ok(got, `${label}: ${id} missing`);
        assert.equal(got.content?.length, content.length, `${label}: ${id} length`);
        assert.equal(got.content, content, `${label}: ${id} content`);
        assert.equal(store.getSync(id)?.content, content, `${label}: ${id} via getSync`);
      }
    };
    await check('open');
    await store.close();
    store = await s.open();
    await check('reopened');
  });

  test('unicode and emoji ids round trip, and the 255-byte limit counts UTF-8 bytes', async (t) => {
    const store = await (await scratch(t)).open();
    const ids = [
      '漢字',
      '🧠-memory',
      'ключ',
      'a'.repeat(255),
      '😀'.repeat(63) + 'abc',
      'é'.repeat(127) + 'x',
    ];
    for (const [i, id] of ids.entries()) {
      assert.ok(Buffer.byteLength(id) <= 255, `test id ${i} is within the limit`);
      await store.put({ id, embedding: emb(i), content: `content of ${id}` });
    }
    for (const id of ids) assert.equal((await store.get(id))?.content, `content of ${id}`);
    assert.deepEqual([...store.ids()].sort(), [...ids].sort());
  });

  test('absent and empty content stay distinct: undefined and null read back null, "" reads back ""', async (t) => {
    const s = await scratch(t);
    let store = await s.open();
    await store.put({ id: 'undef', embedding: emb(1) });
    // An explicit `undefined` (plain JavaScript callers, JSON-less paths) is absent too.
    await store.put({
      id: 'undef-explicit',
      embedding: emb(2),
      content: undefined,
    } as unknown as MemoryRecord);
    await store.put({ id: 'null', embedding: emb(3), content: null });
    await store.put({ id: 'empty', embedding: emb(4), content: '' });
    await store.put({ id: 'one', embedding: emb(5), content: ' ' });
    for (let round = 0; round < 2; round++) {
      assert.equal((await store.get('undef'))?.content, null);
      assert.equal((await store.get('undef-explicit'))?.content, null);
      assert.equal((await store.get('null'))?.content, null);
      assert.equal((await store.get('empty'))?.content, '');
      assert.equal((await store.get('one'))?.content, ' ');
      assert.equal(store.getSync('empty')?.content, '');
      assert.equal(store.getSync('null')?.content, null);
      const seen = new Map<string, string | null>();
      for await (const m of store.entries()) seen.set(m.id, m.content);
      assert.equal(seen.get('empty'), '');
      assert.equal(seen.get('null'), null);
      await store.close();
      store = await s.open();
    }
  });

  test('every metadata field round trips exactly', async (t) => {
    const s = await scratch(t);
    let store = await s.open();
    const full: MemoryRecord = {
      id: 'full',
      embedding: emb(9),
      content: 'meta',
      confidence: 0.1,
      activation: -1234.5678e-3,
      decayRate: 0.000123,
      createdAt: 1_700_000_000_123,
      lastAccess: 1_700_000_999_456,
      accessCount: 2 ** 40 + 3,
    };
    const edges: MemoryRecord = {
      id: 'edges',
      embedding: emb(10),
      content: null,
      confidence: 0,
      activation: -Number.MAX_VALUE,
      decayRate: Number.MAX_VALUE,
      createdAt: 0,
      lastAccess: -1,
      accessCount: Number.MAX_SAFE_INTEGER,
    };
    const top: MemoryRecord = {
      id: 'top',
      embedding: emb(11),
      confidence: 1,
      activation: 5e-324,
      decayRate: 0,
    };
    const recs = [full, edges, top];
    for (const r of recs) await store.put(r);
    for (let round = 0; round < 2; round++) {
      for (const r of recs) expectSameRecord(await store.get(r.id), r, { context: `round ${round}` });
      await store.close();
      store = await s.open();
    }
    const got = await store.get('full');
    assert.equal(got?.confidence, 0.1);
    assert.equal(got?.accessCount, 2 ** 40 + 3);
  });

  test('defaults: confidence 1, activation 0, decayRate 0, createdAt now, lastAccess = createdAt, accessCount 0', async (t) => {
    const s = await scratch(t);
    let store = await s.open();
    const before = Date.now();
    await store.put({ id: 'bare', embedding: emb(1) });
    const after = Date.now();
    await store.put({ id: 'created', embedding: emb(2), createdAt: 12345 });
    for (let round = 0; round < 2; round++) {
      const bare = await store.get('bare');
      assert.ok(bare);
      assert.equal(bare.content, null);
      assert.equal(bare.confidence, 1);
      assert.ok(Object.is(bare.activation, 0));
      assert.ok(Object.is(bare.decayRate, 0));
      assert.equal(bare.accessCount, 0);
      assert.ok(bare.createdAt >= before && bare.createdAt <= after, `createdAt ${bare.createdAt} is "now"`);
      assert.equal(bare.lastAccess, bare.createdAt);
      const created = await store.get('created');
      assert.equal(created?.createdAt, 12345);
      assert.equal(created?.lastAccess, 12345, 'lastAccess defaults to the given createdAt');
      await store.close();
      store = await s.open();
    }
  });

  test('a 768-dimension embedding round trips bit-exact, special values included', async (t) => {
    const s = await scratch(t);
    let store = await s.open({ dimension: 768 });
    assert.equal(store.dimension, 768);
    const e = embeddingFor(768, 768);
    e[1] = -0;
    e[2] = 1.401298464324817e-45; // smallest subnormal
    e[3] = 3.4028234663852886e38; // largest finite float32
    e[4] = -3.4028234663852886e38;
    e[5] = 1.1754943508222875e-38; // smallest normal
    e[6] = 0;
    e[767] = 0.1;
    const original = e.slice();
    await store.put({ id: 'wide', embedding: e, content: 'w' });
    e.fill(7); // the store must have copied the input
    const asArray = Array.from(original);
    // Plain arrays of numbers are accepted too (JavaScript callers) and stored as float32.
    await store.put({ id: 'from-array', embedding: asArray as unknown as Float32Array });
    for (let round = 0; round < 2; round++) {
      const got = await store.get('wide');
      assert.ok(got);
      assertBitsEqual(got.embedding, original, `round ${round} wide`);
      assert.ok(Object.is(got.embedding[1], -0), '-0 keeps its sign');
      assertBitsEqual(
        (await store.get('from-array'))!.embedding,
        Float32Array.from(asArray),
        `round ${round} array`,
      );
      await store.close();
      store = await s.open({ dimension: 768 });
    }
    // A store created without a dimension defaults to 768.
    const d2 = await makeTempDir('warmstore-default-dim-');
    t.after(() => removeDir(d2));
    const dflt = await WarmStore.open(d2, { maintenanceIntervalMs: false });
    try {
      assert.equal(dflt.dimension, 768);
    } finally {
      await dflt.close();
    }
  });

  test('returned records are copies: mutating a result or the input does not change the store', async (t) => {
    const store = await (await scratch(t)).open();
    const e = emb(1);
    const want = e.slice();
    await store.put({ id: 'a', embedding: e, content: 'c' });
    e[0] = 99;
    const got = await store.get('a');
    assert.ok(got);
    assertBitsEqual(got.embedding, want, 'input mutation leaked');
    got.embedding[0] = 42;
    got.content = 'changed';
    got.confidence = 0.5;
    const again = await store.get('a');
    assertBitsEqual(again!.embedding, want, 'result mutation leaked');
    assert.equal(again?.content, 'c');
    assert.equal(again?.confidence, 1);
  });
});

describe('isolation, update, delete, iteration', () => {
  test('updating or deleting one memory never changes another', async (t) => {
    const s = await scratch(t);
    let store = await s.open();
    const recs = Array.from({ length: 30 }, (_, i) => recordFor(`m${i}`, i, DIM));
    for (const r of recs) await store.put(r);
    const snapshot = new Map<string, StoredMemory>();
    for (const r of recs) snapshot.set(r.id, (await store.get(r.id))!);

    const changed = recordFor('m7', 1000, DIM);
    await store.put({ ...changed, content: 'brand new content for m7 '.repeat(20) });
    assert.equal(await store.delete('m13'), true);
    await store.put({ id: 'm21', embedding: emb(4242), content: '' });
    const untouched = [...snapshot.keys()].filter((id) => !['m7', 'm13', 'm21'].includes(id));
    for (let round = 0; round < 2; round++) {
      for (const id of untouched)
        assertStoredEqual(await store.get(id), snapshot.get(id)!, `round ${round} ${id}`);
      assert.equal((await store.get('m7'))?.content, 'brand new content for m7 '.repeat(20));
      assert.equal(await store.get('m13'), undefined);
      assert.equal((await store.get('m21'))?.content, '');
      await store.close();
      store = await s.open();
    }
  });

  test('update replaces the whole record: content present -> empty -> absent -> present', async (t) => {
    const s = await scratch(t);
    let store = await s.open();
    const steps: Array<{ content?: string | null; confidence?: number }> = [
      { content: 'first version', confidence: 0.5 },
      { content: '' },
      { content: null, confidence: 0.25 },
      {},
      { content: 'second version, longer than the first one' },
      { content: 'short' },
    ];
    for (const [i, step] of steps.entries()) {
      const e = emb(100 + i);
      await store.put({ id: 'x', embedding: e, ...step });
      for (let round = 0; round < 2; round++) {
        const got = await store.get('x');
        assert.ok(got, `step ${i} round ${round}`);
        assert.equal(got.content, step.content ?? null, `step ${i} round ${round} content`);
        assert.equal(
          got.confidence,
          step.confidence ?? 1,
          `step ${i} round ${round}: fields not given reset to defaults`,
        );
        assertBitsEqual(got.embedding, e, `step ${i} round ${round}`);
        assert.equal(store.size, 1);
        await store.close();
        store = await s.open();
      }
    }
  });

  test('delete returns true once, then false; has and size follow', async (t) => {
    const s = await scratch(t);
    let store = await s.open();
    assert.equal(store.size, 0);
    assert.equal(store.has('a'), false);
    assert.equal(await store.delete('a'), false, 'deleting a missing id');
    await store.put({ id: 'a', embedding: emb(1), content: 'A' });
    await store.put({ id: 'b', embedding: emb(2), content: 'B' });
    assert.equal(store.size, 2);
    assert.equal(store.has('a'), true);
    await store.put({ id: 'a', embedding: emb(3), content: 'A2' });
    assert.equal(store.size, 2, 'an update does not add');
    assert.equal(await store.delete('a'), true);
    assert.equal(store.has('a'), false);
    assert.equal(store.size, 1);
    assert.equal(await store.get('a'), undefined);
    assert.equal(store.getSync('a'), undefined);
    assert.equal(await store.delete('a'), false, 'second delete');
    await store.close();
    store = await s.open();
    assert.equal(store.has('a'), false);
    assert.equal(store.has('b'), true);
    assert.equal(store.size, 1);
    assert.equal(await store.delete('a'), false, 'delete after reopen');
    // Re-creating a deleted id works and survives a reopen.
    await store.put({ id: 'a', embedding: emb(4), content: 'again' });
    await store.close();
    store = await s.open();
    assert.equal((await store.get('a'))?.content, 'again');
    assert.equal(store.size, 2);
  });

  test('concurrent deletes of one id: exactly one returns true', async (t) => {
    const store = await (await scratch(t)).open();
    await store.put({ id: 'a', embedding: emb(1) });
    const results = await Promise.all([store.delete('a'), store.delete('a'), store.delete('a')]);
    assert.deepEqual(
      results.filter((x) => x),
      [true],
    );
  });

  test('entries() yields every memory exactly once, ids() lists every id', async (t) => {
    const s = await scratch(t);
    let store = await s.open();
    const want = new Map<string, MemoryRecord>();
    for (let i = 0; i < 300; i++) {
      const r = recordFor(`e${i}`, i, DIM);
      want.set(r.id, r);
    }
    await store.putMany([...want.values()]);
    for (let i = 0; i < 300; i += 7) {
      await store.delete(`e${i}`);
      want.delete(`e${i}`);
    }
    for (let i = 1; i < 300; i += 11) {
      if (!want.has(`e${i}`)) continue;
      const r = recordFor(`e${i}`, 5000 + i, DIM);
      await store.put(r);
      want.set(r.id, r);
    }
    for (let round = 0; round < 2; round++) {
      const seen = new Map<string, number>();
      for await (const m of store.entries()) {
        seen.set(m.id, (seen.get(m.id) ?? 0) + 1);
        expectSameRecord(m, want.get(m.id) ?? assert.fail(`unexpected id ${m.id}`), {
          context: `round ${round}`,
        });
      }
      assert.equal(seen.size, want.size);
      for (const [id, n] of seen) assert.equal(n, 1, `${id} yielded ${n} times`);
      const ids = [...store.ids()];
      assert.equal(ids.length, want.size);
      assert.deepEqual(new Set(ids), new Set(want.keys()));
      assert.equal(store.size, want.size);
      await store.close();
      store = await s.open();
    }
  });
});

describe('touch', () => {
  test('plain get and getSync change nothing, durably', async (t) => {
    const s = await scratch(t);
    let store = await s.open();
    await store.put({ id: 'a', embedding: emb(1), createdAt: 1000, lastAccess: 2000, accessCount: 5 });
    for (let i = 0; i < 5; i++) {
      await store.get('a');
      store.getSync('a');
      await store.get('a', { touch: false });
    }
    await store.recall(emb(1), { k: 1 });
    let got = await store.get('a');
    assert.equal(got?.lastAccess, 2000);
    assert.equal(got?.accessCount, 5);
    await store.close();
    store = await s.open();
    got = await store.get('a');
    assert.equal(got?.lastAccess, 2000);
    assert.equal(got?.accessCount, 5);
  });

  test('get({ touch: true }) bumps lastAccess and accessCount, and the bump survives reopen', async (t) => {
    const s = await scratch(t);
    let store = await s.open();
    const rec: MemoryRecord = {
      id: 'a',
      embedding: emb(1),
      content: 'touch me',
      createdAt: 1000,
      lastAccess: 2000,
      accessCount: 5,
    };
    await store.put(rec);
    await store.put({ id: 'other', embedding: emb(2), createdAt: 1000, lastAccess: 2000, accessCount: 5 });
    const before = Date.now();
    const first = await store.get('a', { touch: true });
    assert.ok(first);
    assert.equal(first.accessCount, 6, 'the returned record reflects the touch');
    assert.ok(first.lastAccess >= before, 'lastAccess is now');
    await store.get('a', { touch: true });
    const third = await store.get('a', { touch: true });
    const after = Date.now();
    assert.equal(third?.accessCount, 8);
    assert.ok(third!.lastAccess >= before && third!.lastAccess <= after);
    // Nothing else changed.
    assert.equal(third?.content, 'touch me');
    assert.equal(third?.createdAt, 1000);
    assert.equal((await store.get('other'))?.accessCount, 5, 'touch is per memory');
    const concurrent = await Promise.all(Array.from({ length: 10 }, () => store.get('a', { touch: true })));
    // Each read happens after its own touch committed (it may also see touches batched with it).
    for (const m of concurrent) assert.ok(m !== undefined && m.accessCount >= 9 && m.accessCount <= 18);
    assert.equal((await store.get('a'))?.accessCount, 18, 'concurrent touches each count once');
    const lastAccess = (await store.get('a'))!.lastAccess;
    await store.close();
    store = await s.open();
    const reopened = await store.get('a');
    assert.equal(reopened?.accessCount, 18, 'accessCount durable');
    assert.equal(reopened?.lastAccess, lastAccess, 'lastAccess durable');
    assert.equal(reopened?.content, 'touch me');
    assert.equal((await store.get('other'))?.accessCount, 5);
    assert.equal(await store.get('missing', { touch: true }), undefined, 'touching a missing id');
  });

  test('a touch is durable when get resolves: a crash image taken right after holds it', async (t) => {
    const s = await scratch(t);
    const store = await s.open();
    await store.put({ id: 'a', embedding: emb(1), lastAccess: 10, accessCount: 1 });
    await store.checkpoint();
    const touched = await store.get('a', { touch: true });
    assert.equal(touched?.accessCount, 2);
    // Copy the files of the live store, as a kill -9 would leave them.
    const image = await makeTempDir('warmstore-touch-image-');
    t.after(() => removeDir(image));
    for (const n of await readdir(s.dir)) if (n !== 'LOCK') await copyFile(join(s.dir, n), join(image, n));
    const recovered = await WarmStore.open(image, { maintenanceIntervalMs: false });
    try {
      const m = await recovered.get('a');
      assert.equal(m?.accessCount, 2);
      assert.equal(m?.lastAccess, touched?.lastAccess);
    } finally {
      await recovered.close();
    }
  });

  test('recall({ touch: true }) bumps only the returned memories', async (t) => {
    const store = await (await scratch(t)).open();
    for (let i = 0; i < 5; i++)
      await store.put({ id: `r${i}`, embedding: emb(i), lastAccess: 1, accessCount: 0 });
    const res = await store.recall(emb(3), { k: 2, touch: true });
    assert.equal(res.length, 2);
    assert.equal(res[0]?.memory.id, 'r3');
    const touched = new Set(res.map((r) => r.memory.id));
    for (let i = 0; i < 5; i++) {
      const m = await store.get(`r${i}`);
      assert.equal(m?.accessCount, touched.has(`r${i}`) ? 1 : 0, `r${i}`);
    }
  });
});

describe('restart persistence', () => {
  test('close and reopen: everything equal, also when reopened without passing dimension', async (t) => {
    const s = await scratch(t);
    let store = await s.open({ dimension: 16 });
    const want = new Map<string, MemoryRecord>();
    for (let i = 0; i < 200; i++) want.set(`p${i}`, recordFor(`p${i}`, i, 16));
    for (const r of want.values()) await store.put(r);
    const stored = new Map<string, StoredMemory>();
    for (const id of want.keys()) stored.set(id, (await store.get(id))!);
    const stats = store.contentStorageStats();
    await store.close();
    assert.equal(store.closed, true);

    store = await WarmStore.open(s.dir, { maintenanceIntervalMs: false });
    try {
      assert.equal(store.dimension, 16, 'dimension comes from the store');
      assert.equal(store.size, want.size);
      for (const [id, m] of stored) assertStoredEqual(await store.get(id), m, `reopened ${id}`);
      assert.deepEqual(store.contentStorageStats(), stats, 'storage stats are rebuilt exactly');
      const report = await store.verify();
      assert.equal(report.ok, true, JSON.stringify(report.problems));
      assert.equal(report.records, want.size);
    } finally {
      await store.close();
    }
    // A third open with an explicit, matching dimension.
    store = await s.open({ dimension: 16 });
    for (const [id, m] of stored) assertStoredEqual(await store.get(id), m, `third open ${id}`);
  });

  test('many reopen cycles with writes in between keep everything', async (t) => {
    const s = await scratch(t);
    const want = new Map<string, MemoryRecord>();
    for (let cycle = 0; cycle < 6; cycle++) {
      const store = await s.open();
      for (const [id, r] of want) expectSameRecord(await store.get(id), r, { context: `cycle ${cycle}` });
      assert.equal(store.size, want.size);
      for (let i = 0; i < 20; i++) {
        const id = `c${(cycle * 13 + i * 7) % 50}`;
        if (i % 5 === 4) {
          assert.equal(await store.delete(id), want.delete(id));
        } else {
          const r = recordFor(id, cycle * 100 + i, DIM);
          await store.put(r);
          want.set(id, r);
        }
      }
      if (cycle % 2 === 1) await store.checkpoint();
      await store.close();
    }
  });

  test('reopening with a different dimension is refused with INVALID_INPUT naming dimension', async (t) => {
    const s = await scratch(t);
    const store = await s.open({ dimension: 8 });
    await store.put({ id: 'a', embedding: emb(1), content: 'kept' });
    await store.close();
    await assert.rejects(
      WarmStore.open(s.dir, { dimension: 16, maintenanceIntervalMs: false }),
      (err: unknown) => {
        assert.ok(WarmStoreError.is(err, 'INVALID_INPUT'), `got ${String(err)}`);
        assert.equal(err.details.field, 'dimension');
        return true;
      },
    );
    // The refusal released the lock and harmed nothing.
    const again = await s.open({ dimension: 8 });
    assert.equal((await again.get('a'))?.content, 'kept');
  });
});
