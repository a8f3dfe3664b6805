import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type {
  CompactionStats,
  ContentStorageStats,
  IndexStatus,
  ScrubStatus,
  StorageStatus,
  WarmStoreEvents,
} from '../types.js';

/**
 * What the metrics need from a store: its O(1) stats for gauges read at scrape time, and its
 * events for counters and histograms. Structural, so that the core never imports prom-client and
 * tests can feed a plain emitter.
 */
export interface MetricsSource {
  readonly size: number;
  readonly closed: boolean;
  readonly isCompacting: boolean;
  contentStorageStats(): ContentStorageStats;
  /** The disk state, for `warmstore_disk_full`; optional so that plain emitters may leave it out. */
  storageStatus?(): Pick<StorageStatus, 'diskFull'>;
  /** The recall index's state, for `warmstore_index_*`; optional like `storageStatus`. */
  readonly indexStatus?: IndexStatus;
  /** The scrub's progress and totals, for `warmstore_scrub_*`; optional like `storageStatus`. */
  scrubStatus?(): ScrubStatus;
  on<E extends keyof WarmStoreEvents>(event: E, listener: WarmStoreEvents[E]): unknown;
  off<E extends keyof WarmStoreEvents>(event: E, listener: WarmStoreEvents[E]): unknown;
}

export interface MetricsOptions {
  /**
   * Registry to register into. A private one by default so that two stores (or an application's
   * own metrics) in one process never collide on the global registry.
   * @default a new Registry
   */
  registry?: Registry;
  /**
   * Also collect Node's default process metrics (`process_*`, `nodejs_*`) into the registry.
   * Turn off when the application already collects them into the same registry.
   * @default true
   */
  defaultMetrics?: boolean;
  /** Labels added to every series, e.g. `{ store: 'main' }` when one process serves several. @default {} */
  defaultLabels?: Record<string, string>;
}

export type CompactionResult = 'success' | 'failure' | 'aborted' | 'refused';
export type OperationName = 'put' | 'get' | 'delete' | 'recall';

const OPS: readonly OperationName[] = ['put', 'get', 'delete', 'recall'];
const RESULTS: readonly CompactionResult[] = ['success', 'failure', 'aborted', 'refused'];
/** A refused compaction never started, so it has no duration. */
const TIMED_RESULTS: readonly CompactionResult[] = ['success', 'failure', 'aborted'];

// Operations are microseconds to tens of milliseconds (an fsync); pauses are compaction steps,
// aimed at 10 ms or less and never 100 ms; whole compactions are seconds to minutes.
const OP_BUCKETS = [
  0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1,
];
/**
 * Operations kept per operation name before they are handed to prom-client (a pause of ~0.3 ms
 * when a batch is full).
 */
const OP_BATCH = 1024;
const PAUSE_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1];
const DURATION_BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900];

/**
 * Prometheus metrics of one store, prefixed `warmstore_`. Create one per store; call `detach()`
 * before closing the store so the listeners do not keep it reachable.
 */
export class WarmStoreMetrics {
  readonly registry: Registry;
  readonly #store: MetricsSource;
  readonly #detachers: Array<() => void> = [];
  readonly #compactionStartedAt = new Map<number, number>();
  #lastStats: ContentStorageStats | undefined;
  #lastSize = 0;
  #lastScrub: ScrubStatus | undefined;
  /**
   * Durations in seconds of operations not yet counted, by operation. A read by id costs a few
   * microseconds, and prom-client's labelled increment and observation cost ~0.6 us between them
   * (the label set validated, hashed to a string and looked up, per call), so operations are
   * counted in batches: when one is full, and before either metric is read (their `collect`).
   */
  readonly #pendingOps = new Map<string, number[]>();

  readonly operationsTotal: Counter<'op'>;
  readonly operationDuration: Histogram<'op'>;
  readonly compactionsTotal: Counter<'result'>;
  readonly compactionDuration: Histogram<'result'>;
  readonly bytesReclaimedTotal: Counter;
  readonly compactionPause: Histogram;

