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
  #probing = false;
  /** The last two turns measured, oldest first (see loopBusy). */
  readonly #turns = [0, 0];
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
    this.#probe();
    try {
      return await p;
    } finally {
      this.start();
    }
  }

  /**
   * Whether other work holds the event loop for at least `ms` a turn: the last two turns measured
   * (by a yield, or beside an awaited I/O) both took that long. Two, because one turn may be the
   * run's own I/O callback (a chunk commit's apply) where busy readers hold every turn.
   */
  loopBusy(ms: number): boolean {
    return this.#turns[0]! >= ms && this.#turns[1]! >= ms;
  }

  #noteTurn(ms: number): void {
    this.#turns[0] = this.#turns[1]!;
    this.#turns[1] = ms;
  }

  /**
   * Measures the rest of the loop's turn beside an await (what runs before the check phase: other
   * I/O callbacks, and other work's queued immediates), one probe at a time: how busy the loop is
   * even when the run's own steps are too short to yield.
   */
  #probe(): void {
    if (this.#probing) return;
    this.#probing = true;
    const t = performance.now();
    setImmediate(() => {
      this.#probing = false;
      // Not the steps' budget (FairStep): a probed turn may include the run's own callbacks.
      this.#noteTurn(performance.now() - t);
    });
  }

  /**
   * Whether this stretch has run its budget: a loop over many items checks this before awaiting
   * `maybeYield`, since an await per item (of an async function, even one that does not yield)
   * cost each item a promise and a trip through the microtask queue, and the items' frames lived
   * long enough to be promoted by the collector (20 MB at 300K memories).
   */
  get due(): boolean {
    return performance.now() - this.#last >= this.#step.budgetMs;
  }

  /** Yields to the event loop if this stretch has run for a while. */
  async maybeYield(): Promise<void> {
    if (this.due) {
      await this.io(this.#step.yield());
      this.#noteTurn(this.#step.othersMs);
    }
  }

  /** Counts a pause measured elsewhere (the writer's apply of a chunk). */
  note(ms: number): void {
    if (ms > this.max) this.max = ms;
  }
}
