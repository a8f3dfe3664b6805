/**
 * Compaction against concurrent readers and writers: reads and writes continue throughout, and a
 * read returns every byte unchanged (a record's location changes atomically with its move); a
 * record updated or deleted after its copy but before the chunk commit keeps its new value; a
 * second compaction gets COMPACTION_IN_PROGRESS; a segment is deleted only once no read uses it.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { basename } from 'node:path';
import { describe, it } from 'node:test';
import { setImmediate as yieldNow } from 'node:timers/promises';
import { WarmStore, WarmStoreError } from '../../../src/index.js';
import type { CompactionStats } from '../../../src/index.js';
import { withTestHooks } from '../../../src/testing/index.js';
import { Rng } from '../../helpers/random.js';
import { tempDir } from '../../helpers/tmp.js';
import {
  KiB,
  MiB,
  ObservingFileSystem,
  buildHalfDeleted,
  contentOf,
  deleteAll,
  expectStoreEquals,
  expectStoreEqualsAsync,
  expectValue,
  openStore,
  parseSegment,
  recordOf,
  segmentFiles,
  sleep,
  stopwatch,
  versionOfContent,
  type Model,
} from './fixture.js';

async function expectVerifyOk(store: WarmStore, ctx: string): Promise<void> {
  const r = await store.verify();
  assert.deepEqual(r.problems, [], `${ctx}: verify problems`);
  assert.equal(r.ok, true, `${ctx}: verify ok`);
}

describe('compaction with concurrent readers', () => {
  it('100 readers (get and getSync) see every byte unchanged while compact({ force }) runs on 10K memories', async (t) => {
    const dir = await tempDir(t);
    const store = await openStore(dir);
    t.after(() => store.close());
    const { model, ids } = await buildHalfDeleted(store, 10_000);
    const before = store.contentStorageStats();
    assert.ok(before.segments >= 20, `many segments (${before.segments})`);
    assert.ok(before.fragmentationRatio > 0.4, `fragmented (${before.fragmentationRatio})`);

    let compacting = true;
    let failure: unknown;
    let reads = 0;
    let readsDuringCompaction = 0;
    let absentReads = 0;
    const compaction = store.compact({ force: true }).finally(() => {
      compacting = false;
    });
    assert.equal(store.isCompacting, true);

    const reader = async (n: number): Promise<void> => {
      const r = new Rng(1000 + n);
      let k = 0;
      while (compacting && failure === undefined) {
        const id = ids[r.int(ids.length)]!;
        const during = store.isCompacting;
        try {
          const got = k++ % 2 === 0 ? await store.get(id) : store.getSync(id);
          expectValue(got, id, model.get(id), `reader ${n}`);
          if (got === undefined) absentReads++;
        } catch (err) {
          failure ??= err;
          return;
        }
        reads++;
        if (during) readsDuringCompaction++;
        // get() of small content completes in microtasks: yield so compaction and others run.
        await yieldNow();
      }
    };
    const readers = Array.from({ length: 100 }, (_, n) => reader(n));
    const stats = await compaction;
    await Promise.all(readers);
    if (failure !== undefined) throw failure;

    assert.ok(readsDuringCompaction >= 1000, `reads during compaction: ${readsDuringCompaction} of ${reads}`);
    assert.ok(absentReads > 0, 'some reads hit deleted ids');
    assert.equal(stats.recordsMoved, 5000, 'every live record moved exactly once');
    assert.equal(stats.segmentsCompacted, before.segments);
    assert.ok(stats.bytesReclaimed > 0);
    const after = store.contentStorageStats();
    assert.equal(after.liveBytes, before.liveBytes, 'live bytes unchanged');
    assert.ok(after.fragmentationRatio < 0.01, `fragmentation after: ${after.fragmentationRatio}`);
    assert.ok(after.totalBytes < before.totalBytes * 0.6);
    expectStoreEquals(store, model, 'after compaction');
    await expectVerifyOk(store, 'after compaction');
    await store.close();

    const again = await openStore(dir);
    t.after(() => again.close());
    expectStoreEquals(again, model, 'after reopen');
    assert.equal(again.contentStorageStats().liveBytes, before.liveBytes);
  });
});

describe('compaction with concurrent writers and deleters', () => {
  it('updates, deletes and inserts during compaction, on records being moved, end equal to the model', async (t) => {
    const dir = await tempDir(t);
    const store = await openStore(dir);
    t.after(() => store.close());
    const { model, ids } = await buildHalfDeleted(store, 10_000);

    const WORKERS = 16;
    let compacting = true;
    let failure: unknown;
    let opsDuring = 0;
    let nextNew = 0;
    const counts = { update: 0, delete: 0, reput: 0, insert: 0 };
    const compaction = store.compact({ force: true }).finally(() => {
      compacting = false;
    });

    // Each worker owns the ids i % WORKERS === w, so the model order of one id is the ack order.
    const worker = async (w: number): Promise<void> => {
      const r = new Rng(77 + w);
      const mine = ids.filter((_, i) => i % WORKERS === w);
      while (compacting && failure === undefined) {
        try {
          const id = mine[r.int(mine.length)]!;
          const cur = model.get(id);
          const p = r.next();
          if (cur && p < 0.5) {
            const v = cur.v + 1;
            const content = contentOf(id, v);
            await store.put(recordOf(id, v, content));
            model.set(id, { v, content });
            counts.update++;
          } else if (cur && p < 0.8) {
            assert.equal(await store.delete(id), true, `delete ${id}`);
            model.delete(id);
            counts.delete++;
          } else if (!cur) {
            const v = 100 + r.int(1000);
            const content = contentOf(id, v);
            await store.put(recordOf(id, v, content));
            model.set(id, { v, content });
            counts.reput++;
          } else {
            const nid = `new-${w}-${nextNew++}`;
            const content = r.bool(0.1) ? (r.bool() ? '' : null) : contentOf(nid, 1);
            await store.put(recordOf(nid, 1, content));
            model.set(nid, { v: 1, content });
            counts.insert++;
          }
          if (store.isCompacting) opsDuring++;
          // Read-your-writes on an own id.
          const probe = mine[r.int(mine.length)]!;
          expectValue(store.getSync(probe), probe, model.get(probe), `worker ${w}`);
        } catch (err) {
          failure ??= err;
        }
      }
    };
    const workers = Array.from({ length: WORKERS }, (_, w) => worker(w));
    const stats = await compaction;
    await Promise.all(workers);
    if (failure !== undefined) throw failure;

    assert.ok(opsDuring >= 100, `mutations during compaction: ${opsDuring} ${JSON.stringify(counts)}`);
    assert.ok(
      counts.update > 0 && counts.delete > 0 && counts.reput > 0 && counts.insert > 0,
      JSON.stringify(counts),
    );
    assert.ok(stats.recordsMoved <= 5000 && stats.recordsMoved > 0, `moved ${stats.recordsMoved}`);
    expectStoreEquals(store, model, 'after compaction');
    await expectStoreEqualsAsync(store, model, 'after compaction (async get)');
    await expectVerifyOk(store, 'after compaction');

    // A second compaction cleans what the writers left behind and changes nothing visible.
    await store.compact({ force: true });
    expectStoreEquals(store, model, 'after second compaction');
    await expectVerifyOk(store, 'after second compaction');
    await store.close();

    const again = await openStore(dir);
    t.after(() => again.close());
    expectStoreEquals(again, model, 'after reopen');
    await expectVerifyOk(again, 'after reopen');
  });

  it('compare-and-swap: a record updated or deleted after its copy, before the chunk commit, keeps its new value', async (t) => {
    const dir = await tempDir(t);
    const fs = new ObservingFileSystem();
    let hook: ((name: string) => void) | undefined;
    const store = await openStore(
      dir,
      withTestHooks({ fileSystem: fs }, { onKillPoint: (name) => hook?.(name) }),
    );
    t.after(() => store.close());
    const { model } = await buildHalfDeleted(store, 4000);
    const liveAtStart = model.size;

    const touched = new Set<string>();
    const pending: Promise<unknown>[] = [];
    const expected: Model = new Map(model);
    let hookCalls = 0;
    let fresh = 0;
    let hookError: unknown;
    hook = (name) => {
      if (name !== 'copy-written' && name !== 'copy-synced') return;
      try {
        hookCalls++;
        const victim = fs.lastSegmentRead;
        assert.ok(victim !== undefined, 'a victim was read before its copy was written');
        // Live entries of the victim being copied: their (id, version) is the model's current one.
        const live = parseSegment(victim).filter((e) => {
          const cur = expected.get(e.id);
          return !touched.has(e.id) && cur !== undefined && cur.v === versionOfContent(e.id, e.content);
        });
        const [a, b, c] = live;
        if (a) {
          // Updated after being copied.
          touched.add(a.id);
          const v = expected.get(a.id)!.v + 1;
          const content = contentOf(a.id, v);
          expected.set(a.id, { v, content });
          pending.push(store.put(recordOf(a.id, v, content)));
        }
        if (b) {
          // Deleted after being copied; its slot is reused at once by a new record.
          touched.add(b.id);
          expected.delete(b.id);
          pending.push(store.delete(b.id));
          const nid = `cas-new-${fresh++}`;
          const content = contentOf(nid, 1);
          expected.set(nid, { v: 1, content });
          pending.push(store.put(recordOf(nid, 1, content)));
        }
        if (c) {
          // Deleted and put back with the very same bytes: only the generation tells them apart.
          touched.add(c.id);
          const cur = expected.get(c.id)!;
          pending.push(store.delete(c.id));
          pending.push(store.put(recordOf(c.id, cur.v, cur.content)));
        }
      } catch (err) {
        hookError ??= err;
      }
    };
    const stats = await store.compact({ force: true });
    hook = undefined;
    await Promise.all(pending);
    if (hookError !== undefined) throw hookError;

    assert.ok(hookCalls >= 20, `hook calls ${hookCalls}`);
    assert.ok(touched.size >= 30, `records changed between copy and commit: ${touched.size}`);
    // Every record changed between its copy and its chunk commit lost the CAS, and only those.
    assert.equal(stats.recordsMoved, liveAtStart - touched.size, 'moved = live - changed after copy');
    expectStoreEquals(store, expected, 'after compaction');
    // A lost CAS must leave its copy counted as garbage, not live.
    await expectVerifyOk(store, 'after compaction');
    await store.close();
    const again = await openStore(dir);
    t.after(() => again.close());
    expectStoreEquals(again, expected, 'after reopen');
    await expectVerifyOk(again, 'after reopen');
  });
});

describe('one compaction at a time', () => {
  it('a second compact() gets COMPACTION_IN_PROGRESS; isCompacting tracks the run; maintenance reports busy', async (t) => {
    const dir = await tempDir(t);
    const store = await openStore(dir);
    t.after(() => store.close());
    const { model } = await buildHalfDeleted(store, 3000);
    assert.equal(store.isCompacting, false);
    const first = store.compact({ force: true });
    assert.equal(store.isCompacting, true);
    await assert.rejects(store.compact({ force: true }), (err: unknown) => {
      assert.ok(WarmStoreError.is(err, 'COMPACTION_IN_PROGRESS'), String(err));
      return true;
    });
    await assert.rejects(store.compact(), (err: unknown) => WarmStoreError.is(err, 'COMPACTION_IN_PROGRESS'));
    const report = await store.runMaintenance();
    assert.equal(report.decision, 'busy');
    assert.match(report.reason, /already running/);
    assert.equal(store.isCompacting, true, 'the refused calls did not disturb the running one');
    const stats = await first;
    assert.equal(store.isCompacting, false);
    assert.ok(stats.segmentsCompacted > 0);
    expectStoreEquals(store, model, 'after');
    // The flag was released: the next compaction runs (with nothing to do).
    const next = await store.compact({ force: true });
    assert.equal(next.recordsMoved, 0);
    assert.equal(store.isCompacting, false);
  });
});

describe('segments are deleted only when unpinned', () => {
  it('a large async get in flight across the whole compaction returns the right bytes; its segment outlives it', async (t) => {
    const dir = await tempDir(t);
    const fs = new ObservingFileSystem();
    const lap = stopwatch('pins');
    const store = await openStore(dir, {
      fileSystem: fs,
      segmentBytes: 1 * MiB,
      compaction: { memoryBudgetBytes: 1 * MiB },
    });
    t.after(() => store.close());
    const model: Model = new Map();
    const big = { min: 300 * KiB, max: 400 * KiB };
    // Big (async, pinned read path) and small records interleaved; half of each deleted.
    const items: [string, number][] = [];
    for (let i = 0; i < 24; i++) {
      items.push([`big${i}`, 1]);
      for (let j = 0; j < 8; j++) items.push([`s${i}-${j}`, 1]);
    }
    for (const [id, v] of items) {
      const content = contentOf(id, v, id.startsWith('big') ? big : undefined);
      await store.put(recordOf(id, v, content));
      model.set(id, { v, content });
    }
    await deleteAll(
      store,
      model,
      items.map(([id]) => id).filter((id, i) => i % 2 === 1 || id === 'big3' || id === 'big5'),
    );
    lap('fill');
    const bigLive = [...model.keys()].filter((id) => id.startsWith('big'));
    assert.ok(bigLive.length >= 10);

    // One get whose read is held at the file layer: it has pinned its segment.
    const target = bigLive[0]!;
    fs.holdNextSegmentRead();
    const held = store.get(target);
    assert.equal(fs.held.length, 1, 'the get issued its read synchronously and it is held');
    const heldFile = fs.held[0]!.path;

    // A few other big gets racing the compaction, unheld.
    let compacting = true;
    let failure: unknown;
    let bigReads = 0;
    const racer = async (n: number): Promise<void> => {
      const r = new Rng(n);
      while (compacting && failure === undefined) {
        const id = bigLive[r.int(bigLive.length)]!;
        try {
          expectValue(await store.get(id), id, model.get(id), `racer ${n}`);
          bigReads++;
          // Paced: each big read costs a few ms of CPU, and compaction needs event-loop turns too.
          await sleep(2);
        } catch (err) {
          failure ??= err;
        }
      }
    };
    const compaction = store.compact({ force: true }).finally(() => {
      compacting = false;
    });
    const racers = Array.from({ length: 3 }, (_, n) => racer(n));
    const stats: CompactionStats = await compaction;
    await Promise.all(racers);
    if (failure !== undefined) throw failure;
    lap(`compaction (${bigReads} big reads, ${JSON.stringify(stats)})`);
    assert.ok(bigReads > 0, 'big reads overlapped the compaction');
    assert.ok(stats.segmentsCompacted > 0);

    // The held reader's segment was a victim (it had dead bytes) and must still exist.
    assert.ok(existsSync(heldFile), `${basename(heldFile)} deleted while a read pinned it`);
    fs.releaseHeld();
    expectValue(await held, target, model.get(target), 'held get');

    // Unpinned now: the next checkpoint deletes it.
    await store.checkpoint();
    assert.ok(
      !segmentFiles(dir).includes(basename(heldFile)),
      `${basename(heldFile)} kept after its pin was released`,
    );
    lap('checkpoint');
    expectStoreEquals(store, model, 'after');
    const r = await store.verify();
    lap('verify');
    assert.deepEqual(r.problems, []);
  });
});
