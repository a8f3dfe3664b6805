import { runCompaction, type CompactorHost } from '../compaction/compactor.js';
import type { SegmentSet } from '../content/segment-set.js';
import { WarmStoreError, invalid } from '../errors.js';
import type { WsFileSystem } from '../fs/types.js';
import type { Keyspace } from '../records/keyspace.js';
import type {
  CompactOptions,
  CompactionStats,
  InterruptedCompaction,
  MaintenanceReport,
  WarmStoreLogger,
} from '../types.js';
import type { WalLog } from '../wal/log.js';
import type { Checkpointer } from './checkpointer.js';
import type { CompactionJournal } from './compaction-journal.js';
import { isNoSpace } from './disk-space.js';
import type { StoreEvents } from './events.js';
import {
  decideMaintenance,
  decideStartup,
  type MaintenanceThresholds,
  type StartupPolicy,
} from './maintenance-policy.js';
import type { Writer } from './writer.js';

export interface MaintenanceDeps {
  fs: WsFileSystem;
  dir: string;
  keyspace: Keyspace;
  segments: SegmentSet;
  journal: CompactionJournal;
  wal: WalLog;
  writer: Writer;
  checkpointer: Checkpointer;
  events: StoreEvents;
  logger: WarmStoreLogger | undefined;
  segmentBytes: number;
  memoryBudgetBytes: number;
  minSegmentDeadRatio: number;
  diskHeadroomBytes: number;
  thresholds: MaintenanceThresholds;
  startup: StartupPolicy;
  killPoint: ((name: string) => void) | undefined;
  /** The compaction interrupted by a crash that open found, if any. */
  interrupted: InterruptedCompaction | undefined;
  isOpen(): boolean;
  /** The disk-full state: maintenance compacts any dead bytes then, and reports ENOSPC to it. */
  space: { readonly full: boolean; onNoSpace(err: unknown): Promise<void> };
  /** Bytes records.dat and vectors.dat take now. */
  recordFileBytes(): number;
  /** Bytes one slot takes in records.dat and vectors.dat together. */
  recordSlotBytes: number;
}

/**
 * Compaction runs and the maintenance loop. Holds the compaction slot (lock 1 in the store's lock
 * order: try-acquire only, a second request is refused at once, never queued), decides from the
 * storage stats when to compact (maintenance-policy.ts), and gives the compactor what it may
 * touch of the engine (`CompactorHost`).
 */
export class Maintenance {
  readonly #d: MaintenanceDeps;
  #run: { promise: Promise<CompactionStats>; abort: AbortController } | undefined;
  #interrupted: InterruptedCompaction | undefined;
  #last: MaintenanceReport | undefined;

  constructor(deps: MaintenanceDeps) {
    this.#d = deps;
    this.#interrupted = deps.interrupted;
  }

  get isCompacting(): boolean {
    return this.#run !== undefined;
  }

  get interrupted(): InterruptedCompaction | undefined {
    return this.#interrupted;
  }

  get lastReport(): MaintenanceReport | undefined {
    return this.#last;
  }

