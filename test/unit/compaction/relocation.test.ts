/**
 * Relocation: compaction moves memories from the tail of records.dat/vectors.dat into free slots
 * below and cuts the files. Every memory keeps its id, metadata, content and embedding; recall
 * and iteration find moved memories; writes racing the moves win; reopen sees the same store.
 */
import assert from 'node:assert/strict';
import { closeSync, cpSync, openSync, readFileSync, readdirSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { WarmStoreError, type WarmStore } from '../../../src/index.js';
import { FaultyFileSystem, PowerCutFileSystem, withTestHooks } from '../../../src/testing/index.js';
import { tempDir } from '../../helpers/tmp.js';
import { MOVE_BATCH } from '../../../src/compaction/relocator.js';
import { HEADER_BYTES as FILE_HEADER_BYTES } from '../../../src/format/header.js';
import { WalType, decodeWal } from '../../../src/wal/entries.js';
import { parseWalFileName, walFileName } from '../../../src/wal/log.js';
import {
  DIM,
  contentOf,
  deleteAll,
  embeddingOf,
  expectStoreEquals,
  expectStoreEqualsAsync,
  idList,
  openStore,
  putAll,
  putVersion,
  recordOf,
  versions,
  waitFor,
  type Model,
} from './fixture.js';

const RECORDS_DATA_START = 4096;
/** Kill points after the MANIFEST with the lowered slot limit is durable. */
const AFTER_MANIFEST = new Set([
  'shrink-manifest-written',
  'records-truncated',
  'vectors-truncated',
  'checkpointed',
]);
const HEADER_BYTES = 352;

function recordFileSlots(dir: string): { headers: number; vectors: number } {
  const r = statSync(join(dir, 'records.dat')).size;
  const v = statSync(join(dir, 'vectors.dat')).size;
  return {
    headers: Math.floor((r - RECORDS_DATA_START) / HEADER_BYTES),
    vectors: Math.floor((v - RECORDS_DATA_START) / (DIM * 4)),
  };
}

async function verifyClean(
  store: { verify(): Promise<{ ok: boolean; problems: unknown[] }> },
  ctx: string,
): Promise<void> {
  const r = await store.verify();
  assert.ok(r.ok, `${ctx}: verify: ${JSON.stringify(r.problems)}`);
}

/** A closed store at `dir` of 1400 memories (content 10-300 B), 60% of them deleted: its model. */
async function sixtyPercentDeleted(dir: string, prefix: string): Promise<Model> {
  const model: Model = new Map();
  const s = await openStore(dir);
  const ids = idList(1400, prefix);
  await putAll(s, model, versions(ids, 1), { min: 10, max: 300 });
  await deleteAll(
    s,
    model,
    ids.filter((_, i) => i % 5 < 3),
  );
  await s.close();
  return model;
}

/** Recalls every memory of `model` by its own embedding: all through the index, nearly all found. */
async function recallEachThroughIndex(s: WarmStore, model: Model, ctx: string): Promise<void> {
  const searches = s.indexStatus.searches;
  let found = 0;
  for (const id of model.keys()) {
    const [top] = await s.recall(embeddingOf(id, 1), { k: 1 });
    if (top?.memory.id === id) found++;
  }
  assert.equal(s.indexStatus.searches - searches, model.size, `${ctx}: through the index`);
  // Every memory finds itself but for the graph's rare unreachable node.
  assert.ok(found >= model.size * 0.995, `${ctx}: found ${found} of ${model.size}`);
}

/** Waits until the index is ready and has taken in every write. */
async function indexSettles(s: WarmStore, also: () => boolean = () => true): Promise<void> {
  assert.ok(
    await waitFor(() => s.indexStatus.state === 'ready' && s.indexStatus.tail === 0 && also(), 60_000),
    `index settled: ${JSON.stringify(s.indexStatus)}`,
  );
}

describe('relocation', () => {
  it('moves the tail into holes, cuts both files, keeps every memory; reopen agrees', async (t) => {
    const dir = await tempDir(t);
    const store = await openStore(dir);
    const model: Model = new Map();
    const ids = idList(600, 'r');
    await putAll(store, model, versions(ids, 1));
    // Delete 60%, spread over the whole slot range.
    await deleteAll(
      store,
      model,
      ids.filter((_, i) => i % 5 < 3),
    );
    await store.checkpoint();
    assert.equal(recordFileSlots(dir).headers, 600);
    const stats = await store.compact({ force: true });
    assert.ok(stats.slotsMoved > 0, `slots moved: ${JSON.stringify(stats)}`);
    assert.ok(stats.recordBytesReclaimed > 0, `record bytes reclaimed: ${JSON.stringify(stats)}`);
    const slots = recordFileSlots(dir);
    assert.equal(slots.headers, 240, 'records.dat holds exactly the live memories');
    assert.ok(slots.vectors <= 240, `vectors.dat holds ${slots.vectors} slots`);
    expectStoreEquals(store, model, 'after relocation');
    await verifyClean(store, 'after relocation');
    // Exact recall finds a moved memory first for its own embedding.
    for (const id of ids.filter((_, i) => i % 5 >= 3).slice(-5)) {
      const hits = await store.recall(embeddingOf(id, 1), { k: 1, exact: true });
      assert.equal(hits[0]?.memory.id, id);
    }
    // Iteration sees each memory once.
    const seen = new Set<string>();
    for await (const m of store.entries()) {
      assert.ok(!seen.has(m.id), `entries repeated ${m.id}`);
      seen.add(m.id);
    }
    assert.equal(seen.size, model.size);
    // New writes reuse the holes left, then grow the files again.
    await putVersion(store, model, 'new-1', 1);
    await store.close();
    const again = await openStore(dir);
    try {
      expectStoreEquals(again, model, 'after reopen');
      await expectStoreEqualsAsync(again, model, 'after reopen (async)');
      await verifyClean(again, 'after reopen');
      assert.equal(again.interruptedCompaction, undefined);
    } finally {
      await again.close();
    }
  });

  it('the maintenance loop compacts slack record files even with no dead content', async (t) => {
    const dir = await tempDir(t);
    const store = await openStore(dir, {
      maintenance: { fragmentationThreshold: 0.5, minTotalBytes: 10_000 },
    });
    const ids = idList(600, 'n');
    // No content: deleting leaves no dead bytes in the segments, only free slots.
    await store.putMany(ids.map((id) => recordOf(id, 1, null)));
    await Promise.all(ids.filter((_, i) => i % 5 < 3).map((id) => store.delete(id)));
    assert.equal(store.contentStorageStats().deadBytes, 0);
    const r = await store.runMaintenance();
    assert.equal(r.decision, 'compacted', r.reason);
    assert.match(r.reason, /record files: 360 of 600 slots free/);
    assert.ok((r.compaction?.slotsMoved ?? 0) > 0, JSON.stringify(r.compaction));
    assert.equal(recordFileSlots(dir).headers, 240);
    const again = await store.runMaintenance();
    assert.equal(again.decision, 'skipped', again.reason);
    await store.close();
  });

  it('a write racing the moves wins: puts and deletes of the moving ids while compaction runs', async (t) => {
    const dir = await tempDir(t);
    const store = await openStore(dir);
    const model: Model = new Map();
    const ids = idList(1500, 'c');
    await putAll(store, model, versions(ids, 1), { min: 10, max: 200 });
    await deleteAll(
      store,
      model,
      ids.filter((_, i) => i % 5 < 3),
    );
    // The ids relocation moves first are the highest slots: the tail of the id list.
    const tail = ids.filter((_, i) => i % 5 >= 3).slice(-400);
    let stop = false;
    let round = 0;
    const writers = (async () => {
      while (!stop) {
        round++;
        const batch = tail.slice((round * 37) % 360, ((round * 37) % 360) + 40);
        await Promise.all(
          batch.map(async (id, j) => {
            if ((round + j) % 3 === 0) {
              await store.delete(id);
              model.delete(id);
            } else {
              await putVersion(store, model, id, 1 + round, { min: 10, max: 200 });
            }
          }),
        );
      }
    })();
    let moved = 0;
    for (let i = 0; i < 3; i++) moved += (await store.compact({ force: true })).slotsMoved;
    stop = true;
    await writers;
    assert.ok(moved > 0 && round > 1, `moved ${moved} in ${round} writer rounds`);
    expectStoreEquals(store, model, 'after racing compactions');
    await verifyClean(store, 'after racing compactions');
    await store.compact({ force: true });
    const live = store.size;
    assert.ok(
      recordFileSlots(dir).headers <= live + 40,
      `files cut near ${live}: ${JSON.stringify(recordFileSlots(dir))}`,
    );
    await store.close();
    const again = await openStore(dir);
    try {
      expectStoreEquals(again, model, 'after reopen');
      await verifyClean(again, 'after reopen');
    } finally {
      await again.close();
    }
  });

  it("a delete or put queued between a batch's planning and its commit wins (compare-and-swap)", async (t) => {
    const dir = await tempDir(t);
    const model: Model = new Map();
    const ids = idList(6 * MOVE_BATCH, 'q');
    const live = ids.filter((_, i) => i % 5 >= 3);
    let store: WarmStore | undefined;
    const pending: Promise<unknown>[] = [];
    let hits = 0;
    store = await openStore(
      dir,
      withTestHooks(
        {},
        {
          onKillPoint: (name) => {
            if (name !== 'slots-moved' || ++hits !== 1 || !store) return;
            // After the first batch (the MOVE_BATCH highest memories), the next batch will plan the next
            // highest: change them now, synchronously, so the writes are queued before that batch.
            const next = live.slice(-MOVE_BATCH - 40, -MOVE_BATCH);
            next.forEach((id, j) => {
              if (j % 2 === 0) {
                model.delete(id);
                pending.push(store!.delete(id));
              } else {
                model.set(id, { v: 9, content: contentOf(id, 9, { min: 10, max: 100 }) });
                pending.push(store!.put(recordOf(id, 9, contentOf(id, 9, { min: 10, max: 100 }))));
              }
            });
          },
        },
      ),
    );
    await putAll(store, model, versions(ids, 1), { min: 10, max: 100 });
    await deleteAll(
      store,
      model,
      ids.filter((_, i) => i % 5 < 3),
    );
    const stats = await store.compact({ force: true });
    await Promise.all(pending);
    assert.equal(hits >= 1, true);
    assert.ok(stats.slotsMoved > MOVE_BATCH, `slots moved: ${stats.slotsMoved}`);
    expectStoreEquals(store, model, 'after the racing writes');
    await verifyClean(store, 'after the racing writes');
    await store.close();
    store = undefined;
    const again = await openStore(dir);
    try {
      expectStoreEquals(again, model, 'after reopen (the moves replayed from the WAL or the checkpoint)');
      await verifyClean(again, 'after reopen');
    } finally {
      await again.close();
    }
  });

  it('an iteration across a relocation yields every memory exactly once', async (t) => {
    const dir = await tempDir(t);
    const store = await openStore(dir);
    const model: Model = new Map();
    const ids = idList(2000, 'i');
    await putAll(store, model, versions(ids, 1), { min: 10, max: 100 });
    await deleteAll(
      store,
      model,
      ids.filter((_, i) => i % 5 < 3),
    );
    const seen = new Map<string, number>();
    const it = store.entries();
    // Pass the first part of the slots, then move the tail into holes behind the iteration.
    for (let i = 0; i < 200; i++) {
      const r = await it.next();
      assert.ok(!r.done);
      seen.set(r.value.id, (seen.get(r.value.id) ?? 0) + 1);
    }
    const stats = await store.compact({ force: true });
    assert.ok(stats.slotsMoved > 300, `slots moved: ${stats.slotsMoved}`);
    for (;;) {
      const r = await it.next();
      if (r.done) break;
      seen.set(r.value.id, (seen.get(r.value.id) ?? 0) + 1);
    }
    const repeated = [...seen].filter(([, n]) => n > 1).map(([id]) => id);
    assert.deepEqual(repeated, [], 'no memory repeated');
    const missing = [...model.keys()].filter((id) => !seen.has(id));
    assert.deepEqual(missing, [], 'no memory skipped');
    await store.close();
  });

  it('recall finds moved memories, exactly and through the index', async (t) => {
    const dir = await tempDir(t);
    const store = await openStore(dir, { annMinMemories: 50 });
    const model: Model = new Map();
    const ids = idList(900, 'a');
    await putAll(store, model, versions(ids, 1), { min: 10, max: 100 });
    await deleteAll(
      store,
      model,
      ids.filter((_, i) => i % 5 < 3),
    );
    assert.ok(await waitFor(() => store.indexStatus.state === 'ready', 30_000), 'index ready');
    const stats = await store.compact({ force: true });
    assert.ok(stats.slotsMoved > 0);
    const moved = ids.filter((_, i) => i % 5 >= 3).slice(-60);
    const check = async (s: WarmStore, ctx: string): Promise<void> => {
      for (const exact of [true, false]) {
        for (const id of moved) {
          const hits = await s.recall(embeddingOf(id, 1), { k: 3, exact });
          assert.equal(hits[0]?.memory.id, id, `${ctx}: exact=${exact}: ${id} finds itself`);
          assert.ok(Math.abs(hits[0]!.score - 1) < 1e-6);
        }
      }
    };
    await check(store, 'after relocation');
    await store.close();
    const again = await openStore(dir, { annMinMemories: 50 });
    try {
      assert.ok(await waitFor(() => again.indexStatus.state === 'ready', 30_000), 'index ready after reopen');
      await check(again, 'after reopen');
    } finally {
      await again.close();
    }
  });

  it(
    'moved memories keep their index keys through merges of the index and a reopen',
    { timeout: 120_000 },
    async (t) => {
      const dir = await tempDir(t);
      const options = withTestHooks({ annMinMemories: 50 }, { annMergeMin: 200 });
      const store = await openStore(dir, options);
      const model: Model = new Map();
      const ids = idList(3000, 'k');
      await putAll(store, model, versions(ids, 1), { min: 0, max: 10 });
      await deleteAll(
        store,
        model,
        ids.filter((_, i) => i % 5 < 3),
      );
      await indexSettles(store);
      const merges = store.indexStatus.merges;
      const stats = await store.compact({ force: true });
      assert.ok(stats.slotsMoved > 500, `moved ${stats.slotsMoved}`);
      assert.equal(store.indexStatus.tail, 0, 'moved memories are not sent to the index again');
      // Writes after the moves: the delta outgrows annMergeMin and merges into new base files,
      // whose keys are the moved memories' old ones.
      const more = idList(1500, 'm');
      await putAll(store, model, versions(more, 1), { min: 0, max: 10 });
      await indexSettles(store, () => store.indexStatus.merges > merges);
      await recallEachThroughIndex(store, model, 'after merges');
      await store.close();
      const again = await openStore(dir, options);
      try {
        const states: string[] = [];
        again.on('indexStatus', (st) => states.push(st.state));
        await indexSettles(again);
        assert.ok(!states.includes('building'), `loaded, not rebuilt: ${states.join(',')}`);
        await recallEachThroughIndex(again, model, 'after reopen');
      } finally {
        await again.close();
      }
    },
  );

  it(
    'moves while the index merges and sends keys again: every memory is found through it',
    { timeout: 120_000 },
    async (t) => {
      const dir = await tempDir(t);
      const store = await openStore(dir, withTestHooks({ annMinMemories: 50 }, { annMergeMin: 100 }));
      const model: Model = new Map();
      const ids = idList(4000, 'g');
      await putAll(store, model, versions(ids, 1), { min: 0, max: 10 });
      await indexSettles(store);
      const merges = store.indexStatus.merges;
      // Deletes past annMergeMin start merges; compaction starts while they run and their swaps
      // hand written keys back.
      await deleteAll(
        store,
        model,
        ids.filter((_, i) => i % 5 < 3),
      );
      const stats = await store.compact({ force: true });
      assert.ok(stats.slotsMoved > 500, `moved ${stats.slotsMoved}`);
      await indexSettles(store, () => store.indexStatus.merges > merges);
      await recallEachThroughIndex(store, model, 'after the moves');
      await store.close();
    },
  );

  it(
    'recalls running during the moves find moved memories (scan workers over several chunks)',
    { timeout: 120_000 },
    async (t) => {
      const dir = await tempDir(t);
      const store = await openStore(dir, { annMinMemories: 1_000_000 });
      const model: Model = new Map();
      const ids = idList(20_000, 'w');
      await putAll(store, model, versions(ids, 1), { min: 0, max: 20 }, 2000);
      await deleteAll(
        store,
        model,
        ids.filter((_, i) => i % 5 < 3),
      );
      // The memories relocation moves: those in the highest slots.
      const moving = ids.filter((_, i) => i % 5 >= 3).slice(-4000);
      let compacting = true;
      let recalls = 0;
      const misses: string[] = [];
      const readers = (async () => {
        for (let i = 0; compacting; i++) {
          const id = moving[(i * 997) % moving.length]!;
          const hits = await store.recall(embeddingOf(id, 1), { k: 2, exact: true });
          recalls++;
          if (hits[0]?.memory.id !== id) misses.push(`${id} -> ${hits[0]?.memory.id ?? 'nothing'}`);
        }
      })();
      const stats = await store.compact({ force: true });
      compacting = false;
      await readers;
      assert.ok(stats.slotsMoved > 3000, `slots moved: ${stats.slotsMoved}`);
      assert.ok(recalls > 0);
      assert.deepEqual(misses, [], `${misses.length} of ${recalls} recalls missed their memory`);
      await store.close();
    },
  );

  it('a fault during relocation fails the compaction and changes nothing else; a retry shrinks the files', async (t) => {
    for (const error of ['EIO', 'ENOSPC'] as const) {
      const dir = join(await tempDir(t), error);
      const fs = new FaultyFileSystem();
      let armed = true;
      const store = await openStore(
        dir,
        withTestHooks(
          { fileSystem: fs },
          {
            onKillPoint: (name) => {
              // After the first move batch: the next WAL write (the second batch) fails.
              if (armed && name === 'slots-moved') {
                armed = false;
                fs.failAt({ op: 'write', nth: 1, error, pathIncludes: 'wal-' });
              }
            },
          },
        ),
      );
      const model: Model = new Map();
      const ids = idList(2000, 'f');
      await putAll(store, model, versions(ids, 1), { min: 10, max: 100 });
      await deleteAll(
        store,
        model,
        ids.filter((_, i) => i % 5 < 3),
      );
      const res = await store.compact({ force: true }).then(
        (s) => ({ ok: true as const, s }),
        (err: unknown) => ({ ok: false as const, err }),
      );
      assert.equal(fs.triggered.length, 1, `${error}: the fault fired`);
      if (error === 'EIO') {
        assert.ok(
          !res.ok && WarmStoreError.is(res.err, 'COMPACTION_FAILED'),
          `${error}: ${String(!res.ok && res.err)}`,
        );
      }
      // ENOSPC: the writer gave the disk reserve back and retried the batch once, in its room.
      assert.equal(store.isCompacting, false);
      expectStoreEquals(store, model, `${error}: after the fault`);
      await verifyClean(store, `${error}: after the fault`);
      fs.reset();
      await store.compact({ force: true });
      await store.checkpoint();
      assert.equal(recordFileSlots(dir).headers, model.size, `${error}: files cut after the retry`);
      await store.close();
      const again = await openStore(dir);
      try {
        expectStoreEquals(again, model, `${error}: after reopen`);
        await verifyClean(again, `${error}: after reopen`);
      } finally {
        await again.close();
      }
    }
  });

  for (const durability of ['sync', 'relaxed'] as const) {
    it(`a relocation batch whose WAL entries landed and whose copied vectors did not (${durability} durability): open drops its moves, every memory whole`, async (t) => {
      const root = await tempDir(t);
      const dir = join(root, 'store');
      const image = join(root, 'image');
      const model = await sixtyPercentDeleted(dir, 'w');
      let copied = false;
      const store = await openStore(
        dir,
        withTestHooks(
          { durability },
          {
            onKillPoint: (name) => {
              if (name !== 'slots-moved' || copied) return;
              // What a kill -9 right after the first relocation batch would leave.
              copied = true;
              cpSync(dir, image, { recursive: true, filter: (src) => !src.endsWith('LOCK') });
            },
          },
        ),
      );
      await store.compact({ force: true });
      await store.close();
      assert.ok(copied, 'a relocation batch committed');
      // The image's WAL ends with that batch. Its writer made the WAL entries durable while the
      // copied vectors were being synced; a power cut may keep the first and lose the second. Wipe
      // the target of a move in the middle of the batch, as such a cut would leave it.
      const walNo = Math.max(...readdirSync(image).map((n) => parseWalFileName(n) ?? -1));
      const wal = decodeWal(readFileSync(join(image, walFileName(walNo))), FILE_HEADER_BYTES, DIM, 0);
      const moves = wal.entries.slice(wal.lastBatch).filter((e) => e.type === WalType.SlotMove);
      assert.ok(moves.length >= 8, `the last batch holds moves (${moves.length})`);
      const lost = moves[moves.length >> 1]!;
      assert.equal(lost.type, WalType.SlotMove);
      const fd = openSync(join(image, 'vectors.dat'), 'r+');
      try {
        writeSync(fd, Buffer.alloc(DIM * 4, 0x5a), 0, DIM * 4, RECORDS_DATA_START + lost.to * DIM * 4);
      } finally {
        closeSync(fd);
      }
      const again = await openStore(image, { durability });
      try {
        expectStoreEquals(again, model, 'the image, its last moves dropped');
        await verifyClean(again, 'the image');
        await again.compact({ force: true });
        expectStoreEquals(again, model, 'the image, compacted again');
        await verifyClean(again, 'the image, compacted again');
      } finally {
        await again.close();
      }
    });
  }

  describe('power cut at each step', () => {
    for (const point of [
      'slots-moved',
      'slots-shrunk',
      'shrink-manifest-written',
      'records-truncated',
      'vectors-truncated',
      'checkpointed',
    ]) {
      for (const torn of [false, true]) {
        it(`at ${point}${torn ? ' (torn)' : ''}: every acknowledged memory, verify clean, files cut to the live memories`, async (t) => {
          const root = await tempDir(t);
          const dir = join(root, 'store');
          const model = await sixtyPercentDeleted(dir, 'p');
          const pc = new PowerCutFileSystem(root);
          let hit = false;
          const store = await openStore(
            dir,
            withTestHooks(
              { fileSystem: pc },
              {
                onKillPoint: (name) => {
                  if (name === point && !pc.isCut) {
                    hit = true;
                    pc.cut(torn ? { tornSeed: 7 } : {});
                  }
                },
              },
            ),
          );
          await store.compact({ force: true }).catch(() => undefined);
          await store.close().catch(() => undefined);
          pc.dispose();
          assert.ok(hit, `kill point ${point} reached`);
          if (AFTER_MANIFEST.has(point)) {
            // A read-only open reads the files as far as the MANIFEST says and cuts nothing.
            const before = statSync(join(dir, 'records.dat')).size;
            const ro = await openStore(dir, { readOnly: true });
            try {
              expectStoreEquals(ro, model, `cut at ${point}, read-only`);
            } finally {
              await ro.close();
            }
            assert.equal(statSync(join(dir, 'records.dat')).size, before);
          }
          const again = await openStore(dir);
          try {
            expectStoreEquals(again, model, `cut at ${point}`);
            await verifyClean(again, `cut at ${point}`);
            if (AFTER_MANIFEST.has(point)) {
              // The MANIFEST already names the lower limit: open cut whatever was left over.
              assert.equal(recordFileSlots(dir).headers, model.size, `${point}: open finished the cut`);
            }
            // The recovery checkpoint finished any cut; a compaction finishes any relocation.
            await again.compact({ force: true });
            expectStoreEquals(again, model, `cut at ${point}, compacted again`);
            assert.equal(recordFileSlots(dir).headers, model.size, 'records.dat cut to the live memories');
            assert.ok(recordFileSlots(dir).vectors <= model.size, 'vectors.dat cut');
          } finally {
            await again.close();
          }
        });
      }
    }
  });

  it(
    'power cut (torn) at file operations from the moves to the end of the checkpoint',
    { timeout: 240_000 },
    async (t) => {
      const root = await tempDir(t);
      const base = join(root, 'base');
      const model = await sixtyPercentDeleted(base, 'o');
      /** Compacts a copy, cutting at the nth operation after the content compaction committed. */
      const run = async (name: string, nth: number | undefined): Promise<number> => {
        const caseRoot = join(root, name);
        cpSync(base, join(caseRoot, 'store'), { recursive: true });
        const pc = new PowerCutFileSystem(caseRoot);
        let armedAt = -1;
        const store = await openStore(
          join(caseRoot, 'store'),
          withTestHooks(
            { fileSystem: pc },
            {
              onKillPoint: (p) => {
                if (p !== 'end-committed' || armedAt >= 0) return;
                armedAt = pc.opCount;
                if (nth !== undefined) pc.cutAtOp(nth, nth % 2 === 1 ? { tornSeed: nth } : {});
              },
            },
          ),
        );
        await store.compact({ force: true }).catch(() => undefined);
        const ops = pc.opCount - armedAt;
        await store.close().catch(() => undefined);
        pc.dispose();
        assert.ok(armedAt >= 0, 'content compaction committed');
        const again = await openStore(join(caseRoot, 'store'));
        try {
          expectStoreEquals(again, model, `${name}`);
          await verifyClean(again, name);
          await again.compact({ force: true });
          assert.equal(recordFileSlots(join(caseRoot, 'store')).headers, model.size, `${name}: cut`);
        } finally {
          await again.close();
        }
        return ops;
      };
      const span = await run('probe', undefined);
      assert.ok(span > 10, `operations after the content compaction: ${span}`);
      const picks = new Set<number>();
      for (let i = 0; i < 24; i++) picks.add(1 + Math.floor((i * span) / 24));
      for (const k of picks) await run(`op-${k}`, k);
    },
  );
});
