import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PauseMeter } from '../../../src/compaction/pause-meter.js';
import { MOVE_BATCH, MOVE_BATCH_BUSY, relocateSlots } from '../../../src/compaction/relocator.js';
import type { MovePlan } from '../../../src/records/keyspace.js';

describe('relocation batches', () => {
  it('grow while the writer reports a busy loop with room in its turn, and shrink back', async () => {
    const asked: number[] = [];
    const waits = [0.2, 12, 15, 30, 0.1, 0.2];
    let round = 0;
    let slot = 100_000;
    const host = {
      slotLimit: () => slot,
      planMoves: (max: number): MovePlan[] => {
        asked.push(max);
        if (round >= waits.length) return [];
        return [{ from: --slot, to: round } as unknown as MovePlan];
      },
      relocate: (moves: readonly MovePlan[]) =>
        Promise.resolve({ moved: moves.length, applyMs: 0.02 * moves.length, waitMs: waits[round++]! }),
      settleMoves: () => undefined,
      shrinkSlots: () => Promise.resolve({ before: slot, after: slot }),
      killPoint: () => undefined,
    };
    const r = await relocateSlots(host, new PauseMeter(() => undefined), new AbortController().signal);
    assert.equal(r.slotsMoved, waits.length);
    // After each batch (its apply would take 20 ms at MOVE_BATCH_BUSY): idle, busy, busy, too busy
    // for that stretch, idle, idle.
    assert.deepEqual(asked, [
      MOVE_BATCH,
      MOVE_BATCH,
      MOVE_BATCH_BUSY,
      MOVE_BATCH_BUSY,
      MOVE_BATCH,
      MOVE_BATCH,
      MOVE_BATCH,
    ]);
  });
});
