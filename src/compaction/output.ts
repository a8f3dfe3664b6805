import type { Segment } from '../content/segment.js';
import { writeFully } from '../fs/io.js';
import type { CompactorHost } from './host.js';
import type { PauseMeter } from './pause-meter.js';

/**
 * The output side of a run: the current output segment and a buffer of copied entries not yet
 * written to it. An offset handed out is the entry's final position in the current segment. The
 * writer holds a pin on its segment until the segment is full, the run ends or it rolls back.
 */
export class OutputWriter {
  #seg: Segment | undefined;
  /** End of the last chunk committed into the current segment: what a rollback truncates to. */
  #committedEnd = 0;
  /** File position where `#buf[0]` goes. */
  #pos = 0;
  #len = 0;
  readonly #buf: Buffer;
  readonly #host: Pick<CompactorHost, 'createOutputSegment' | 'killPoint'>;
  readonly #meter: PauseMeter;

  constructor(
    host: Pick<CompactorHost, 'createOutputSegment' | 'killPoint'>,
    meter: PauseMeter,
    buf: Buffer,
  ) {
    this.#host = host;
    this.#meter = meter;
    this.#buf = buf;
  }

  /** The current output segment, if one is open. */
  get segment(): Segment | undefined {
    return this.#seg;
  }

  get committedEnd(): number {
    return this.#committedEnd;
  }

  /**
   * A chunk commit ending at `end` in `seg` is durable. A commit that carried only done markers
   * had no segment and moves nothing: it may settle after the next segment was opened, and that
   * segment's committed end is its own.
   */
  markCommitted(seg: Segment | undefined, end: number): void {
    if (seg !== undefined && seg === this.#seg) this.#committedEnd = end;
  }

  /** File position after everything written to the current segment (the buffer excluded). */
  get writtenEnd(): number {
    return this.#pos;
  }

  /** Whether `size` more bytes fit in the buffer. */
  fits(size: number): boolean {
    return this.#len + size <= this.#buf.length;
  }

  /** The current output segment, created (durable, pinned) when none is open. */
  async open(): Promise<Segment> {
    if (!this.#seg) {
      this.#seg = await this.#meter.io(this.#host.createOutputSegment());
      this.#pos = this.#seg.end;
      this.#committedEnd = this.#seg.end;
      this.#len = 0;
    }
    return this.#seg;
  }

  /** Writes the buffer to the segment (not synced: the chunk commit syncs). */
  async write(): Promise<void> {
    if (this.#len === 0 || !this.#seg) return;
    await this.#meter.io(writeFully(this.#seg.file, this.#buf.subarray(0, this.#len), this.#pos));
    this.#host.killPoint('copy-written');
    this.#pos += this.#len;
    this.#len = 0;
  }

  /** Buffers an entry (the caller checked `fits` and opened a segment); returns its offset. */
  append(entry: Buffer): number {
    const at = this.#pos + this.#len;
    entry.copy(this.#buf, this.#len);
    this.#len += entry.length;
    return at;
  }

  /** Accounts for `size` bytes the caller wrote itself at `writtenEnd`, with the buffer empty. */
  advance(size: number): void {
    this.#pos += size;
  }

  /** Lets go of a segment that reached `segmentBytes` (its commit has settled), so the next copy opens a new one. */
  releaseIfFull(segmentBytes: number): void {
    if (this.#seg && this.#seg.end >= segmentBytes) this.release();
  }

  /** Lets go of the current segment, keeping what it holds. */
  release(): void {
    if (this.#seg) this.#seg.pins--;
    this.#seg = undefined;
  }

  /** Rollback: cuts uncommitted copies off the current segment; committed chunks stay. */
  async cutUncommitted(): Promise<void> {
    const seg = this.#seg;
    if (!seg) return;
    await seg.file.truncate(this.#committedEnd).catch(() => undefined);
    seg.end = this.#committedEnd;
    seg.pins--;
    this.#seg = undefined;
  }
}
