/**
 * Invariant 1 under kill -9: a child process writes with several ops in flight and is SIGKILLed at
 * random instants (during recovery at open, or after a random number of acknowledged ops); the
 * parent reopens the same directory each time and checks every acknowledged write, byte for byte.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { AckModel } from '../helpers/ack-model.js';
import { CRASH_DIM, assertNoChildErrors, reopenAndVerify, runSeed, sleep } from '../helpers/crash.js';
import { Rng } from '../helpers/random.js';
import { PrespawnedChildren } from '../helpers/spawn.js';
import { tempDir } from '../helpers/tmp.js';

const ROUNDS = Number(process.env.WARMSTORE_CRASH_ROUNDS ?? 22);

describe('crash: kill -9 of a concurrent writer', () => {
  it(`keeps every acknowledged write across ${ROUNDS} SIGKILLs`, { timeout: 180_000 }, async (t) => {
    const seed = runSeed('writer-kill');
    const r = new Rng(seed);
    const dir = join(await tempDir(t, 'warmstore-crash-writer-'), 'store');
    const model = new AckModel(CRASH_DIM);
    const children = new PrespawnedChildren('test/crash/child-writer.ts');
    t.after(() => children.dispose());
    let pendingApplied = 0;
    let pendingDropped = 0;
    let killedDuringOpen = 0;
    for (let round = 0; round < ROUNDS; round++) {
      const context = `seed ${seed} round ${round}`;
      const child = await children.start({
        STORE_DIR: dir,
        SEED: String(seed * 1000 + round),
        ROUND: String(round),
        DIM: String(CRASH_DIM),
      });
      // One round in six dies while the store opens (recovering the previous crash); the others
      // after 0..250 acknowledged ops, plus a few ms so the kill lands in the middle of an op.
      if (round > 0 && r.int(6) === 0) {
        await child.waitForLine((l) => l === 'opening');
        await sleep(r.int(40));
        killedDuringOpen++;
      } else {
        await child.waitForLine((l) => l.startsWith('ready'));
        await child.waitForCount((l) => l.startsWith('ack '), r.int(250));
        await sleep(r.int(6));
      }
      const exit = await child.kill('SIGKILL');
      assertNoChildErrors(child, context);
      assert.equal(exit.signal, 'SIGKILL', `${context}: child exited by itself (${exit.code})`);
      model.feedAll(child.lines);
      const check = await reopenAndVerify(dir, model, context, { compact: round % 7 === 6 });
      pendingApplied += check.verify.pendingApplied;
      pendingDropped += check.verify.pendingDropped;
    }
    console.log(
      `[writer-kill] ${model.acks} acks, ${model.begins} begins; in-flight at kill: ${pendingApplied} applied, ${pendingDropped} not; ${killedDuringOpen} kills during open`,
    );
    assert.ok(model.acks > ROUNDS * 20, `too few acknowledged ops to mean anything: ${model.acks}`);
  });
});
