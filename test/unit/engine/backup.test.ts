import assert from 'node:assert/strict';
import { readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setImmediate } from 'node:timers/promises';
import { describe, test } from 'node:test';
import {
  BACKUP_INCOMPLETE_FILE,
  WarmStore,
  WarmStoreError,
  type WarmStoreOptions,
} from '../../../src/index.js';
import { segmentFileName } from '../../../src/content/segment.js';
import { readManifest } from '../../../src/format/manifest.js';
import { nodeFileSystem } from '../../../src/fs/node-fs.js';
import { expectSameRecord } from '../../helpers/assert.js';
import { Rng, recordFor } from '../../helpers/random.js';
import { tempDir } from '../../helpers/tmp.js';

const DIM = 16;
const OPTS: WarmStoreOptions = {
  dimension: DIM,
  segmentBytes: 32 * 1024,
  maintenanceIntervalMs: false,
  maintenance: { startupCompaction: 'off' },
};

/** One op of a writer: the value it writes (a seed, or null for a delete) and when. */
interface Op {
  value: number | null;
  begunAt: number;
  ackedAt: number | undefined;
}

/**
 * The values `id` may hold in a backup taken between `start` and `end`: the last one acknowledged
 * before `start` (null if none), or that of any op begun before `end` after it. Ops on one id are
 * sequential (each writer owns its ids).
 */
function allowedValues(ops: readonly Op[], start: number, end: number): Array<number | null> {
  let first = -1;
  for (let i = 0; i < ops.length; i++)
    if (ops[i]!.ackedAt !== undefined && ops[i]!.ackedAt! < start) first = i;
  const out: Array<number | null> = [first < 0 ? null : ops[first]!.value];
  for (let i = first + 1; i < ops.length && ops[i]!.begunAt < end; i++) out.push(ops[i]!.value);
  return out;
}

async function matches(
  store: WarmStore,
  id: string,
  allowed: ReadonlyArray<number | null>,
): Promise<boolean> {
  const got = await store.get(id);
  return allowed.some((v) => {
    if (v === null) return got === undefined;
    if (got === undefined) return false;
    try {
      expectSameRecord(got, recordFor(id, v, DIM));
      return true;
    } catch {
      return false;
    }
  });
}

