/**
 * The disk reserve and the full-disk state through the fault file layer: ENOSPC where a real full
 * disk would raise it, and `freeBytesOverride` for what statfs reports. (A real full file system:
 * test/integration/full-disk.test.ts.)
 */
import assert from 'node:assert/strict';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { WarmStore, WarmStoreError, type WarmStoreOptions } from '../../../src/index.js';
import { OPEN_SLACK_BYTES, RESERVE_FILE } from '../../../src/engine/disk-space.js';
import { FaultyFileSystem } from '../../../src/testing/index.js';
import { fullDiskRecord } from '../../helpers/full-disk.js';
import { tempDir } from '../../helpers/tmp.js';

const MiB = 1024 * 1024;
const BASE: WarmStoreOptions = {
  dimension: 8,
  segmentBytes: 256 * 1024,
  diskReserveBytes: 1 * MiB,
  maintenanceIntervalMs: false,
  maintenance: { startupCompaction: 'off' },
};

function code(expected: string) {
  return (err: unknown): boolean => {
    assert.ok(WarmStoreError.is(err), String(err));
    assert.equal(err.code, expected, err.message);
    return true;
  };
}

async function withRecords(dir: string, n: number, options: WarmStoreOptions = {}): Promise<void> {
  const s = await WarmStore.open(dir, { ...BASE, ...options });
  for (let i = 0; i < n; i++) await s.put(fullDiskRecord(i));
  await s.close();
}

describe('disk reserve', () => {
  it('is a file of real zero bytes, not a sparse one', async (t) => {
    const dir = await tempDir(t);
    const store = await WarmStore.open(dir, BASE);
    t.after(() => store.close());
    const st = await stat(join(dir, RESERVE_FILE));
    assert.equal(st.size, MiB);
    assert.ok(st.blocks * 512 >= MiB, `allocated ${st.blocks * 512} bytes`);
    assert.ok((await readFile(join(dir, RESERVE_FILE))).every((b) => b === 0));
    assert.deepEqual(store.storageStatus(), {
      diskFull: false,
      readOnly: false,
      reserveBytes: MiB,
      reserveHeldBytes: MiB,
    });
  });

  it('defaults to the smaller of 16 MiB and segmentBytes; 0 keeps none', async (t) => {
    const dir = await tempDir(t);
    const defaults: WarmStoreOptions = { ...BASE };
    delete defaults.diskReserveBytes;
    const small = await WarmStore.open(dir, defaults);
    assert.equal(small.storageStatus().reserveHeldBytes, 256 * 1024);
    await small.close();
    const none = await WarmStore.open(dir, { ...BASE, diskReserveBytes: 0 });
    t.after(() => none.close());
    assert.equal(none.storageStatus().reserveHeldBytes, 0);
    await assert.rejects(stat(join(dir, RESERVE_FILE)), /ENOENT/);
    await assert.rejects(WarmStore.open(dir, { ...BASE, diskReserveBytes: -1 }), code('INVALID_INPUT'));
  });
});

