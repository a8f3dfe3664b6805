import assert from 'node:assert/strict';
import { basename } from 'node:path';
import { setImmediate as yieldNow } from 'node:timers/promises';
import { describe, test } from 'node:test';
import { FaultyFileSystem } from '../../../src/testing/index.js';
import {
  WarmStore,
  nodeFileSystem,
  type MemoryRecord,
  type OpenMode,
  type StoredMemory,
  type WsFile,
  type WsFileSystem,
} from '../../../src/index.js';
import { Rng, hashSeed } from '../../helpers/random.js';
import { tempDir } from '../../helpers/tmp.js';

const DIM = 16;

/** Version `v` of memory `id`: every field derived from (id, v), so a reader can tell which it got. */
function versionOf(id: string, v: number): MemoryRecord & { content: string | null } {
  const r = new Rng(hashSeed(id, v));
  const e = new Float32Array(DIM);
  for (let i = 0; i < DIM; i++) e[i] = r.next() * 2 - 1;
  e[0] = v + 1; // nonzero, and encodes the version
  const size = v % 7 === 3 ? 0 : r.range(1, v % 5 === 0 ? 6000 : 300);
  const content =
    v % 11 === 5
      ? null
      : `${id}@${v}|` + Array.from({ length: size }, () => String.fromCharCode(0x61 + r.int(26))).join('');
  return { id, embedding: e, content, activation: v, accessCount: v, confidence: (v % 100) / 100 };
}

/** Which version a stored memory is, checking that every field belongs to that one version. */
function identify(m: StoredMemory, maxVersion: number): number {
  const v = m.activation;
  assert.ok(Number.isInteger(v) && v >= 0 && v <= maxVersion, `${m.id}: version ${v} was never written`);
  const want = versionOf(m.id, v);
  assert.equal(m.content, want.content, `${m.id}@${v}: content is not the bytes written for this version`);
  assert.equal(m.accessCount, v, `${m.id}@${v}: accessCount from another version (mixed read)`);
  assert.equal(m.confidence, want.confidence, `${m.id}@${v}: confidence`);
  assert.deepEqual(
    Array.from(m.embedding),
    Array.from(want.embedding),
    `${m.id}@${v}: embedding (mixed read)`,
  );
  return v;
}

/** A WsFileSystem wrapper counting fsyncs per file name prefix. */
class CountingFs implements WsFileSystem {
  syncs = new Map<string, number>();
  writes = 0;
  constructor(private readonly inner: WsFileSystem = nodeFileSystem) {}

  count(prefix: string): number {
    let n = 0;
    for (const [name, c] of this.syncs) if (name.startsWith(prefix)) n += c;
    return n;
  }

  reset(): void {
    this.syncs.clear();
    this.writes = 0;
  }

  open(path: string, mode: OpenMode): WsFile {
    const f = this.inner.open(path, mode);
    const name = basename(path);
    const bump = (): void => {
      this.syncs.set(name, (this.syncs.get(name) ?? 0) + 1);
    };
    const onWrite = (): void => {
      this.writes++;
    };
    return {
      path: f.path,
      readSync: (b, o, l, p) => f.readSync(b, o, l, p),
      read: (b, o, l, p) => f.read(b, o, l, p),
      writeSync: (b, o, l, p) => {
        onWrite();
        return f.writeSync(b, o, l, p);
      },
      write: (b, o, l, p) => {
        onWrite();
        return f.write(b, o, l, p);
      },
      sync: () => {
        bump();
        return f.sync();
      },
      truncate: (n) => f.truncate(n),
      size: () => f.size(),
      close: () => f.close(),
      closeSync: () => f.closeSync(),
    };
  }
  readFile(p: string): Promise<Buffer> {
    return this.inner.readFile(p);
  }
  rename(a: string, b: string): Promise<void> {
    return this.inner.rename(a, b);
  }
  unlink(p: string): Promise<void> {
    return this.inner.unlink(p);
  }
  link(a: string, b: string): Promise<void> {
    return this.inner.link(a, b);
  }
  readdir(p: string): Promise<string[]> {
    return this.inner.readdir(p);
  }
  mkdir(p: string): Promise<void> {
    return this.inner.mkdir(p);
  }
  exists(p: string): Promise<boolean> {
    return this.inner.exists(p);
  }
  syncDir(p: string): Promise<void> {
    return this.inner.syncDir(p);
  }
  freeBytes(p: string): Promise<number> {
    return this.inner.freeBytes(p);
  }
}

