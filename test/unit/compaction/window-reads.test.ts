/**
 * How compaction reads its windows of a victim segment while other work keeps the event loop busy
 * (each await would wait out a turn of theirs): on the loop itself, until one such read is slow,
 * after which the rest of the run goes through the pool. (On an idle loop they go through the
 * pool; a timing assertion of that would fail on a loaded machine, so the benchmark shows it.)
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { nodeFileSystem } from '../../../src/fs/node-fs.js';
import type { WsFile, WsFileSystem } from '../../../src/fs/types.js';
import { FaultyFileSystem } from '../../../src/testing/index.js';
import { tempDir } from '../../helpers/tmp.js';
import { KiB, MiB, expectStoreEquals, idList, openStore, type Model, putHalfDeleted } from './fixture.js';

/** The node file layer, counting synchronous reads of segment files. */
function countingSegmentReads(): { fs: WsFileSystem; reads: { n: number } } {
  const reads = { n: 0 };
  const wrapFile = (f: WsFile): WsFile =>
    new Proxy(f, {
      get(target, prop) {
        const v: unknown = Reflect.get(target, prop, target);
        if (prop === 'readSync' && typeof v === 'function')
          return (...args: unknown[]) => {
            reads.n++;
            return (v as (...a: unknown[]) => unknown).apply(target, args);
          };
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    });
  const fs = new Proxy(nodeFileSystem, {
    get(target, prop) {
      const v: unknown = Reflect.get(target, prop, target);
      if (prop === 'open' && typeof v === 'function')
        return (path: string, ...rest: unknown[]) => {
          const f = (v as (...a: unknown[]) => WsFile).apply(target, [path, ...rest]);
          return path.includes('seg-') ? wrapFile(f) : f;
        };
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
  return { fs, reads };
}

/** Holds every turn of the event loop `ms` (readers busy on it) until stopped. */
function busyLoop(ms: number): () => void {
  let on = true;
  const spin = (): void => {
    if (!on) return;
    const end = performance.now() + ms;
    while (performance.now() < end);
    setImmediate(spin);
  };
  setImmediate(spin);
  return () => {
    on = false;
  };
}

describe('compaction window reads', () => {
  for (const [label, busyMs, slowMs] of [
    ['a busy loop: on the loop', 6, 0],
    ['a busy loop and a slow disk: one read on the loop, then the pool', 6, 20],
  ] as const) {
    it(label, async (t) => {
      const dir = await tempDir(t);
      const { fs: counting, reads } = countingSegmentReads();
      const fs = new FaultyFileSystem(counting);
      // A 64 KiB window: a victim of 1 MiB takes many windows.
      const store = await openStore(dir, {
        fileSystem: fs,
        segmentBytes: 1 * MiB,
        compaction: { memoryBudgetBytes: 256 * KiB },
      });
      const model: Model = new Map();
      try {
        const ids = idList(3000, 'w');
        await putHalfDeleted(store, model, ids, { min: 200, max: 1200 });
        if (slowMs > 0) fs.slowSyncReads = { path: 'seg-', ms: slowMs };
        const stop = busyLoop(busyMs);
        const before = reads.n;
        let stats;
        try {
          stats = await store.compact({ force: true });
        } finally {
          stop();
        }
        const sync = reads.n - before;
        fs.slowSyncReads = undefined;
        assert.ok(stats.segmentsCompacted >= 2, `segments compacted: ${stats.segmentsCompacted}`);
        if (slowMs === 0) assert.ok(sync >= 4, `window reads on the loop: ${sync}`);
        else assert.equal(sync, 1, 'one slow read on the loop, then none');
        expectStoreEquals(store, model, label);
        const report = await store.verify();
        assert.deepEqual(report.problems, [], 'verify');
      } finally {
        await store.close();
      }
    });
  }
});
