/**
 * Chunk commits of a compaction run, through a file layer that holds WAL fsyncs:
 * - at most one commit is in flight: while one is held, the copier gets at most one chunk ahead
 *   (so the staged remaps, and the output not yet committed, stay within the memory budget);
 * - a rollback cuts the current output segment back to the end of the last chunk committed into
 *   that segment, never further, even when a commit that carried only a done marker (a victim
 *   with nothing live, so no output segment yet) settles after the next segment was opened.
 */
import assert from 'node:assert/strict';
import { cpSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { WarmStoreError } from '../../../src/index.js';
import type { WsFile } from '../../../src/index.js';
import { withTestHooks } from '../../../src/testing/index.js';
import { tempDir } from '../../helpers/tmp.js';
import { WrappedFileSystem, delegate } from '../../helpers/wrapped-fs.js';
import {
  KiB,
  MiB,
  SEGMENT_HEADER_BYTES,
  deleteAll,
  expectStoreEquals,
  idList,
  openStore,
  putAll,
  segmentFiles,
  versions,
  waitFor,
  type Model,
  putHalfDeleted,
} from './fixture.js';

/**
 * Node's file layer with two test controls: hold the next WAL fsync until released, and fail the
 * n-th async segment read from now on.
 */
class GatedFileSystem extends WrappedFileSystem {
  #holdWalSync = false;
  #heldSync: (() => void) | undefined;
  #failRead = 0;
  /** Called when the failing read is made, before it rejects. */
  onFailedRead: (() => void) | undefined;

  /** A WAL fsync is being held now. */
  get walSyncHeld(): boolean {
    return this.#heldSync !== undefined;
  }

  holdNextWalSync(): void {
    this.#holdWalSync = true;
  }

  /** Lets the held WAL fsync go on, or the next one not be held if it has not started yet. */
  releaseWalSync(): void {
    this.#holdWalSync = false;
    const r = this.#heldSync;
    this.#heldSync = undefined;
    r?.();
  }

  failSegmentRead(nth: number): void {
    this.#failRead = nth;
  }

  protected override wrap(inner: WsFile, path: string): WsFile {
    const isWal = /wal-[^/]*$/.test(path);
    const isSeg = /seg-\d+\.dat$/.test(path);
    return delegate(inner, {
      read: (b, o, l, p) => {
        if (isSeg && this.#failRead > 0 && --this.#failRead === 0) {
          this.onFailedRead?.();
          return Promise.reject(Object.assign(new Error('injected read error'), { code: 'EIO' }));
        }
        return inner.read(b, o, l, p);
      },
      sync: () => {
        if (isWal && this.#holdWalSync) {
          this.#holdWalSync = false;
          return new Promise<void>((release) => {
            this.#heldSync = release;
          }).then(() => inner.sync());
        }
        return inner.sync();
      },
    });
  }
}

describe('at most one chunk commit in flight', () => {
  it('while a chunk commit waits for its WAL fsync, the next chunk waits for it before committing', async (t) => {
    const dir = await tempDir(t);
    const fs = new GatedFileSystem();
    const store = await openStore(
      dir,
      withTestHooks(
        {
          fileSystem: fs,
          segmentBytes: 1 * MiB,
          // The minimum budget: chunks of 512 remaps, so the run below makes several.
          compaction: { memoryBudgetBytes: 256 * KiB },
        },
        {
          onKillPoint: (name) => {
            // The next WAL fsync is the first chunk commit's.
            if (name === 'begin-committed') fs.holdNextWalSync();
          },
        },
      ),
    );
    t.after(() => store.close());
    const model: Model = new Map();
    const ids = idList(6000, 'p');
    await putHalfDeleted(store, model, ids, { min: 100, max: 400 });

    let flushes = 0;
    let segmentsDone = 0;
    const run = store.compact({
      force: true,
      onProgress: (p) => {
        if (p.phase === 'commit') flushes++;
        segmentsDone = p.segmentsDone;
      },
    });
    assert.ok(await waitFor(() => fs.walSyncHeld, 20_000), 'the first chunk commit reached its fsync');
    // Given time, an unbounded pipeline would copy every victim while the first commit waits.
    await waitFor(() => flushes > 2, 1500);
    const whileHeld = { flushes, segmentsDone };
    fs.releaseWalSync();
    const stats = await run;
    assert.deepEqual(
      whileHeld,
      { flushes: 2, segmentsDone: 0 },
      'while the first chunk commit was held: it, and the second chunk waiting for it; no victim done',
    );
    assert.equal(stats.recordsMoved, 3000);
    assert.ok(flushes > 2, `the run went on once the commit settled (${flushes} flushes)`);
    expectStoreEquals(store, model, 'after the run');
  });
});

describe('rollback and a late commit without output', () => {
  it('keeps the header and committed end of the output segment opened after it', async (t) => {
    const dir = await tempDir(t);
    const fs = new GatedFileSystem();
    const SEG = 256 * KiB;
    const store = await openStore(dir, {
      fileSystem: fs,
      segmentBytes: SEG,
      // The minimum budget: 64 KiB windows, so a 256 KiB victim takes several windows.
      compaction: { memoryBudgetBytes: 256 * KiB },
    });
    t.after(() => store.close().catch(() => undefined));
    const model: Model = new Map();
    const shape = { min: 900, max: 1100 };
    // Segment 1 ends up with nothing live (its records and the first few after them deleted),
    // segment 2 half live; fresh records keep the active segment free of dead bytes so that it is
    // not a victim.
    const first = idList(240, 'a');
    await putAll(store, model, versions(first, 1), shape);
    const second = idList(240, 'b');
    await putAll(store, model, versions(second, 1), shape);
    await deleteAll(store, model, first);
    await deleteAll(
      store,
      model,
      second.filter((_, i) => i < 30 || i % 2 === 1),
    );
    await putAll(store, model, versions(idList(40, 'c'), 1), shape);
    const before = new Set(segmentFiles(dir));
    const statsBefore = store.contentStorageStats();

    let commits = 0;
    fs.onFailedRead = () => {
      // Released only once the run is failing: the rollback is then waiting for this commit.
      setImmediate(() => fs.releaseWalSync());
    };
    await assert.rejects(
      store.compact({
        force: true,
        onProgress: (p) => {
          if (p.phase !== 'commit' || ++commits !== 1) return;
          // The first chunk commit carries the fully dead victim's done marker: hold its WAL
          // fsync, and fail the second read of the next victim, after its first window opened
          // an output segment.
          fs.holdNextWalSync();
          fs.failSegmentRead(2);
        },
      }),
      (err: unknown) => WarmStoreError.is(err, 'COMPACTION_FAILED'),
    );
    assert.equal(commits, 1, 'the run failed before committing anything into the output segment');

    const created = segmentFiles(dir).filter((f) => !before.has(f));
    assert.equal(created.length, 1, `one output segment was created: ${created.join(', ')}`);
    assert.equal(
      statSync(join(dir, created[0]!)).size,
      SEGMENT_HEADER_BYTES,
      'the output segment is cut back to its header, nothing more and nothing less',
    );
    assert.equal(
      store.contentStorageStats().totalBytes,
      statsBefore.totalBytes,
      'content bytes are back where they were: nothing of the failed run is counted',
    );
    expectStoreEquals(store, model, 'after the failed run');

    // A crash now: the store opens from these files as they are.
    const copy = await tempDir(t);
    for (const f of readdirSync(dir)) cpSync(join(dir, f), join(copy, f));
    const reopened = await openStore(copy);
    t.after(() => reopened.close());
    expectStoreEquals(reopened, model, 'reopened after a crash');
  });
});