describe('concurrency', () => {
  test('10 writers and 5 readers interleaved: every read is one whole written version, last write wins', async (t) => {
    const dir = await tempDir(t);
    let store = await WarmStore.open(dir, {
      dimension: DIM,
      maintenanceIntervalMs: false,
      segmentBytes: 64 * 1024,
    });
    const WRITERS = 10;
    const IDS_PER_WRITER = 4;
    const ROUNDS = 25;
    const idsOf = (w: number): string[] => Array.from({ length: IDS_PER_WRITER }, (_, i) => `w${w}-k${i}`);
    const allIds = Array.from({ length: WRITERS }, (_, w) => idsOf(w)).flat();
    /** Highest version whose put has been issued, per id (a reader may see any version up to it). */
    const issued = new Map<string, number>();
    const acked = new Map<string, number>();
    let writersDone = 0;
    let reads = 0;
    let seenNonInitial = 0;

    const writer = async (w: number): Promise<void> => {
      const r = new Rng(1000 + w);
      for (let round = 0; round < ROUNDS; round++) {
        const id = r.pick(idsOf(w));
        const v = (issued.get(id) ?? -1) + 1;
        issued.set(id, v);
        if (round % 9 === 8) {
          // Sometimes a batch of this writer's ids at once.
          const extra = idsOf(w).filter((x) => x !== id);
          const vs = extra.map((x) => {
            const n = (issued.get(x) ?? -1) + 1;
            issued.set(x, n);
            return n;
          });
          await Promise.all([
            store.put(versionOf(id, v)),
            ...extra.map((x, i) => store.put(versionOf(x, vs[i]!))),
          ]);
          extra.forEach((x, i) => acked.set(x, vs[i]!));
        } else {
          await store.put(versionOf(id, v));
        }
        acked.set(id, v);
        // Once acknowledged, a read must never go back to an older version.
        const back = store.getSync(id);
        assert.ok(back, `${id} missing right after its put`);
        assert.ok(identify(back, issued.get(id)!) >= v, `${id}: read-your-write`);
        if (round % 4 === 0) await yieldNow();
      }
      writersDone++;
    };

    const reader = async (rd: number): Promise<void> => {
      const r = new Rng(2000 + rd);
      while (writersDone < WRITERS) {
        const id = r.pick(allIds);
        const floor = acked.get(id);
        const max = issued.get(id) ?? -1;
        const m = rd % 2 === 0 ? await store.get(id) : store.getSync(id);
        reads++;
        if (m === undefined) {
          assert.equal(floor, undefined, `${id} vanished after version ${floor} was acknowledged`);
        } else {
          const v = identify(m, issued.get(id) ?? max);
          if (floor !== undefined)
            assert.ok(v >= floor, `${id}: read version ${v} older than acked ${floor}`);
          if (v > 0) seenNonInitial++;
        }
        if (rd === 4 && reads % 10 === 0) {
          // Iteration and recall run alongside too.
          for await (const e of store.entries()) identify(e, issued.get(e.id) ?? 0);
          const hits = await store.recall(versionOf(id, 0).embedding, { k: 5 });
          for (const h of hits) identify(h.memory, issued.get(h.memory.id) ?? 0);
        }
        await yieldNow();
      }
    };

    await Promise.all([
      ...Array.from({ length: WRITERS }, (_, w) => writer(w)),
      ...Array.from({ length: 5 }, (_, rd) => reader(rd)),
    ]);
    assert.ok(reads > 50, `readers actually ran (${reads} reads)`);
    assert.ok(seenNonInitial > 0, 'readers saw updates');

    const checkFinal = async (label: string): Promise<void> => {
      assert.equal(store.size, acked.size, `${label}: size`);
      for (const [id, v] of acked) {
        const m = await store.get(id);
        assert.ok(m, `${label}: ${id} missing`);
        assert.equal(identify(m, v), v, `${label}: ${id} is not the last write`);
      }
    };
    await checkFinal('live');
    await store.close();
    // No startup compaction: this test is about the write path (verify during compaction: verify.test.ts).
    store = await WarmStore.open(dir, {
      maintenanceIntervalMs: false,
      maintenance: { startupCompaction: 'off' },
    });
    try {
      await checkFinal('reopened');
      const report = await store.verify();
      assert.equal(report.ok, true, JSON.stringify(report.problems));
    } finally {
      await store.close();
    }
  });

  test('concurrent puts and deletes of the same id resolve in issue order', async (t) => {
    const dir = await tempDir(t);
    const store = await WarmStore.open(dir, { dimension: DIM, maintenanceIntervalMs: false });
    try {
      const ops: Array<Promise<unknown>> = [];
      for (let v = 0; v < 30; v++) {
        ops.push(store.put(versionOf('same', v)));
        if (v % 4 === 3) ops.push(store.delete('same'));
      }
      const results = await Promise.all(ops);
      assert.ok(results.filter((x) => x === true).length === 7, 'each delete after a put found it');
      assert.equal(identify((await store.get('same'))!, 29), 29);
    } finally {
      await store.close();
    }
  });
});

