/**
 * Invariants 1 and 4 under kill -9 during compaction: a child compacts a churned store in a loop
 * while writing, and is SIGKILLed at every named kill point inside compaction (first hit and a
 * later one) and at random instants. After each kill the parent reopens the store, checks every
 * acknowledged write and the store's fsck, and sometimes compacts (resuming or discarding the
 * interrupted run); at the end a compaction must succeed and leave everything intact.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { AckModel } from '../helpers/ack-model.js';
import { CRASH_DIM, assertNoChildErrors, reopenAndVerify, runSeed, sleep } from '../helpers/crash.js';
import { Rng } from '../helpers/random.js';
import { PrespawnedChildren, type SpawnedChild } from '../helpers/spawn.js';
import { tempDir } from '../helpers/tmp.js';

const MIN_ROUNDS = Number(process.env.WARMSTORE_CRASH_ROUNDS ?? 30);
const CHILD = 'test/crash/child-compactor.ts';

/** `killpoint <name> <hit>` lines -> hits per name. */
function killPointHits(lines: readonly string[]): Map<string, number> {
  const hits = new Map<string, number>();
  for (const l of lines) {
    const [kind, name, n] = l.split(' ');
    if (kind === 'killpoint' && name !== undefined) hits.set(name, Math.max(hits.get(name) ?? 0, Number(n)));
  }
  return hits;
}

describe('crash: kill -9 inside compaction', () => {
  it(
    `keeps every acknowledged write when killed at every kill point and at random (>= ${MIN_ROUNDS} rounds)`,
    { timeout: 300_000 },
    async (t) => {
      const seed = runSeed('compaction-kill');
      const r = new Rng(seed);
      const dir = join(await tempDir(t, 'warmstore-crash-compact-'), 'store');
      const model = new AckModel(CRASH_DIM);
      const children = new PrespawnedChildren(CHILD);
      t.after(() => children.dispose());
      let round = 0;
      const env = (extra: Record<string, string>): Record<string, string> => ({
        STORE_DIR: dir,
        SEED: String(seed * 1000 + round),
        ROUND: String(round),
        DIM: String(CRASH_DIM),
        ...extra,
      });
      const finish = async (child: SpawnedChild, context: string): Promise<void> => {
        assertNoChildErrors(child, context);
        model.feedAll(child.lines);
        await reopenAndVerify(dir, model, context, { compact: round % 4 === 3 });
        round++;
      };

      // Discovery: a full run that is never killed builds the store and lists the kill points.
      const list = await children.start(env({ LIST_KILL_POINTS: '1', COMPACT_LOOPS: '2' }));
      const listExit = await list.exited;
      assertNoChildErrors(list, 'discovery');
      assert.equal(listExit.code, 0, `discovery run failed: ${list.stderr().slice(-3000)}`);
      assert.ok(list.lines.includes('done'));
      const hitsPerRun = killPointHits(list.lines);
      assert.ok(hitsPerRun.size > 0, 'compaction reported no kill points through onKillPoint');
      // Every point the uninterrupted run passes must be killed at; points that only later runs
      // pass depend on the state crashes and concurrent writers left (the cut of the record files
      // needs a free tail, which writers' updates, each to a new slot, can take back while the
      // run goes on), and are killed at when reached.
      const required = new Set(hitsPerRun.keys());
      // The record files' cut runs only when relocation leaves a free tail, which the discovery run
      // may not (writers can take it back): its points are required all the same, and a retry
      // round makes the state they need (see below).
      for (const name of ['shrink-manifest-written', 'records-truncated', 'vectors-truncated']) {
        required.add(name);
        if (!hitsPerRun.has(name)) hitsPerRun.set(name, 1);
      }
      console.log(
        `[compaction-kill] kill points: ${[...hitsPerRun].map(([n, c]) => `${n}x${c}`).join(', ')}`,
      );
      await finish(list, 'discovery');

      // Named kill points: the first hit of each, and a later hit when there are several.
      const plan: Array<{ name: string; nth: number; retry?: boolean }> = [];
      for (const [name, count] of hitsPerRun) {
        plan.push({ name, nth: 1 });
        if (count > 1) plan.push({ name, nth: r.range(2, count) });
      }
      const killedAt = new Set<string>();
      const notHit: string[] = [];
      for (let i = 0; i < plan.length; i++) {
        const { name, nth, retry } = plan[i] as { name: string; nth: number; retry?: boolean };
        const context = `seed ${seed} round ${round} KILL_AT=${name}:${nth}`;
        // A retry makes the state such a point needs: a free tail in the files, and no writers
        // to take it back while the run goes on.
        const child = await children.start(
          env({
            KILL_AT: `${name}:${nth}`,
            COMPACT_LOOPS: '2',
            ...(retry === true ? { TAIL: '240', CONCURRENCY: '0' } : {}),
          }),
        );
        const exit = await child.exited;
        if (child.lines.includes(`killing ${name} ${nth}`)) {
          assert.equal(exit.signal, 'SIGKILL', `${context}: not killed`);
          killedAt.add(name);
        } else {
          assert.equal(exit.code, 0, `${context}: child failed: ${child.stderr().slice(-3000)}`);
          notHit.push(`${name}:${nth}`);
          // Some points depend on the store's state, which earlier rounds changed (a cut of the
          // record files needs free slots at their tail, and an open that finishes an interrupted
          // cut leaves none; the writers' updates, each to a new slot, may take the slot limit up
          // again while compaction runs): try such a point again later, up to six rounds in all.
          if (!killedAt.has(name) && plan.filter((p) => p.name === name).length < 6)
            plan.push({ name, nth: 1, retry: true });
        }
        // New names can show up after a crash (resume paths): kill there too.
        for (const [n] of killPointHits(child.lines)) {
          if (!hitsPerRun.has(n)) {
            hitsPerRun.set(n, 1);
            plan.push({ name: n, nth: 1 });
          }
        }
        await finish(child, context);
      }

      // Random instants while compaction runs (and sometimes while the store is still opening).
      while (round < MIN_ROUNDS || round < plan.length + 10) {
        const context = `seed ${seed} round ${round} random`;
        const child = await children.start(env({ COMPACT_LOOPS: '2' }));
        if (r.int(8) === 0) {
          await child.waitForLine((l) => l === 'opening');
          await sleep(r.int(30));
        } else {
          const loop = r.int(2);
          await child.waitForLine((l) => l === `compact-start ${loop}`);
          await sleep(r.int(25));
        }
        await child.kill('SIGKILL');
        await finish(child, context);
      }

      // Finally: a compaction in this process must succeed and keep everything.
      await reopenAndVerify(dir, model, `seed ${seed} final`, { compact: true });
      console.log(
        `[compaction-kill] ${round} rounds, ${model.acks} acks; killed at ${killedAt.size}/${hitsPerRun.size} points` +
          (notHit.length > 0 ? `; not reached: ${notHit.join(', ')}` : ''),
      );
      for (const name of required) {
        assert.ok(killedAt.has(name), `kill point ${name} was never reached in its kill rounds`);
      }
    },
  );
});
