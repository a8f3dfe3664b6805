import type { SegmentSet } from '../content/segment-set.js';
import { ioError } from '../errors.js';
import { writeManifest, type Manifest } from '../format/manifest.js';
import { settleAll } from '../fs/io.js';
import type { WsFile, WsFileSystem } from '../fs/types.js';
import type { Keyspace } from '../records/keyspace.js';
import type { RecordFiles } from '../records/record-files.js';
import { SLOT_HEADER_BYTES, encodeFreeHeader, encodeSlotHeader } from '../records/slot-codec.js';
import { CHUNK_MASK, CHUNK_SLOTS } from '../records/table.js';
import type { WarmStoreLogger } from '../types.js';
import type { WalLog } from '../wal/log.js';
import type { CompactionJournal } from './compaction-journal.js';
import { isNoSpace } from './disk-space.js';
import { FairStep } from './fair-step.js';
import type { Writer } from './writer.js';

/** Headers written in one pwrite at most (180 KB). */
const HEADER_RUN = 512;
/** Clean headers a run may bridge to reach the next dirty one. */
const HEADER_GAP = 16;
/** A checkpoint step yields to the event loop once it has run this long (idle loop). */
const STEP_MS = 4;
/** The longest step when other work keeps the loop busy (see FairStep). */
const BUSY_STEP_MS = 8;
/**
 * Header runs being read back and written at once (180 KB of buffer each). One at a time, each
 * run's read and write each waited for a turn of the event loop: after compacting 20K memories (40
 * runs), 80 of the 200-odd turns the compaction waited for, 16-20 ms each with 100 readers on the
 * loop. More than 8 (32 were tried, on a busy loop) did take fewer turns, but at 1M memories the
 * checkpoint after a compaction writes ~360 MB of headers, and with 32 at once readers'
 * synchronous preads (and the event loop) stalled 165 ms (one run; 48-126 ms with 8, which this
 * machine's disk alone varies by): not taken until measured apart from that noise.
 */
const HEADER_RUNS_IN_FLIGHT = 8;

/**
 * A header run's read-back is synchronous (records.dat is in the page cache: open read every
 * header, and the checkpoint reads back only runs it is about to write) until one takes this
 * long; the rest of that checkpoint reads through the pool. Through the pool, each run waited for
 * two turns of the event loop (its read's, then its write's), 16-20 ms each behind 100 readers.
 */
const SLOW_HEADER_READ_MS = 4;

/** What a checkpoint asks of the recall index. */
export interface IndexSaver {
  /**
   * Saves the index as of `lsn`; resolves with what the MANIFEST records of it, if any. A
   * `background` checkpoint (one a full WAL started) lets the index keep its last file when that
   * is recent: a save rewrites the whole index, and under a steady write load the WAL fills often.
   */
  save(lsn: number, background: boolean): Promise<Manifest['annIndex']>;
  /** The MANIFEST now names this file (or none): older index files can go. */
  committed(saved: Manifest['annIndex']): void;
}

export interface CheckpointerDeps {
  fs: WsFileSystem;
  dir: string;
  keyspace: Keyspace;
  files: RecordFiles;
  segments: SegmentSet;
  wal: WalLog;
  writer: Writer;
  journal: CompactionJournal;
  /** The MANIFEST as open found it; the checkpointer keeps it current. */
  manifest: Manifest;
  walCheckpointBytes: number;
  /**
   * Every state a live checkpoint can write names bytes already durable (synchronous durability:
   * a batch applies once its content and vectors are, a compaction commits once its output is), so
   * header runs may be durable writes, in any order with the fsyncs of what they point at.
   */
  durableState: boolean;
  logger: WarmStoreLogger | undefined;
  /** Gives the disk reserve back when a checkpoint meets a full disk (DiskSpace). */
  onNoSpace(err: unknown): Promise<void>;
  /** Test hook: named points inside a checkpoint that shrinks the record files. */
  killPoint?: ((name: string) => void) | undefined;
}

/**
 * Makes the in-memory records durable in records.dat and vectors.dat, so the WAL they came from
 * can go. Between two write batches it notes the last LSN `L`, fsyncs the WAL and starts the next
 * file, and takes the dirty flags; then it writes every dirty slot's current state (at or after
 * `L`: a checkpoint may record any state at or after its LSN, replay is idempotent), fsyncs what
 * a slot can point at, then the record files, then replaces the MANIFEST (`walFileNo`,
 * `checkpointLsn = L`, the slot count) and deletes the WAL files and empty segments it covers.
 *
 * Checkpoints run one after another (lock 2 in the store's lock order); each takes the writer
 * (lock 3) only through a barrier.
 */
