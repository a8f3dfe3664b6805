/**
 * What a checkpoint fsyncs: vectors.dat only when plain writes (relaxed durability, recovery) wait
 * for it; under synchronous durability every vector already was written durably, and the wasted
 * fsync cost a turn of a busy event loop. The first sync after open always covers vectors.dat.
 * records.dat's headers are durable writes in a live checkpoint under synchronous durability (one
 * fsync of hundreds of megabytes of them held every read behind it), plain ones otherwise.
 */
import assert from 'node:assert/strict';
import { cpSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { FaultyFileSystem } from '../../../src/testing/index.js';
import { WarmStore, WarmStoreError, type MemoryRecord, type WarmStoreOptions } from '../../../src/index.js';
import { expectSameRecord } from '../../helpers/assert.js';
import { recordFor } from '../../helpers/random.js';
import { tempDir } from '../../helpers/tmp.js';

const DIM = 8;
const BASE: WarmStoreOptions = {
  dimension: DIM,
  maintenanceIntervalMs: false,
  maintenance: { startupCompaction: 'off' },
};
const VECTORS_SYNC = { op: 'sync', nth: 1, error: 'EIO', pathIncludes: 'vectors.dat' } as const;

function recs(prefix: string, n: number, seed: number): MemoryRecord[] {
  return Array.from({ length: n }, (_, i) => ({
    ...recordFor(`${prefix}${i}`, seed + i, DIM),
    content: `${prefix}${i}`,
  }));
}

async function expectAll(dir: string, all: MemoryRecord[]): Promise<void> {
  const store = await WarmStore.open(dir, BASE);
  try {
    for (const r of all) expectSameRecord(await store.get(r.id), r, { context: r.id });
    const report = await store.verify();
    assert.equal(report.ok, true, JSON.stringify(report.problems));
  } finally {
    await store.close();
  }
}

describe('what a checkpoint fsyncs', () => {
  for (const durability of ['sync', 'relaxed'] as const) {
    const fsyncs = durability === 'relaxed';
    test(`${durability} durability: ${fsyncs ? 'the checkpoint fsyncs vectors.dat before records.dat names its vectors' : 'no fsync of vectors.dat, whose every write was durable already'}`, async (t) => {
      const dir = await tempDir(t);
      const fs = new FaultyFileSystem();
      // The relaxed sync timer must not take the armed fault before the checkpoint does (it did
      // on a loaded machine at the 100 ms default).
      const store = await WarmStore.open(dir, {
        ...BASE,
        fileSystem: fs,
        durability,
        relaxedSyncIntervalMs: 3_600_000,
      });
      const all = recs(durability, 200, 1);
      try {
        await store.putMany(all.slice(0, 100));
        await store.checkpoint();
        await store.putMany(all.slice(100));
        fs.failAt(VECTORS_SYNC);
        if (fsyncs) {
          await assert.rejects(
            store.checkpoint(),
            (err: unknown) => WarmStoreError.is(err) && err.code === 'IO_ERROR',
          );
          assert.equal(fs.pendingFaults, 0, 'the checkpoint fsynced vectors.dat');
          await store.checkpoint();
        } else {
          await store.checkpoint();
          assert.equal(fs.pendingFaults, 1, 'the checkpoint did not fsync vectors.dat');
        }
      } finally {
        fs.reset();
        await store.close();
      }
      await expectAll(dir, all);
    });
  }

  for (const durability of ['sync', 'relaxed'] as const) {
    const durable = durability === 'sync';
    test(`${durability} durability: a live checkpoint writes records.dat's headers ${durable ? 'durably, a few runs in the queue at a time' : 'plainly, fsynced after what they point at'}; the recovery checkpoint plainly`, async (t) => {
      const dir = await tempDir(t);
      const image = join(await tempDir(t), 'image');
      const all = recs(`h${durability}`, 300, 5);
      const fs = new FaultyFileSystem();
      const opts = { ...BASE, fileSystem: fs, durability, relaxedSyncIntervalMs: 3_600_000 };
      const store = await WarmStore.open(dir, opts);
      try {
        await store.putMany(all.slice(0, 200));
        fs.failAt({ op: 'durableWrite', nth: 1, error: 'EIO', pathIncludes: 'records.dat' });
        if (durable) {
          await assert.rejects(
            store.checkpoint(),
            (err: unknown) => WarmStoreError.is(err) && err.code === 'IO_ERROR',
          );
          assert.equal(fs.pendingFaults, 0, 'a header run was a durable write');
        } else {
          await store.checkpoint();
          assert.equal(fs.pendingFaults, 1, 'no durable write of records.dat');
        }
        fs.reset();
        await store.checkpoint();
        await store.putMany(all.slice(200));
        // What a kill -9 leaves: the last 100 in the WAL only, for the recovery checkpoint.
        cpSync(dir, image, { recursive: true, filter: (src) => !src.endsWith('LOCK') });
      } finally {
        fs.reset();
        await store.close();
      }
      const again = new FaultyFileSystem();
      again.failAt({ op: 'durableWrite', nth: 1, error: 'EIO', pathIncludes: 'records.dat' });
      const reopened = await WarmStore.open(image, { ...opts, fileSystem: again });
      try {
        assert.equal(reopened.size, 300);
        assert.equal(again.pendingFaults, 1, 'the recovery checkpoint wrote no header durably');
      } finally {
        again.reset();
        await reopened.close();
      }
      await expectAll(image, all);
      await expectAll(dir, all);
    });
  }

  test('the first fsync after open covers vectors.dat (what an earlier process left in the page cache)', async (t) => {
    const dir = await tempDir(t);
    const all = recs('o', 50, 3);
    {
      const store = await WarmStore.open(dir, { ...BASE, durability: 'sync' });
      await store.putMany(all);
      await store.close();
    }
    const fs = new FaultyFileSystem();
    fs.failAt(VECTORS_SYNC);
    // The recovery checkpoint at open is that first fsync.
    await assert.rejects(
      WarmStore.open(dir, { ...BASE, fileSystem: fs, durability: 'sync' }),
      (err: unknown) => WarmStoreError.is(err) && err.code === 'IO_ERROR',
    );
    assert.equal(fs.pendingFaults, 0, 'vectors.dat was fsynced');
    await expectAll(dir, all);
  });
});
