/**
 * A store whose WAL was written before embeddings moved out of the log (WAL format 3: a put
 * carries its embedding after its id, and vectors.dat holds only what checkpoints wrote) opens
 * with every memory at its embedding: replay writes the carried embeddings to vectors.dat. A
 * read-only open, which may not write, refuses such a WAL until one writable open has replayed it.
 */
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { WarmStore, WarmStoreError } from '../../../src/index.js';
import { crc32c } from '../../../src/format/crc.js';
import { embeddingSummary } from '../../../src/format/embedding.js';
import { HEADER_BYTES, encodeHeader } from '../../../src/format/header.js';
import { readManifest } from '../../../src/format/manifest.js';
import { NodeFileSystem } from '../../../src/fs/node-fs.js';
import {
  ContentKind,
  WAL_ENTRY_HEADER,
  WalType,
  encodeWalEntry,
  walEntrySize,
} from '../../../src/wal/entries.js';
import { walFileName } from '../../../src/wal/log.js';
import { embeddingFor } from '../../helpers/random.js';
import { tempDir } from '../../helpers/tmp.js';

const DIM = 16;
const OPTS = { dimension: DIM, maintenanceIntervalMs: false as const, scrub: false as const };

/** A put as WAL format 3 wrote it: format 4's bytes with the embedding in place of its summary. */
function v3Put(lsn: number, slot: number, id: string, embedding: Float32Array, batchStart: boolean): Buffer {
  const entry = {
    type: WalType.Put as const,
    slot,
    space: 0,
    id,
    idBytes: Buffer.from(id),
    kind: ContentKind.Empty,
    seg: 0,
    off: 0,
    clen: 0,
    confidence: 0.5,
    activation: 1,
    decayRate: 0,
    createdAt: 1000 + slot,
    lastAccess: 1000 + slot,
    accessCount: 0,
    ...embeddingSummary(embedding),
  };
  const buf = Buffer.alloc(walEntrySize(entry));
  encodeWalEntry(buf, 0, lsn, entry, batchStart);
  const old = Buffer.concat([buf.subarray(0, buf.length - 8), Buffer.from(embedding.buffer.slice(0))]);
  old.writeUInt32LE(old.length - WAL_ENTRY_HEADER, 4);
  old.writeUInt32LE(crc32c(old.subarray(4)), 0);
  return old;
}

/** An empty store whose current WAL file is replaced by a format-3 one holding `n` puts. */
async function storeWithV3Wal(dir: string, n: number): Promise<void> {
  const store = await WarmStore.open(dir, OPTS);
  await store.close();
  const m = await readManifest(new NodeFileSystem(), dir);
  assert.ok(m);
  const header = encodeHeader('WALG', [m.walFileNo, 0, 0, 0]);
  header.writeUInt32LE(3, 8);
  header.writeUInt32LE(crc32c(header.subarray(0, 28)), 28);
  const entries = Array.from({ length: n }, (_, i) =>
    v3Put(m.checkpointLsn + 1 + i, i, `old${i}`, embeddingFor(i, DIM), i === 0),
  );
  await writeFile(
    join(dir, walFileName(m.walFileNo)),
    Buffer.concat([header.subarray(0, HEADER_BYTES), ...entries]),
  );
}

describe('WAL format 3 (embeddings in the log)', () => {
  test('a writable open replays it, writing the embeddings to vectors.dat; they read back exactly', async (t) => {
    const dir = await tempDir(t);
    await storeWithV3Wal(dir, 20);
    const before = (await readFile(join(dir, 'vectors.dat'))).length;
    const store = await WarmStore.open(dir, OPTS);
    try {
      assert.equal(store.size, 20);
      for (let i = 0; i < 20; i++) {
        const m = store.getSync(`old${i}`);
        assert.ok(m, `old${i}`);
        assert.deepEqual(m.embedding, embeddingFor(i, DIM), `old${i}: embedding`);
        assert.equal(m.content, '');
      }
      assert.ok((await readFile(join(dir, 'vectors.dat'))).length > before, 'vectors.dat grew');
      const report = await store.verify();
      assert.ok(report.ok, JSON.stringify(report.problems.slice(0, 3)));
      const hits = await store.recall(embeddingFor(7, DIM), { k: 1, exact: true });
      assert.equal(hits[0]?.memory.id, 'old7');
    } finally {
      await store.close();
    }
    // Durable: a second open finds them without the old WAL (the recovery checkpoint wrote them).
    const again = await WarmStore.open(dir, OPTS);
    try {
      assert.deepEqual(again.getSync('old13')?.embedding, embeddingFor(13, DIM));
    } finally {
      await again.close();
    }
  });

  test('a read-only open refuses it with READ_ONLY and changes nothing; a writable open then migrates', async (t) => {
    const dir = await tempDir(t);
    await storeWithV3Wal(dir, 5);
    const vectors = await readFile(join(dir, 'vectors.dat'));
    await assert.rejects(WarmStore.open(dir, { ...OPTS, readOnly: true }), (err: unknown) => {
      assert.ok(WarmStoreError.is(err, 'READ_ONLY'), String(err));
      assert.match((err as Error).message, /writable open/);
      return true;
    });
    assert.deepEqual(await readFile(join(dir, 'vectors.dat')), vectors, 'vectors.dat untouched');
    const store = await WarmStore.open(dir, OPTS);
    await store.close();
    const ro = await WarmStore.open(dir, { ...OPTS, readOnly: true });
    try {
      assert.deepEqual(ro.getSync('old4')?.embedding, embeddingFor(4, DIM));
    } finally {
      await ro.close();
    }
  });
});
