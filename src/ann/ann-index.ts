import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { performance, type EventLoopUtilization } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import type { Keyspace } from '../records/keyspace.js';
import { CHUNK_MASK, CHUNK_SHIFT } from '../records/table.js';
import type { IndexCoverage, IndexFile } from '../format/manifest.js';
import type { IndexStatus, WarmStoreLogger } from '../types.js';
import { RecallQuality } from './quality.js';
import { quantize } from './quantize.js';
import { MERGE_SOURCE, WORKER_SOURCE } from './worker-source.js';

/**
 * Index files start `ann-` and carry a fresh random part each time: a save or merge never replaces
 * a file the MANIFEST names.
 */
export const INDEX_FILE_PREFIX = 'ann-';

export type { IndexCoverage, IndexFile } from '../format/manifest.js';

/** The status of a store with no index (below `annMinMemories`, read-only, or usearch missing). */
export function indexOffStatus(): IndexStatus {
  return { state: 'off', indexed: 0, tail: 0, built: 0, toBuild: 0, searches: 0, resident: 0, merges: 0 };
}

export interface AnnIndexDeps {
  dir: string;
  keyspace: Keyspace;
  /** What the MANIFEST says the file on disk covers; undefined: no usable file, rebuild. */
  coverage: IndexCoverage | undefined;
  logger: WarmStoreLogger | undefined;
  /** State changes and build progress. */
  onStatus(s: IndexStatus): void;
  /** Smallest delta (vectors added plus base vectors removed) worth a merge. @default 16384 */
  mergeMin?: number;
  /** Sampled recall below which recall scans exactly. @default 0.8 */
  minRecall?: number;
}

/** Slots per apply message (and per rebuild step). */
const BATCH = 2048;

/**
 * Apply messages in flight at once: two keep the worker busy while the next one is prepared.
 * Everything else waits as slot numbers in the pending set (a few bytes a slot), never as queued
 * messages carrying vectors, so a write burst that outruns the index costs no memory beyond that set.
 */
const IN_FLIGHT = 2;
/**
 * Written slots not yet sent, from which on the index is catching up with a bulk load rather than
 * following writes: it then adds on every core, as a build does, and merges wait until it has
 * caught up. A merge started while the backlog grows hands back every key written during it (the
 * swap's recorded keys), each then inserted a second time; after the catch-up one merge inserts
 * the smaller part once. The delta meanwhile holds what was added, in memory, as a build's does.
 */
const CATCH_UP_MIN = 4 * BATCH;

/**
 * A build's or catch-up's adds take every core only while the event loop was busy less than this
 * share of the last ELU_WINDOW_MS: a store serving reads or compacting keeps its core. (At 1M, a
 * catch-up on both cores of a 2-core machine beside a compaction under eight readers made the
 * compaction 15.3 s against 10-11 s.)
 */
const WIDE_MAX_ELU = 0.5;
const ELU_WINDOW_MS = 500;
/** Embeddings read from vectors.dat in one pread at most, for consecutive slots of a message. */
const VECTOR_RUN = 128;
/**
 * A build's slot ranges read ahead through the I/O pool, each BATCH slots: the one being sent and
 * the next. Read on the event loop, a message's 6 MiB of embeddings held it 5-10 ms from the page
 * cache and, on a miss, as long as the disk took (one 1M rebuild stalled it 3.3 s, cause unproven).
 */
const PREFETCHES = 2;

/**
 * Embeddings of slots [from, to) as vectors.dat held them when read, and each slot's commit LSN
 * when the read was issued (-1: free then). A slot that holds a memory with the same LSN when its
 * message is made still has those bytes: its vector is written only into a free slot, which takes
 * a new LSN when it is used again (a memory moved out and back brings the same bytes). Any other
 * slot is read again, synchronously, as before.
 */
interface Prefetch {
  from: number;
  to: number;
  rows: Float32Array;
  clsn: Float64Array;
  ready: boolean;
}

/**
 * Keys the index gives a memory whose slot number is taken as a key by a memory moved elsewhere
 * start here: far above any slot, and below 2^53 so they survive a trip through a JS number.
 */
const FRESH_KEY_BASE = 2 ** 40;

/**
 * The 64-bit words of a BigUint64Array as JS numbers (below 2^53), through a 32-bit view: a BigInt
 * per value, a heap object each, made a save of half a million aliases hold the event loop.
 */
const LOW = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1 ? 0 : 1;
function setU64(words: Uint32Array, i: number, v: number): void {
  words[2 * i + LOW] = v >>> 0;
  words[2 * i + 1 - LOW] = Math.floor(v / 2 ** 32);
}
function getU64(words: Uint32Array, i: number): number {
  return words[2 * i + LOW]! + words[2 * i + 1 - LOW]! * 2 ** 32;
}

/** A background checkpoint keeps an index file saved less than this long ago. */
const SAVE_INTERVAL_MS = 60_000;

/**
 * A merge starts once the delta holds this fraction of the base (and at least `mergeMin`): the
 * delta is the resident part, so this bounds the index's memory to about a fifth of what loading
 * it whole would take, while each vector is inserted about twice in all.
 */
const MERGE_RATIO = 0.2;
const MERGE_MIN = 16_384;
/** After a failed merge, the next waits this long. */
const MERGE_RETRY_MS = 60_000;

interface Reply {
  id: number;
  error?: string;
  [k: string]: unknown;
}

/**
 * The main-thread side of the recall index: one worker thread owns a usearch HNSW index whose
 * keys are record slots, and this side sends it what changed, asks it for candidates, and has it
 * saved. Only candidates come back: the caller rescores them from the table and checks each
 * against the id index, so a stale index can lower recall but never return a deleted or replaced
 * memory.
 *
 * The worker keeps most of the index in a viewed base file and what changed since in a small
 * delta in memory (see worker-source.ts); merges write a new base in a thread of their own, asking
 * this side for the current vectors of the delta's slots, so searches never wait for one.
 *
 * Every write's slot joins the pending set after it is applied, and a pump sends pending slots in
 * batches, at most IN_FLIGHT messages at a time; until the worker acknowledges a slot, it is in the
 * tail, which recall scans exactly. The index is `ready` once it tracks every slot but that tail:
 * after loading a saved file and queueing what changed since the LSN it covers, or once a build
 * from the table has had its last batch acknowledged.
 */
