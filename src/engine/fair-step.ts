import { setImmediate as tick } from 'node:timers/promises';

/**
 * How long background work (compaction, checkpoints) runs on the event loop before it yields, so
 * that it gets a fair share of a loop other work keeps busy. A fixed short step is fair on an idle
 * loop, but behind busy readers every yield waits for a whole turn of theirs (16-20 ms with 100
 * readers on the loop), so 2 ms of work per turn gave a compaction a tenth of the thread and made it
 * ten times slower than idle. After each yield the next step may run as long as the others took in
 * that turn times `share`, within [minMs, maxMs]: idle, steps stay at `minMs`; busy, background
 * work gets about share / (1 + share) of the loop, and no step runs past `maxMs`.
 */
export class FairStep {
  readonly #minMs: number;
  readonly #maxMs: number;
  readonly #share: number;
  #budgetMs: number;

  constructor(minMs: number, maxMs: number, share = 0.5) {
    this.#minMs = minMs;
    this.#maxMs = maxMs;
    this.#share = share;
    this.#budgetMs = minMs;
  }

  /** Synchronous work the current step may still do, in milliseconds. */
  get budgetMs(): number {
    return this.#budgetMs;
  }

  /** Yields one turn of the event loop and sets the next step's budget from what the others took. */
  async yield(): Promise<void> {
    const t = performance.now();
    await tick();
    this.observe(performance.now() - t);
  }

  /** Sets the next step's budget from a turn measured elsewhere (ms the others held the loop). */
  observe(othersMs: number): void {
    this.#budgetMs = Math.min(this.#maxMs, Math.max(this.#minMs, othersMs * this.#share));
  }
}
