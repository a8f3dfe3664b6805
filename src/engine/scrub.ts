import { setImmediate as yieldImmediate, setTimeout as sleep } from 'node:timers/promises';
import { WarmStoreError } from '../errors.js';
import { crc32c } from '../format/crc.js';
import type { Keyspace } from '../records/keyspace.js';
import type { RecordFiles } from '../records/record-files.js';
import { CHUNK_MASK } from '../records/table.js';
import type { CorruptRecord, ScrubReport, ScrubStatus, WarmStoreLogger } from '../types.js';
import { ContentKind } from '../wal/entries.js';
import type { StoreEvents } from './events.js';
import type { ResolvedScrub } from './options.js';
import type { Reader } from './reader.js';

/** Bytes of embeddings one step reads at most (a run of consecutive slots). */
const STEP_BYTES = 1024 * 1024;
/** Slots one step covers at most. */
const STEP_SLOTS = 256;
/**
 * The first background pass starts at most this long after open: late enough to leave an opening
 * store its first minutes (index catch-up, a cold page cache), soon enough that a store restarted
 * more often than `intervalMs` is still scrubbed.
 */
const FIRST_PASS_MAX_DELAY_MS = 5 * 60_000;

export interface ScrubberDeps {
  keyspace: Keyspace;
  files: RecordFiles;
  /** Reads and checks one slot's content entry through the thread pool. */
  reader: Pick<Reader, 'checkContent'>;
  events: StoreEvents;
  logger: WarmStoreLogger | undefined;
  /** The background scrub's settings; `false`: passes run only when asked (`scrub()`). */
  policy: ResolvedScrub | false;
  /** The read rate of a pass asked for without one when the background scrub is off. */
  defaultBytesPerSecond: number;
}

/** The state of one slot as a step found it before reading it: a read is judged against this. */
interface Seen {
  clsn: Float64Array;
  embCrc: Uint32Array;
  live: Uint8Array;
}

/** A pass in progress. */
interface Run {
  promise: Promise<ScrubReport>;
  abort: AbortController;
}

/**
 * The scrub: walks every slot in order, a run of up to 256 consecutive slots per step, reads the
 * run's embeddings from vectors.dat through the thread pool and checks each memory's against the
 * CRC32C the table holds, then reads and checks its content entry. Nothing on disk is changed: a
 * memory whose bytes fail is marked damaged in the keyspace (reads of it raise
 * CORRUPTION_DETECTED, `corruptRecords` lists it, a put or delete of its id replaces it), logged
 * and reported.
 *
 * Writers go on meanwhile, and a put writes its vector into a free slot before it commits, so a
 * slot freed and reused during a read holds another memory's bytes. A memory is judged only if its
 * slot holds the same version (content LSN, which every put and move changes, and embedding CRC)
 * before and after the read; otherwise it is skipped, and the next pass checks it.
 *
 * Passes are paced to a byte rate and yield between steps; `stop` aborts a pass between two steps,
 * so close waits for one run's read at most, never for a pass.
 */
export class Scrubber {
  readonly #d: ScrubberDeps;
  #run: Run | undefined;
  /** Passes asked for with `scrub()` not yet ended; the background waits for them. */
  #asked = 0;
  #queue: Promise<unknown> = Promise.resolve();
  #timer: NodeJS.Timeout | undefined;
  #nextPassAt: number | undefined;
  #started = false;
  #stopped = false;
  // Progress of the pass in progress, and totals since open.
  #passStartedAt: number | undefined;
  #passSlots = 0;
  #passSlotsDone = 0;
  #lastPassCompletedAt: number | undefined;
  #passesCompleted = 0;
  #slotsChecked = 0;
  #bytesRead = 0;
  #corruptFound = 0;
  #lastError: string | undefined;

  constructor(deps: ScrubberDeps) {
    this.#d = deps;
  }

