/**
 * The scan workers against the inline scan: over a table of more than one chunk, with and without
 * the SIMD kernel (a dimension that is a multiple of 8 runs it, another does not), every space and
 * filter gives the same ids with the same exact scores.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { compileFilter } from '../../../src/engine/filter.js';
import { exactTopK } from '../../../src/engine/recall.js';
import { CHUNK_SLOTS, RecordTable } from '../../../src/records/table.js';
import { ScanPool } from '../../../src/scan/pool.js';
import { ContentKind } from '../../../src/wal/entries.js';
import { embeddingSummary } from '../../../src/format/embedding.js';
import { RECORDS_DATA_START } from '../../../src/records/slot-codec.js';
import { closeSync, mkdtempSync, openSync, readSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Rng } from '../../helpers/random.js';

const dir = mkdtempSync(join(tmpdir(), 'ws-pool-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** A table whose embeddings are in a vectors.dat-shaped file (4 KiB header area, then the rows). */
function table(dim: number, slots: number, r: Rng): RecordTable {
  const t = new RecordTable(dim);
  const file = Buffer.alloc(RECORDS_DATA_START + slots * dim * 4);
  const path = join(dir, `vectors-${dim}.dat`);
  for (let s = 0; s < slots; s++) {
    if (s % 17 === 5) continue; // free slots among used ones
    const e = new Float32Array(dim);
    for (let d = 0; d < dim; d++) e[d] = r.next() * 2 - 1;
    t.set(s, {
      id: `m${s}`,
      space: s % 3 === 0 ? 1 : 0,
      idLen: 0,
      kind: ContentKind.Absent,
      seg: 0,
      off: 0,
      clen: 0,
      clsn: 1,
      confidence: (s % 100) / 100,
      activation: s % 7,
      decayRate: 0,
      createdAt: s,
      lastAccess: s,
      accessCount: s % 50,
      ...embeddingSummary(e),
    });
    Buffer.from(e.buffer).copy(file, RECORDS_DATA_START + s * dim * 4);
  }
  writeFileSync(path, file);
  const fd = openSync(path, 'r');
  after(() => closeSync(fd));
  const readVectorsSync = (first: number, count: number, into: Uint8Array): number =>
    readSync(fd, into, 0, count * dim * 4, RECORDS_DATA_START + first * dim * 4);
  t.attachVectors({
    path,
    readVectorsSync,
    readVectors: (first, count, into) => Promise.resolve(readVectorsSync(first, count, into)),
  });
  return t;
}

const yieldNow = (): Promise<void> => Promise.resolve();

describe('scan workers', () => {
  const pools: ScanPool[] = [];
  after(async () => {
    for (const p of pools) await p.close();
  });

  /** A table of `slots` 16-dimensional rows, a pool over it, and a random query. */
  function setup(seed: number, slots: number): { t: RecordTable; pool: ScanPool; q: Float32Array } {
    const r = new Rng(seed);
    const t = table(16, slots, r);
    const pool = ScanPool.create(t);
    assert.ok(pool);
    pools.push(pool);
    const q = new Float32Array(16);
    for (let d = 0; d < 16; d++) q[d] = r.next() * 2 - 1;
    return { t, pool, q };
  }

  test('chunks reached as the table grows are sent to the workers when a scan first needs them', async () => {
    const slots = CHUNK_SLOTS * 3 + 77;
    const { t, pool, q } = setup(99, slots);
    const filter = compileFilter({ activation: { gte: 3, lt: 4 } });
    // Growing limits: each scan reaches chunks the one before did not.
    for (const limit of [CHUNK_SLOTS + 10, CHUNK_SLOTS * 2 + 5, slots, CHUNK_SLOTS + 10, slots]) {
      const inline = await exactTopK(t, limit, q, 25, -Infinity, 0, filter, yieldNow);
      const pooled = await exactTopK(t, limit, q, 25, -Infinity, 0, filter, yieldNow, pool);
      assert.ok(inline.length === 25);
      assert.deepEqual(
        pooled.map((h) => [h.id, h.score]),
        inline.map((h) => [h.id, h.score]),
        `limit ${limit}`,
      );
      for (const h of pooled) assert.ok(h.slot < limit);
    }
  });

  test('a background scan runs a slice at a time behind its gate and finds what a foreground one finds', async () => {
    const slots = CHUNK_SLOTS * 5 + 300;
    const { t, pool, q } = setup(7, slots);
    const filter = compileFilter({ confidence: { lt: 0.5 } });
    const fore = await exactTopK(t, slots, q, 30, -Infinity, 0, filter, yieldNow, pool);
    // A gate held shut: the scan waits at it, then goes on a slice per opening.
    let opened = 0;
    let release: (() => void) | undefined;
    const gate = (): Promise<void> =>
      new Promise((resolve) => {
        release = () => {
          opened++;
          resolve();
        };
      });
    let done = false;
    const back = exactTopK(t, slots, q, 30, -Infinity, 0, filter, yieldNow, pool, gate).then((h) => {
      done = true;
      return h;
    });
    for (let i = 0; i < 20 && !done; i++) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      if (done) break;
      assert.ok(release, 'waiting at the gate');
      const before = opened;
      const r0 = release;
      release = undefined;
      // While shut, nothing finishes.
      assert.equal(done, false);
      r0();
      assert.equal(opened, before + 1);
    }
    const hits = await back;
    // Six chunks, two lanes, one chunk a lane per slice: three slices.
    assert.equal(opened, 3);
    assert.deepEqual(
      hits.map((h) => [h.id, h.score]),
      fore.map((h) => [h.id, h.score]),
    );
  });

  for (const dim of [16, 12]) {
    test(`dimension ${dim}: the workers return what the inline scan returns`, async () => {
      const r = new Rng(dim);
      const slots = CHUNK_SLOTS * 2 + 1234;
      const t = table(dim, slots, r);
      const pool = ScanPool.create(t);
      assert.ok(pool);
      pools.push(pool);
      const filters = [
        undefined,
        { confidence: { gte: 0.5 } },
        { accessCount: { gte: 7, lte: 7 } },
        { activation: { gt: 2, lt: 5 }, createdAt: { lt: 9000 } },
      ];
      for (let qi = 0; qi < 6; qi++) {
        const q = new Float32Array(dim);
        for (let d = 0; d < dim; d++) q[d] = r.next() * 2 - 1;
        for (const f of filters) {
          for (const space of [0, 1, 2]) {
            const filter = compileFilter(f);
            const k = 1 + (qi % 3) * 10;
            const inline = await exactTopK(t, slots, q, k, -Infinity, space, filter, yieldNow);
            const pooled = await exactTopK(t, slots, q, k, -Infinity, space, filter, yieldNow, pool);
            assert.deepEqual(
              pooled.map((h) => [h.id, h.score]),
              inline.map((h) => [h.id, h.score]),
              `dim ${dim} query ${qi} space ${space} filter ${JSON.stringify(f)}`,
            );
            if (space === 2) assert.equal(pooled.length, 0);
          }
        }
      }
      // minScore is honoured by both.
      const q = new Float32Array(dim).fill(1);
      const inline = await exactTopK(t, slots, q, 50, 0.3, 0, undefined, yieldNow);
      const pooled = await exactTopK(t, slots, q, 50, 0.3, 0, undefined, yieldNow, pool);
      assert.deepEqual(
        pooled.map((h) => h.id),
        inline.map((h) => h.id),
      );
      for (const h of pooled) assert.ok(h.score >= 0.3);
    });
  }
});