describe('group commit and durability modes', () => {
  test('200 concurrent durable puts share far fewer WAL fsyncs than puts', async (t) => {
    const dir = await tempDir(t);
    const fs = new CountingFs();
    let store = await WarmStore.open(dir, { dimension: DIM, maintenanceIntervalMs: false, fileSystem: fs });
    const recs = Array.from({ length: 200 }, (_, i) => versionOf(`g${i}`, i));
    try {
      fs.reset();
      await Promise.all(recs.map((r) => store.put(r)));
      const walSyncs = fs.count('wal-');
      const segSyncs = fs.count('seg-');
      assert.ok(walSyncs >= 1, 'the WAL was fsynced (durability sync)');
      assert.ok(walSyncs <= 10, `group commit: ${walSyncs} WAL fsyncs for 200 puts`);
      assert.ok(segSyncs <= 10, `group commit: ${segSyncs} segment fsyncs for 200 puts`);
      for (const r of recs) assert.equal(identify((await store.get(r.id))!, 199), Number(r.id.slice(1)));

      // Sequential puts, by contrast, each pay their own fsync under 'sync'.
      fs.reset();
      for (let i = 0; i < 5; i++) await store.put(versionOf('seq', i));
      assert.ok(fs.count('wal-') >= 5, `each sequential durable put fsyncs the WAL (${fs.count('wal-')})`);
    } finally {
      await store.close();
    }
    store = await WarmStore.open(dir, { maintenanceIntervalMs: false });
    try {
      assert.equal(store.size, 201);
    } finally {
      await store.close();
    }
  });

  test('FaultyFileSystem counters agree: one batch, a handful of fsyncs', async (t) => {
    const dir = await tempDir(t);
    const fs = new FaultyFileSystem();
    const store = await WarmStore.open(dir, { dimension: DIM, maintenanceIntervalMs: false, fileSystem: fs });
    try {
      fs.resetCounts();
      await Promise.all(
        Array.from({ length: 200 }, (_, i) => store.put({ ...versionOf(`f${i}`, 1), content: null })),
      );
      assert.ok(fs.counts.sync >= 1 && fs.counts.sync <= 10, `${fs.counts.sync} fsyncs for 200 puts`);
      assert.ok(fs.counts.write <= 20, `${fs.counts.write} writes for 200 puts`);
      assert.equal(store.size, 200);
    } finally {
      await store.close();
    }
  });

  test("durability 'relaxed' acknowledges without a per-put fsync and keeps data over a clean close", async (t) => {
    const dir = await tempDir(t);
    const fs = new CountingFs();
    const opts = { dimension: DIM, maintenanceIntervalMs: false as const, fileSystem: fs };
    let store = await WarmStore.open(dir, {
      ...opts,
      durability: 'relaxed',
      relaxedSyncIntervalMs: 3_600_000,
    });
    const want = new Map<string, MemoryRecord>();
    try {
      fs.reset();
      for (let i = 0; i < 30; i++) {
        const r = versionOf(`r${i % 20}`, i);
        await store.put(r);
        want.set(r.id, r);
      }
      assert.equal(await store.delete('r3'), true);
      want.delete('r3');
      assert.equal(fs.count('wal-'), 0, 'no WAL fsync per put under relaxed durability');
      for (const [id, r] of want) assert.equal((await store.get(id))?.content, r.content);
    } finally {
      await store.close();
    }
    store = await WarmStore.open(dir, opts);
    try {
      assert.equal(store.size, want.size);
      for (const [id, r] of want) identify((await store.get(id))!, Number(r.activation));
      assert.equal(store.has('r3'), false);
    } finally {
      await store.close();
    }
  });

  test("durability 'relaxed' fsyncs in the background every relaxedSyncIntervalMs", async (t) => {
    const dir = await tempDir(t);
    const fs = new CountingFs();
    const store = await WarmStore.open(dir, {
      dimension: DIM,
      maintenanceIntervalMs: false,
      fileSystem: fs,
      durability: 'relaxed',
      relaxedSyncIntervalMs: 20,
    });
    try {
      await store.put(versionOf('bg', 1));
      fs.reset();
      const deadline = Date.now() + 2000;
      while (fs.count('wal-') === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      assert.ok(fs.count('wal-') > 0, 'the background timer fsynced the WAL');
    } finally {
      await store.close();
    }
  });
});
