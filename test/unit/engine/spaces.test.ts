/**
 * Memory spaces: an id is unique within its space, every read and write names a space (the
 * default one when none is given), a space is listed with its size, and deleting a space is
 * durable (one WAL entry), online, and leaves every other space intact, across reopen and kill -9.
 */
import assert from 'node:assert/strict';
import { copyFile, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { WarmStore, WarmStoreError, type WarmStoreOptions } from '../../../src/index.js';
import { encodeHeader } from '../../../src/format/header.js';
import { embeddingFor } from '../../helpers/random.js';
import { makeTempDir, removeDir, tempDir } from '../../helpers/tmp.js';

const DIM = 8;
const OPTS: WarmStoreOptions = {
  dimension: DIM,
  maintenanceIntervalMs: false,
  segmentBytes: 4096,
  maintenance: { startupCompaction: 'off' },
};

describe('memory spaces', () => {
  test('the same id in two spaces is two memories; reads, deletes and recall stay in their space', async (t) => {
    const dir = await tempDir(t);
    const store = await WarmStore.open(dir, OPTS);
    t.after(() => store.close());
    await store.put({ id: 'm', embedding: embeddingFor(1, DIM), content: 'default one' });
    await store.put({ id: 'm', space: 'alice', embedding: embeddingFor(2, DIM), content: 'alice one' });
    await store.put({ id: 'm', space: 'bob', embedding: embeddingFor(3, DIM), content: null });
    assert.equal(store.size, 3);
    assert.equal((await store.get('m'))?.content, 'default one');
    assert.equal((await store.get('m'))?.space, 'default');
    assert.equal((await store.get('m', { space: 'alice' }))?.content, 'alice one');
    assert.equal(store.getSync('m', { space: 'alice' })?.space, 'alice');
    assert.equal((await store.get('m', { space: 'bob' }))?.content, null);
    assert.equal(await store.get('m', { space: 'carol' }), undefined);
    assert.equal(store.has('m', { space: 'carol' }), false);
    assert.deepEqual(store.spaces(), [
      { name: 'alice', size: 1 },
      { name: 'bob', size: 1 },
      { name: 'default', size: 1 },
    ]);
    // Recall never crosses spaces.
    const hits = await store.recall(embeddingFor(2, DIM), { k: 10, space: 'alice' });
    assert.deepEqual(
      hits.map((h) => [h.memory.space, h.memory.id]),
      [['alice', 'm']],
    );
    assert.equal((await store.recall(embeddingFor(2, DIM), { k: 10, space: 'nobody' })).length, 0);
    assert.equal(await store.delete('m', { space: 'alice' }), true);
    assert.equal(await store.delete('m', { space: 'alice' }), false);
    assert.equal((await store.get('m'))?.content, 'default one');
    assert.equal((await store.get('m', { space: 'bob' }))?.content, null);
    const ids = [];
    for await (const m of store.entries()) ids.push(`${m.space}/${m.id}`);
    assert.deepEqual(ids.sort(), ['bob/m', 'default/m']);
    const bobs = [];
    for await (const m of store.entries({ space: 'bob' })) bobs.push(m.id);
    assert.deepEqual(bobs, ['m']);
    assert.deepEqual([...store.ids({ space: 'bob' })], ['m']);
  });

  test('bad space names are refused naming the field, and nothing is written', async (t) => {
    const dir = await tempDir(t);
    const store = await WarmStore.open(dir, OPTS);
    t.after(() => store.close());
    const e = embeddingFor(1, DIM);
    for (const [space, why] of [
      ['', 'empty'],
      ['x'.repeat(65), 'too long'],
      ['\ud800', 'lone surrogate'],
      [7, 'not a string'],
    ] as const) {
      await assert.rejects(
        store.put({ id: 'a', embedding: e, space: space as string }),
        (err: unknown) => WarmStoreError.is(err, 'INVALID_INPUT') && err.details.field === 'space',
        why,
      );
      assert.throws(
        () => store.has('a', { space: space as string }),
        (err: unknown) => WarmStoreError.is(err, 'INVALID_INPUT'),
      );
    }
    assert.equal(store.size, 0);
    assert.deepEqual(store.spaces(), [{ name: 'default', size: 0 }]);
    // 64 bytes is the limit, in UTF-8 bytes.
    await store.put({ id: 'a', embedding: e, space: 'é'.repeat(32) });
    assert.equal(store.has('a', { space: 'é'.repeat(32) }), true);
  });

  test('deleteSpace is durable and online: gone at once, other spaces intact, slots reused, across reopen', async (t) => {
    const dir = await tempDir(t);
    let store = await WarmStore.open(dir, OPTS);
    for (let i = 0; i < 300; i++) {
      await store.put({
        id: `a${i}`,
        space: 'a',
        embedding: embeddingFor(i, DIM),
        content: `a-${i}`.repeat(20),
      });
      await store.put({ id: `b${i}`, space: 'b', embedding: embeddingFor(i + 1000, DIM), content: `b-${i}` });
    }
    const before = store.contentStorageStats();
    assert.equal(await store.deleteSpace('a'), 300);
    assert.equal(await store.deleteSpace('a'), 0);
    assert.equal(store.has('a1', { space: 'a' }), false);
    assert.equal(store.size, 300);
    assert.deepEqual(
      store.spaces().map((s) => [s.name, s.size]),
      [
        ['b', 300],
        ['default', 0],
      ],
    );
    assert.equal((await store.recall(embeddingFor(5, DIM), { space: 'a' })).length, 0);
    // Their content is dead bytes now, for compaction.
    await new Promise((r) => setTimeout(r, 50));
    assert.ok(store.contentStorageStats().liveBytes < before.liveBytes);
    // A space of the same name starts empty.
    await store.put({ id: 'a1', space: 'a', embedding: embeddingFor(1, DIM), content: 'reborn' });
    assert.equal(store.spaces().find((s) => s.name === 'a')?.size, 1);
    await store.close();
    store = await WarmStore.open(dir, OPTS);
    t.after(() => store.close());
    assert.equal(store.size, 301);
    assert.equal((await store.get('a1', { space: 'a' }))?.content, 'reborn');
    assert.equal(store.has('a2', { space: 'a' }), false);
    for (let i = 0; i < 300; i += 37)
      assert.equal((await store.get(`b${i}`, { space: 'b' }))?.content, `b-${i}`);
    assert.ok((await store.verify()).ok);
    // The freed slots are reused: 300 new memories do not grow the record file.
    const size = (await readFile(join(dir, 'records.dat'))).length;
    for (let i = 0; i < 299; i++)
      await store.put({ id: `c${i}`, space: 'c', embedding: embeddingFor(i, DIM) });
    await store.checkpoint();
    assert.equal((await readFile(join(dir, 'records.dat'))).length, size);
  });

  test('a space dropped just before a crash stays dropped (the WAL entry is replayed)', async (t) => {
    const dir = await tempDir(t);
    const store = await WarmStore.open(dir, { ...OPTS, walCheckpointBytes: 1 << 30 });
    for (let i = 0; i < 50; i++) {
      await store.put({ id: `x${i}`, space: 'x', embedding: embeddingFor(i, DIM), content: 'x' });
      await store.put({ id: `y${i}`, space: 'y', embedding: embeddingFor(i, DIM), content: 'y' });
    }
    await store.checkpoint();
    assert.equal(await store.deleteSpace('x'), 50);
    // Simulate the crash: copy the files as they are now, before close checkpoints anything.
    const copy = await makeTempDir();
    t.after(() => removeDir(copy));
    for (const name of await readdir(dir))
      if (name !== 'LOCK') await copyFile(join(dir, name), join(copy, name));
    await store.close();
    const reopened = await WarmStore.open(copy, OPTS);
    t.after(() => reopened.close());
    assert.equal(reopened.size, 50);
    assert.equal(reopened.has('x1', { space: 'x' }), false);
    assert.equal(reopened.has('y1', { space: 'y' }), true);
    assert.ok((await reopened.verify()).ok);
  });

  test('a store written before spaces (records format 2, WAL format 1) opens with everything in default', async (t) => {
    const dir = await tempDir(t);
    const store = await WarmStore.open(dir, OPTS);
    for (let i = 0; i < 20; i++)
      await store.put({ id: `m${i}`, embedding: embeddingFor(i, DIM), content: `c${i}` });
    await store.close();
    // Rewrite the file headers as format 2 and 1 wrote them: the bodies are the same bytes (a
    // format-2 slot header had zeros where the space number now is).
    const rec = await readFile(join(dir, 'records.dat'));
    const h = encodeHeader('RECS', [DIM, 352, 0, 0]);
    h.writeUInt32LE(2, 8);
    // Reseal the header's checksum for version 2.
    const { crc32c } = await import('../../../src/format/crc.js');
    h.writeUInt32LE(crc32c(h.subarray(0, 28)), 28);
    h.copy(rec, 0);
    await writeFile(join(dir, 'records.dat'), rec);
    const reopened = await WarmStore.open(dir, OPTS);
    t.after(() => reopened.close());
    assert.equal(reopened.size, 20);
    assert.equal((await reopened.get('m3'))?.content, 'c3');
    assert.equal((await reopened.get('m3'))?.space, 'default');
    assert.deepEqual(reopened.spaces(), [{ name: 'default', size: 20 }]);
    // The header now names format 3.
    assert.equal((await readFile(join(dir, 'records.dat'))).readUInt32LE(8), 3);
  });
});

describe('spaces against a model', () => {
  test('random puts, deletes, space drops and reopens across spaces match a Map per space', async () => {
    const SPACES = ['default', 'a', 'b'];
    const IDS = ['p', 'q', 'r', 's'];
    const opArb = fc.oneof(
      {
        weight: 6,
        arbitrary: fc.record({
          op: fc.constant('put' as const),
          space: fc.constantFrom(...SPACES),
          id: fc.constantFrom(...IDS),
          seed: fc.integer({ min: 0, max: 1000 }),
        }),
      },
      {
        weight: 3,
        arbitrary: fc.record({
          op: fc.constant('delete' as const),
          space: fc.constantFrom(...SPACES),
          id: fc.constantFrom(...IDS),
        }),
      },
      {
        weight: 1,
        arbitrary: fc.record({ op: fc.constant('drop' as const), space: fc.constantFrom(...SPACES) }),
      },
      { weight: 1, arbitrary: fc.record({ op: fc.constant('reopen' as const) }) },
    );
    await fc.assert(
      fc.asyncProperty(fc.array(opArb, { minLength: 1, maxLength: 30 }), async (ops) => {
        const dir = await makeTempDir();
        let store = await WarmStore.open(dir, OPTS);
        const model = new Map<string, Map<string, number>>();
        try {
          for (const o of ops) {
            if (o.op === 'put') {
              await store.put({
                id: o.id,
                space: o.space,
                embedding: embeddingFor(o.seed, DIM),
                content: `${o.seed}`,
              });
              if (!model.has(o.space)) model.set(o.space, new Map());
              model.get(o.space)!.set(o.id, o.seed);
            } else if (o.op === 'delete') {
              const had = model.get(o.space)?.delete(o.id) ?? false;
              assert.equal(await store.delete(o.id, { space: o.space }), had);
            } else if (o.op === 'drop') {
              const n = model.get(o.space)?.size ?? 0;
              model.delete(o.space);
              assert.equal(await store.deleteSpace(o.space), n);
            } else {
              await store.close();
              store = await WarmStore.open(dir, OPTS);
            }
          }
          let total = 0;
          for (const space of SPACES) {
            const m = model.get(space) ?? new Map<string, number>();
            total += m.size;
            for (const id of IDS) {
              const got = await store.get(id, { space });
              assert.equal(
                got?.content ?? undefined,
                m.has(id) ? `${m.get(id)}` : undefined,
                `${space}/${id}`,
              );
            }
          }
          assert.equal(store.size, total);
        } finally {
          await store.close();
          await removeDir(dir);
        }
      }),
      { numRuns: 25 },
    );
  });
});
