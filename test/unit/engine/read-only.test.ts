/**
 * `WarmStore.open(dir, { readOnly: true })`, for inspection and backup tools: it writes nothing at
 * all (counted through the fault file layer), takes no lock (a writer may be running), reads what
 * the files hold including the WAL's newer entries, and refuses every mutation with READ_ONLY.
 */
import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { WarmStore, WarmStoreError, type WarmStoreOptions } from '../../../src/index.js';
import { FaultyFileSystem } from '../../../src/testing/index.js';
import { fullDiskRecord } from '../../helpers/full-disk.js';
import { tempDir } from '../../helpers/tmp.js';

const BASE: WarmStoreOptions = {
  dimension: 8,
  segmentBytes: 256 * 1024,
  diskReserveBytes: 64 * 1024,
  maintenanceIntervalMs: false,
  maintenance: { startupCompaction: 'off' },
};

function readOnlyError(label: string) {
  return (err: unknown): boolean => {
    assert.ok(WarmStoreError.is(err), `${label}: ${String(err)}`);
    assert.equal(err.code, 'READ_ONLY', `${label}: ${err.message}`);
    return true;
  };
}

describe('read-only open', () => {
  it('writes nothing, takes no lock, reads everything and refuses every mutation', async (t) => {
    const dir = await tempDir(t);
    const w = await WarmStore.open(dir, BASE);
    for (let i = 0; i < 30; i++) await w.put(fullDiskRecord(i));
    await w.checkpoint();
    // Newer than the checkpoint: only in the WAL, which a read-only open replays in memory.
    for (let i = 30; i < 40; i++) await w.put(fullDiskRecord(i));
    await w.delete('k0');
    await w.close();
    const filesBefore = (await readdir(dir)).sort();

    const fs = new FaultyFileSystem();
    const ro = await WarmStore.open(dir, { ...BASE, readOnly: true, fileSystem: fs });
    try {
      assert.equal(ro.readOnly, true);
      assert.deepEqual(ro.storageStatus(), {
        diskFull: false,
        readOnly: true,
        readOnlyReason: 'opened with readOnly',
        reserveBytes: 0,
        reserveHeldBytes: 0,
      });
      assert.equal(ro.size, 39);
      assert.equal(ro.has('k0'), false);
      for (let i = 1; i < 40; i++) assert.equal((await ro.get(`k${i}`))?.content, fullDiskRecord(i).content);
      const hits = await ro.recall(fullDiskRecord(5).embedding as Float32Array, { k: 1 });
      assert.equal(hits[0]?.memory.id, 'k5');
      // fsck of the files as they are: slots only the WAL holds are checked for content only.
      const report = await ro.verify();
      assert.ok(report.ok, JSON.stringify(report.problems.slice(0, 3)));
      let n = 0;
      for await (const _ of ro.entries()) n++;
      assert.equal(n, 39);

      const refusals: Array<[string, () => Promise<unknown>]> = [
        ['put', () => ro.put(fullDiskRecord(99))],
        ['putMany', () => ro.putMany([fullDiskRecord(99)])],
        ['delete', () => ro.delete('k1')],
        ['get with touch', () => ro.get('k1', { touch: true })],
        ['recall with touch', () => ro.recall(fullDiskRecord(1).embedding as Float32Array, { touch: true })],
        ['checkpoint', () => ro.checkpoint()],
        ['compact', () => ro.compact({ force: true })],
        ['runMaintenance', () => ro.runMaintenance()],
      ];
      for (const [label, call] of refusals) {
        await assert.rejects((async () => call())(), readOnlyError(label));
      }
      assert.equal(ro.size, 39, 'nothing changed');
    } finally {
      await ro.close();
    }
    assert.equal(fs.counts['any-write'], 0, 'not one write, sync, create, rename or unlink');
    assert.deepEqual((await readdir(dir)).sort(), filesBefore, 'no file created or removed');
    assert.deepEqual(fs.openFiles(), [], 'every handle closed');
  });

  it('opens while a writer holds the store, and sees what was acknowledged before it opened', async (t) => {
    const dir = await tempDir(t);
    const w = await WarmStore.open(dir, BASE);
    t.after(() => w.close());
    for (let i = 0; i < 10; i++) await w.put(fullDiskRecord(i));
    const ro = await WarmStore.open(dir, { ...BASE, readOnly: true });
    try {
      assert.equal(ro.size, 10);
      assert.equal(ro.getSync('k9')?.content, fullDiskRecord(9).content);
    } finally {
      await ro.close();
    }
    // The writer's lock was never touched: it keeps writing, and a second writer is still refused.
    await w.put(fullDiskRecord(10));
    await assert.rejects(WarmStore.open(dir, BASE), (err: unknown) => WarmStoreError.is(err, 'STORE_LOCKED'));
  });

  it('creates nothing where there is no store', async (t) => {
    const dir = join(await tempDir(t), 'absent');
    await assert.rejects(WarmStore.open(dir, { ...BASE, readOnly: true }), (err: unknown) => {
      assert.ok(WarmStoreError.is(err));
      assert.ok(err.code === 'READ_ONLY' || err.code === 'IO_ERROR', err.code);
      return true;
    });
    await assert.rejects(readdir(dir), /ENOENT/);
  });

  it('validates the option', async (t) => {
    const dir = await tempDir(t);
    await assert.rejects(
      WarmStore.open(dir, { ...BASE, readOnly: 'yes' as unknown as boolean }),
      (err: unknown) => WarmStoreError.is(err, 'INVALID_INPUT') && err.details.field === 'readOnly',
    );
  });
});
