/**
 * How well the approximate index answers, estimated from samples: now and then a recall is also
 * answered the other way (an exact scan beside an index answer, or the index beside an exact
 * answer the planner chose for low quality), and the share of the exact top k the index found is
 * kept. Data without low-dimensional structure (uniform random vectors) defeats any such index:
 * recall@10 near 0.1 instead of 0.99. Below MIN_RECALL the planner scans exactly, which is the
 * only right answer for such data, and sampling goes on so that a store whose data changes can
 * come back to the index.
 */

/** Below this estimated recall@k the planner prefers the exact scan. */
export const MIN_RECALL = 0.8;
/** Samples the estimate averages (the most recent). */
const WINDOW = 20;
/** An estimate needs this many samples. */
const MIN_SAMPLES = 5;
/**
 * Until the estimate stands, one recall in FAST is sampled; afterwards one in SLOW, and at most one
 * per GAP_MS. A sample beside an index answer is an exact scan, which at a million memories costs
 * about a hundred times the index's answer: sampling must stay rare to stay cheap.
 */
const FAST = 5;
const SLOW = 1000;
const GAP_MS = 10_000;

/** Sampling cadence (tests shorten it). */
export interface SampleCadence {
  /** One recall in this many is sampled once the estimate stands. @default 1000 */
  every?: number;
  /** Least time between two samples once the estimate stands. @default 10000 */
  gapMs?: number;
}

export class RecallQuality {
  readonly #samples: number[] = [];
  readonly #min: number;
  readonly #every: number;
  readonly #gapMs: number;
  #lastAt = -Infinity;

  constructor(minRecall = MIN_RECALL, cadence: SampleCadence = {}) {
    this.#min = minRecall;
    this.#every = cadence.every ?? SLOW;
    this.#gapMs = cadence.gapMs ?? GAP_MS;
  }

  #since = 0;
  #inFlight = false;

  /** The estimated share of the exact top k the index finds, once enough samples exist. */
  get estimate(): number | undefined {
    if (this.#samples.length < MIN_SAMPLES) return undefined;
    let sum = 0;
    for (const s of this.#samples) sum += s;
    return sum / this.#samples.length;
  }

  /** The samples the estimate averages, oldest first (saved with the index). */
  get samples(): number[] {
    return [...this.#samples];
  }

  /**
   * Samples saved with the index, so that a reopened store knows its index's quality without
   * scanning exactly beside its first recalls. Anything but an array of shares in [0, 1] is
   * ignored (the index files are derived data: a bad value costs only the samples).
   */
  seed(saved: unknown): void {
    if (!Array.isArray(saved) || this.#samples.length > 0) return;
    if (!saved.every((x) => typeof x === 'number' && x >= 0 && x <= 1)) return;
    this.#samples.push(...(saved as number[]).slice(-WINDOW));
  }

  /** Whether the index's answers are too poor to use (unknown counts as good enough). */
  get low(): boolean {
    const e = this.estimate;
    return e !== undefined && e < this.#min;
  }

  /**
   * Called once per recall the index could answer; true when this one should also be answered
   * the other way. At most one sample runs at a time: the caller must call `done`.
   */
  wantSample(): boolean {
    this.#since++;
    if (this.#inFlight) return false;
    const settled = this.#samples.length >= MIN_SAMPLES;
    if (this.#since < (settled ? this.#every : FAST) && this.#samples.length > 0) return false;
    const now = performance.now();
    if (settled && now - this.#lastAt < this.#gapMs) return false;
    this.#since = 0;
    this.#lastAt = now;
    this.#inFlight = true;
    return true;
  }

  /** A sample's outcome: how many of the exact top ids the index found, of how many; or none. */
  done(found: number, of: number): void {
    this.#inFlight = false;
    if (of <= 0) return;
    this.#samples.push(found / of);
    if (this.#samples.length > WINDOW) this.#samples.shift();
  }
}

/** How many of `exact`'s ids `approx` holds. */
export function overlap(approx: readonly { id: string }[], exact: readonly { id: string }[]): number {
  const ids = new Set(approx.map((h) => h.id));
  let n = 0;
  for (const h of exact) if (ids.has(h.id)) n++;
  return n;
}