export class AnnIndex {
  readonly #d: AnnIndexDeps;
  readonly #worker: Worker;
  readonly #pending = new Map<number, { resolve: (r: Reply) => void; reject: (e: Error) => void }>();
  #next = 0;
  #state: IndexStatus['state'] = 'loading';
  #error: string | undefined;
  /** Slot -> id of the last apply message that upserted it, until acknowledged. */
  readonly #tail = new Map<number, number>();
  /** Slots changed since they were last posted, in the order they changed (not posted yet). */
  readonly #waiting = new Set<number>();
  /**
   * Keys a merge's swap handed back to send again (all written since its snapshot: after a bulk
   * load, most of the store). Turning them into pending slots at once would hold the event loop
   * for a million set inserts, so the pump reads them from here in order; until sent they are in
   * the tail. `#resendAt` is the next unread position in the first array. They stay keys until
   * read, each mapped to the slot its memory has then: a memory moved meanwhile is sent from where
   * it is.
   */
  readonly #resend: Float64Array[] = [];
  #resendAt = 0;
  /**
   * What a save may claim its file covers, kept as writes arrive instead of found by a pass at the
   * save: at most one less than the content LSN of every memory in `#waiting` (as each was added;
   * a slot's LSN only grows), and of every memory behind a key in `#resend` (as its apply was
   * posted while the merge recorded), each reset when its queue empties. A pass over a
   * million-slot backlog (a compaction's moves, a bulk load) held the event loop 38-72 ms at every
   * checkpoint. A bound, not the minimum: while a queue never empties the next open may re-send a
   * little more than it must.
   */
  #waitingFloor = Infinity;
  #resendFloor = Infinity;
  /** The same over the applies posted from a merge's snapshot to its swap; undefined outside one. */
  #recordFloor: number | undefined;
  /** Apply messages the pump has in flight. */
  #inFlight = 0;
  /** A build in progress: slots from `next` up to `end` are still to be sent. */
  #sweep: { next: number; end: number } | undefined;
  /** The build's ranges read ahead, in slot order, the first one covering `#sweep.next`. */
  #prefetches: Prefetch[] = [];
  /**
   * Buffers of BATCH embeddings to fill again: read-ahead ranges once consumed, and apply messages'
   * arrays, which the worker hands back with its reply. Fresh 6 MiB buffers for every message
   * would grow external memory by 12 MiB a batch, which V8 answers with full collections.
   */
  readonly #spare: Float32Array[] = [];
  #lastSaveAt = -Infinity;
  #indexed = 0;
  #built = 0;
  #toBuild = 0;
  /** Whether anything was posted since the last save (else a checkpoint reuses the file). */
  #dirty = false;
  #saved: IndexCoverage | undefined;
  #closed = false;
  #searches = 0;
  #stopping: Promise<void> | undefined;
  #exited = false;
  /** The base file the worker views, if any. */
  #base: IndexFile | undefined;
  /** Vectors in the worker's in-memory delta, as of its last reply. */
  #resident = 0;
  #merges = 0;
  /** Sampled recall of the index's answers (the recaller samples, the planner reads). */
  readonly quality: RecallQuality;
  #merging: Promise<void> | undefined;
  /**
   * The running merge starts from the delta and adds the memories outside it slot by slot: a
   * memory moved across its position meanwhile would be missed, so moves re-add both slots then.
   * A merge from the base takes the delta's memories by key, mapped to slots as it reads them.
   */
  #mergeGrows = false;
  /** The file a running merge writes, and the saved delta it starts from, if so (kept by prune). */
  #mergeOut: string | undefined;
  #mergeStart: string | undefined;
  /**
   * A swap to a merged (or promoted) base is on its way to the worker or back: a save now would
   * capture the new base's empty delta while this side still names the old base and has not yet
   * queued the keys the swap hands back (so its covered LSN would claim writes the files do not
   * hold). Seen once under load in the kill test: 1600 of 4600 memories indexed after reopening.
   */
  #swapping = false;
  #mergeRetryAt = 0;
  /** The event loop's utilization when `#loopIdle` last looked, when, and what it concluded. */
  #elu: EventLoopUtilization = performance.eventLoopUtilization();
  #eluAt = performance.now();
  #eluIdle = false;
  readonly #workerData: Record<string, unknown>;

  readonly #stopFlag: Int32Array;
  /**
   * The index's keys are slot numbers, except where compaction moved a memory: its vector stays
   * in the index under its old key (re-adding it would cost an HNSW insertion, and relocating a
   * million-memory store moves hundreds of thousands), and these two maps re-point it. A slot
   * absent from `#keyOfSlot` has its own number as its key, unless `#slotOfKey` gives that number
   * to another slot; then a write to it takes a fresh key from `#nextKey`. Saved beside the index.
   */
  readonly #keyOfSlot = new Map<number, number>();
  readonly #slotOfKey = new Map<number, number>();
  #nextKey = FRESH_KEY_BASE;