export class Checkpointer {
  readonly #d: CheckpointerDeps;
  #manifest: Manifest;
  #chain: Promise<void> = Promise.resolve();
  #pending = false;
  #saveIndex: IndexSaver | undefined;

  constructor(deps: CheckpointerDeps) {
    this.#d = deps;
    this.#manifest = deps.manifest;
  }

  /** Queues a checkpoint after the one running, if any. */
  checkpoint(background = false): Promise<void> {
    this.#pending = true;
    const run = this.#chain.then(() => this.#withRoom(true, background));
    this.#chain = run.catch(() => undefined);
    return run.finally(() => {
      this.#pending = false;
    });
  }

  /**
   * From now on, each checkpoint also saves the recall index as of its LSN (started at the rotation
   * point, where that LSN is the last applied one) and records it in the MANIFEST. Until then the
   * MANIFEST keeps what it recorded.
   */
  setIndexSaver(saver: IndexSaver): void {
    this.#saveIndex = saver;
  }

  /**
   * Runs `fn` on the checkpoint chain, between two checkpoints: until it settles, records.dat,
   * vectors.dat, the MANIFEST and the WAL files stay as the last checkpoint left them (but for
   * appends to the current WAL), and no segment is deleted. For the backup.
   */
  betweenCheckpoints<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#chain.then(fn);
    this.#chain = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  /**
   * Bytes the next checkpoint adds to records.dat and vectors.dat: the slots in use past what the
   * files hold. At most about the WAL written since the last checkpoint (each put entry carries its
   * embedding), and the old WAL goes only after the checkpoint: a disk needs both at once.
   */
  growthBytes(): number {
    const d = this.#d;
    const missing = d.keyspace.slotLimit - d.files.headerSlots();
    return missing > 0 ? missing * SLOT_HEADER_BYTES : 0;
  }

  /** After a commit: a WAL past its size limit gets a background checkpoint. */
  afterCommit(): void {
    if (this.#d.wal.bytes > this.#d.walCheckpointBytes && !this.#pending) {
      this.checkpoint(true).catch((err: unknown) =>
        this.#d.logger?.error({ err }, 'background checkpoint failed'),
      );
    }
  }

  /**
   * The checkpoint that ends recovery: writes the replayed state into the record files while no
   * writer runs yet (the WAL file it starts from is already the fresh one).
   */
  recoveryCheckpoint(): Promise<void> {
    return this.#withRoom(false, false);
  }

