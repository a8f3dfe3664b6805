/**
 * Invariants 1 and 4 under simulated power cuts: the store runs on PowerCutFileSystem, which on
 * `cut()` drops every byte and directory entry not yet made durable by fsync (optionally keeping a
 * random part of the unsynced writes: "torn"). The store is then reopened with the real file layer
 * and every acknowledged write must be there, byte for byte; the store's fsck must be clean and a
 * compaction must succeed.
 */
import assert from 'node:assert/strict';
import { cpSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { WarmStore, type OpenMode, type WsFile, type WsFileSystem } from '../../src/index.js';
import { PowerCutFileSystem, withTestHooks, type CutOptions } from '../../src/testing/index.js';
import { AckModel } from '../helpers/ack-model.js';
import { CRASH_DIM, crashStoreOptions, reopenAndVerify, runSeed } from '../helpers/crash.js';
import { Rng, contentFor, recordFor } from '../helpers/random.js';
import { tempDir } from '../helpers/tmp.js';
import { delegate } from '../helpers/wrapped-fs.js';
import { runWorkload, type WorkloadOptions } from '../helpers/workload.js';

const STORE = 'store';

/** An error that a cut explains: the power-cut layer's EIO, or the store wrapping it. */
function causedByCut(err: unknown): boolean {
  for (
    let e = err as { code?: string; message?: string; cause?: unknown } | undefined;
    e;
    e = e.cause as typeof e
  ) {
    if (/power cut/.test(e.message ?? '')) return true;
  }
  // A store that failed once may refuse later calls with its own codes; any WarmStoreError after a
  // cut is acceptable, the verification after reopen is what counts.
  return typeof (err as { code?: unknown } | undefined)?.code === 'string';
}

function workload(seed: number, seedBase: number, emit: (line: string) => void): WorkloadOptions {
  return { seed, seedBase, dimension: CRASH_DIM, idSpace: 50, concurrency: 5, emit };
}

/** Opens on `pc`, runs writes until the cut happens (or `maxOps`), then drops the store. */
async function writeUntilCut(
  root: string,
  pc: PowerCutFileSystem,
  model: AckModel,
  o: { seed: number; seedBase: number; maxOps?: number; onAck?: () => void; concurrency?: number },
  context: string,
): Promise<void> {
  let store: WarmStore;
  try {
    store = await WarmStore.open(join(root, STORE), crashStoreOptions({ fileSystem: pc }));
  } catch (err) {
    assert.ok(pc.isCut, `${context}: open failed without a cut: ${String(err)}`);
    return;
  }
  const res = await runWorkload(store, {
    ...workload(o.seed, o.seedBase, (line) => {
      model.feed(line);
      if (line.startsWith('ack ')) o.onAck?.();
    }),
    ...(o.maxOps !== undefined ? { maxOps: o.maxOps } : {}),
    ...(o.concurrency !== undefined ? { concurrency: o.concurrency } : {}),
    shouldStop: () => pc.isCut,
  });
  if (res.error !== undefined) {
    assert.ok(pc.isCut && causedByCut(res.error), `${context}: workload failed: ${String(res.error)}`);
  }
  // The machine is "off": close fails on the dead file layer, but must release the in-process lock.
  await store.close().catch(() => undefined);
}

/**
 * `pc` seen through its durable writes: counts them, and can cut the power right after the Nth
 * from `cutAfter` was applied, before it resolves (in flight, as far as the store can tell).
 */
class CutInFlight implements WsFileSystem {
  durableWrites = 0;
  #cutAt = 0;
  readonly #pc: PowerCutFileSystem;
  readonly #options: CutOptions;

  constructor(pc: PowerCutFileSystem, options: CutOptions = {}) {
    this.#pc = pc;
    this.#options = options;
  }

  cutAfter(nth: number): void {
    this.#cutAt = this.durableWrites + nth;
  }

  open(path: string, mode: OpenMode): WsFile {
    const f = this.#pc.open(path, mode);
    return delegate(f, {
      writeDurable: (b, o, l, p) => {
        const applied = f.writeDurable!(b, o, l, p);
        if (++this.durableWrites === this.#cutAt) this.#pc.cut(this.#options);
        return applied;
      },
    });
  }
  readFile(path: string): Promise<Buffer> {
    return this.#pc.readFile(path);
  }
  rename(from: string, to: string): Promise<void> {
    return this.#pc.rename(from, to);
  }
  unlink(path: string): Promise<void> {
    return this.#pc.unlink(path);
  }
  link(from: string, to: string): Promise<void> {
    return this.#pc.link(from, to);
  }
  readdir(path: string): Promise<string[]> {
    return this.#pc.readdir(path);
  }
  mkdir(path: string): Promise<void> {
    return this.#pc.mkdir(path);
  }
  exists(path: string): Promise<boolean> {
    return this.#pc.exists(path);
  }
  syncDir(path: string): Promise<void> {
    return this.#pc.syncDir(path);
  }
  freeBytes(path: string): Promise<number> {
    return this.#pc.freeBytes(path);
  }
}

/**
 * A temp root holding an empty store directory that already exists (durably) when the power-cut
 * layer starts: the tests below are about what the store writes, not about the store directory
 * itself, which has its own test.
 */
async function freshRoot(t: TestContext): Promise<string> {
  const root = await tempDir(t, 'warmstore-powercut-');
  mkdirSync(join(root, STORE));
  return root;
}

describe('crash: power cut (unsynced bytes and directory entries dropped)', () => {
  it('a newly created store directory is durable once a put is acknowledged', async (t) => {
    // WarmStore.open creates the directory; unless it fsyncs the parent, the directory entry (and
    // with it every acknowledged write) may vanish in a power cut.
    const root = await tempDir(t, 'warmstore-powercut-');
    const pc = new PowerCutFileSystem(root);
    const store = await WarmStore.open(join(root, STORE), crashStoreOptions({ fileSystem: pc }));
    const model = new AckModel(CRASH_DIM);
    model.begin('a', 1);
    await store.put(recordFor('a', 1, CRASH_DIM));
    model.ack('a', 1);
    const report = pc.cut();
    await store.close().catch(() => undefined);
    assert.ok(
      !report.entriesRemoved.includes(join(root, STORE)),
      'the store directory was never made durable (no syncDir of its parent after mkdir)',
    );
    await reopenAndVerify(join(root, STORE), model, 'new store');
  });

  it('an unacknowledged put whose WAL entry reached the disk before its content leaves the last acknowledged value', async (t) => {
    // The kernel may write back the WAL page and not the segment page before a crash: a WAL entry
    // that was never fsynced (never acknowledged) can then point at content that is not on disk.
    // Recovery must drop it (or keep checking), never replay it over the acknowledged value.
    const root = await freshRoot(t);
    const pc = new PowerCutFileSystem(root);
    const store = await WarmStore.open(join(root, STORE), crashStoreOptions({ fileSystem: pc }));
    const model = new AckModel(CRASH_DIM);
    // Seeds whose records carry content (the in-flight one a large one), so each put writes a segment.
    const withContent = (from: number, min: number): number => {
      let seed = from;
      while ((contentFor('a', seed) ?? '').length < min) seed++;
      return seed;
    };
    const acked = withContent(1, 1);
    const last = withContent(acked + 1, 1);
    const inFlight = withContent(last + 1, 1000);
    model.begin('a', acked);
    await store.put(recordFor('a', acked, CRASH_DIM));
    model.ack('a', acked);
    // Measure the mutating operations of one put (content write and sync, WAL write and sync),
    // then cut at each of them in a copy, with the unsynced writes of either the WAL or the
    // segments flushed by "writeback" and the others lost.
    const before = pc.opCount;
    model.begin('a', last);
    await store.put(recordFor('a', last, CRASH_DIM));
    model.ack('a', last);
    const perPut = pc.opCount - before;
    for (let k = 1; k <= perPut; k++) {
      for (const keep of ['wal-', 'seg-']) {
        const context = `cut at op ${k}/${perPut} of a put, unsynced writes of ${keep} files kept`;
        const r = await freshRoot(t);
        cpSync(join(root, STORE), join(r, STORE), { recursive: true });
        const m = model.clone();
        const pc2 = new PowerCutFileSystem(r);
        const s2 = await WarmStore.open(join(r, STORE), crashStoreOptions({ fileSystem: pc2 }));
        pc2.cutAtOp(k, { keepUnsynced: (p) => p.includes(keep) });
        m.begin('a', inFlight);
        await s2.put(recordFor('a', inFlight, CRASH_DIM)).then(
          () => m.ack('a', inFlight),
          () => undefined,
        );
        if (!pc2.isCut) pc2.cut();
        await s2.close().catch(() => undefined);
        await reopenAndVerify(join(r, STORE), m, context);
      }
    }
    await store.close();
    pc.dispose();
  });

  it('a put whose durable write is in flight when the power goes is rejected, then absent or whole', async (t) => {
    // A durable write is applied at once and durable when it resolves: cut between the two, its
    // bytes are undone (an exact cut) or kept page by page (a torn one). Content and vector are
    // durable before the WAL entry naming them is written, so no cut point may leave a replayable
    // entry pointing at missing bytes, nor lose an acknowledged put.
    const root = await freshRoot(t);
    const pc = new PowerCutFileSystem(root);
    const counter = new CutInFlight(pc);
    const store = await WarmStore.open(join(root, STORE), crashStoreOptions({ fileSystem: counter }));
    const model = new AckModel(CRASH_DIM);
    let seed = 1;
    const next = (min: number): number => {
      while ((contentFor('a', seed) ?? '').length < min) seed++;
      return seed++;
    };
    for (const id of ['a', 'b']) {
      const v = next(1);
      model.begin(id, v);
      await store.put(recordFor(id, v, CRASH_DIM));
      model.ack(id, v);
    }
    const before = counter.durableWrites;
    const probe = next(1);
    model.begin('a', probe);
    await store.put(recordFor('a', probe, CRASH_DIM));
    model.ack('a', probe);
    const perPut = counter.durableWrites - before;
    assert.equal(perPut, 3, 'content, vector, WAL entry: one durable write each');
    await store.close();
    pc.dispose();
    const inFlight = next(1000);
    for (let k = 1; k <= perPut; k++) {
      // 0: an exact cut; then torn ones, each keeping another mix of the pages in flight.
      for (let torn = 0; torn <= 6; torn++) {
        const context = `power cut with durable write ${k}/${perPut} of a put in flight${torn > 0 ? `, torn (seed ${torn})` : ''}`;
        const r = await freshRoot(t);
        cpSync(join(root, STORE), join(r, STORE), { recursive: true });
        const m = model.clone();
        const pc2 = new PowerCutFileSystem(r);
        const fs2 = new CutInFlight(pc2, torn > 0 ? { tornSeed: k * 100 + torn } : {});
        const s2 = await WarmStore.open(join(r, STORE), crashStoreOptions({ fileSystem: fs2 }));
        fs2.cutAfter(k);
        m.begin('a', inFlight);
        await assert.rejects(
          s2.put(recordFor('a', inFlight, CRASH_DIM)),
          (err: unknown) => causedByCut(err),
          context,
        );
        assert.ok(pc2.isCut, `${context}: the cut happened`);
        await s2.close().catch(() => undefined);
        await reopenAndVerify(join(r, STORE), m, context);
      }
    }
  });

  it(
    'keeps acknowledged writes when the power goes at random moments of concurrent writing',
    { timeout: 120_000 },
    async (t) => {
      const seed = runSeed('power-cut-writes');
      const r = new Rng(seed);
      for (let store = 0; store < 3; store++) {
        const root = await freshRoot(t);
        const model = new AckModel(CRASH_DIM);
        for (let cycle = 0; cycle < 6; cycle++) {
          const torn = cycle % 2 === 1;
          const context = `seed ${seed} store ${store} cycle ${cycle}${torn ? ' torn' : ''}`;
          const pc = new PowerCutFileSystem(root);
          const cutAfter = model.acks + r.int(120);
          const cutOptions: CutOptions = torn ? { tornSeed: r.int(1e9) } : {};
          if (cutAfter === model.acks) {
            // Cut at the very first file operation: while the store opens (recovers).
            pc.cutAtOp(1, cutOptions);
          }
          await writeUntilCut(
            root,
            pc,
            model,
            {
              seed: seed + store * 100 + cycle,
              seedBase: (store * 100 + cycle + 1) * 1_000_000,
              onAck: () => {
                if (!pc.isCut && model.acks >= cutAfter) pc.cut(cutOptions);
              },
            },
            context,
          );
          if (!pc.isCut) pc.cut(cutOptions);
          await reopenAndVerify(join(root, STORE), model, context, { compact: cycle === 5 });
        }
        assert.ok(model.acks > 50, `too few acks: ${model.acks}`);
      }
    },
  );

  it(
    'keeps acknowledged writes with the power cut at every stage of creating and filling a store',
    { timeout: 120_000 },
    async (t) => {
      const seed = runSeed('power-cut-sweep');
      // Count the mutating file operations of a deterministic run (one op at a time), then cut at
      // points spread over all of them: store creation, the first WAL entries, segment rolls...
      const probeRoot = await freshRoot(t);
      const probe = new PowerCutFileSystem(probeRoot);
      await writeUntilCut(
        probeRoot,
        probe,
        new AckModel(CRASH_DIM),
        { seed, seedBase: 1_000_000, maxOps: 60, concurrency: 1 },
        'probe',
      );
      const total = probe.opCount;
      probe.dispose();
      assert.ok(total > 20, `a store run made only ${total} file operations`);
      const points = new Set<number>([1, 2, 3, 4, 5, 6, 7, 8]);
      for (let i = 1; points.size < 28; i++) points.add(Math.max(1, Math.round((total * i) / 20)));
      for (const k of [...points].sort((a, b) => a - b)) {
        for (const torn of [false, true]) {
          if (torn && k % 3 !== 0) continue;
          const context = `seed ${seed} cut at op ${k}/${total}${torn ? ' torn' : ''}`;
          const root = await freshRoot(t);
          const model = new AckModel(CRASH_DIM);
          const pc = new PowerCutFileSystem(root);
          pc.cutAtOp(k, torn ? { tornSeed: k } : {});
          await writeUntilCut(
            root,
            pc,
            model,
            { seed, seedBase: 1_000_000, maxOps: 60, concurrency: 1 },
            context,
          );
          if (!pc.isCut) pc.cut();
          await reopenAndVerify(join(root, STORE), model, context);
        }
      }
    },
  );

  describe('during compaction', () => {
    /** A churned store with many sealed segments holding dead content, built once. */
    async function buildBase(t: TestContext, seed: number): Promise<{ dir: string; model: AckModel }> {
      const root = await freshRoot(t);
      const dir = join(root, STORE);
      const model = new AckModel(CRASH_DIM);
      const store = await WarmStore.open(dir, crashStoreOptions());
      try {
        const phases = [
          { maxOps: 200, mix: { put: 0.7, putMany: 0.3, del: 0 } },
          { maxOps: 120, mix: { put: 0.5, putMany: 0.1, del: 0.4 } },
        ];
        for (const [i, p] of phases.entries()) {
          const res = await runWorkload(store, {
            ...workload(seed + i, (i + 1) * 1_000_000, (l) => model.feed(l)),
            idSpace: 120,
            maxOps: p.maxOps,
            mix: p.mix,
          });
          if (res.error !== undefined) throw res.error;
        }
        const stats = store.contentStorageStats();
        assert.ok(
          stats.segments >= 4 && stats.deadBytes > 0,
          `base store too small: ${JSON.stringify(stats)}`,
        );
      } finally {
        await store.close();
      }
      return { dir, model };
    }

    interface Scenario {
      /** Cut at the nth hit of this kill point... */
      point?: { name: string; nth: number };
      /** ...or at the nth mutating file operation after compaction starts. */
      atOp?: number;
      cut: CutOptions;
    }

    /** Copies the base store, compacts it on a power-cut layer with writers running, cuts, checks. */
    async function runScenario(
      t: TestContext,
      base: { dir: string; model: AckModel },
      s: Scenario,
      seed: number,
      context: string,
    ): Promise<{ hit: boolean; opsInCompaction: number }> {
      const root = await freshRoot(t);
      cpSync(base.dir, join(root, STORE), { recursive: true });
      const model = base.model.clone();
      const pc = new PowerCutFileSystem(root);
      const hits = new Map<string, number>();
      const store = await WarmStore.open(
        join(root, STORE),
        crashStoreOptions(
          withTestHooks(
            { fileSystem: pc },
            {
              onKillPoint: (name) => {
                const n = (hits.get(name) ?? 0) + 1;
                hits.set(name, n);
                if (s.point?.name === name && s.point.nth === n && !pc.isCut) pc.cut(s.cut);
              },
            },
          ),
        ),
      );
      let compacting = true;
      const writers = runWorkload(store, {
        ...workload(seed, 50_000_000, (l) => model.feed(l)),
        idSpace: 140,
        concurrency: 3,
        shouldStop: () => pc.isCut || !compacting,
      });
      const opsBefore = pc.opCount;
      if (s.atOp !== undefined) pc.cutAtOp(s.atOp, s.cut);
      let compactError: unknown;
      try {
        await store.compact({ force: true });
      } catch (err) {
        compactError = err;
      } finally {
        compacting = false;
      }
      const opsInCompaction = pc.opCount - opsBefore;
      const w = await writers;
      if (!pc.isCut) {
        assert.equal(
          compactError,
          undefined,
          `${context}: compaction failed without a cut: ${String(compactError)}`,
        );
        assert.equal(w.error, undefined, `${context}: writers failed without a cut: ${String(w.error)}`);
        await store.close();
        pc.dispose();
      } else {
        if (w.error !== undefined) assert.ok(causedByCut(w.error), `${context}: writers: ${String(w.error)}`);
        await store.close().catch(() => undefined);
      }
      const hit = pc.isCut;
      await reopenAndVerify(join(root, STORE), model, context, { compact: true });
      return { hit, opsInCompaction };
    }

    it(
      'keeps every acknowledged write when the power goes at each kill point and between them',
      { timeout: 180_000 },
      async (t) => {
        const seed = runSeed('power-cut-compaction');
        const r = new Rng(seed);
        const base = await buildBase(t, seed);

        // Discovery on a copy: which kill points a compaction of this store passes, how often.
        const names = new Map<string, number>();
        {
          const root = await freshRoot(t);
          cpSync(base.dir, join(root, STORE), { recursive: true });
          const store = await WarmStore.open(
            join(root, STORE),
            crashStoreOptions(
              withTestHooks({}, { onKillPoint: (n) => names.set(n, (names.get(n) ?? 0) + 1) }),
            ),
          );
          await store.compact({ force: true });
          await store.close();
        }
        assert.ok(names.size > 0, 'compaction reported no kill points');

        let scenarios = 0;
        const missed: string[] = [];
        for (const [name, count] of names) {
          const nths = [...new Set([1, Math.ceil(count / 2), count])];
          for (const nth of nths) {
            for (const torn of [false, true]) {
              if (torn && nth !== 1) continue;
              const context = `seed ${seed} cut at ${name}:${nth}${torn ? ' torn' : ''}`;
              const res = await runScenario(
                t,
                base,
                { point: { name, nth }, cut: torn ? { tornSeed: nth + scenarios } : {} },
                seed + scenarios,
                context,
              );
              if (!res.hit) missed.push(`${name}:${nth}`);
              scenarios++;
            }
          }
        }

        // Between kill points: at random file operations of the compaction (mid-copy writes, syncs,
        // manifest renames). The probe run measures how many the compaction makes.
        const probe = await runScenario(t, base, { cut: {} }, seed, `seed ${seed} probe`);
        const span = Math.max(1, probe.opsInCompaction);
        for (let i = 0; i < 12; i++) {
          const k = 1 + r.int(span);
          const context = `seed ${seed} cut at compaction op ${k}/${span}${i % 3 === 2 ? ' torn' : ''}`;
          await runScenario(
            t,
            base,
            { atOp: k, cut: i % 3 === 2 ? { tornSeed: k } : {} },
            seed + 1000 + i,
            context,
          );
          scenarios++;
        }
        console.log(
          `[power-cut-compaction] ${scenarios} scenarios over ${names.size} kill points (${[...names].map(([n, c]) => `${n}x${c}`).join(', ')})` +
            (missed.length > 0 ? `; not reached with writers running: ${missed.join(', ')}` : ''),
        );
        // Every named point must have been cut at least once (the nth hit may shift with the writers).
        for (const name of names.keys()) {
          assert.ok(!missed.includes(`${name}:1`), `kill point ${name} never reached`);
        }
      },
    );
  });
});
