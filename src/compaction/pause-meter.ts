import { FairStep } from '../engine/fair-step.js';

/** Synchronous work between two yields on an idle event loop. */
const STEP_MS = 2;
/**
 * The longest step when other work keeps the loop busy (see FairStep): a compaction behind 100
 * readers then runs 8 ms in each of their 16-ms turns instead of 2.
 */
const BUSY_STEP_MS = 8;

/**
 * Measures every synchronous stretch of a compaction: the time between two awaits. Every await of
 * the run goes through `io()` so that no stretch goes unmeasured.
 */
export class PauseMeter {
  max = 0;
  #last = performance.now();
  readonly #step = new FairStep(STEP_MS, BUSY_STEP_MS);
  readonly #onPause: (ms: number) => void;

  constructor(onPause: (ms: number) => void) {
    this.#onPause = onPause;
  }

  stop(): void {
    const d = performance.now() - this.#last;
    if (d > this.max) this.max = d;
    this.#onPause(d);
  }

  start(): void {
    this.#last = performance.now();
  }

  async io<T>(p: Promise<T>): Promise<T> {
    this.stop();
    try {
      return await p;
    } finally {
      this.start();
    }
  }

  /** Yields to the event loop if this stretch has run for a while. */
  async maybeYield(): Promise<void> {
    if (performance.now() - this.#last >= this.#step.budgetMs) await this.io(this.#step.yield());
  }

  /** Counts a pause measured elsewhere (the writer's apply of a chunk). */
  note(ms: number): void {
    if (ms > this.max) this.max = ms;
  }
}