  /**
   * A checkpoint that meets a full disk is run once more in the room the released reserve leaves:
   * it frees space itself (old WAL files, emptied segments) and must not be what stops a full
   * store from recovering. A failed run leaves the previous checkpoint intact, so a rerun is safe.
   */
  async #withRoom(rotateWal: boolean, background: boolean): Promise<void> {
    try {
      await this.#run(rotateWal, background);
    } catch (err) {
      if (!isNoSpace(err)) throw err;
      await this.#d.onNoSpace(err);
      await this.#run(rotateWal, background);
    }
  }

  async #run(rotateWal: boolean, background: boolean): Promise<void> {
    const d = this.#d;
    let lsn = d.writer.lastLsn;
    let slots = d.keyspace.slotLimit;
    let taken: Uint8Array[] = [];
    let oldWal: WsFile | undefined;
    let indexSave: Promise<Manifest['annIndex']> | undefined;
    if (rotateWal) {
      // Rotate between two batches, so every entry up to `lsn` is in the old file.
      try {
        await d.writer.barrier(async () => {
          lsn = d.writer.lastLsn;
          slots = d.keyspace.slotLimit;
          indexSave = this.#saveIndex?.save(lsn, background);
          await d.wal.sync();
          oldWal = await d.wal.start(d.wal.fileNo + 1);
          taken = d.keyspace.table.takeDirty();
        });
      } catch (err) {
        throw ioError('checkpoint', d.wal.path, err);
      }
    } else {
      taken = d.keyspace.table.takeDirty();
    }
    try {
      // Not the recovery checkpoint's: after a kill -9 what it replayed may be in the page cache only.
      await this.#writeSlots(taken, rotateWal && d.durableState);
      // Everything a checkpointed slot may point at must be durable before records.dat is. One
      // after another: with the segments', the WAL's and the record files' fsyncs all at once,
      // readers' synchronous preads stalled 150-165 ms at 1M memories (two runs; 48-126 ms this
      // way): not taken until measured apart from the disk's own noise.
      await d.segments.syncDirty();
      await d.wal.sync();
      await d.files.sync();
      const annIndex = indexSave ? await indexSave : this.#manifest.annIndex;
      this.#manifest = {
        ...this.#manifest,
        walFileNo: d.wal.fileNo,
        checkpointLsn: lsn,
        nextSegmentId: d.segments.nextId,
        activeSegment: d.segments.active.id,
        nextCompactionRunId: d.journal.nextRunId,
        compaction: d.journal.snapshot(),
        slots,
        ...d.keyspace.spaces.snapshot(),
      };
      if (annIndex) this.#manifest.annIndex = annIndex;
      else delete this.#manifest.annIndex;
      await writeManifest(d.fs, d.dir, this.#manifest);
      if (indexSave) this.#saveIndex?.committed(this.#manifest.annIndex);
    } catch (err) {
      d.keyspace.table.restoreDirty(taken);
      // The old WAL file stays on disk (the manifest still points at it); only the handle goes.
      await oldWal?.close().catch(() => undefined);
      throw ioError('checkpoint', d.files.recordsPath, err);
    }
    // The old WAL's close, and the removal of old WAL files and empty segments, go on beside the
    // cut of the record files (different files; either may fail alone, and the next checkpoint
    // does what is left): each await here is a turn of the event loop, and behind busy readers a
    // turn is theirs (16-20 ms). The unlinks stay one after another (see SegmentSet.collect).
    const closing = oldWal?.close().catch(() => undefined);
    const removing = (async () => {
      let names: string[];
      try {
        names = await d.fs.readdir(d.dir);
      } catch (err) {
        throw ioError('readdir', d.dir, err);
      }
      await d.wal.removeOlder(names);
      await d.segments.collect(d.journal.outputs());
    })();
    try {
      await settleAll([this.#shrinkFiles(slots, rotateWal ? d.killPoint : undefined), removing]);
    } finally {
      await closing;
    }
  }

  /**
   * Once the MANIFEST says the files hold `slots` slots (compaction lowered the slot limit), the
   * slots past it are cut off. Open reads only the slots the MANIFEST names, so nothing here has
   * to be atomic; a failed cut is retried by the next checkpoint, and the recovery checkpoint
   * finishes one a crash interrupted (or cuts the free tail open found), without kill points:
   * those belong to the live store. Runs on the checkpoint chain: no other checkpoint writes the
   * files meanwhile, and a later one that needs slots past `slots` again writes them itself.
   */
  async #shrinkFiles(slots: number, killPoint: ((name: string) => void) | undefined): Promise<void> {
    const d = this.#d;
    if (d.files.headerSlots() <= slots && d.files.vectorSlots() <= Math.max(slots, d.keyspace.slotLimit))
      return;
    killPoint?.('shrink-manifest-written');
    // vectors.dat is cut between two write batches, to the slots in use then: puts write their
    // vectors past `slots` as soon as the slot limit grows again.
    const cut = await d.files.truncateTo(
      slots,
      (name) => killPoint?.(name),
      async (cutVectors) => d.writer.barrier(() => cutVectors(Math.max(slots, d.keyspace.slotLimit))),
    );
    d.logger?.debug?.({ slots, bytes: cut }, 'record files cut to the slot limit');
  }

  /**
   * Writes the dirty slots' headers of every chunk in runs (read back first, only the dirty ones
   * re-encoded). Vectors are not written here: a put wrote its vector to vectors.dat before its
   * WAL entry committed. Asynchronous pwrites: once the page
   * cache holds enough dirty pages the kernel throttles writers inside write(2) for 100 ms and
   * more, which a synchronous call would turn into an event-loop stall.
   *
   * `durable`: each run is a durable write. A plain run is dirty page cache until the fsync of
   * records.dat after every run; at 1M memories a compaction's checkpoint left 170-320 MB of
   * headers to that one fsync, which filled the disk's queue for 140-230 ms, and every read behind
   * it (readers' preads, a put batch's writes) waited as long. Durable runs keep at most
   * HEADER_RUNS_IN_FLIGHT of them (1.4 MB) queued.
   */
  async #writeSlots(taken: Uint8Array[], durable: boolean): Promise<void> {
    const d = this.#d;
    const pace = { work: 0, stepStart: performance.now(), step: new FairStep(STEP_MS, BUSY_STEP_MS) };
    // Runs in flight (HEADER_RUNS_IN_FLIGHT), each with a buffer of its own; runs never overlap.
    const spare: Buffer[] = [];
    const inflight = new Set<Promise<void>>();
    let failure: { err: unknown } | undefined;
    let readSync = true;
    const runOne = async (flags: Uint8Array, base: number, first: number, count: number, hbuf: Buffer) => {
      const bytes = count * SLOT_HEADER_BYTES;
      let got: number;
      if (readSync) {
        const t0 = performance.now();
        got = d.files.readHeadersSync(first, count, hbuf);
        if (performance.now() - t0 >= SLOW_HEADER_READ_MS) readSync = false;
      } else {
        got = await d.files.readHeaders(first, count, hbuf);
      }
      hbuf.fill(0, got, bytes);
      for (let x = 0; x < count; x++) {
        if (flags[first - base + x] !== 0) this.#encodeHeader(hbuf, x * SLOT_HEADER_BYTES, first + x);
      }
      await d.files.writeHeaders(first, hbuf.subarray(0, bytes), durable);
      spare.push(hbuf);
    };
    try {
      for (let ci = 0; ci < taken.length && !failure; ci++) {
        const flags = taken[ci]!;
        const base = ci * CHUNK_SLOTS;
        // A clean header's bytes on disk already are its current state (or the evidence of its
        // corruption), and a page-cached read of the run costs less than re-encoding it.
        await this.#writeRuns(
          pace,
          flags,
          base,
          (f) => f !== 0,
          HEADER_GAP,
          HEADER_RUN,
          async (first, count) => {
            while (inflight.size >= HEADER_RUNS_IN_FLIGHT) await Promise.race(inflight);
            if (failure) throw failure.err;
            const hbuf = spare.pop() ?? Buffer.allocUnsafe(HEADER_RUN * SLOT_HEADER_BYTES);
            const p: Promise<void> = runOne(flags, base, first, count, hbuf)
              .catch((err: unknown) => {
                failure ??= { err };
              })
              .finally(() => inflight.delete(p));
            inflight.add(p);
          },
        );
        await pace.step.yield();
        pace.stepStart = performance.now();
      }
    } finally {
      // A failed checkpoint's cleanup must not start while one of its writes is still in flight.
      while (inflight.size > 0) await Promise.all(inflight);
    }
    if (failure) throw failure.err;
  }

  /**
   * Writes runs of one chunk's slots through `write(first, count)`: a run starts at a slot
   * `wanted` says needs writing and bridges at most `gap` slots that do not (one pwrite of a few
   * extra slots beats many scattered small ones, and rewriting an unchanged slot with its current
   * state is harmless). Yields once a step has run its FairStep budget.
   */
  async #writeRuns(
    pace: { work: number; stepStart: number; step: FairStep },
    flags: Uint8Array,
    base: number,
    wanted: (flag: number, slot: number) => boolean,
    gap: number,
    maxRun: number,
    write: (first: number, count: number) => Promise<void>,
  ): Promise<void> {
    let i = 0;
    while (i < CHUNK_SLOTS) {
      if (!wanted(flags[i]!, base + i)) {
        i++;
        continue;
      }
      let last = i;
      for (let e = i + 1; e < CHUNK_SLOTS && e - i < maxRun; e++) {
        if (wanted(flags[e]!, base + e)) last = e;
        else if (e - last > gap) break;
      }
      const n = last - i + 1;
      await write(base + i, n);
      i += n;
      pace.work += n;
      // Time-bounded steps: a write to a busy disk can take far longer than its size suggests.
      if (pace.work >= 64) {
        pace.work = 0;
        if (performance.now() - pace.stepStart > pace.step.budgetMs) {
          await pace.step.yield();
          pace.stepStart = performance.now();
        }
      }
    }
  }

  #encodeHeader(buf: Buffer, pos: number, slot: number): void {
    const ks = this.#d.keyspace;
    if (!ks.isUsed(slot)) {
      encodeFreeHeader(buf, pos);
    } else if (ks.isRawCorrupt(slot)) {
      // Leave a corrupt slot's bytes as found on disk: re-read them for evidence, never mask them.
      this.#d.files.readHeaderSync(slot, buf, pos);
    } else {
      encodeSlotHeader(buf, pos, ks.table.chunk(slot), slot & CHUNK_MASK);
    }
  }
}