  /** Starts the background passes (after open; a no-op when the policy is off). */
  start(): void {
    const p = this.#d.policy;
    if (p === false || this.#started || this.#stopped) return;
    this.#started = true;
    this.#schedule(Math.min(p.intervalMs, FIRST_PASS_MAX_DELAY_MS));
  }

  /**
   * One full pass now, at `bytesPerSecond`; resolves with what it found. A background pass in
   * progress gives way (the background starts over an interval after this one); passes asked for
   * together run one after another. Rejects with STORE_CLOSED if the store closes first.
   */
  scrub(bytesPerSecond?: number): Promise<ScrubReport> {
    const p = this.#d.policy;
    const rate = bytesPerSecond ?? (p === false ? this.#d.defaultBytesPerSecond : p.bytesPerSecond);
    this.#asked++;
    const pass = this.#queue.then(async () => {
      this.#cancelTimer();
      if (this.#run) {
        this.#run.abort.abort();
        await this.#run.promise.catch(() => undefined);
      }
      const report = await this.#runPass(rate, false);
      if (!report.completed) throw closedError();
      return report;
    });
    this.#queue = pass.catch(() => undefined);
    return pass.finally(() => {
      this.#asked--;
      if (this.#asked === 0 && this.#started && !this.#stopped && this.#timer === undefined) {
        this.#schedule((this.#d.policy as ResolvedScrub).intervalMs);
      }
    });
  }