  private constructor(
    deps: AnnIndexDeps,
    worker: Worker,
    stopFlag: Int32Array,
    workerData: Record<string, unknown>,
  ) {
    this.#d = deps;
    this.#worker = worker;
    this.#stopFlag = stopFlag;
    this.#workerData = workerData;
    this.quality = new RecallQuality(deps.minRecall);
    this.#saved = deps.coverage;
    worker.on('message', (r: Reply) => {
      const p = this.#pending.get(r.id);
      this.#pending.delete(r.id);
      if (this.#pending.size === 0 && this.#stopping === undefined) worker.unref();
      if (!p) return;
      if (r.error !== undefined) p.reject(new Error(r.error));
      else p.resolve(r);
    });
    const fail = (err: Error): void => this.#fail(err);
    worker.on('error', fail);
    worker.on('exit', (code) => {
      this.#exited = true;
      if (!this.#closed) fail(new Error(`index worker exited with code ${code}`));
    });
  }

  /** Starts the worker and loads or rebuilds the index; undefined where usearch cannot load. */
  static start(deps: AnnIndexDeps): AnnIndex | undefined {
    let worker: Worker;
    let workerData: Record<string, unknown>;
    // Set at close: the worker then skips the inserts still queued (a rebuild can queue a million)
    // instead of working through them before it can stop, and a merge stops at its next step.
    const stopFlag = new Int32Array(new SharedArrayBuffer(4));
    try {
      const req = createRequire(import.meta.url);
      workerData = {
        stopFlag,
        dim: deps.keyspace.table.dim,
        usearchModule: req.resolve('usearch'),
        crcModule: req.resolve('@node-rs/crc32'),
      };
      worker = new Worker(WORKER_SOURCE, { eval: true, workerData });
    } catch (err) {
      deps.logger?.warn({ err }, 'recall index unavailable: recall scans exactly');
      return undefined;
    }
    // An open store must not keep the process alive by its idle index (the timers are unref'd too).
    worker.unref();
    const ann = new AnnIndex(deps, worker, stopFlag, workerData);
    ann.#load().catch((err: unknown) => ann.#fail(err as Error));
    return ann;
  }

  get ready(): boolean {
    return this.#state === 'ready';
  }

  /** Slots written but not yet acknowledged by the worker (an upper bound: a slot may count twice). */
  get tailSize(): number {
    let n = this.#tail.size + this.#waiting.size - this.#resendAt;
    for (const keys of this.#resend) n += keys.length;
    return n;
  }

  /** Slots written but not yet acknowledged by the worker (some may repeat). */
  *tailSlots(): IterableIterator<number> {
    yield* this.#tail.keys();
    yield* this.#unsent();
  }

  /** Slots waiting to be sent: pending writes, then a swap's keys to send again. */
  *#unsent(): IterableIterator<number> {
    yield* this.#waiting;
    for (let k = 0; k < this.#resend.length; k++) {
      const keys = this.#resend[k]!;
      for (let j = k === 0 ? this.#resendAt : 0; j < keys.length; j++) {
        const slot = this.#slotOf(keys[j]!);
        if (slot !== undefined) yield slot;
      }
    }
  }

  get status(): IndexStatus {
    const s: IndexStatus = {
      state: this.#state,
      indexed: this.#indexed,
      tail: this.tailSize,
      built: this.#built,
      toBuild: this.#toBuild,
      searches: this.#searches,
      resident: this.#resident,
      merges: this.#merges,
    };
    const estimate = this.quality.estimate;
    if (estimate !== undefined) s.recallEstimate = estimate;
    if (this.#error !== undefined) s.error = this.#error;
    return s;
  }

  /**
   * After a commit is applied: memories moved whole (pairs: from, to) keep their place in the index
   * under the key they had, re-pointed to their new slot. Where the index might not hold the
   * memory's current vector under that key (a write to either slot not yet sent, a build or a
   * merge from the delta running), both slots go through `changed` instead. A key a merge handed
   * back is sent again from wherever its memory is by then.
   */
  moved(pairs: readonly number[]): void {
    if (pairs.length === 0 || this.#state === 'failed' || this.#closed) return;
    const simple = this.#state === 'ready' && !this.#sweep && !this.#mergeGrows;
    const slow: number[] = [];
    for (let j = 0; j + 1 < pairs.length; j += 2) {
      const from = pairs[j]!;
      const to = pairs[j + 1]!;
      const key = this.#keyOf(from);
      if (
        !simple ||
        key === undefined ||
        this.#waiting.has(from) ||
        this.#waiting.has(to) ||
        this.#keyOfSlot.has(to)
      ) {
        slow.push(from, to);
        continue;
      }
      // `to` was free and its removal already sent, so it holds no key of its own.
      this.#keyOfSlot.delete(from);
      if (key === to) {
        this.#slotOfKey.delete(key);
        this.#keyOfSlot.delete(to);
      } else {
        this.#keyOfSlot.set(to, key);
        this.#slotOfKey.set(key, to);
      }
      this.#dirty = true;
    }
    this.changed(slow);
  }

  /** The key the memory in `slot` has in the index, if any. */
  #keyOf(slot: number): number | undefined {
    const k = this.#keyOfSlot.get(slot);
    if (k !== undefined) return k;
    return this.#slotOfKey.has(slot) ? undefined : slot;
  }

  /** The slot the index's `key` stands for now, if any. */
  #slotOf(key: number): number | undefined {
    const s = this.#slotOfKey.get(key);
    if (s !== undefined) return s;
    return key < FRESH_KEY_BASE && !this.#keyOfSlot.has(key) ? key : undefined;
  }

  /** Forgets the key of `slot` (its memory left the index), so that the number can serve again. */
  #releaseKey(slot: number): void {
    const k = this.#keyOfSlot.get(slot);
    if (k === undefined) return;
    this.#keyOfSlot.delete(slot);
    this.#slotOfKey.delete(k);
  }

  /** A key for a memory written to `slot`: its own number unless a moved memory holds that. */
  #assignKey(slot: number): number {
    this.#releaseKey(slot);
    if (!this.#slotOfKey.has(slot)) return slot;
    const k = this.#nextKey++;
    this.#keyOfSlot.set(slot, k);
    this.#slotOfKey.set(k, slot);
    return k;
  }

  /**
   * After a commit is applied: each slot's current state goes to the worker, an upsert of its
   * embedding when it holds a memory, a remove when it is free.
   */
  changed(slots: readonly number[]): void {
    if (this.#state === 'failed' || this.#closed || slots.length === 0) return;
    // Re-adding moves a slot to the end: it is sent once, with the state it has when it is sent.
    const table = this.#d.keyspace.table;
    let floor = this.#waitingFloor;
    for (const slot of slots) {
      this.#waiting.delete(slot);
      this.#waiting.add(slot);
      const c = table.chunks[slot >>> CHUNK_SHIFT];
      const i = slot & CHUNK_MASK;
      if (c?.ids[i] !== undefined && c.clsn[i]! - 1 < floor) floor = c.clsn[i]! - 1;
    }
    this.#waitingFloor = floor;
    this.#pump();
  }

  /**
   * Sends what waits, up to IN_FLIGHT messages at a time: changed slots first (recall scans them
   * exactly until they are in), then the next slots of a build. Each reply sends the next batch.
   */
  #pump(): void {
    while (this.#inFlight < IN_FLIGHT && this.#state !== 'failed' && !this.#closed) {
      const slots: number[] = [];
      const sweep = this.#sweep;
      // Writes and a build share the worker: at most half a batch of writes while a build runs,
      // so that a write burst cannot hold the build (and its progress) back until it is over.
      const writes = sweep && sweep.next < sweep.end ? BATCH / 2 : BATCH;
      for (const slot of this.#waiting) {
        this.#waiting.delete(slot);
        slots.push(slot);
        if (slots.length === writes) break;
      }
      if (this.#waiting.size === 0) this.#waitingFloor = Infinity;
      while (slots.length < writes && this.#resend.length > 0) {
        const keys = this.#resend[0]!;
        while (slots.length < writes && this.#resendAt < keys.length) {
          const slot = this.#slotOf(keys[this.#resendAt++]!);
          if (slot !== undefined) slots.push(slot);
        }
        if (this.#resendAt === keys.length) {
          this.#resend.shift();
          this.#resendAt = 0;
        }
      }
      if (this.#resend.length === 0) this.#resendFloor = Infinity;
      const tailed = slots.length;
      const ks = this.#d.keyspace;
      let swept = 0;
      const read: Prefetch[] = [];
      // Free slots of a build need no message: the index started empty. Slots are swept only once
      // their range is read ahead; its read's completion pumps again.
      while (sweep && slots.length < BATCH && sweep.next < sweep.end) {
        const pf = this.#readAhead(sweep);
        if (!pf.ready) break;
        if (read.at(-1) !== pf) read.push(pf);
        while (slots.length < BATCH && sweep.next < pf.to) {
          const slot = sweep.next++;
          if (ks.table.id(slot) !== undefined) {
            slots.push(slot);
            swept++;
          }
        }
        if (sweep.next >= pf.to) this.#prefetches.shift();
      }
      if (sweep && sweep.next < sweep.end) this.#readAhead(sweep);
      if (slots.length === 0) {
        this.#sweepDone();
        return;
      }
      this.#inFlight++;
      const posted = this.#post(slots, tailed, (swept > 0 || this.#catchingUp()) && this.#loopIdle(), read);
      // Copied into the message: a range wholly sent may take the next read.
      for (const pf of read) if (!this.#prefetches.includes(pf)) this.#giveBack(pf.rows);
      void posted.then(
        () => {
          this.#inFlight--;
          if (swept > 0) {
            this.#built += swept;
            this.#d.onStatus(this.status);
          }
          this.#pump();
        },
        () => {
          this.#inFlight--;
        },
      );
    }
  }

  /**
   * The read-ahead range that covers `sweep.next`, with up to PREFETCHES ranges in flight from it
   * on. A range whose read fails is marked ready with no memory's LSN: its slots are read
   * synchronously, and fail the index there if the file is really unreadable.
   */
  #readAhead(sweep: { next: number; end: number }): Prefetch {
    const table = this.#d.keyspace.table;
    const dim = table.dim;
    while (this.#prefetches.length < PREFETCHES) {
      const from = this.#prefetches.at(-1)?.to ?? sweep.next;
      if (from >= sweep.end) break;
      const to = Math.min(sweep.end, from + BATCH);
      const clsn = new Float64Array(to - from);
      for (let slot = from; slot < to; slot++) {
        const c = table.chunks[slot >>> CHUNK_SHIFT];
        const i = slot & CHUNK_MASK;
        // LSN 0 (a memory migrated from a format without one) tells nothing: read again.
        clsn[slot - from] = c?.ids[i] !== undefined && c.clsn[i]! > 0 ? c.clsn[i]! : -1;
      }
      const pf: Prefetch = { from, to, rows: this.#takeRows(clsn.length * dim), clsn, ready: false };
      this.#prefetches.push(pf);
      const bytes = new Uint8Array(pf.rows.buffer, 0, pf.rows.byteLength);
      table.vectors.readVectors(from, to - from, bytes).then(
        () => this.#prefetched(pf),
        () => {
          pf.clsn.fill(-1);
          this.#prefetched(pf);
        },
      );
    }
    // Called with sweep.next < sweep.end: the first range covers it.
    return this.#prefetches[0]!;
  }

  #prefetched(pf: Prefetch): void {
    pf.ready = true;
    if (this.#prefetches.includes(pf)) this.#pump();
  }

  /** An array of `n` floats at byte 0 of a BATCH-embedding buffer (a spare one if there is one). */
  #takeRows(n: number): Float32Array {
    const full = this.#d.keyspace.table.dim * BATCH;
    if (n > full) return new Float32Array(n);
    const buf = this.#spare.pop()?.buffer ?? new ArrayBuffer(full * 4);
    return new Float32Array(buf, 0, n);
  }

  #giveBack(rows: Float32Array): void {
    if (
      this.#spare.length < 2 * PREFETCHES &&
      rows.buffer.byteLength === this.#d.keyspace.table.dim * BATCH * 4
    )
      this.#spare.push(new Float32Array(rows.buffer as ArrayBuffer));
  }

  /**
   * A build is done once its last slot is sent and every message of it acknowledged. With no base
   * yet, the delta it filled becomes the base (saved and viewed): the index leaves memory.
   */
  #sweepDone(): void {
    const sweep = this.#sweep;
    if (!sweep || sweep.next < sweep.end || this.#inFlight > 0) return;
    this.#sweep = undefined;
    this.#prefetches = [];
    if (this.#base !== undefined || this.#resident === 0) {
      this.#setState('ready');
      return;
    }
    // Ready once promoted, so that a store that says its index is ready holds it in a file.
    this.#startMerge();
    void this.#merging?.then(() => {
      if (this.#state === 'building' && !this.#closed) this.#setState('ready');
    });
  }

  /** Whether the event loop was busy under WIDE_MAX_ELU of the last window (see there). */
  #loopIdle(): boolean {
    const now = performance.now();
    if (now - this.#eluAt >= ELU_WINDOW_MS) {
      const elu = performance.eventLoopUtilization();
      this.#eluIdle = performance.eventLoopUtilization(elu, this.#elu).utilization < WIDE_MAX_ELU;
      this.#elu = elu;
      this.#eluAt = now;
    }
    return this.#eluIdle;
  }

