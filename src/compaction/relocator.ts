import type { MovePlan } from '../records/keyspace.js';
import { TURN_MS } from '../engine/fair-step.js';
import { throwIfAborted } from './failure.js';
import type { CompactorHost } from './host.js';
import type { PauseMeter } from './pause-meter.js';

/**
 * Moves committed in one WAL batch (two fsyncs: the copied vectors, then the WAL). The writer reads
 * each moved vector with a synchronous pread when it lays the batch out (about 1.5 ms for 512
 * from the page cache) and applying a move is an index update: this bounds those stretches. When
 * entries carried the embedding (and applying one re-checksummed it) batches were 128.
 */
export const MOVE_BATCH = 512;
/**
 * Moves in one batch while other work keeps the event loop busy. Each batch waits for about three
 * turns of the loop (the writer's turn, the copied vectors' writes, then their fsync beside the
 * WAL's write; once four), 16-20 ms apiece behind 100 readers, so a 10K-move relocation took ~80
 * turns, over a second, at 512 then. A batch's synchronous stretches grow with it (applying 1024 moves took about
 * 20 ms at 20K memories and 80 at 1M), so it grows only while the others' turn leaves room within
 * TURN_MS for the last batch's apply scaled to the larger batch.
 */
export const MOVE_BATCH_BUSY = 1024;
/** A batch that waited this long for the writer found the loop busy. */
const BUSY_WAIT_MS = 4;

export interface RelocationResult {
  slotsMoved: number;
  /** The slot limit before and after: the record files are cut to `slotsAfter` by the checkpoint. */
  slotsBefore: number;
  slotsAfter: number;
}

/**
 * Relocation, the phase after content compaction: memories in the highest used slots move into
 * the lowest free ones, a batch at a time, each batch one durable group commit whose moves are
 * compare-and-swaps (a memory deleted, rewritten or moved since it was planned stays where it is).
 * Then the slot limit drops to one past the highest slot in use; the checkpoint that ends the run
 * records the new limit in the MANIFEST and cuts the record files there.
 *
 * Writers keep running: a put may take a hole a move wanted (the move is planned again next batch)
 * or grow the store past the limit (the files are cut less). The run stops once a batch moves
 * nothing, or after as many rounds as the store had batches of memories when it began.
 */
export async function relocateSlots(
  host: Pick<
    CompactorHost,
    'slotLimit' | 'planMoves' | 'relocate' | 'settleMoves' | 'shrinkSlots' | 'killPoint'
  >,
  meter: PauseMeter,
  signal: AbortSignal,
): Promise<RelocationResult> {
  const slotsBefore = host.slotLimit();
  const maxRounds = Math.ceil(slotsBefore / MOVE_BATCH) + 1;
  let slotsMoved = 0;
  let batch = MOVE_BATCH;
  for (let round = 0; round < maxRounds; round++) {
    throwIfAborted(signal);
    const plans: MovePlan[] = host.planMoves(batch, round === 0);
    if (plans.length === 0) break;
    let moved: number;
    try {
      const r = await meter.io(host.relocate(plans));
      moved = r.moved;
      meter.note(r.applyMs);
      const busyApplyMs = (r.applyMs / Math.max(1, r.moved)) * MOVE_BATCH_BUSY;
      batch = r.waitMs >= BUSY_WAIT_MS && r.waitMs + busyApplyMs <= TURN_MS ? MOVE_BATCH_BUSY : MOVE_BATCH;
    } finally {
      host.settleMoves(plans);
    }
    slotsMoved += moved;
    host.killPoint('slots-moved');
    if (moved === 0) break;
  }
  throwIfAborted(signal);
  const { after } = await meter.io(host.shrinkSlots());
  host.killPoint('slots-shrunk');
  return { slotsMoved, slotsBefore, slotsAfter: after };
}