  compact(options: CompactOptions = {}): Promise<CompactionStats> {
    if (typeof options !== 'object' || options === null) {
      return Promise.reject(invalid('options', 'must be an object'));
    }
    if (this.#run) {
      return Promise.reject(new WarmStoreError('COMPACTION_IN_PROGRESS', 'a compaction is already running'));
    }
    const abort = new AbortController();
    const onAbort = (): void => abort.abort(options.signal?.reason);
    options.signal?.addEventListener('abort', onAbort, { once: true });
    if (options.signal?.aborted) abort.abort(options.signal.reason);
    const interrupted = this.#interrupted;
    const promise = runCompaction(this.#host(), {
      signal: abort.signal,
      onProgress: options.onProgress,
      force: options.force === true,
      resumeVictims: interrupted?.victimsRemaining ?? [],
      resumed: interrupted !== undefined,
    })
      .then(
        (stats) => {
          this.#interrupted = undefined;
          return stats;
        },
        async (err: unknown) => {
          // The run rolled back; the next one finds the reserve's room (and takes what fits).
          if (isNoSpace(err)) await this.#d.space.onNoSpace(err);
          throw err;
        },
      )
      .finally(() => {
        options.signal?.removeEventListener('abort', onAbort);
        this.#run = undefined;
      });
    this.#run = { promise, abort };
    return promise;
  }

  /** Aborts a running compaction and waits until it has stopped safely. */
  async stopCompaction(reason: Error): Promise<void> {
    const run = this.#run;
    if (!run) return;
    run.abort.abort(reason);
    await run.promise.catch(() => undefined);
  }

  /** Checks fragmentation against the thresholds and compacts if warranted; reports why. */
  async runMaintenance(): Promise<MaintenanceReport> {
    const d = this.#d;
    const stats = d.segments.stats();
    const ks = d.keyspace;
    const decision = decideMaintenance(
      stats,
      d.thresholds,
      this.isCompacting,
      this.#interrupted,
      d.space.full,
      {
        freeSlots: Math.max(0, ks.slotLimit - ks.size - ks.corruptCount),
        slots: ks.slotLimit,
        slotBytes: d.recordSlotBytes,
      },
    );
    const report: MaintenanceReport = {
      at: Date.now(),
      stats,
      thresholds: { ...d.thresholds },
      decision: decision.action === 'busy' ? 'busy' : 'skipped',
      reason: decision.reason,
      checkpointed: false,
    };
    if (this.#interrupted) report.interruptedCompaction = { ...this.#interrupted };
    if (decision.action === 'compact') {
      try {
        report.compaction = await this.compact({ force: decision.force === true });
        report.decision = 'compacted';
      } catch (err) {
        report.decision = WarmStoreError.is(err, 'COMPACTION_IN_PROGRESS') ? 'busy' : 'failed';
        report.error = { code: (err as WarmStoreError).code ?? 'UNKNOWN', message: (err as Error).message };
      }
    }
    if (report.decision === 'compacted') {
      // The compaction ended with a checkpoint of its own.
      report.checkpointed = true;
    } else if (d.isOpen() && d.wal.bytes > 0) {
      await d.checkpointer.checkpoint();
      report.checkpointed = true;
    }
    this.#last = report;
    return report;
  }

  /** Right after open: warn about, or compact, a heavily fragmented store. */
  async startupCheck(): Promise<void> {
    const d = this.#d;
    const stats = d.segments.stats();
    const s = decideStartup(stats, d.startup, this.#interrupted);
    if (s.warn) {
      d.logger?.warn(
        { ...stats, threshold: d.startup.startupWarnRatio },
        'content storage is heavily fragmented',
      );
    }
    if (s.compact === 'off') return;
    const run = this.compact({ force: true });
    if (s.compact === 'blocking') await run;
    else run.catch((err: unknown) => d.logger?.error({ err }, 'startup compaction failed'));
  }

  #host(): CompactorHost {
    const d = this.#d;
    return {
      fs: d.fs,
      dir: d.dir,
      segmentBytes: d.segmentBytes,
      memoryBudgetBytes: d.memoryBudgetBytes,
      minSegmentDeadRatio: d.minSegmentDeadRatio,
      diskHeadroomBytes: d.diskHeadroomBytes,
      checkpointGrowthBytes: () => d.checkpointer.growthBytes(),
      logger: d.logger,
      killPoint: (name) => d.killPoint?.(name),
      table: () => d.keyspace.table,
      slotLimit: () => d.keyspace.slotLimit,
      segments: () => d.segments.asMap(),
      activeId: () => d.segments.active.id,
      stats: () => d.segments.stats(),
      nextRunId: () => d.journal.allocateRunId(),
      createOutputSegment: async () => {
        const seg = await d.segments.createDurable();
        seg.sealed = true;
        seg.pins++;
        return seg;
      },
      sealActive: () =>
        d.writer.barrier(async () => {
          if (d.segments.active.totalBytes > 0) await d.segments.rotate();
        }),
      submit: (entry) => d.writer.submitCompaction(entry),
      checkpoint: () => d.checkpointer.checkpoint(),
      planMoves: (max, first) => d.keyspace.planMoves(max, first),
      relocate: (moves) => d.writer.relocate(moves),
      settleMoves: (moves) => d.keyspace.settleMoves(moves),
      shrinkSlots: async () => {
        let r = { before: 0, after: 0 };
        await d.writer.barrier(() => {
          r = d.keyspace.shrink();
          return Promise.resolve();
        });
        return r;
      },
      recordFileBytes: () => d.recordFileBytes(),
      diskFull: () => d.space.full,
      // Through the store's guarded emit: a listener that throws must not fail the compaction.
      emit: (ev, arg) => (d.events.emit as (e: typeof ev, a: typeof arg) => void)(ev, arg),
    };
  }
}