  /** Stops the background passes and aborts the pass in progress; resolves once it has stopped. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#cancelTimer();
    const run = this.#run;
    if (!run) return;
    run.abort.abort();
    await run.promise.catch(() => undefined);
  }

  /** Progress and totals since open. O(1). */
  status(): ScrubStatus {
    const running = this.#run !== undefined;
    const st: ScrubStatus = {
      state: running ? 'running' : this.#started && !this.#stopped ? 'idle' : 'off',
      passSlotsDone: running ? this.#passSlotsDone : 0,
      passSlots: running ? this.#passSlots : 0,
      passesCompleted: this.#passesCompleted,
      slotsChecked: this.#slotsChecked,
      bytesRead: this.#bytesRead,
      corruptFound: this.#corruptFound,
    };
    if (running && this.#passStartedAt !== undefined) st.passStartedAt = this.#passStartedAt;
    if (this.#lastPassCompletedAt !== undefined) st.lastPassCompletedAt = this.#lastPassCompletedAt;
    if (!running && this.#nextPassAt !== undefined && !this.#stopped) st.nextPassAt = this.#nextPassAt;
    if (this.#lastError !== undefined) st.lastError = this.#lastError;
    return st;
  }

  #schedule(ms: number): void {
    this.#nextPassAt = Date.now() + ms;
    // Unreferenced: a scrub waiting for its time never keeps the process alive.
    this.#timer = setTimeout(() => this.#background(), ms);
    this.#timer.unref();
  }

  #cancelTimer(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#nextPassAt = undefined;
  }

  #background(): void {
    this.#timer = undefined;
    this.#nextPassAt = undefined;
    const p = this.#d.policy;
    if (this.#stopped || p === false || this.#asked > 0) return;
    this.#runPass(p.bytesPerSecond, true).then(
      (report) => {
        // A pass that gave way to `scrub()` is not rescheduled here: that pass does it when it ends.
        if (report.completed && !this.#stopped && this.#asked === 0) this.#schedule(p.intervalMs);
      },
      (err: unknown) => {
        this.#d.logger?.error({ err }, 'scrub pass failed; the next one runs at its time');
        if (!this.#stopped && this.#asked === 0) this.#schedule(p.intervalMs);
      },
    );
  }

  #runPass(bytesPerSecond: number, background: boolean): Promise<ScrubReport> {
    if (this.#stopped) return Promise.reject(closedError());
    const abort = new AbortController();
    const promise = this.#pass(bytesPerSecond, background, abort.signal).then(
      (report) => {
        this.#run = undefined;
        if (report.completed) {
          this.#passesCompleted++;
          this.#lastPassCompletedAt = Date.now();
          this.#lastError = undefined;
        }
        this.#d.events.emit('scrubEnd', report);
        return report;
      },
      (err: unknown) => {
        this.#run = undefined;
        this.#lastError = (err as Error).message;
        throw err;
      },
    );
    this.#run = { promise, abort };
    return promise;
  }

  async #pass(bytesPerSecond: number, background: boolean, signal: AbortSignal): Promise<ScrubReport> {
    const { keyspace: ks, files } = this.#d;
    const rowBytes = files.vectorBytes;
    const rows = Math.max(1, Math.min(STEP_SLOTS, Math.floor(STEP_BYTES / rowBytes)));
    const buf = Buffer.allocUnsafe(rows * rowBytes);
    const seen: Seen = {
      clsn: new Float64Array(rows),
      embCrc: new Uint32Array(rows),
      live: new Uint8Array(rows),
    };
    const report: ScrubReport = {
      startedAt: Date.now(),
      durationMs: 0,
      completed: false,
      slots: 0,
      checked: 0,
      skipped: 0,
      bytesRead: 0,
      corrupt: [],
    };
    const t0 = performance.now();
    this.#passStartedAt = report.startedAt;
    this.#passSlots = ks.slotLimit;
    this.#passSlotsDone = 0;
    // Pacing: each step's bytes push the earliest start of the next one further out. A step that
    // ran late does not earn a burst afterwards.
    let nextAt = t0;
    for (let first = 0; first < ks.slotLimit; first += rows) {
      if (signal.aborted) break;
      const count = Math.min(rows, ks.slotLimit - first);
      const bytes = await this.#step(first, count, buf, seen, report, signal);
      report.slots += count;
      this.#passSlotsDone = Math.min(first + count, this.#passSlots);
      nextAt = Math.max(nextAt, performance.now()) + (bytes / bytesPerSecond) * 1000;
      const wait = nextAt - performance.now();
      try {
        if (wait >= 1) await sleep(wait, undefined, { signal, ref: !background });
        else await yieldImmediate();
      } catch (err) {
        if (!signal.aborted) throw err;
      }
    }
    report.completed = !signal.aborted;
    report.durationMs = performance.now() - t0;
    this.#passStartedAt = undefined;
    return report;
  }

  /** Checks the memories in slots [first, first + count); returns the bytes it read. */
  async #step(
    first: number,
    count: number,
    buf: Buffer,
    seen: Seen,
    report: ScrubReport,
    signal: AbortSignal,
  ): Promise<number> {
    const { keyspace: ks, files } = this.#d;
    let lo = -1;
    let hi = -1;
    for (let i = 0; i < count; i++) {
      const slot = first + i;
      const live = ks.isUsed(slot) && !ks.isCorrupt(slot);
      seen.live[i] = live ? 1 : 0;
      if (!live) continue;
      const c = ks.table.chunk(slot);
      seen.clsn[i] = c.clsn[slot & CHUNK_MASK]!;
      seen.embCrc[i] = c.embCrc[slot & CHUNK_MASK]!;
      if (lo < 0) lo = i;
      hi = i;
    }
    if (lo < 0) return 0;
    const rowBytes = files.vectorBytes;
    // Only the rows from the first memory to the last: free slots at either end are not read.
    const got = await files.readVectors(first + lo, hi - lo + 1, buf);
    let bytes = got;
    const withContent: number[] = [];
    // One synchronous stretch from here: the slots' state compared below is the state as of the
    // read's completion, and nothing can change it before the marks are made.
    for (let i = lo; i <= hi; i++) {
      if (seen.live[i] === 0) continue;
      const slot = first + i;
      if (!this.#unchanged(slot, seen.clsn[i]!, seen.embCrc[i]!)) {
        report.skipped++;
        continue;
      }
      const at = (i - lo) * rowBytes;
      if (at + rowBytes > got) {
        this.#found(slot, 'embedding missing (vectors.dat ends early)', files.vectorsPath, report);
      } else if (crc32c(buf.subarray(at, at + rowBytes)) !== seen.embCrc[i]) {
        this.#found(slot, 'embedding checksum mismatch', files.vectorsPath, report);
      } else if (ks.table.chunk(slot).kind[slot & CHUNK_MASK] === ContentKind.Present) {
        withContent.push(i);
        continue;
      }
      this.#checked(report);
    }
    for (const i of withContent) {
      // Content entries may be megabytes each: a close does not wait for the rest of the run.
      if (signal.aborted) break;
      bytes += await this.#checkContent(first + i, seen.clsn[i]!, seen.embCrc[i]!, report);
      this.#checked(report);
    }
    this.#bytesRead += bytes;
    report.bytesRead += bytes;
    return bytes;
  }