describe('backup', () => {
  test('a backup taken under 4 writers and 2 readers opens, verifies clean and holds every write acknowledged before it', async (t) => {
    const root = await tempDir(t);
    const src = join(root, 'store');
    const dst = join(root, 'backup');
    const store = await WarmStore.open(src, OPTS);
    const history = new Map<string, Op[]>();
    let stop = false;
    let seedNo = 1;
    const writer = async (w: number): Promise<void> => {
      const rng = new Rng(w + 1);
      while (!stop) {
        const id = `w${w}-${rng.int(40)}`;
        const ops = history.get(id) ?? [];
        history.set(id, ops);
        const op: Op = {
          value: rng.bool(0.2) ? null : seedNo++,
          begunAt: performance.now(),
          ackedAt: undefined,
        };
        ops.push(op);
        if (op.value === null) await store.delete(id);
        else await store.put(recordFor(id, op.value, DIM));
        op.ackedAt = performance.now();
      }
    };
    let reads = 0;
    const reader = async (r: number): Promise<void> => {
      const rng = new Rng(100 + r);
      while (!stop) {
        await store.get(`w${rng.int(4)}-${rng.int(40)}`);
        await store.recall(recordFor('q', rng.int(1000), DIM).embedding, { k: 3 });
        reads++;
        // On a small store both calls can resolve without I/O: yield, or the loop starves timers.
        await setImmediate();
      }
    };
    const running = [0, 1, 2, 3].map(writer).concat([0, 1].map(reader));
    try {
      // Let the store grow past several segments (some sealed: those are linked).
      while (store.contentStorageStats().segments < 6) await new Promise((r) => setTimeout(r, 5));
      const start = performance.now();
      const progress: number[] = [];
      const result = await store.backup(dst, { onProgress: (done) => progress.push(done) });
      const end = performance.now();
      // Writes go on after the backup, and must not reach it.
      await new Promise((r) => setTimeout(r, 50));
      stop = true;
      await Promise.all(running);
      assert.ok(reads > 0, 'the readers ran');
      assert.ok(result.lsn > 0 && result.lsn >= result.checkpointLsn, JSON.stringify(result));
      assert.ok(result.bytesLinked > 0, `sealed segments are linked: ${JSON.stringify(result)}`);
      assert.ok(progress.length > 0 && progress.at(-1)! === result.bytesCopied + result.bytesLinked);
      assert.equal((await readdir(dst)).includes(BACKUP_INCOMPLETE_FILE), false);

      // A linked segment is the same inode as the source's, a copied one is not.
      const linked = [];
      for (const n of await readdir(dst)) {
        if (!n.startsWith('seg-')) continue;
        const [a, b] = await Promise.all([stat(join(dst, n)), stat(join(src, n)).catch(() => undefined)]);
        if (b !== undefined && a.ino === b.ino) linked.push(n);
      }
      assert.ok(linked.length > 0, 'some segments are hard links');
      // The segment a store opened on the backup appends to must be a copy, never the source's file.
      const manifest = (await readManifest(nodeFileSystem, dst))!;
      const active = segmentFileName(manifest.activeSegment);
      assert.equal(linked.includes(active), false, `the backup's active segment ${active} is a hard link`);
      assert.ok((await readdir(dst)).includes(active), `the backup holds its active segment ${active}`);

      const copy = await WarmStore.open(dst, OPTS);
      try {
        const report = await copy.verify();
        assert.equal(report.ok, true, JSON.stringify(report.problems));
        let checked = 0;
        for (const [id, ops] of history) {
          const allowed = allowedValues(ops, start, end);
          assert.ok(
            await matches(copy, id, allowed),
            `${id}: backup holds none of ${JSON.stringify(allowed)}`,
          );
          checked++;
        }
        assert.ok(checked > 50, `checked ${checked} ids`);
        for (const id of copy.ids()) assert.ok(history.has(id), `${id} was never written`);
        // The backup is a store of its own: writing to it leaves the source alone...
        await copy.put(recordFor('only-in-backup', 1, DIM));
      } finally {
        await copy.close();
      }
      assert.equal(store.has('only-in-backup'), false);
      // ...and the source writing on leaves the backup alone (no file of one is appended by the other).
      for (let i = 0; i < 20; i++) await store.put(recordFor(`after-${i}`, i + 1, DIM));
      const reopened = await WarmStore.open(dst, OPTS);
      try {
        expectSameRecord((await reopened.get('only-in-backup'))!, recordFor('only-in-backup', 1, DIM));
        assert.equal(reopened.has('after-0'), false);
        await reopened.compact({ force: true });
        const report = await reopened.verify();
        assert.equal(report.ok, true, JSON.stringify(report.problems));
      } finally {
        await reopened.close();
      }
      const again = await store.verify();
      assert.equal(again.ok, true, JSON.stringify(again.problems));
    } finally {
      stop = true;
      await Promise.all(running).catch(() => undefined);
      await store.close();
    }
  });

  test('a backup taken while a compaction runs is clean and holds every record', async (t) => {
    const root = await tempDir(t);
    const src = join(root, 'store');
    const store = await WarmStore.open(src, OPTS);
    try {
      const want = new Map<string, number>();
      for (let round = 0; round < 6; round++) {
        for (let i = 0; i < 150; i++) {
          const seed = round * 1000 + i + 1;
          if (round < 5 && i % 3 !== 0) continue;
          await store.put(recordFor(`r${i}`, seed, DIM));
          want.set(`r${i}`, seed);
        }
      }
      for (let i = 0; i < 150; i += 2) {
        await store.delete(`r${i}`);
        want.delete(`r${i}`);
      }
      await store.checkpoint();
      let backup: Promise<unknown> | undefined;
      let compactingAtStart = false;
      const stats = await store.compact({
        force: true,
        onProgress: (p) => {
          if (backup === undefined && p.phase === 'copy') {
            compactingAtStart = store.isCompacting;
            backup = store.backup(join(root, 'backup'));
          }
        },
      });
      assert.ok(backup !== undefined, 'the backup started during the compaction');
      assert.equal(compactingAtStart, true);
      await backup;
      assert.ok(stats.recordsMoved > 0, JSON.stringify(stats));
      const copy = await WarmStore.open(join(root, 'backup'), OPTS);
      try {
        const report = await copy.verify();
        assert.equal(report.ok, true, JSON.stringify(report.problems));
        assert.equal(copy.size, want.size);
        for (const [id, seed] of want) expectSameRecord((await copy.get(id))!, recordFor(id, seed, DIM));
      } finally {
        await copy.close();
      }
      const report = await store.verify();
      assert.equal(report.ok, true, JSON.stringify(report.problems));
    } finally {
      await store.close();
    }
  });

  test('spaces, and a space deleted before the backup, come through as they were', async (t) => {
    const root = await tempDir(t);
    const store = await WarmStore.open(join(root, 'store'), OPTS);
    try {
      for (let i = 0; i < 30; i++) {
        await store.put({ ...recordFor(`a${i}`, i + 1, DIM), space: 'alice' });
        await store.put({ ...recordFor(`b${i}`, i + 1, DIM), space: 'bob' });
      }
      // One checkpoint in the middle: the MANIFEST holds some of the spaces, the WAL the rest.
      await store.checkpoint();
      await store.put({ ...recordFor('c0', 1, DIM), space: 'carol' });
      assert.equal(await store.deleteSpace('bob'), 30);
      await store.backup(join(root, 'backup'));
      const want = store.spaces();
      const copy = await WarmStore.open(join(root, 'backup'), OPTS);
      try {
        assert.deepEqual(copy.spaces(), want);
        expectSameRecord((await copy.get('a3', { space: 'alice' }))!, recordFor('a3', 4, DIM));
        assert.equal(await copy.get('b3', { space: 'bob' }), undefined);
        assert.equal((await copy.verify()).ok, true);
      } finally {
        await copy.close();
      }
    } finally {
      await store.close();
    }
  });

  test('close lets a backup in progress finish', async (t) => {
    const root = await tempDir(t);
    const store = await WarmStore.open(join(root, 'store'), OPTS);
    for (let i = 0; i < 200; i++) await store.put(recordFor(`c${i}`, i + 1, DIM));
    const backup = store.backup(join(root, 'backup'));
    await store.close();
    const result = await backup;
    assert.ok(result.files > 3, JSON.stringify(result));
    const copy = await WarmStore.open(join(root, 'backup'), OPTS);
    try {
      assert.equal(copy.size, 200);
      assert.equal((await copy.verify()).ok, true);
    } finally {
      await copy.close();
    }
  });

  test('refuses a target that is not empty, is the store or lies inside it, and bad options', async (t) => {
    const root = await tempDir(t);
    const src = join(root, 'store');
    const store = await WarmStore.open(src, OPTS);
    try {
      await store.put(recordFor('a', 1, DIM));
      await writeFile(join(root, 'occupied'), 'x').catch(() => undefined);
      const full = join(root, 'full');
      await store.backup(full);
      for (const [dir, field] of [
        [full, 'dir'],
        [src, 'dir'],
        [join(src, 'inner'), 'dir'],
        ['', 'dir'],
      ] as const) {
        await assert.rejects(store.backup(dir), (e: unknown) => {
          assert.ok(WarmStoreError.is(e, 'INVALID_INPUT'), String(e));
          assert.equal(e.details.field, field);
          return true;
        });
      }
      await assert.rejects(
        store.backup(join(root, 'b2'), { link: 'yes' as unknown as boolean }),
        /invalid link/,
      );
      await assert.rejects(
        store.backup(join(root, 'b3'), { onProgress: 1 as unknown as () => void }),
        /invalid onProgress/,
      );
      assert.equal((await readdir(src)).includes('inner'), false, 'nothing was created inside the store');
    } finally {
      await store.close();
    }
    await assert.rejects(store.backup(join(root, 'late')), (e: unknown) =>
      WarmStoreError.is(e, 'STORE_CLOSED'),
    );
  });
});