  /** A bulk load's backlog: see CATCH_UP_MIN. */
  #catchingUp(): boolean {
    return this.#waiting.size >= CATCH_UP_MIN;
  }

  /** After each apply: a delta past its share of the base gets merged (once caught up). */
  #maybeMerge(r: Reply): void {
    const base = r.base as number;
    const work = (r.delta as number) + (r.dead as number);
    if (this.#state !== 'ready' || this.#merging || this.#closed || this.#catchingUp()) return;
    if (work < (this.#d.mergeMin ?? MERGE_MIN) || work < MERGE_RATIO * base) return;
    if (performance.now() < this.#mergeRetryAt) return;
    this.#startMerge();
  }

  #startMerge(): void {
    if (this.#merging || this.#closed) return;
    const run = this.#base === undefined ? this.#promote() : this.#merge();
    this.#merging = run
      .then(() => {
        this.#merges++;
        this.#d.onStatus(this.status);
      })
      .catch((err: unknown) => {
        if (this.#closed) return;
        this.#mergeRetryAt = performance.now() + MERGE_RETRY_MS;
        this.#d.logger?.warn({ err }, 'recall index merge failed: the delta stays in memory');
      })
      .finally(() => {
        this.#merging = undefined;
        this.#mergeGrows = false;
        this.#mergeOut = undefined;
      });
  }

  /** No base yet: the worker saves its delta as the base and views it, in order with the applies. */
  async #promote(): Promise<void> {
    const file = this.#fileName('base');
    this.#mergeOut = file;
    // As a swap: a save in between would name no base beside the promoted one's empty delta.
    this.#swapping = true;
    try {
      const r = await this.#call({ t: 'promote', file: join(this.#d.dir, file) });
      this.#base = { file, bytes: r.bytes as number, crc: r.crc as number };
      this.#resident = r.delta as number;
      this.#dirty = true;
    } finally {
      this.#swapping = false;
    }
  }

  /**
   * A new base in a thread of its own. The worker's snapshot says which base keys died and which
   * keys the delta holds, and from then on it records every key written. The merge thread starts
   * from the old base, drops those keys and adds the delta's slots with their current vectors; or,
   * when the delta outgrows the base's live part (a bulk load the index is catching up with), it
   * starts from the delta, which the snapshot saved, and adds the memories outside it: either way
   * the smaller part is inserted again. Codes go to the thread a batch at a time. The worker then
   * views the new base with an empty delta, and the slots written since the snapshot are sent
   * again (in the tail until then, so recall still finds them).
   */
  async #merge(): Promise<void> {
    const dir = this.#d.dir;
    const grow = this.#resident >= this.#indexed - this.#resident;
    this.#mergeGrows = grow;
    const start = grow ? this.#fileName('delta') : undefined;
    const file = this.#fileName('base');
    this.#mergeOut = file;
    this.#mergeStart = start;
    // The worker records the keys of every apply it gets after this message; #post does the same.
    this.#recordFloor = Infinity;
    const snap = await this.#call({ t: 'snapshot', deltaFile: start === undefined ? '' : join(dir, start) });
    const deltaKeys = snap.deltaKeys as BigUint64Array;
    let done: Merged | undefined;
    try {
      if (start !== undefined) {
        const inDelta = new Set<number>();
        for (const slot of this.#slotsOfKeys(deltaKeys)) inDelta.add(slot);
        done = await this.#runMerge(
          join(dir, start),
          new BigUint64Array(0),
          this.#slotsOutside(inDelta),
          file,
        );
      } else {
        const dead = snap.dead as BigUint64Array;
        const remove = new BigUint64Array(dead.length + deltaKeys.length);
        remove.set(dead);
        remove.set(deltaKeys, dead.length);
        const load = this.#base ? join(dir, this.#base.file) : '';
        done = await this.#runMerge(load, remove, this.#slotsOfKeys(deltaKeys), file);
      }
    } finally {
      if (!done) {
        this.#recordFloor = undefined;
        await this.#call({ t: 'unrecord' }).catch(() => undefined);
      }
      this.#mergeStart = undefined;
    }
    if (!done) throw new Error('recall index merge stopped');
    this.#d.logger?.info(
      { from: start === undefined ? 'base' : 'delta', added: deltaKeys.length, size: done.size },
      'recall index merged into a new base file',
    );
    this.#swapping = true;
    try {
      const r = await this.#call({ t: 'swap', file: join(dir, file) });
      this.#base = { file, bytes: done.bytes, crc: done.crc };
      this.#resident = r.delta as number;
      this.#dirty = true;
      const changed = r.changed as Float64Array;
      if (changed.length > 0 && !this.#closed && this.#state !== 'failed') {
        this.#resend.push(changed);
        this.#resendFloor = Math.min(this.#resendFloor, this.#recordFloor ?? -1);
        this.#pump();
      }
    } finally {
      this.#swapping = false;
      this.#recordFloor = undefined;
    }
  }

  /** The slots index keys stand for now (keys of memories since deleted stand for none). */
  *#slotsOfKeys(keys: BigUint64Array): Generator<number> {
    for (const key of keys) {
      const slot = this.#slotOf(Number(key));
      if (slot !== undefined) yield slot;
    }
  }

  /** Slots holding a memory outside `skip`, read as the iteration reaches them. */
  *#slotsOutside(skip: ReadonlySet<number>): Generator<number> {
    const ks = this.#d.keyspace;
    for (let slot = 0; slot < ks.slotLimit; slot++) {
      if (!skip.has(slot) && ks.table.id(slot) !== undefined) yield slot;
    }
  }

  #runMerge(
    load: string,
    remove: BigUint64Array,
    source: Iterator<number>,
    file: string,
  ): Promise<Merged | undefined> {
    const worker = new Worker(MERGE_SOURCE, {
      eval: true,
      workerData: { ...this.#workerData, load, remove, out: join(this.#d.dir, file) },
    });
    worker.unref();
    return new Promise((resolve, reject) => {
      let result: Merged | undefined;
      let error: Error | undefined;
      worker.on('message', (m: { t: string; error?: string } & Partial<Merged>) => {
        if (m.t === 'more') {
          const slots: number[] = [];
          let next = source.next();
          while (!next.done) {
            slots.push(next.value);
            if (slots.length === BATCH) break;
            next = source.next();
          }
          const { keys, vectors } = this.#vectorsOf(slots);
          worker.postMessage({ keys, vectors, done: next.done === true }, [vectors.buffer as ArrayBuffer]);
        } else if (m.t === 'done') {
          result = { file: m.file!, bytes: m.bytes!, crc: m.crc!, size: m.size! };
        } else if (m.t === 'failed') {
          error = new Error(m.error);
        }
      });
      worker.on('error', (err) => {
        error = err;
      });
      // Resolved only once the thread is gone: close never leaves it inside a native call.
      worker.on('exit', () => {
        if (error) reject(error);
        else resolve(result);
      });
    });
  }

  /** Current embeddings of the slots that hold a memory (the others are left out: gone from the index). */
  #vectorsOf(slots: readonly number[]): { keys: BigUint64Array; vectors: Float32Array } {
    const ks = this.#d.keyspace;
    const used: number[] = [];
    for (const slot of slots) {
      const c = ks.table.chunks[slot >>> CHUNK_SHIFT];
      const i = slot & CHUNK_MASK;
      if (c?.ids[i] !== undefined && c.norm[i] !== 0) used.push(slot);
    }
    const keys = new BigUint64Array(used.length);
    const vectors = this.#rowsOf(used, []);
    used.forEach((slot, j) => {
      keys[j] = BigInt(this.#keyOf(slot) ?? this.#assignKey(slot));
    });
    return { keys, vectors };
  }

  /**
   * The embeddings of `slots`, as one array for an apply or merge message: copied from the ranges
   * `read` ahead where they are still the slot's (see Prefetch; `slots` then ascending), the others
   * read from vectors.dat now, straight into place, in runs of consecutive slots (one pread per
   * run). Sent as they are, not as int8 codes: the binding turns any other array into float32
   * before its own quantization, so codes made here only cost the event loop (8-10 ms a batch of
   * 2048) and the worker a conversion.
   */
  #rowsOf(slots: readonly number[], read: readonly Prefetch[]): Float32Array {
    const table = this.#d.keyspace.table;
    const dim = table.dim;
    const rows = this.#takeRows(slots.length * dim);
    const bytes = new Uint8Array(rows.buffer, 0, rows.byteLength);
    const rest: number[] = [];
    let p = 0;
    for (let x = 0; x < slots.length; x++) {
      const slot = slots[x]!;
      while (p < read.length && read[p]!.to <= slot) p++;
      const pf = read[p];
      if (pf && pf.from <= slot) {
        const at = slot - pf.from;
        if (pf.clsn[at] === table.chunks[slot >>> CHUNK_SHIFT]!.clsn[slot & CHUNK_MASK]) {
          rows.set(pf.rows.subarray(at * dim, (at + 1) * dim), x * dim);
          continue;
        }
      }
      rest.push(x);
    }
    let j = 0;
    while (j < rest.length) {
      let e = j + 1;
      while (
        e < rest.length &&
        e - j < VECTOR_RUN &&
        rest[e] === rest[e - 1]! + 1 &&
        slots[rest[e]!] === slots[rest[e - 1]!]! + 1
      )
        e++;
      const at = rest[j]! * dim * 4;
      table.vectors.readVectorsSync(slots[rest[j]!]!, e - j, bytes.subarray(at, at + (e - j) * dim * 4));
      j = e;
    }
    return rows;
  }

  #fileName(kind: 'base' | 'delta' | 'dead' | 'alias'): string {
    const ext = kind === 'dead' || kind === 'alias' ? 'keys' : 'usearch';
    return `${INDEX_FILE_PREFIX}${kind}-${Date.now().toString(36)}-${randomBytes(4).toString('hex')}.${ext}`;
  }

  /** The key aliases as saved: the next fresh key, then (slot, key) pairs. */
  #aliasKeys(): BigUint64Array {
    const out = new BigUint64Array(1 + 2 * this.#keyOfSlot.size);
    const words = new Uint32Array(out.buffer);
    setU64(words, 0, this.#nextKey);
    let j = 1;
    for (const [slot, key] of this.#keyOfSlot) {
      setU64(words, j++, slot);
      setU64(words, j++, key);
    }
    return out;
  }

  /** Takes the aliases a loaded index was saved with (see `#aliasKeys`); none: every key is its slot. */
  #loadAliases(raw: BigUint64Array | null | undefined): void {
    this.#keyOfSlot.clear();
    this.#slotOfKey.clear();
    this.#nextKey = FRESH_KEY_BASE;
    if (!raw || raw.length === 0) return;
    const words = new Uint32Array(raw.buffer, raw.byteOffset, raw.length * 2);
    this.#nextKey = getU64(words, 0);
    for (let j = 1; j + 1 < raw.length; j += 2) {
      const slot = getU64(words, j);
      const key = getU64(words, j + 1);
      this.#keyOfSlot.set(slot, key);
      this.#slotOfKey.set(key, slot);
    }
  }

  /** Up to `k` candidate slots near `query` (unfiltered, possibly stale: rescore them). */
  async search(query: Float32Array, k: number): Promise<number[]> {
    const r = await this.#call({ t: 'search', query: quantize(query), k });
    this.#searches++;
    const slots: number[] = [];
    for (const key of r.keys as Float64Array) {
      const slot = this.#slotOf(key);
      if (slot !== undefined) slots.push(slot);
    }
    return slots;
  }

  /**
   * Has the worker save the index as of now, when `lsn` is the last applied LSN (call it where no
   * commit can apply in between). Resolves with what the MANIFEST should record, or undefined when
   * no complete index exists (none recorded: the next open rebuilds).
   */
  save(lsn: number, background = false): Promise<IndexCoverage | undefined> {
    // While loading, the file is still the one the MANIFEST describes; during a swap, the last
    // save stands (its files stay until a MANIFEST stops naming them).
    if (this.#state === 'loading') return Promise.resolve(this.#d.coverage);
    if (this.#swapping) return Promise.resolve(this.#saved ?? this.#d.coverage);
    if (this.#state !== 'ready' && this.#state !== 'building') return Promise.resolve(undefined);
    if (
      !this.#dirty &&
      this.#saved &&
      this.#waiting.size === 0 &&
      this.#resend.length === 0 &&
      !this.#sweep
    ) {
      return Promise.resolve(this.#withRecall({ ...this.#saved, lsn }));
    }
    // The last file stays valid (open catches up from its LSN): only its age makes it worth redoing.
    if (background && this.#saved && performance.now() - this.#lastSaveAt < SAVE_INTERVAL_MS) {
      return Promise.resolve(this.#withRecall({ ...this.#saved }));
    }
    // Slots still pending are not in the file: it covers only LSNs below the oldest of their
    // writes, so the next open sends them again. (Slots in flight are in it: their messages reach
    // the worker before the save.)
    const covered = Math.min(lsn, this.#waitingFloor, this.#resendFloor);
    const builtTo = this.#sweep?.next;
    const base = this.#base;
    this.#dirty = false;
    this.#lastSaveAt = performance.now();
    // Fresh names each time: a crash after the renames but before the MANIFEST names the new files
    // leaves the old ones intact and still named. The base is never rewritten here: a merge
    // writes a new one.
    const dir = this.#d.dir;
    return this.#call({
      t: 'save',
      delta: join(dir, this.#fileName('delta')),
      dead: join(dir, this.#fileName('dead')),
      alias:
        this.#keyOfSlot.size === 0
          ? null
          : { file: join(dir, this.#fileName('alias')), keys: this.#aliasKeys() },
    }).then(
      (r) => {
        const saved: IndexCoverage = {
          file: base?.file ?? '',
          bytes: base?.bytes ?? 0,
          crc: base?.crc ?? 0,
          lsn: covered,
        };
        if (builtTo !== undefined) saved.builtTo = builtTo;
        if (r.delta) saved.delta = r.delta as IndexCoverage['delta'] & object;
        if (r.dead) saved.dead = r.dead as IndexFile;
        if (r.alias) saved.alias = r.alias as IndexFile;
        this.#saved = saved;
        return this.#withRecall({ ...saved });
      },
      (err: unknown) => {
        this.#dirty = true;
        this.#lastSaveAt = -Infinity;
        this.#d.logger?.error({ err }, 'recall index save failed');
        return undefined;
      },
    );
  }

  /**
   * Once the MANIFEST names `kept` (or no file), deletes every other index file and temp file left
   * by earlier saves or interrupted ones.
   */
  prune(kept: IndexCoverage | undefined): void {
    if (this.#state === 'failed' || this.#closed) return;
    const keep = [...indexFilesOf(kept), ...indexFilesOf(this.#saved)];
    // The base the worker views, and what a running merge writes.
    if (this.#base) keep.push(this.#base.file);
    if (this.#mergeOut) keep.push(this.#mergeOut, `${this.#mergeOut}.tmp`);
    if (this.#mergeStart) keep.push(this.#mergeStart, `${this.#mergeStart}.tmp`);
    this.#call({ t: 'prune', dir: this.#d.dir, prefix: INDEX_FILE_PREFIX, keep }).catch((err: unknown) =>
      this.#d.logger?.warn({ err }, 'could not delete old recall index files'),
    );
  }

  /** `cov` with the index's sampled recall as of now (none yet: none recorded). */
  #withRecall(cov: IndexCoverage): IndexCoverage {
    const recall = this.quality.samples;
    if (recall.length > 0) cov.recall = recall;
    else delete cov.recall;
    return cov;
  }

  /** Stops the worker once it has done what was sent before (after the last save). */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    Atomics.store(this.#stopFlag, 0, 1);
    await this.#merging;
    await this.#stop();
    const err = new Error('recall index closed');
    for (const p of this.#pending.values()) p.reject(err);
    this.#pending.clear();
  }

  async #load(): Promise<void> {
    const ks = this.#d.keyspace;
    const cov = this.#d.coverage;
    const r = await this.#call({
      t: 'open',
      dir: this.#d.dir,
      expect: cov !== undefined,
      base: cov?.file ? { file: cov.file, bytes: cov.bytes, crc: cov.crc } : undefined,
      delta: cov?.delta,
      dead: cov?.dead,
      alias: cov?.alias,
    });
    if (this.#closed) return;
    if (r.loaded === true && cov) {
      this.#loadAliases(r.alias as BigUint64Array | null);
      this.quality.seed(cov.recall);
      if (cov.file) this.#base = { file: cov.file, bytes: cov.bytes, crc: cov.crc };
      this.#indexed = r.size as number;
      this.#resident = r.delta as number;
      this.prune(cov);
      this.#lastSaveAt = performance.now();
      // Catch up: slots written after the covered LSN are re-sent, freed slots removed; a build
      // the file was saved in the middle of goes on from where it was.
      const builtTo = Math.min(cov.builtTo ?? ks.slotLimit, ks.slotLimit);
      const changed: number[] = [];
      for (let slot = 0; slot < builtTo; slot++) {
        const c = ks.table.chunks[slot >>> CHUNK_SHIFT]!;
        const i = slot & CHUNK_MASK;
        if (c.ids[i] === undefined || c.clsn[i]! > cov.lsn) changed.push(slot);
      }
      this.changed(changed);
      if (builtTo < ks.slotLimit) {
        this.#d.logger?.info({ builtTo }, 'resuming the recall index build');
        this.#startSweep(builtTo);
      } else {
        this.#setState('ready');
      }
      return;
    }
    this.#saved = undefined;
    this.#loadAliases(null);
    this.prune(undefined);
    this.#d.logger?.info({ reason: r.reason }, 'building the recall index from the table');
    this.#dirty = true;
    this.#startSweep(0);
  }

  /**
   * Adds every memory from slot `from` up, through the pump: a batch at a time, the next one sent
   * when the worker answers, so nothing piles up in its queue. Writes meanwhile go through the pump
   * as usual; a slot sent twice is upserted twice, the later message carrying its current state.
   * Slots written from now on are pending anyway: only those below today's limit are swept.
   */
  #startSweep(from: number): void {
    const ks = this.#d.keyspace;
    let below = 0;
    for (let slot = 0; slot < from; slot++) if (ks.table.id(slot) !== undefined) below++;
    this.#toBuild = ks.size;
    this.#built = below;
    this.#sweep = { next: from, end: ks.slotLimit };
    this.#prefetches = [];
    this.#setState('building');
    this.#pump();
  }

  /**
   * Posts one apply message; the first `tailed` slots are the pending writes recall must scan.
   * `build`: the message carries a build's slots or a catch-up's, which the worker adds on every
   * core.
   */
  #post(slots: number[], tailed: number, build: boolean, read: readonly Prefetch[] = []): Promise<Reply> {
    const ks = this.#d.keyspace;
    const removes: bigint[] = [];
    const keys: bigint[] = [];
    const used: number[] = [];
    // Tailed upserts stay in the tail until acknowledged; a remove needs no scan (a freed slot
    // fails the id-index check anyway).
    const tailUsed: number[] = [];
    // A key repeated within one native add aborts the process: a slot is sent once per message.
    const seen = new Set<number>();
    for (let j = 0; j < slots.length; j++) {
      const slot = slots[j]!;
      if (seen.has(slot)) continue;
      seen.add(slot);
      const c = ks.table.chunks[slot >>> CHUNK_SHIFT];
      const i = slot & CHUNK_MASK;
      // A zero vector has no direction to index (recall falls back to the scan if it is needed).
      const old = this.#keyOf(slot);
      if (c?.ids[i] === undefined || c.norm[i] === 0) {
        if (old !== undefined) removes.push(BigInt(old));
        this.#releaseKey(slot);
      } else {
        used.push(slot);
        if (j < tailed) tailUsed.push(slot);
      }
    }
    used.sort((a, b) => a - b);
    if (this.#recordFloor !== undefined) {
      let floor = this.#recordFloor;
      for (const slot of used) {
        const lsn = ks.table.chunks[slot >>> CHUNK_SHIFT]!.clsn[slot & CHUNK_MASK]! - 1;
        if (lsn < floor) floor = lsn;
      }
      this.#recordFloor = floor;
    }
    const vectors = this.#rowsOf(used, read);
    // Upserts: the worker drops a key it is sent before adding it; an old key that differs goes.
    for (const slot of used) {
      const old = this.#keyOf(slot);
      const key = this.#assignKey(slot);
      if (old !== undefined && old !== key) removes.push(BigInt(old));
      keys.push(BigInt(key));
    }
    this.#dirty = true;
    const id = this.#next;
    for (const slot of tailUsed) this.#tail.set(slot, id);
    const done = this.#call(
      { t: 'apply', removes: BigUint64Array.from(removes), keys: BigUint64Array.from(keys), vectors, build },
      [vectors.buffer as ArrayBuffer],
    ).then((r) => {
      if (r.vectors instanceof Float32Array) this.#giveBack(r.vectors);
      if (r.skipped === true) return r;
      this.#indexed = r.size as number;
      this.#resident = r.delta as number;
      for (const slot of tailUsed) if (this.#tail.get(slot) === id) this.#tail.delete(slot);
      this.#maybeMerge(r);
      return r;
    });
    // A failed apply fails the index (#fail); callers that do not wait must not see a rejection.
    done.catch(() => undefined);
    return done;
  }

  /** Posts `msg` (handing over the buffers in `transfer`) and resolves with the worker's reply. */
  #call(msg: Record<string, unknown>, transfer: ArrayBuffer[] = []): Promise<Reply> {
    if (this.#state === 'failed' || this.#closed) {
      return Promise.reject(new Error(this.#error ?? 'recall index closed'));
    }
    const id = this.#next++;
    // Referenced while a reply is awaited; idle, the index never keeps the process alive.
    if (this.#pending.size === 0) this.#worker.ref();
    return new Promise<Reply>((resolve, reject) => {
      this.#pending.set(id, {
        resolve,
        reject: (err) => {
          if (msg.t === 'apply') this.#fail(err);
          reject(err);
        },
      });
      this.#worker.postMessage({ ...msg, id }, transfer);
    });
  }

  #fail(err: Error): void {
    if (this.#state === 'failed' || this.#closed) return;
    this.#d.logger?.error({ err }, 'recall index failed: recall scans exactly');
    this.#error = err.message;
    this.#tail.clear();
    this.#waiting.clear();
    this.#waitingFloor = Infinity;
    this.#resend.length = 0;
    this.#resendAt = 0;
    this.#resendFloor = Infinity;
    this.#sweep = undefined;
    this.#prefetches = [];
    this.#setState('failed');
    void this.#stop();
    for (const p of this.#pending.values()) p.reject(err);
    this.#pending.clear();
  }

  /**
   * Asks the worker to end after its queue and waits for it to exit. Never `terminate()`: a
   * terminated worker inside a usearch call aborts the process.
   */
  #stop(): Promise<void> {
    this.#stopping ??= new Promise<void>((resolve) => {
      if (this.#exited) {
        resolve();
        return;
      }
      this.#worker.once('exit', () => resolve());
      Atomics.store(this.#stopFlag, 0, 1);
      // Referenced until it exits, so that a close being awaited keeps the process alive.
      this.#worker.ref();
      try {
        this.#worker.postMessage({ t: 'stop' });
      } catch {
        resolve();
      }
    });
    return this.#stopping;
  }

  #setState(s: IndexStatus['state']): void {
    this.#state = s;
    this.#d.onStatus(this.status);
  }
}

/** The file names a coverage record refers to (a backup takes them all). */
export function indexFilesOf(c: IndexCoverage | undefined): string[] {
  if (!c) return [];
  const names = [c.file];
  if (c.delta) names.push(c.delta.file, c.delta.keys.file);
  if (c.dead) names.push(c.dead.file);
  if (c.alias) names.push(c.alias.file);
  return names.filter((n) => n !== '');
}

/** A merge's new base file. */
interface Merged {
  file: string;
  bytes: number;
  crc: number;
  /** Vectors it holds. */
  size: number;
}