describe('a full disk (fault layer)', () => {
  it('a put meeting ENOSPC: reserve given back, puts refused without writing, deletes work, writes resume', async (t) => {
    const dir = await tempDir(t);
    await withRecords(dir, 20);
    const fs = new FaultyFileSystem();
    const store = await WarmStore.open(dir, { ...BASE, fileSystem: fs });
    t.after(() => store.close());

    fs.failAt({ op: 'write', nth: 1, error: 'ENOSPC', pathIncludes: 'seg-', persistent: true });
    await assert.rejects(store.put(fullDiskRecord(100)), code('DISK_FULL'));
    const full = store.storageStatus();
    assert.equal(full.diskFull, true);
    assert.equal(full.reserveHeldBytes, OPEN_SLACK_BYTES);
    assert.equal((await stat(join(dir, RESERVE_FILE))).size, OPEN_SLACK_BYTES, 'given back on disk');
    assert.equal(store.has('k100'), false);

    // statfs says full: a put is refused before anything is written.
    fs.freeBytesOverride = 0;
    fs.resetCounts();
    await assert.rejects(store.put(fullDiskRecord(101)), code('DISK_FULL'));
    assert.equal(fs.counts['any-write'], 0, 'a refused put writes nothing');

    // Reads and deletes go on.
    assert.equal(store.getSync('k3')?.content, fullDiskRecord(3).content);
    assert.equal(await store.delete('k4'), true);
    await store.checkpoint();
    // The maintenance loop reclaims any dead bytes while the disk is full, however few (room for
    // its output appears: the fault is lifted, statfs reports the real disk).
    fs.clearFaults();
    fs.freeBytesOverride = undefined;
    const report = await store.runMaintenance();
    assert.equal(report.decision, 'compacted', `${report.reason}: ${JSON.stringify(report.error)}`);
    assert.match(report.reason, /disk is full/);
    assert.equal(store.contentStorageStats().deadBytes, 0);
    assert.equal(store.storageStatus().diskFull, true, 'still full until a put finds the room');

    // Space returns: the reserve is written back first, then the put goes through.
    fs.reset();
    await store.put(fullDiskRecord(102));
    assert.deepEqual(store.storageStatus(), {
      diskFull: false,
      readOnly: false,
      reserveBytes: MiB,
      reserveHeldBytes: MiB,
    });
    await store.close();
    const again = await WarmStore.open(dir, BASE);
    try {
      assert.equal(again.has('k4'), false);
      assert.equal(again.getSync('k102')?.content, fullDiskRecord(102).content);
      assert.equal(again.size, 20);
    } finally {
      await again.close();
    }
  });

  it('a delete meeting ENOSPC is retried once in the room the reserve leaves', async (t) => {
    const dir = await tempDir(t);
    await withRecords(dir, 10);
    const fs = new FaultyFileSystem();
    const store = await WarmStore.open(dir, { ...BASE, fileSystem: fs });
    t.after(() => store.close());
    fs.failAt({ op: 'write', nth: 1, error: 'ENOSPC', pathIncludes: 'wal-' });
    assert.equal(await store.delete('k1'), true);
    assert.equal(fs.triggered.length, 1, 'the first attempt met the full disk');
    assert.equal(store.storageStatus().diskFull, true);
    // A disk with no room at all even after the reserve: the delete fails and changes nothing.
    fs.failAt({ op: 'write', nth: 1, error: 'ENOSPC', pathIncludes: 'wal-', persistent: true });
    await assert.rejects(store.delete('k2'), code('IO_ERROR'));
    assert.equal(store.has('k2'), true);
    fs.reset();
    assert.equal(await store.delete('k2'), true);
  });

  it('deleteSpace on a full disk is retried in the room the reserve leaves, like a delete', async (t) => {
    const dir = await tempDir(t);
    const fs = new FaultyFileSystem();
    const store = await WarmStore.open(dir, { ...BASE, fileSystem: fs });
    t.after(() => store.close());
    for (let i = 0; i < 6; i++) await store.put({ ...fullDiskRecord(i), space: 'tenant' });
    await store.put(fullDiskRecord(6));
    fs.failAt({ op: 'write', nth: 1, error: 'ENOSPC', pathIncludes: 'seg-', persistent: true });
    await assert.rejects(store.put(fullDiskRecord(7)), code('DISK_FULL'));
    fs.failAt({ op: 'write', nth: 1, error: 'ENOSPC', pathIncludes: 'wal-' });
    assert.equal(await store.deleteSpace('tenant'), 6);
    assert.equal(fs.pendingFaults, 0, 'the drop met the full disk once');
    assert.equal(store.has('k0', { space: 'tenant' }), false);
    assert.equal(store.size, 1);
  });

  it('open on a full disk gives the reserve to recovery and opens writable in the full state', async (t) => {
    const dir = await tempDir(t);
    await withRecords(dir, 10);
    const fs = new FaultyFileSystem();
    fs.freeBytesOverride = 0;
    const store = await WarmStore.open(dir, { ...BASE, fileSystem: fs });
    t.after(() => store.close());
    const s = store.storageStatus();
    assert.equal(s.diskFull, true);
    assert.equal(s.readOnly, false);
    assert.equal(s.reserveHeldBytes, 0, 'the whole reserve went to the open');
    assert.equal(store.size, 10);
    await assert.rejects(store.put(fullDiskRecord(50)), code('DISK_FULL'));
    assert.equal(await store.delete('k0'), true);
    fs.freeBytesOverride = undefined;
    await store.put(fullDiskRecord(50));
    assert.equal(store.storageStatus().reserveHeldBytes, MiB);
  });

  it('a lock file that cannot be written takes the reserve; with none left, the store opens read-only', async (t) => {
    const dir = await tempDir(t);
    await withRecords(dir, 10);
    const fs = new FaultyFileSystem();
    fs.failAt({ op: 'write', nth: 1, error: 'ENOSPC', pathIncludes: 'LOCK' });
    const first = await WarmStore.open(dir, { ...BASE, fileSystem: fs });
    assert.equal(first.readOnly, false, 'the second try found room');
    assert.equal(fs.triggered.length, 1);
    await first.close();

    fs.failAt({ op: 'write', nth: 1, error: 'ENOSPC', pathIncludes: 'LOCK', persistent: true });
    const ro = await WarmStore.open(dir, { ...BASE, fileSystem: fs });
    t.after(() => ro.close());
    const s = ro.storageStatus();
    assert.equal(s.readOnly, true);
    assert.match(s.readOnlyReason ?? '', /lock/);
    assert.equal(ro.size, 10);
    assert.equal((await ro.get('k7'))?.content, fullDiskRecord(7).content);
    await assert.rejects(ro.put(fullDiskRecord(60)), code('READ_ONLY'));
    await assert.rejects(ro.delete('k1'), code('READ_ONLY'));
  });

  it('a store that does not exist yet is not created read-only: the lock error stands', async (t) => {
    const dir = join(await tempDir(t), 'new');
    const fs = new FaultyFileSystem();
    fs.failAt({ op: 'write', nth: 1, error: 'ENOSPC', pathIncludes: 'LOCK', persistent: true });
    await assert.rejects(WarmStore.open(dir, { ...BASE, fileSystem: fs }), code('IO_ERROR'));
  });

  it('recovery that cannot create its WAL opens read-only and loses nothing', async (t) => {
    const dir = await tempDir(t);
    await withRecords(dir, 12);
    const fs = new FaultyFileSystem();
    fs.failAt({ op: 'write', nth: 1, error: 'ENOSPC', pathIncludes: 'wal-', persistent: true });
    const ro = await WarmStore.open(dir, { ...BASE, diskReserveBytes: 0, fileSystem: fs });
    const s = ro.storageStatus();
    assert.equal(s.readOnly, true, JSON.stringify(s));
    assert.match(s.readOnlyReason ?? '', /disk is full/);
    for (let i = 0; i < 12; i++) assert.equal(ro.getSync(`k${i}`)?.content, fullDiskRecord(i).content);
    await assert.rejects(ro.compact(), code('READ_ONLY'));
    await ro.close();
    fs.reset();
    const rw = await WarmStore.open(dir, { ...BASE, fileSystem: fs });
    try {
      assert.equal(rw.readOnly, false);
      assert.equal(rw.size, 12);
      await rw.put(fullDiskRecord(12));
    } finally {
      await rw.close();
    }
  });
});
