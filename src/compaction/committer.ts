import type { Segment } from '../content/segment.js';
import { WalType, type Remap } from '../wal/entries.js';
import type { CompactorHost } from './host.js';
import type { OutputWriter } from './output.js';
import type { PauseMeter } from './pause-meter.js';
import type { ProgressReporter } from './progress.js';

/**
 * Chunk commits of a run, pipelined: while chunk k's output is fsynced and its remaps committed
 * through the WAL, chunk k+1 is already being copied. At most one commit is in flight: chunk k+1's
 * commit starts only once chunk k's settled, so commits stay in order and the copier is never more
 * than one chunk ahead (its staged remaps stay within the budget). The commit in flight always
 * belongs to the current output segment (a segment that fills up waits for its commit before the
 * next one starts).
 */
export class ChunkCommitter {
  #inflight: Promise<void> | undefined;
  #staged: Remap[] = [];
  #recordsMoved = 0;
  readonly #host: Pick<CompactorHost, 'submit' | 'emit' | 'killPoint' | 'segmentBytes'>;
  readonly #meter: PauseMeter;
  readonly #writer: OutputWriter;
  readonly #progress: ProgressReporter;
  readonly #runId: number;

  constructor(
    host: Pick<CompactorHost, 'submit' | 'emit' | 'killPoint' | 'segmentBytes'>,
    meter: PauseMeter,
    writer: OutputWriter,
    progress: ProgressReporter,
    runId: number,
  ) {
    this.#host = host;
    this.#meter = meter;
    this.#writer = writer;
    this.#progress = progress;
    this.#runId = runId;
  }

  /** Remaps waiting for the next chunk commit. */
  get staged(): number {
    return this.#staged.length;
  }

  /** Records moved by the chunks committed so far. */
  get recordsMoved(): number {
    return this.#recordsMoved;
  }

  stage(remap: Remap): void {
    this.#staged.push(remap);
  }

  /**
   * Writes the output buffer, waits for the commit in flight, and starts the commit of everything
   * staged, marking `victimsDone` done. Returns once the commit is under way, or once it settled
   * when the segment is full.
   */
  async flush(victimsDone: number[]): Promise<void> {
    this.#progress.report('commit');
    await this.#writer.write();
    await this.settle();
    const seg = this.#writer.segment;
    const end = this.#writer.writtenEnd;
    const remaps = this.#staged;
    this.#staged = [];
    const task = this.#commit(seg, end, victimsDone, remaps);
    // Awaited later (by the next flush, settle() or drain()); never an unhandled rejection.
    task.catch(() => undefined);
    this.#inflight = task;
    if (seg && end >= this.#host.segmentBytes) await this.settle();
    this.#writer.releaseIfFull(this.#host.segmentBytes);
  }

  /** Waits for the commit in flight; its failure is the run's failure. */
  async settle(): Promise<void> {
    const p = this.#inflight;
    this.#inflight = undefined;
    if (p) await this.#meter.io(p);
  }

  /** Rollback: lets the commit in flight finish, whatever its outcome, before output is truncated. */
  async drain(): Promise<void> {
    await this.#inflight?.catch(() => undefined);
    this.#inflight = undefined;
  }

  async #commit(
    seg: Segment | undefined,
    end: number,
    victimsDone: number[],
    remaps: Remap[],
  ): Promise<void> {
    if (seg && end > this.#writer.committedEnd) {
      await seg.file.sync();
      this.#host.killPoint('copy-synced');
      seg.end = end;
    }
    const r = await this.#host.submit({
      type: WalType.CompactChunk,
      runId: this.#runId,
      outSeg: seg?.id ?? 0,
      outEnd: seg ? end : 0,
      victimsDone,
      remaps,
    });
    this.#meter.note(r.applyMs);
    this.#host.emit('compactionPause', r.applyMs);
    this.#writer.markCommitted(seg, end);
    this.#recordsMoved += r.moved;
    this.#progress.state.recordsMoved = this.#recordsMoved;
    this.#host.killPoint('chunk-committed');
  }
}
