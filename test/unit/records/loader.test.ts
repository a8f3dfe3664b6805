/**
 * The loader of records.dat at open: a header written before slot headers carried the embedding's
 * norm has it computed from that slot's own vector in vectors.dat.
 */
import assert from 'node:assert/strict';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { WarmStore } from '../../../src/index.js';
import { crc32c } from '../../../src/format/crc.js';
import { SLOT_HEADER_BYTES, headerOffset } from '../../../src/records/slot-codec.js';
import { tempDir } from '../../helpers/tmp.js';

const DIM = 8;
const OPTS = { dimension: DIM, maintenanceIntervalMs: false as const, annMinMemories: 1_000_000 };

test('headers without a stored norm get it from their own vectors at open', async (t) => {
  const dir = await tempDir(t);
  const store = await WarmStore.open(dir, OPTS);
  // Different lengths, so a norm taken from the wrong slot's vector changes every score.
  const recs = Array.from({ length: 40 }, (_, i) => ({
    id: `m${i}`,
    embedding: Float32Array.from({ length: DIM }, (_, d) => (i + 1) * Math.cos(i * 3 + d)),
    content: null,
  }));
  await store.putMany(recs);
  await store.close();

  // As an older writer left them: flag byte clear, norm bytes zero, header CRC resealed.
  const f = await open(join(dir, 'records.dat'), 'r+');
  try {
    const h = Buffer.alloc(SLOT_HEADER_BYTES);
    for (let slot = 0; slot < recs.length; slot++) {
      const pos = headerOffset(slot);
      await f.read(h, 0, SLOT_HEADER_BYTES, pos);
      assert.notEqual(h[6], 0, `slot ${slot} carries its norm`);
      h[6] = 0;
      h.fill(0, 88, 92);
      h.writeUInt32LE(crc32c(h.subarray(4)), 0);
      await f.write(h, 0, SLOT_HEADER_BYTES, pos);
    }
  } finally {
    await f.close();
  }

  const again = await WarmStore.open(dir, OPTS);
  t.after(() => again.close());
  for (const r of recs) {
    const hits = await again.recall(r.embedding, { k: 40, exact: true });
    assert.equal(hits.length, recs.length);
    for (const h of hits) {
      const other = recs.find((x) => x.id === h.memory.id)!;
      let dot = 0;
      let na = 0;
      let nb = 0;
      for (let d = 0; d < DIM; d++) {
        dot += r.embedding[d]! * other.embedding[d]!;
        na += r.embedding[d]! ** 2;
        nb += other.embedding[d]! ** 2;
      }
      assert.ok(Math.abs(h.score - dot / Math.sqrt(na * nb)) < 1e-4, `${r.id} ~ ${other.id}: ${h.score}`);
    }
  }
});
