/**
 * `store.getBytes`: `get` with the embedding as its checked bytes, synchronous when the read is.
 */
import assert from 'node:assert/strict';
import { open as fsOpen, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import { WarmStore, WarmStoreError, type MemoryRecord, type WarmStoreOptions } from '../../../src/index.js';
import { ALL_FIELDS, memoryJsonText, type MemoryView } from '../../../src/server/codec.js';
import { recordFor } from '../../helpers/random.js';
import { tempDir } from '../../helpers/tmp.js';

const DIM = 16;
const OPTS: WarmStoreOptions = { dimension: DIM, maintenanceIntervalMs: false };

async function filled(
  t: TestContext,
  n = 5,
): Promise<{ store: WarmStore; dir: string; recs: MemoryRecord[] }> {
  const dir = await tempDir(t, 'warmstore-getbytes-');
  const store = await WarmStore.open(dir, OPTS);
  t.after(() => store.close());
  const recs: MemoryRecord[] = [];
  for (let i = 0; i < n; i++)
    recs.push({ ...recordFor(`g${i}`, i, DIM), content: `content ${i} "quoted"\n` });
  recs.push({ ...recordFor('absent', 99, DIM), content: null });
  await store.putMany(recs);
  return { store, dir, recs };
}

const bytesOf = (e: Float32Array): Buffer => Buffer.from(e.buffer, e.byteOffset, e.byteLength);

describe('getBytes', () => {
  test('answers what get answers, the embedding as its bytes, without a promise', async (t) => {
    const { store, recs } = await filled(t);
    for (const r of recs) {
      const got = store.getBytes(r.id);
      assert.ok(!(got instanceof Promise), 'a page-cached read answers synchronously');
      const want = await store.get(r.id);
      assert.ok(got !== undefined && want !== undefined);
      assert.deepEqual(got.embedding, bytesOf(want.embedding));
      assert.deepEqual(bytesOf(Float32Array.from(r.embedding)), got.embedding);
      const { embedding: _a, ...rest } = got;
      const { embedding: _b, ...wantRest } = want;
      assert.deepEqual(rest, wantRest);
    }
    assert.equal(store.getBytes('nobody'), undefined);
    assert.equal(store.getBytes('g1', { space: 'elsewhere' }), undefined);
  });

  test('each read has bytes of its own: a later read does not change an earlier answer', async (t) => {
    const { store } = await filled(t);
    const a = store.getBytes('g0');
    assert.ok(a !== undefined && !(a instanceof Promise));
    const before = Buffer.from(a.embedding);
    for (let i = 1; i < 5; i++) store.getBytes(`g${i}`);
    assert.deepEqual(a.embedding, before);
  });

  test('the JSON of a memory is the same text from either form of the embedding', async (t) => {
    const { store, recs } = await filled(t);
    const views: MemoryView[] = [
      { fields: ALL_FIELDS, encoding: 'base64' },
      { fields: ALL_FIELDS, encoding: 'array' },
      { fields: new Set(['embedding', 'id'] as const), encoding: 'base64' },
    ];
    for (const r of recs) {
      const bytes = store.getBytes(r.id);
      const array = await store.get(r.id);
      assert.ok(bytes !== undefined && !(bytes instanceof Promise) && array !== undefined);
      for (const view of views) assert.equal(memoryJsonText(bytes, view), memoryJsonText(array, view));
      // Bytes at an offset no Float32Array can view are copied, not misread.
      const shifted = Buffer.alloc(bytes.embedding.length + 1);
      bytes.embedding.copy(shifted, 1);
      const odd = { ...bytes, embedding: shifted.subarray(1) };
      for (const view of views) assert.equal(memoryJsonText(odd, view), memoryJsonText(array, view));
    }
  });

  test('with touch: a promise, and the access is counted as by get', async (t) => {
    const { store } = await filled(t);
    const before = await store.get('g2');
    const touched = store.getBytes('g2', { touch: true });
    assert.ok(touched instanceof Promise);
    const m = await touched;
    assert.equal(m?.accessCount, (before?.accessCount ?? 0) + 1);
  });

  test('is counted as a get, and refuses bad input by throwing', async (t) => {
    const { store } = await filled(t);
    const ops: string[] = [];
    store.on('op', (op) => ops.push(op));
    store.getBytes('g0');
    store.getBytes('nobody');
    assert.deepEqual(ops, ['get', 'get']);
    assert.throws(
      () => store.getBytes(''),
      (err: unknown) => WarmStoreError.is(err) && err.code === 'INVALID_INPUT',
    );
    await assert.rejects(
      store.get(''),
      (err: unknown) => WarmStoreError.is(err) && err.code === 'INVALID_INPUT',
    );
  });

  test('an embedding changed in vectors.dat under the open store is CORRUPTION_DETECTED', async (t) => {
    const { store, dir, recs } = await filled(t);
    const path = join(dir, 'vectors.dat');
    const target = bytesOf(Float32Array.from(recs[3]!.embedding));
    const at = (await readFile(path)).indexOf(target);
    assert.ok(at >= 0, 'the embedding is in vectors.dat');
    const fh = await fsOpen(path, 'r+');
    try {
      await fh.write(Buffer.from([target[5]! ^ 0x5a]), 0, 1, at + 5);
    } finally {
      await fh.close();
    }
    assert.throws(
      () => store.getBytes(recs[3]!.id),
      (err: unknown) =>
        WarmStoreError.is(err) &&
        err.code === 'CORRUPTION_DETECTED' &&
        err.details.id === recs[3]!.id &&
        String(err.details.file).endsWith('vectors.dat'),
    );
    const other = store.getBytes(recs[1]!.id);
    assert.ok(other !== undefined && !(other instanceof Promise));
  });
});