  /** Reads and checks one memory's content entry; returns the bytes read. */
  async #checkContent(slot: number, clsn: number, embCrc: number, report: ScrubReport): Promise<number> {
    const ks = this.#d.keyspace;
    if (!this.#unchanged(slot, clsn, embCrc)) return 0;
    // Compaction moves content without a new version: the entry checked is the one the slot names
    // when the check starts (checkContent takes it synchronously), so that is what must still hold.
    const c = ks.table.chunk(slot);
    const i = slot & CHUNK_MASK;
    const seg = c.seg[i]!;
    const off = c.off[i]!;
    try {
      return await this.#d.reader.checkContent(slot);
    } catch (err) {
      if (!WarmStoreError.is(err, 'CORRUPTION_DETECTED')) throw err;
      if (this.#unchanged(slot, clsn, embCrc) && c.seg[i] === seg && c.off[i] === off) {
        this.#found(
          slot,
          reasonOf(err),
          typeof err.details.file === 'string' ? err.details.file : '',
          report,
        );
      }
      return 0;
    }
  }

  /** Whether `slot` still holds the memory version seen before the read, not yet held as corrupt. */
  #unchanged(slot: number, clsn: number, embCrc: number): boolean {
    const ks = this.#d.keyspace;
    if (!ks.isUsed(slot) || ks.isCorrupt(slot)) return false;
    const c = ks.table.chunk(slot);
    const i = slot & CHUNK_MASK;
    return c.clsn[i] === clsn && c.embCrc[i] === embCrc;
  }

  #checked(report: ScrubReport): void {
    report.checked++;
    this.#slotsChecked++;
  }

  #found(slot: number, reason: string, file: string, report: ScrubReport): void {
    const ks = this.#d.keyspace;
    const why = `${reason} (found by a scrub)`;
    if (!ks.markDamaged(slot, why, file)) return;
    const rec: CorruptRecord = { slot, id: ks.table.id(slot), reason: why, file };
    report.corrupt.push(rec);
    this.#corruptFound++;
    this.#d.logger?.error(
      { id: rec.id, slot, file, reason },
      'scrub found a damaged record: reads of it raise CORRUPTION_DETECTED until it is put again or deleted',
    );
    this.#d.events.emit('scrubCorruption', rec);
  }
}

/** The status of a store without a scrubber (closed before open finished). */
export function scrubOffStatus(): ScrubStatus {
  return {
    state: 'off',
    passSlotsDone: 0,
    passSlots: 0,
    passesCompleted: 0,
    slotsChecked: 0,
    bytesRead: 0,
    corruptFound: 0,
  };
}

function closedError(): WarmStoreError {
  return new WarmStoreError('STORE_CLOSED', 'the store closed before the scrub pass ended');
}

/** A corruption error's own words, without the prefix and the "(id ... in file)" it adds. */
function reasonOf(err: WarmStoreError): string {
  let m = err.message.replace(/^corruption detected: /, '');
  const d = err.details;
  const where = [d.id !== undefined ? `id ${JSON.stringify(d.id)}` : '', d.file ?? '']
    .filter(Boolean)
    .join(' in ');
  if (where && m.endsWith(` (${where})`)) m = m.slice(0, -` (${where})`.length);
  return m;
}
