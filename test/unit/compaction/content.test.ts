/**
 * What compaction moves: empty and absent content stay distinct, entries larger than the
 * compaction window are streamed intact, and repeated put/delete/compact cycles keep the store's
 * size bounded with every byte intact.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { WarmStore } from '../../../src/index.js';
import { Rng } from '../../helpers/random.js';
import { tempDir } from '../../helpers/tmp.js';
import {
  KiB,
  MiB,
  SEGMENT_HEADER_BYTES,
  contentOf,
  deleteAll,
  expectStoreEquals,
  expectStoreEqualsAsync,
  idList,
  openStore,
  putAll,
  recordOf,
  segmentFileBytes,
  segmentFiles,
  stopwatch,
  versions,
  type Model,
} from './fixture.js';

async function expectVerifyOk(store: WarmStore, ctx: string): Promise<void> {
  const r = await store.verify();
  assert.deepEqual(r.problems, [], `${ctx}: verify problems`);
}

describe('content kinds through compaction', () => {
  it("'' stays '', absent stays null, 1 MiB entries (larger than the window) move intact", async (t) => {
    const dir = await tempDir(t);
    // Budget 1 MiB: a 256 KiB read window, so 1 MiB entries take the streaming path.
    const options = { segmentBytes: 256 * KiB, compaction: { memoryBudgetBytes: 1 * MiB } };
    const store = await openStore(dir, options);
    t.after(() => store.close());
    const model: Model = new Map();
    const put = async (id: string, v: number, content: string | null | undefined): Promise<void> => {
      const rec = recordOf(id, v, null);
      // `content: undefined` is the absent spelling a JavaScript caller may use.
      if (content === undefined) delete rec.content;
      else rec.content = content;
      await store.put(rec);
      model.set(id, { v, content: content ?? null });
    };
    const big = { min: 1 * MiB, max: 1 * MiB + 5000 };
    const fillers = idList(300, 'fill');
    for (let i = 0; i < 6; i++) {
      await put(`empty${i}`, 1, '');
      await put(`null${i}`, 1, null);
      await put(`undef${i}`, 1, undefined);
      await put(`big${i}`, 1, contentOf(`big${i}`, 1, big));
      await putAll(store, model, versions(fillers.slice(i * 50, i * 50 + 50), 1));
    }
    // Kind changes before the compaction: big -> '', '' -> null, null -> big, '' -> text.
    await put('big0', 2, '');
    await put('empty0', 2, null);
    await put('null0', 2, contentOf('null0', 2, big));
    await put('empty1', 2, 'now text');
    await deleteAll(store, model, ['big5', 'empty5', 'null5', ...fillers.filter((_, i) => i % 2 === 0)]);
    const before = store.contentStorageStats();
    assert.ok(before.fragmentationRatio > 0.2, `fragmented: ${before.fragmentationRatio}`);

    const stats = await store.compact({ force: true });
    assert.ok(stats.recordsMoved >= 5, `moved ${stats.recordsMoved}`);
    const check = async (s: WarmStore, ctx: string): Promise<void> => {
      expectStoreEquals(s, model, ctx);
      await expectStoreEqualsAsync(s, model, ctx);
      assert.strictEqual(s.getSync('empty2')?.content, '');
      assert.strictEqual(s.getSync('null2')?.content, null);
      assert.strictEqual(s.getSync('undef2')?.content, null);
      assert.strictEqual(s.getSync('big0')?.content, '');
      assert.strictEqual(s.getSync('empty0')?.content, null);
      assert.equal(Buffer.byteLength(s.getSync('big1')?.content ?? '', 'utf8') >= 1 * MiB, true);
    };
    await check(store, 'after compaction');
    const after = store.contentStorageStats();
    assert.equal(after.liveBytes, before.liveBytes);
    assert.ok(after.fragmentationRatio < 0.01, `fragmentation after ${after.fragmentationRatio}`);
    await expectVerifyOk(store, 'after compaction');
    await store.close();

    const again = await openStore(dir, options);
    t.after(() => again.close());
    await check(again, 'after reopen');
    await expectVerifyOk(again, 'after reopen');
  });
});

describe('repeated put/delete/compact cycles', () => {
  it('20 cycles: size and segment count stay bounded, every byte intact', async (t) => {
    const lap = stopwatch('cycles');
    const dir = await tempDir(t);
    const SEG = 128 * KiB;
    const store = await openStore(dir, { segmentBytes: SEG, compaction: { memoryBudgetBytes: 2 * MiB } });
    t.after(() => store.close());
    const model: Model = new Map();
    const r = new Rng(2024);
    await putAll(store, model, versions(idList(1500, 'r'), 1));
    let nextId = 1500;
    let maxSegments = 0;
    const totals: number[] = [];
    for (let cycle = 0; cycle < 20; cycle++) {
      const ids = [...model.keys()];
      // Update ~20%, delete ~10%, insert as many as were deleted.
      const upd = ids.filter(() => r.bool(0.2)).map((id): [string, number] => [id, model.get(id)!.v + 1]);
      await putAll(store, model, upd, undefined, 200);
      const updated = new Set(upd.map(([id]) => id));
      const del = ids.filter((id) => !updated.has(id) && r.bool(0.1));
      await deleteAll(store, model, del);
      const ins = idList(del.length, 'x').map((_, i): [string, number] => [`r${nextId + i}`, 1]);
      nextId += ins.length;
      await putAll(store, model, ins, undefined, 200);

      const stats = await store.compact({ force: true });
      const s = store.contentStorageStats();
      const files = segmentFiles(dir);
      const ctx = `cycle ${cycle}`;
      assert.ok(stats.segmentsCompacted > 0, `${ctx}: compacted`);
      // Bounded: after a forced compaction there is no dead content left...
      assert.ok(s.fragmentationRatio < 0.02, `${ctx}: fragmentation ${s.fragmentationRatio}`);
      assert.ok(
        s.totalBytes <= s.liveBytes * 1.02 + 1,
        `${ctx}: total ${s.totalBytes} vs live ${s.liveBytes}`,
      );
      // ...the files on disk are what the stats say (no forgotten segment), and there are few.
      assert.equal(files.length, s.segments, `${ctx}: segment files on disk vs stats`);
      const onDisk = segmentFileBytes(dir);
      assert.ok(
        onDisk <= s.liveBytes * 1.02 + files.length * SEGMENT_HEADER_BYTES + 1,
        `${ctx}: ${onDisk} bytes of segment files for ${s.liveBytes} live bytes`,
      );
      const bound = Math.ceil(s.liveBytes / SEG) + 4;
      assert.ok(files.length <= bound, `${ctx}: ${files.length} segment files for ${s.liveBytes} live bytes`);
      maxSegments = Math.max(maxSegments, files.length);
      totals.push(s.totalBytes);
      expectStoreEquals(store, model, ctx);
    }
    lap(`20 cycles, at most ${maxSegments} segments, totals ${totals.join(' ')}`);
    await expectVerifyOk(store, 'after 20 cycles');
    await store.close();
    const again = await openStore(dir, { segmentBytes: SEG });
    t.after(() => again.close());
    expectStoreEquals(again, model, 'after reopen');
    lap('verify and reopen');
  });
});
