import { setImmediate as tick } from 'node:timers/promises';

/**
 * How long background work (compaction, checkpoints) runs on the event loop before it yields, so
 * that it gets a fair share of a loop other work keeps busy. A fixed short step is fair on an idle
 * loop, but behind busy readers every yield waits for a whole turn of theirs (16-20 ms with 100
 * readers on the loop), so 2 ms of work per turn gave a compaction a tenth of the thread and made it
 * ten times slower than idle. After each yield the next step may run as long as the others took in
 * that turn times `share`, within [minMs, maxMs], and no longer than what keeps the turn within
 * `turnMs`: idle, steps stay at `minMs`; busy, background work gets about share / (1 + share) of
 * the loop, and where the others alone take most of `turnMs` the step stays short, so the loop's
 * turns (its stall, as a timer sees it) do not grow by more than `minMs` past them.
 */
/** A turn of the event loop the steps try not to lengthen past (the stall goal is 50 ms). */
export const TURN_MS = 40;

export class FairStep {
  readonly #minMs: number;
  readonly #maxMs: number;
  readonly #share: number;
  readonly #turnMs: number;
  #othersMs = 0;

  constructor(minMs: number, maxMs: number, share = 0.5, turnMs = TURN_MS) {
    this.#minMs = minMs;
    this.#maxMs = maxMs;
    this.#share = share;
    this.#turnMs = turnMs;
  }

  /** Synchronous work the current step may still do, in milliseconds. */
  get budgetMs(): number {
    const fair = Math.min(this.#maxMs, this.#othersMs * this.#share, this.#turnMs - this.#othersMs);
    return Math.max(this.#minMs, fair);
  }

  /** What the others held the loop in the last turn observed, in milliseconds. */
  get othersMs(): number {
    return this.#othersMs;
  }

  /** Yields one turn of the event loop and sets the next step's budget from what the others took. */
  async yield(): Promise<void> {
    const t = performance.now();
    await tick();
    this.observe(performance.now() - t);
  }

  /** Sets the next step's budget from a turn measured elsewhere (ms the others held the loop). */
  observe(othersMs: number): void {
    this.#othersMs = othersMs;
  }
}
