import { setImmediate as tick } from 'node:timers/promises';

/** Synchronous work between two yields; the event loop never waits longer than about this. */
const STEP_MS = 2;

/**
 * Measures every synchronous stretch of a compaction: the time between two awaits. Every await of
 * the run goes through `io()` so that no stretch goes unmeasured.
 */
export class PauseMeter {
  max = 0;
  #last = performance.now();
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
    if (performance.now() - this.#last >= STEP_MS) await this.io(tick());
  }

  /** Counts a pause measured elsewhere (the writer's apply of a chunk). */
  note(ms: number): void {
    if (ms > this.max) this.max = ms;
  }
}
