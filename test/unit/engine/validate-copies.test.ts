/**
 * A put's embedding and content are copied into shared slabs (see validate.ts): the copies must be
 * exact, independent of the caller's values and of each other, and a refused one must be refused
 * exactly as before, naming the field.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { WarmStore, WarmStoreError } from '../../../src/index.js';
import { crc32c } from '../../../src/format/crc.js';
import { embeddingSummary } from '../../../src/format/embedding.js';
import {
  normalizeRecord,
  releaseCopies,
  validateEmbedding,
  type NormalizedRecord,
} from '../../../src/engine/validate.js';
import { tempDir } from '../../helpers/tmp.js';

const f32 = (x: number): number => Math.fround(x);

/** The floats of a normalized record's embedding copy. */
const floatsOf = (r: NormalizedRecord): Float32Array =>
  new Float32Array(r.embeddingBytes.buffer, r.embeddingBytes.byteOffset, r.embeddingBytes.byteLength / 4);

/** The field a bad embedding must be refused with, or undefined when it is valid. */
function expectedRefusal(values: readonly number[], dim: number): string | undefined {
  if (values.length !== dim) return 'embedding';
  const bad = values.findIndex((v) => !Number.isFinite(f32(v)));
  return bad < 0 ? undefined : `embedding[${bad}]`;
}

const valueArb = fc.oneof(
  { weight: 20, arbitrary: fc.double({ min: -1e6, max: 1e6, noNaN: true }) },
  { weight: 1, arbitrary: fc.constantFrom(NaN, Infinity, -Infinity, 1e39, -1e39, 0, -0) },
);

test('normalizeRecord: every embedding is refused or copied exactly, with its norm and CRC32C', () => {
  const DIM = 24;
  fc.assert(
    fc.property(
      fc.array(
        fc.record({
          values: fc.oneof(
            { weight: 6, arbitrary: fc.array(valueArb, { minLength: DIM, maxLength: DIM }) },
            { weight: 1, arbitrary: fc.array(valueArb, { minLength: 0, maxLength: DIM + 2 }) },
          ),
          typed: fc.boolean(),
        }),
        { minLength: 1, maxLength: 40 },
      ),
      (cases) => {
        const accepted: { rec: NormalizedRecord; want: number[] }[] = [];
        cases.forEach(({ values, typed }, i) => {
          const input = typed ? Float32Array.from(values) : [...values];
          const refusal = expectedRefusal(values, DIM);
          let rec: NormalizedRecord;
          try {
            rec = normalizeRecord({ id: `m${i}`, embedding: input }, DIM, 1000, 0);
          } catch (err) {
            assert.ok(WarmStoreError.is(err, 'INVALID_INPUT'), `case ${i}: ${String(err)}`);
            // A Float32Array has already rounded the value: the first non-finite one is the same.
            assert.equal(err.details.field, refusal, `case ${i}: field`);
            return;
          }
          assert.equal(refusal, undefined, `case ${i}: accepted an embedding that should be refused`);
          const want = values.map(f32);
          assert.deepEqual(Array.from(floatsOf(rec)), want);
          assert.equal(rec.embeddingBytes.byteLength, DIM * 4);
          assert.deepEqual(
            Buffer.from(rec.embeddingBytes),
            Buffer.from(Float32Array.from(want).buffer),
            'embeddingBytes is the copy',
          );
          const fresh = embeddingSummary(Float32Array.from(want));
          assert.equal(rec.embCrc, fresh.embCrc);
          assert.equal(rec.embCrc, crc32c(rec.embeddingBytes));
          assert.equal(rec.norm, fresh.norm);
          // The caller's array is the caller's: changing it changes no copy.
          if (input instanceof Float32Array) input.fill(7);
          else input.fill(7);
          accepted.push({ rec, want });
        });
        // Copies share slabs but never bytes.
        for (const { rec, want } of accepted) assert.deepEqual(Array.from(floatsOf(rec)), want);
      },
    ),
    { numRuns: 200 },
  );
});

test('normalizeRecord: copies spanning many slabs stay independent (768 dimensions, 2000 records)', () => {
  const DIM = 768;
  const recs: NormalizedRecord[] = [];
  for (let i = 0; i < 2000; i++) {
    const e = new Float32Array(DIM).fill(i + 0.5);
    e[0] = i;
    recs.push(normalizeRecord({ id: `r${i}`, embedding: e }, DIM, 1000, 0));
    e.fill(-1);
  }
  // A refused record between them takes nothing from its neighbours.
  assert.throws(
    () => normalizeRecord({ id: 'bad', embedding: new Float32Array(DIM).fill(NaN) }, DIM, 1000, 0),
    (err: unknown) => WarmStoreError.is(err, 'INVALID_INPUT') && err.details.field === 'embedding[0]',
  );
  const buffers = new Set<ArrayBufferLike>();
  recs.forEach((r, i) => {
    buffers.add(r.embeddingBytes.buffer);
    assert.equal(floatsOf(r)[0], i);
    assert.equal(floatsOf(r)[DIM - 1], i + 0.5);
    assert.equal(r.embCrc, crc32c(r.embeddingBytes));
  });
  assert.ok(buffers.size > 1 && buffers.size < recs.length / 10, `copies share slabs (${buffers.size})`);
});