  constructor(store: MetricsSource, options: MetricsOptions = {}) {
    this.#store = store;
    const registry = options.registry ?? new Registry();
    this.registry = registry;
    if (options.defaultLabels !== undefined) registry.setDefaultLabels(options.defaultLabels);
    const registers = [registry];

    // Gauges are read from the store at scrape time rather than pushed on every write: the stats
    // are O(1) and a scrape every few seconds costs nothing, while a push per put would.
    const stats = (): ContentStorageStats | undefined => this.#readStats();
    new Gauge({
      name: 'warmstore_content_bytes_total',
      help: 'Bytes of content entries in all segments, live and dead.',
      registers,
      collect() {
        const s = stats();
        if (s) this.set(s.totalBytes);
      },
    });
    new Gauge({
      name: 'warmstore_content_live_bytes',
      help: 'Bytes of content entries still referenced by a memory.',
      registers,
      collect() {
        const s = stats();
        if (s) this.set(s.liveBytes);
      },
    });
    new Gauge({
      name: 'warmstore_content_dead_bytes',
      help: 'Bytes of content entries no longer referenced, reclaimable by compaction.',
      registers,
      collect() {
        const s = stats();
        if (s) this.set(s.deadBytes);
      },
    });
    new Gauge({
      name: 'warmstore_fragmentation_ratio',
      help: 'Dead bytes over total bytes of content (0 when empty).',
      registers,
      collect() {
        const s = stats();
        if (s) this.set(s.fragmentationRatio);
      },
    });
    new Gauge({
      name: 'warmstore_content_segments',
      help: 'Number of content segment files.',
      registers,
      collect() {
        const s = stats();
        if (s) this.set(s.segments);
      },
    });
    new Gauge({
      name: 'warmstore_disk_full',
      help: '1 while the disk is full: new content is refused until space returns.',
      registers,
      collect() {
        if (store.closed) return;
        try {
          this.set(store.storageStatus?.().diskFull === true ? 1 : 0);
        } catch {
          // keep the last value
        }
      },
    });
    const index = (): IndexStatus | undefined => (store.closed ? undefined : store.indexStatus);
    const indexGauge = (name: string, help: string, value: (st: IndexStatus) => number): void => {
      new Gauge({
        name,
        help,
        registers,
        collect() {
          const st = index();
          if (st) this.set(value(st));
        },
      });
    };
    indexGauge('warmstore_index_ready', '1 while recall uses the approximate index, else 0.', (st) =>
      st.state === 'ready' ? 1 : 0,
    );
    indexGauge('warmstore_index_building', '1 while the index is rebuilt from the records, else 0.', (st) =>
      st.state === 'building' || st.state === 'loading' ? 1 : 0,
    );
    indexGauge('warmstore_index_vectors', 'Vectors the recall index holds.', (st) => st.indexed);
    indexGauge(
      'warmstore_index_lag',
      'Memories written but not yet in the index (recall scans them exactly).',
      (st) => st.tail,
    );
    indexGauge('warmstore_index_build_progress_ratio', 'Progress of an index rebuild, 0 to 1.', (st) =>
      st.toBuild > 0 ? Math.min(1, st.built / st.toBuild) : st.state === 'ready' ? 1 : 0,
    );
    indexGauge(
      'warmstore_index_searches',
      'Recalls answered through the index since open.',
      (st) => st.searches,
    );
    indexGauge(
      'warmstore_index_resident_vectors',
      'Vectors of the recall index held in memory (the delta since the last merge).',
      (st) => st.resident,
    );
    indexGauge(
      'warmstore_index_merges',
      'Merges of the index delta into a new base file since open.',
      (st) => st.merges,
    );
    indexGauge(
      'warmstore_index_recall_estimate',
      'Sampled recall of the index against exact answers (-1 until sampled); below 0.8 recall scans exactly.',
      (st) => st.recallEstimate ?? -1,
    );
    this.#scrubMetrics(registers);
    const size = (): number => this.#readSize();
    const compacting = (): boolean => !this.#store.closed && this.#store.isCompacting;
    new Gauge({
      name: 'warmstore_memories',
      help: 'Number of memories in the store.',
      registers,
      collect() {
        this.set(size());
      },
    });
    new Gauge({
      name: 'warmstore_compaction_in_progress',
      help: '1 while a compaction runs, else 0.',
      registers,
      collect() {
        this.set(compacting() ? 1 : 0);
      },
    });

    this.operationsTotal = new Counter({
      name: 'warmstore_operations_total',
      help: 'Store operations completed, by operation.',
      labelNames: ['op'],
      registers,
      collect: () => this.#flushOps(),
    });
    this.operationDuration = new Histogram({
      name: 'warmstore_operation_duration_seconds',
      help: 'Duration of store operations, by operation.',
      labelNames: ['op'],
      buckets: OP_BUCKETS,
      registers,
      collect: () => this.#flushOps(),
    });
    this.compactionsTotal = new Counter({
      name: 'warmstore_compactions_total',
      help: 'Compactions ended, by result (refused: not started for lack of memory or free disk).',
      labelNames: ['result'],
      registers,
    });
    this.compactionDuration = new Histogram({
      name: 'warmstore_compaction_duration_seconds',
      help: 'Wall-clock duration of compactions, by result.',
      labelNames: ['result'],
      buckets: DURATION_BUCKETS,
      registers,
    });
    this.bytesReclaimedTotal = new Counter({
      name: 'warmstore_bytes_reclaimed_total',
      help: 'Content bytes reclaimed by compaction.',
      registers,
    });
    this.compactionPause = new Histogram({
      name: 'warmstore_compaction_pause_seconds',
      help: 'Synchronous steps of compaction (time the event loop was held).',
      buckets: PAUSE_BUCKETS,
      registers,
    });

    // Series exist at zero from the first scrape, so that rate() and alerts on "failure > 0" work
    // before the first event rather than seeing a missing series.
    for (const op of OPS) {
      this.operationsTotal.inc({ op }, 0);
      this.operationDuration.zero({ op });
    }
    for (const result of RESULTS) this.compactionsTotal.inc({ result }, 0);
    for (const result of TIMED_RESULTS) this.compactionDuration.zero({ result });

    if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: registry });

    this.#listen('op', (op, durationMs) => {
      let pending = this.#pendingOps.get(op);
      if (pending === undefined) this.#pendingOps.set(op, (pending = []));
      if (pending.push(durationMs / 1000) >= OP_BATCH) this.#flushOps();
    });
    this.#listen('compactionStart', (info) => {
      this.#compactionStartedAt.set(info.runId, performance.now());
    });
    this.#listen('compactionEnd', (result) => {
      this.#onCompactionEnd(result);
    });
    this.#listen('compactionPause', (ms) => {
      this.compactionPause.observe(ms / 1000);
    });
  }

  /** Content type of `metrics()`, for the HTTP response. */
  get contentType(): string {
    return this.registry.contentType;
  }

  /** The Prometheus text exposition of every metric in the registry. */
  metrics(): Promise<string> {
    return this.registry.metrics();
  }

  /** Removes the store listeners. Idempotent. */
  detach(): void {
    for (const d of this.#detachers.splice(0)) d();
    this.#flushOps();
  }

  /** Hands the operations kept since the last batch to their counter and histogram. */
  #flushOps(): void {
    for (const [op, durations] of this.#pendingOps) {
      if (durations.length === 0) continue;
      this.operationsTotal.inc({ op }, durations.length);
      const histogram = this.operationDuration.labels({ op });
      for (const seconds of durations) histogram.observe(seconds);
      durations.length = 0;
    }
  }

  #listen<E extends keyof WarmStoreEvents>(event: E, listener: WarmStoreEvents[E]): void {
    this.#store.on(event, listener);
    this.#detachers.push(() => this.#store.off(event, listener));
  }

  #onCompactionEnd(result: Parameters<WarmStoreEvents['compactionEnd']>[0]): void {
    const outcome: CompactionResult = result.outcome;
    this.compactionsTotal.inc({ result: outcome });
    if (result.outcome === 'success') {
      const s: CompactionStats = result.stats;
      this.bytesReclaimedTotal.inc(Math.max(0, s.bytesReclaimed));
      this.compactionDuration.observe({ result: outcome }, s.durationMs / 1000);
      this.#compactionStartedAt.clear();
      return;
    }
    if (result.outcome === 'refused') return;
    // A failed or aborted run carries no stats; its duration is measured from its start event.
    // The end event does not name the run, and only one compaction runs at a time, so the one
    // start on record is this run's.
    const started = [...this.#compactionStartedAt.values()].pop();
    this.#compactionStartedAt.clear();
    if (started !== undefined) {
      this.compactionDuration.observe({ result: outcome }, (performance.now() - started) / 1000);
    }
  }

  // A closed store refuses calls; the gauges then keep their last values instead of failing the
  // whole scrape.
  #readStats(): ContentStorageStats | undefined {
    if (!this.#store.closed) {
      try {
        this.#lastStats = this.#store.contentStorageStats();
      } catch {
        // keep the last good value
      }
    }
    return this.#lastStats;
  }

  /**
   * The scrub's series, read from `scrubStatus()` at scrape time. Its totals count since the
   * store's open, so the counters are set from them (a counter that restarts with the process, as
   * Prometheus expects).
   */
  #scrubMetrics(registers: Registry[]): void {
    const read = (): ScrubStatus | undefined => this.#readScrub();
    const total = (name: string, help: string, value: (st: ScrubStatus) => number): void => {
      new Counter({
        name,
        help,
        registers,
        collect() {
          const st = read();
          if (!st) return;
          this.reset();
          this.inc(value(st));
        },
      });
    };
    total(
      'warmstore_scrub_slots_checked_total',
      'Memories whose embedding and content the scrub read back and checked.',
      (st) => st.slotsChecked,
    );
    total(
      'warmstore_scrub_bytes_read_total',
      'Bytes the scrub read (embeddings and content).',
      (st) => st.bytesRead,
    );
    total(
      'warmstore_scrub_corrupt_found_total',
      'Damaged records the scrub found (logged, listed in corruptRecords; reads of them fail).',
      (st) => st.corruptFound,
    );
    new Gauge({
      name: 'warmstore_scrub_pass_progress_ratio',
      help: 'Progress of the scrub pass in progress, 0 to 1 (1 between passes once one completed).',
      registers,
      collect() {
        const st = read();
        if (!st) return;
        const done = st.passSlots > 0 ? Math.min(1, st.passSlotsDone / st.passSlots) : 0;
        this.set(st.state === 'running' ? done : st.passesCompleted > 0 ? 1 : 0);
      },
    });
    new Gauge({
      name: 'warmstore_scrub_last_pass_completed_seconds',
      help: 'When the last full scrub pass ended (Unix time; 0 until one has since open).',
      registers,
      collect() {
        const st = read();
        if (st) this.set((st.lastPassCompletedAt ?? 0) / 1000);
      },
    });
  }

  #readScrub(): ScrubStatus | undefined {
    const s = this.#store;
    if (s.scrubStatus === undefined) return undefined;
    try {
      this.#lastScrub = s.scrubStatus();
    } catch {
      // keep the last good value
    }
    return this.#lastScrub;
  }

  #readSize(): number {
    if (!this.#store.closed) {
      try {
        this.#lastSize = this.#store.size;
      } catch {
        // keep the last good value
      }
    }
    return this.#lastSize;
  }
}

/** Creates the metrics of a store. See `WarmStoreMetrics`. */
export function createMetrics(store: MetricsSource, options?: MetricsOptions): WarmStoreMetrics {
  return new WarmStoreMetrics(store, options);
}
