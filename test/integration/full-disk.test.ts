/**
 * A full disk, for real: a small tmpfs mounted for the test is filled by concurrent puts until
 * the file system answers ENOSPC. Reads keep working, every acknowledged put survives, deletes and
 * a compaction free space from inside the store, writes resume once space returns, and the store
 * closes and opens again while the disk is full (also after a kill -9, see the crash child).
 */
import assert from 'node:assert/strict';
import { open, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { WarmStore, WarmStoreError, type WarmStoreLogger } from '../../src/index.js';
import { FULL_DISK_OPTS, fullDiskRecord } from '../helpers/full-disk.js';
import { spawnWriter } from '../helpers/spawn.js';
import { freeBytes, mountTmpfs } from '../helpers/tmpfs.js';

const MiB = 1024 * 1024;
const OPTS = FULL_DISK_OPTS;

/** Log lines kept by message, to count the entering and leaving lines. */
function recordingLogger(): WarmStoreLogger & { lines: string[] } {
  const lines: string[] = [];
  const keep = (_obj: object, msg?: string): void => {
    if (msg !== undefined) lines.push(msg);
  };
  return { lines, info: keep, warn: keep, error: keep };
}

function count(lines: string[], prefix: string): number {
  return lines.filter((l) => l.startsWith(prefix)).length;
}

/** Puts records from `next` on, 16 at a time, until three rounds in a row are all refused. */
async function fillUp(
  store: WarmStore,
  acked: Set<number>,
  next: number,
): Promise<{ next: number; codes: Set<string> }> {
  const codes = new Set<string>();
  let refusedRounds = 0;
  while (refusedRounds < 3) {
    let ok = 0;
    const round = Array.from({ length: 16 }, () => next++).map((n) =>
      store.put(fullDiskRecord(n)).then(
        () => {
          acked.add(n);
          ok++;
        },
        (err: unknown) => {
          codes.add(WarmStoreError.is(err) ? err.code : String(err));
        },
      ),
    );
    await Promise.all(round);
    refusedRounds = ok === 0 ? refusedRounds + 1 : 0;
    assert.ok(next < 100_000, 'the disk never filled up');
  }
  return { next, codes };
}

async function expectAll(store: WarmStore, acked: Set<number>, context: string): Promise<void> {
  for (const n of acked) {
    const m = await store.get(`k${n}`);
    assert.equal(m?.content, fullDiskRecord(n).content, `${context}: k${n} reads back`);
  }
}

describe('a full disk (tmpfs)', () => {
  it('refuses new content, keeps reads, deletes and compaction, frees space from inside and resumes', async (t) => {
    const mount = await mountTmpfs(t, 24);
    if (mount === undefined) return;
    const dir = join(mount, 'store');
    const logger = recordingLogger();
    const store = await WarmStore.open(dir, { ...OPTS, logger });
    t.after(() => store.close());
    assert.equal(store.storageStatus().reserveHeldBytes, 2 * MiB, 'the reserve is on disk');

    const acked = new Set<number>();
    const filled = await fillUp(store, acked, 0);
    assert.deepEqual([...filled.codes], ['DISK_FULL'], 'every refused put says DISK_FULL');
    const status = store.storageStatus();
    assert.equal(status.diskFull, true);
    assert.ok(
      status.reserveHeldBytes <= 64 * 1024,
      `the reserve was given back (${status.reserveHeldBytes})`,
    );
    assert.equal(count(logger.lines, 'disk full'), 1, 'one log line on entering the state');
    assert.ok(acked.size > 1000, `a 24 MiB disk took ${acked.size} puts`);
    await expectAll(store, acked, 'full');
    const filledWith = acked.size;

    // Deletes work on the full disk: every other acknowledged record goes.
    const doomed = [...acked].filter((n) => n % 2 === 0);
    const results = await Promise.all(doomed.map((n) => store.delete(`k${n}`)));
    assert.equal(results.filter((r) => r).length, doomed.length, 'every delete answered true');
    for (const n of doomed) acked.delete(n);
    assert.equal(store.size, acked.size);

    // Compaction frees the dead half from inside: each run copies the victims that fit in the
    // room there is, which grows run after run.
    const before = await freeBytes(mount);
    let runs = 0;
    let freedLast = before;
    while (store.contentStorageStats().fragmentationRatio > 0.1) {
      const stats = await store.compact({ force: true });
      assert.ok(stats.segmentsCompacted > 0, `run ${runs} compacted nothing: ${JSON.stringify(stats)}`);
      const now = await freeBytes(mount);
      assert.ok(now >= freedLast, `run ${runs} freed space: ${freedLast} -> ${now}`);
      freedLast = now;
      runs++;
      assert.ok(runs <= 30, 'compaction stopped making progress');
    }
    const after = await freeBytes(mount);
    assert.ok(after > before + 4 * MiB, `${runs} compactions freed space: ${before} -> ${after}`);
    t.diagnostic(`${filledWith} puts filled the disk; ${runs} compactions freed ${after - before} bytes`);

    // Space returned: the next put takes the reserve again and goes through.
    await store.put(fullDiskRecord(filled.next));
    acked.add(filled.next);
    assert.equal(store.storageStatus().diskFull, false);
    assert.equal(store.storageStatus().reserveHeldBytes, 2 * MiB, 'the reserve was taken again');
    assert.equal(count(logger.lines, 'disk space returned'), 1, 'one log line on leaving the state');
    await expectAll(store, acked, 'after compaction');
    const report = await store.verify();
    assert.ok(report.ok, JSON.stringify(report.problems.slice(0, 3)));
  });

  it('closes and opens again on the full disk; writes resume once space is freed outside', async (t) => {
    const mount = await mountTmpfs(t, 24);
    if (mount === undefined) return;
    const dir = join(mount, 'store');
    const filler = join(mount, 'filler');
    await writeFile(filler, Buffer.alloc(3 * MiB));
    const acked = new Set<number>();
    const first = await WarmStore.open(dir, OPTS);
    const filled = await fillUp(first, acked, 0);
    assert.equal(first.storageStatus().diskFull, true);
    await first.close();

    // Reopen on the full disk: no error, every acknowledged put reads back.
    const logger = recordingLogger();
    const second = await WarmStore.open(dir, { ...OPTS, logger });
    t.after(() => second.close());
    const s = second.storageStatus();
    t.diagnostic(`reopened on the full disk: ${JSON.stringify(s)}`);
    assert.ok(s.diskFull || s.readOnly, `the store says why it cannot write: ${JSON.stringify(s)}`);
    assert.equal(second.size, acked.size);
    await expectAll(second, acked, 'reopened full');
    await assert.rejects(second.put(fullDiskRecord(filled.next)), (err: unknown) => {
      assert.ok(WarmStoreError.is(err), String(err));
      assert.ok(err.code === 'DISK_FULL' || err.code === 'READ_ONLY', err.code);
      return true;
    });

    // Space freed outside the store: writes resume (a read-only fallback needs a reopen).
    await unlink(filler);
    let store = second;
    if (s.readOnly) {
      await second.close();
      store = await WarmStore.open(dir, OPTS);
      t.after(() => store.close());
    }
    await store.put(fullDiskRecord(filled.next));
    acked.add(filled.next);
    assert.equal(store.storageStatus().diskFull, false);
    await expectAll(store, acked, 'after space returned');
    const report = await store.verify();
    assert.ok(report.ok, JSON.stringify(report.problems.slice(0, 3)));
  });

  it('with not one byte free and no reserve left, open falls back to read-only and reads everything', async (t) => {
    const mount = await mountTmpfs(t, 16);
    if (mount === undefined) return;
    const dir = join(mount, 'store');
    const acked = new Set<number>();
    const first = await WarmStore.open(dir, OPTS);
    await fillUp(first, acked, 0);
    await first.close();
    // Take every last page, the reserve's slack included.
    await unlink(join(dir, 'RESERVE'));
    const plug = join(mount, 'plug');
    const fh = await open(plug, 'w');
    try {
      const page = Buffer.alloc(4096);
      for (;;) await fh.write(page);
    } catch (err) {
      assert.equal((err as NodeJS.ErrnoException).code, 'ENOSPC');
    } finally {
      await fh.close();
    }
    assert.equal(await freeBytes(mount), 0);

    const logger = recordingLogger();
    const ro = await WarmStore.open(dir, { ...OPTS, logger });
    const s = ro.storageStatus();
    t.diagnostic(`opened with no byte free: ${JSON.stringify(s)}`);
    assert.equal(s.readOnly, true, JSON.stringify(s));
    assert.equal(s.diskFull, true, 'the reason is the full disk');
    assert.equal(count(logger.lines, 'store opened read-only'), 1);
    assert.equal(ro.size, acked.size);
    await expectAll(ro, acked, 'read-only on a full disk');
    await assert.rejects(ro.delete('k1'), (err: unknown) => WarmStoreError.is(err, 'READ_ONLY'));
    await ro.close();

    await unlink(plug);
    const rw = await WarmStore.open(dir, OPTS);
    t.after(() => rw.close());
    assert.equal(rw.readOnly, false);
    assert.equal(await rw.delete('k1'), acked.has(1));
    acked.delete(1);
    await expectAll(rw, acked, 'writable again');
  });

  it('kill -9 while the disk is full loses nothing acknowledged', async (t) => {
    const mount = await mountTmpfs(t, 16);
    if (mount === undefined) return;
    const dir = join(mount, 'store');
    const child = spawnWriter('test/crash/child-full-disk.ts', { env: { STORE_DIR: dir } });
    t.after(() => child.kill().then(() => undefined));
    await child.waitForLine((l) => l === 'full', 120_000);
    // Deletes acknowledged on the full disk count too.
    await child.waitForCount((l) => l.startsWith('del '), 50, 60_000);
    await child.kill('SIGKILL');
    const acked = new Set<number>();
    const deleted = new Set<number>();
    for (const line of child.lines) {
      const [what, n] = line.split(' ');
      if (what === 'ack') acked.add(Number(n));
      if (what === 'del') {
        acked.delete(Number(n));
        deleted.add(Number(n));
      }
    }
    assert.ok(acked.size > 500 && deleted.size >= 50, `${acked.size} acked, ${deleted.size} deleted`);
    // The child deletes one at a time, in the order of its acknowledgements: the next one may have
    // been in flight at the kill (durable, not yet acknowledged), so either outcome is correct.
    const inFlight = acked.values().next().value;
    if (inFlight !== undefined) acked.delete(inFlight);
    const store = await WarmStore.open(dir, OPTS);
    t.after(() => store.close());
    await expectAll(store, acked, 'after kill -9');
    if (inFlight !== undefined && store.has(`k${inFlight}`)) {
      assert.equal((await store.get(`k${inFlight}`))?.content, fullDiskRecord(inFlight).content);
    }
    for (const n of deleted) assert.equal(store.has(`k${n}`), false, `deleted k${n} stays deleted`);
    const report = await store.verify();
    assert.ok(report.ok, JSON.stringify(report.problems.slice(0, 3)));
  });
});