test('normalizeRecord: content is encoded exactly (any well-formed text, short or long), each copy its own', () => {
  const MAX = 20_000;
  fc.assert(
    fc.property(
      fc.array(
        fc.oneof(
          { weight: 8, arbitrary: fc.string({ unit: 'grapheme', maxLength: 300 }) },
          { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 100 }) },
          { weight: 1, arbitrary: fc.nat(7000).map((n) => 'é'.repeat(n)) },
        ),
        { minLength: 1, maxLength: 30 },
      ),
      (texts) => {
        const done: { content: Buffer | null; want: Buffer; kind: number }[] = [];
        texts.forEach((text, i) => {
          const want = Buffer.from(text, 'utf8');
          let rec: NormalizedRecord;
          try {
            rec = normalizeRecord({ id: `c${i}`, embedding: [1, 2], content: text }, 2, MAX, 0);
          } catch (err) {
            assert.ok(WarmStoreError.is(err, 'INVALID_INPUT'));
            assert.equal(err.details.field, 'content');
            assert.ok(
              !text.isWellFormed() || want.length > MAX,
              `refused ${JSON.stringify(text.slice(0, 20))}`,
            );
            return;
          }
          assert.ok(text.isWellFormed() && want.length <= MAX);
          if (text.length === 0) assert.equal(rec.content, null);
          else assert.deepEqual(rec.content, want);
          done.push({ content: rec.content, want, kind: rec.kind });
        });
        for (const d of done)
          if (d.content) assert.deepEqual(d.content, d.want, 'a later copy changed an earlier one');
      },
    ),
    { numRuns: 200 },
  );
});

test('validateEmbedding: a query gets an array of its own (it may be sent whole to a worker)', () => {
  const q = validateEmbedding([1, 2, 3], 3);
  assert.equal(q.byteOffset, 0);
  assert.equal(q.buffer.byteLength, 12);
  assert.throws(
    () => validateEmbedding([1, NaN, 3], 3),
    (err: unknown) => WarmStoreError.is(err, 'INVALID_INPUT') && err.details.field === 'embedding[1]',
  );
});

test('puts of one batch, their arrays changed right after put(), store the values given to put()', async (t) => {
  const dir = await tempDir(t);
  const DIM = 768;
  const store = await WarmStore.open(dir, { dimension: DIM, maintenanceIntervalMs: false });
  try {
    const shared = new Float32Array(DIM);
    const puts: Promise<void>[] = [];
    // 1200 puts in one tick share a batch and span several slabs; the caller reuses one array.
    for (let i = 0; i < 1200; i++) {
      shared.fill(i);
      puts.push(store.put({ id: `m${i}`, embedding: shared, content: `c${i}` }));
      if (i === 600) puts.push(store.put({ id: 'bad', embedding: new Float32Array(DIM).fill(Infinity) }));
    }
    shared.fill(-1);
    const results = await Promise.allSettled(puts);
    const refused = results.filter((r) => r.status === 'rejected');
    assert.equal(refused.length, 1);
    assert.ok(WarmStoreError.is((refused[0] as PromiseRejectedResult).reason, 'INVALID_INPUT'));
    assert.equal(store.size, 1200);
    assert.equal(store.has('bad'), false);
    for (const i of [0, 1, 39, 40, 41, 340, 341, 599, 600, 601, 1199]) {
      const m = store.getSync(`m${i}`);
      assert.ok(m, `m${i}`);
      assert.ok(
        m.embedding.every((v) => v === i),
        `m${i}: embedding as given to put()`,
      );
      assert.equal(m.content, `c${i}`);
    }
  } finally {
    await store.close();
  }
  // And as written to vectors.dat: read back after a reopen, each checked against its CRC32C.
  const again = await WarmStore.open(dir, { maintenanceIntervalMs: false });
  try {
    for (let i = 0; i < 1200; i += 7) assert.ok(again.getSync(`m${i}`)!.embedding.every((v) => v === i));
  } finally {
    await again.close();
  }
});

test('slabs are reused once every copy in them is released, never before', () => {
  const DIM = 768;
  const put = (i: number): NormalizedRecord =>
    normalizeRecord(
      { id: `s${i}`, embedding: new Float32Array(DIM).fill(i), content: `c${i}` },
      DIM,
      1000,
      0,
    );
  // Enough for many slabs; all kept (unreleased): later copies never go where they are.
  const kept = Array.from({ length: 400 }, (_, i) => put(i));
  const keptBuffers = new Set(kept.map((r) => r.embeddingBytes.buffer));
  // A second group, released.
  const done = Array.from({ length: 400 }, (_, i) => put(1000 + i));
  const doneBuffers = new Set(done.map((r) => r.embeddingBytes.buffer));
  for (const r of done) releaseCopies(r);
  // In a slab of kept copies (one in the middle: the first may hold copies of earlier tests), every
  // copy but its last is released, twice: a second release must not count again, or the slab would
  // be reused under the copy still unreleased.
  const inSlab = kept.filter((r) => r.embeddingBytes.buffer === kept[200]!.embeddingBytes.buffer);
  assert.ok(inSlab.length > 2);
  for (const r of inSlab.slice(0, -1)) {
    releaseCopies(r);
    releaseCopies(r);
    assert.equal(r.slab, null);
  }
  const later = Array.from({ length: 400 }, (_, i) => put(2000 + i));
  const laterBuffers = new Set(later.map((r) => r.embeddingBytes.buffer));
  assert.ok(
    [...laterBuffers].some((b) => doneBuffers.has(b)),
    'the released slabs were reused (every one of them but the last, still current)',
  );
  for (const b of laterBuffers)
    assert.ok(!keptBuffers.has(b), 'a slab with unreleased copies is never reused');
  kept.forEach((r, i) => {
    if (r.slab === null) return; // released above
    assert.ok(
      floatsOf(r).every((x) => x === i),
      `kept copy ${i} unchanged`,
    );
    assert.equal(r.content?.toString(), `c${i}`);
  });
  later.forEach((r, i) => assert.ok(floatsOf(r).every((x) => x === 2000 + i)));
  for (const r of [...kept, ...later]) releaseCopies(r);
});
