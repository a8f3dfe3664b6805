import type { SegmentSet } from '../content/segment-set.js';
import { encodeEntry, entryBytes, type Segment } from '../content/segment.js';
import { WarmStoreError, ioError } from '../errors.js';
import { HEADER_BYTES } from '../format/header.js';
import { settleAll, writeFully, writeFullyDurable } from '../fs/io.js';
import type { Keyspace, MovePlan } from '../records/keyspace.js';
import type { RecordFiles } from '../records/record-files.js';
import { CHUNK_MASK } from '../records/table.js';
import { metadataOf, type Durability, type WarmStoreLogger } from '../types.js';
import {
  WalType,
  encodeWalEntry,
  walEntrySize,
  type PutEntry,
  type WalEntry,
  type WalEntryInput,
} from '../wal/entries.js';
import type { WalLog } from '../wal/log.js';
import { isNoSpace } from './disk-space.js';
import type { Transitions } from './transitions.js';
import { releaseCopies, type NormalizedRecord } from './validate.js';

/**
 * Vector writes of one batch in flight at once: in practice all of them. Each write that waits for
 * another to finish costs an event-loop turn, and under read load a turn is the readers' too: a
 * relocation batch's 512 scattered pwrites in 8 lanes took 7.7 s to compact 300K half-dead
 * memories with 8 readers, all at once 5.5 s (6.0 s when the WAL carried the vectors).
 */
const VECTOR_WRITES_IN_FLIGHT = 1024;

/**
 * Under synchronous durability a batch whose vectors make at most this many runs writes each run
 * durably (one pool job: written and on stable storage), sparing the fdatasync of vectors.dat and
 * the event-loop turn it waits for. Durable writes in flight together each commit on their own: on
 * this machine's disk 4 of 3 KiB took 0.4 ms against 0.25 ms for 4 writes then one fdatasync, 16
 * took 1.1 against 0.5 ms, 256 took 21 against 3 ms; a turn of an event loop busy with readers
 * costs 16-20 ms. More runs than this (relocation into scattered holes) write, then fdatasync.
 */
const DURABLE_VECTOR_RUNS = 4;

/**
 * Vectors of one batch this many slots apart or closer are written in one pwrite, the slots
 * between rewritten with the bytes they hold; a run with such gaps stops growing at MAX_RUN_SLOTS.
 */
const GAP_FILL_SLOTS = 16;
const MAX_RUN_SLOTS = 1024;

/** A group-commit batch stops growing here, bounding the buffers one flush allocates. */
const MAX_BATCH_BYTES = 32 * 1024 * 1024;

type Op =
  | { t: 'put'; rec: NormalizedRecord; resolve: () => void; reject: (e: unknown) => void }
  | { t: 'delete'; space: string; id: string; resolve: (b: boolean) => void; reject: (e: unknown) => void }
  | {
      t: 'touch';
      space: string;
      id: string;
      at: number;
      resolve: (found: boolean) => void;
      reject: (e: unknown) => void;
    }
  | { t: 'dropSpace'; space: string; resolve: (n: number) => void; reject: (e: unknown) => void }
  | {
      t: 'compact';
      entry: WalEntryInput;
      resolve: (r: CompactionCommit) => void;
      reject: (e: unknown) => void;
    }
  | { t: 'barrier'; fn: () => Promise<void>; resolve: () => void; reject: (e: unknown) => void }
  | {
      t: 'relocate';
      moves: readonly MovePlan[];
      /** Moves the plan found still valid, set when the batch is laid out. */
      accepted: number;
      /** When it was queued, and how long it waited until its batch was laid out. */
      queuedAt: number;
      waitMs: number;
      resolve: (r: RelocateResult) => void;
      reject: (e: unknown) => void;
    };

/** What a relocation batch did. */
export interface RelocateResult {
  moved: number;
  /** How long applying the moves held the event loop. */
  applyMs: number;
  /**
   * How long the batch waited before the writer took it up: on an otherwise idle writer, the rest of
   * the event loop's turn, which says how busy other work keeps the loop.
   */
  waitMs: number;
}

/** What a committed compaction entry did: records moved, and how long applying it held the loop. */
export interface CompactionCommit {
  moved: number;
  applyMs: number;
}

interface PlannedOp {
  /** Undefined for an entry the batch adds itself (a new space's definition). */
  op: Op | undefined;
  entry: WalEntryInput | undefined;
  /** For puts: bytes of content to append; offset assigned when the batch is laid out. */
  content: Buffer | null;
}

/** A vector a batch writes to vectors.dat before its WAL entries: a put's, or a moved memory's. */
interface VectorWrite {
  slot: number;
  bytes: Uint8Array;
}

/**
 * The bytes of `vectors[from..to)` as few views as they allow: copies that lie back to back in
 * memory (puts' copies share slabs in put order, see `copyToSlab` in validate.ts) are one view, so a
 * batch of 1000 is a few dozen pieces of one pwritev.
 */
function adjacentViews(vectors: VectorWrite[], from: number, to: number): Uint8Array[] {
  const views: Uint8Array[] = [];
  let cur = vectors[from]!.bytes;
  let len = cur.byteLength;
  for (let x = from + 1; x < to; x++) {
    const b = vectors[x]!.bytes;
    if (b.buffer === cur.buffer && b.byteOffset === cur.byteOffset + len) {
      len += b.byteLength;
      continue;
    }
    views.push(len === cur.byteLength ? cur : new Uint8Array(cur.buffer, cur.byteOffset, len));
    cur = b;
    len = b.byteLength;
  }
  views.push(len === cur.byteLength ? cur : new Uint8Array(cur.buffer, cur.byteOffset, len));
  return views;
}

/**
 * A batch's content and WAL buffers are kept for the next batch up to these sizes (a batch of 1000
 * puts with ~1 KB of content each takes ~1 MB and ~120 KB). A fresh buffer of a megabyte or more
 * every batch is memory the allocator maps and unmaps (glibc's threshold for that is 128 KiB until
 * frees raise it), and each of its 4 KiB pages faults in on first write (~12 us a page here).
 */
const CONTENT_SCRATCH_BYTES = 4 << 20;
const WAL_SCRATCH_BYTES = 1 << 20;

/**
 * A buffer reused from one batch to the next; a request over `max` gets a buffer of its own. What
 * `take` returns is valid until the next `take`: the writer settles every write of a batch,
 * failed or not, before the next batch begins.
 */
class Scratch {
  readonly #max: number;
  #buf = Buffer.alloc(0);

  constructor(max: number) {
    this.#max = max;
  }

  take(bytes: number): Buffer {
    if (bytes > this.#max) return Buffer.allocUnsafe(bytes);
    if (bytes > this.#buf.length)
      this.#buf = Buffer.allocUnsafeSlow(Math.min(this.#max, Math.max(bytes, 2 * this.#buf.length)));
    return this.#buf.subarray(0, bytes);
  }
}

/** A run of content appended to one segment by one batch. */
interface ContentPart {
  seg: Segment;
  start: number;
  buf: Buffer;
  len: number;
}

/** What the writer knows of the disk's state (the DiskSpace component). */
export interface DiskGate {
  /** A write hit a full disk and space has not returned: new content is refused. */
  readonly full: boolean;
  /** Enters the full state and gives the reserve back; never throws. */
  onNoSpace(err: unknown): Promise<void>;
  /** While full: whether space returned (and writes may resume). */
  recheck(): Promise<boolean>;
  /** The error a put gets while the disk is full. */
  fullError(cause?: unknown): Error;
}

export interface WriterDeps {
  keyspace: Keyspace;
  /** vectors.dat: a put's vector goes to its (free) slot before the WAL entry naming it. */
  files: RecordFiles;
  segments: SegmentSet;
  wal: WalLog;
  transitions: Transitions;
  durability: Durability;
  segmentBytes: number;
  dim: number;
  /** The last LSN handed out (recovery's high-water mark). */
  lastLsn: number;
  logger: WarmStoreLogger | undefined;
  space: DiskGate;
  /** Called after each committed batch (the checkpointer watches the WAL's size). */
  onCommitted(): void;
  /**
   * Called after each applied batch with the slots whose embedding a put wrote or a delete freed,
   * and the memories moved whole from one slot to another (pairs: from, to), which the recall
   * index follows. Nothing can apply between the batch and this call.
   */
  onSlotsChanged?(slots: number[], moved: number[]): void;
}

/**
 * The writer: a queue of mutations committed in groups. Everything issued in one tick shares one
 * commit. A batch is laid out (slots, content offsets, LSNs), written and made durable (content,
 * vectors and WAL entries at once under synchronous durability, recovery dropping a last batch
 * whose bytes did not land; the data before the WAL under relaxed durability), and only then
 * applied to memory, in order, without awaiting. A batch that fails at any step changes nothing
 * in memory: slots go back, both files are cut back, and every op of it rejects.
 *
 * Barriers run a function between two batches, with nothing else in flight (checkpoint rotation,
 * sealing the active segment).
 */
export class Writer {
  readonly #d: WriterDeps;
  #queue: Op[] = [];
  #flushing = false;
  #lastLsn: number;
  /** When the batch being applied began applying (a relocation batch reports its apply time). */
  #applyStart = 0;
  /** Ops already put back once after a full disk: a second ENOSPC rejects them. */
  readonly #retried = new WeakSet<Op>();
  /** A batch's content entries, then its WAL entries (one batch is in flight at a time). */
  readonly #contentScratch = new Scratch(CONTENT_SCRATCH_BYTES);
  readonly #walScratch = new Scratch(WAL_SCRATCH_BYTES);

  constructor(deps: WriterDeps) {
    this.#d = deps;
    this.#lastLsn = deps.lastLsn;
  }

  /** The LSN of the last committed (or failed: LSNs are never reused) entry. */
  get lastLsn(): number {
    return this.#lastLsn;
  }

  put(rec: NormalizedRecord): Promise<void> {
    // The op is made in the executor itself: no closure to make it, as the other ops have (a put
    // is the op issued a thousand times a batch).
    return new Promise<void>((resolve, reject) => this.#push({ t: 'put', rec, resolve, reject }));
  }

  delete(space: string, id: string): Promise<boolean> {
    return this.#enqueue<boolean>((resolve, reject) => ({ t: 'delete', space, id, resolve, reject }));
  }

  /** Bumps lastAccess/accessCount; resolves false if the id is not there. */
  touch(space: string, id: string, at: number): Promise<boolean> {
    return this.#enqueue<boolean>((resolve, reject) => ({ t: 'touch', space, id, at, resolve, reject }));
  }

  /** Drops a memory space (one WAL entry); resolves with how many memories it held. */
  dropSpace(space: string): Promise<number> {
    return this.#enqueue<number>((resolve, reject) => ({ t: 'dropSpace', space, resolve, reject }));
  }

  /** Commits a compaction WAL entry; resolves once it is durable and applied. */
  submitCompaction(entry: WalEntryInput): Promise<CompactionCommit> {
    return this.#enqueue<CompactionCommit>((resolve, reject) => ({ t: 'compact', entry, resolve, reject }));
  }

  /**
   * Commits slot moves (compaction's relocation) in a batch of their own, so each is checked
   * against the state no other op of the batch can change: a move whose memory was deleted,
   * rewritten or moved since it was planned, or whose target is no longer free, is left out of
   * the WAL. Resolves with how many moved, how long applying them held the event loop, and how
   * long the batch waited for the writer.
   */
  relocate(moves: readonly MovePlan[]): Promise<RelocateResult> {
    return this.#enqueue<RelocateResult>((resolve, reject) => ({
      t: 'relocate',
      moves,
      accepted: 0,
      queuedAt: performance.now(),
      waitMs: 0,
      resolve,
      reject,
    }));
  }

  /**
   * fsyncs every segment, vectors.dat and the WAL between two batches (relaxed durability's
   * timer); the slots freed before it may then be reused.
   */
  syncAll(): Promise<void> {
    return this.barrier(async () => {
      await Promise.all([this.#d.segments.syncDirty(), this.#d.files.syncVectors()]);
      await this.#d.wal.sync();
      this.#d.keyspace.releaseFrees();
    });
  }

  barrier(fn: () => Promise<void>): Promise<void> {
    return this.#enqueue<void>((resolve, reject) => ({ t: 'barrier', fn, resolve, reject }));
  }

  #enqueue<T>(make: (resolve: (v: T) => void, reject: (e: unknown) => void) => Op): Promise<T> {
    return new Promise<T>((resolve, reject) => this.#push(make(resolve, reject)));
  }

  #push(op: Op): void {
    this.#queue.push(op);
    if (!this.#flushing) {
      this.#flushing = true;
      // One macrotask of delay lets every mutation issued in this tick share the fsync. Compaction's
      // entries and barriers have nothing to share and start at once: behind busy readers that
      // delay is a whole turn of the loop (16-20 ms). Slot moves keep it: how long they waited
      // for it says how busy the loop is, which sizes the next batch (see relocateSlots).
      if (op.t === 'compact' || op.t === 'barrier') queueMicrotask(() => void this.#drain());
      else setImmediate(() => void this.#drain());
    }
  }

  async #drain(): Promise<void> {
    try {
      while (this.#queue.length > 0) {
        const first = this.#queue[0]!;
        if (first.t === 'barrier') {
          this.#queue.shift();
          try {
            await first.fn();
            first.resolve();
          } catch (err) {
            first.reject(err);
          }
          continue;
        }
        let n = 0;
        let bytes = 0;
        while (n < this.#queue.length && this.#queue[n]!.t !== 'barrier' && bytes < MAX_BATCH_BYTES) {
          const op = this.#queue[n]!;
          // Slot moves go alone (see relocate()).
          if (op.t === 'relocate') {
            if (n === 0) n = 1;
            break;
          }
          bytes += op.t === 'put' ? (op.rec.content?.length ?? 0) + this.#d.dim * 4 + 128 : 64;
          n++;
        }
        const batch = this.#queue.splice(0, n);
        try {
          await this.#commit(batch);
          // Every write of the batch has settled: its puts' copies may be reused.
          for (const op of batch) if (op.t === 'put') releaseCopies(op.rec);
        } catch (err) {
          // #commit settles every op itself; reaching here is a bug, and still no op may hang.
          this.#d.logger?.error({ err }, 'write batch failed unexpectedly');
          for (const op of batch) op.reject(err);
        }
      }
    } finally {
      this.#flushing = false;
    }
    if (this.#queue.length > 0) {
      this.#flushing = true;
      setImmediate(() => void this.#drain());
    }
  }

  /**
   * Assigns slots and builds the WAL entries; touches no shared state but slot and space-number
   * allocation. Ops see the effects of earlier ops of the same batch (an overlay of ids and spaces).
   */
  #plan(
    batch: Op[],
    allocated: number[],
    vectors: VectorWrite[],
  ): { planned: PlannedOp[]; contentBytes: number } {
    const ks = this.#d.keyspace;
    /** Slots this batch gives ids (-1: deleted), by space number, then id. */
    const overlay = new Map<number, Map<string, number>>();
    /** Spaces this batch defines (name -> number) or drops (name -> -1). */
    const spaceOverlay = new Map<string, number>();
    // Only a touch reads a slot's access count before the batch applies; only then are puts' kept.
    const access = batch.some((op) => op.t === 'touch') ? new Map<number, number>() : undefined;
    const planned: PlannedOp[] = [];
    let contentBytes = 0;
    const spaceOf = (name: string): number => {
      const o = spaceOverlay.get(name);
      return o !== undefined ? o : (ks.spaces.idOf(name) ?? -1);
    };
    const slotOf = (space: number, id: string): number => {
      if (space < 0) return -1;
      const o = overlay.get(space)?.get(id);
      return o !== undefined ? o : (ks.lookup(space, id) ?? -1);
    };
    const setSlot = (space: number, id: string, slot: number): void => {
      let m = overlay.get(space);
      if (m === undefined) overlay.set(space, (m = new Map()));
      m.set(id, slot);
    };
    for (const op of batch) {
      switch (op.t) {
        case 'put': {
          const r = op.rec;
          let space = spaceOf(r.space);
          if (space < 0) {
            space = ks.spaces.allocate();
            spaceOverlay.set(r.space, space);
            planned.push({
              op: undefined,
              content: null,
              entry: { type: WalType.SpaceDefine, space, name: r.space },
            });
          }
          // Always a free slot, never the one holding the memory's current version: the vector is
          // written before the WAL entry commits, and a crash in between must leave the old one
          // whole. The put's transition frees the old slot. A corrupt slot found under this id is
          // the exception: its bytes are lost anyway, and the put repairs it in place.
          let slot = slotOf(space, r.id);
          if (slot < 0 || !ks.isCorrupt(slot)) {
            slot = ks.allocate();
            allocated.push(slot);
          }
          setSlot(space, r.id, slot);
          vectors.push({ slot, bytes: r.embeddingBytes });
          access?.set(slot, r.accessCount);
          if (r.content) contentBytes += entryBytes(r.idBytes.length, r.content.length);
          // Written out field by field (no spread of the metadata): this runs once per put.
          // With its `lsn` from the start (set when applied): adding it later changed the
          // object's shape once per put.
          const entry: PutEntry = {
            type: WalType.Put,
            lsn: 0,
            slot,
            space,
            id: r.id,
            idBytes: r.idBytes,
            kind: r.kind,
            seg: 0,
            off: 0,
            clen: r.content?.length ?? 0,
            confidence: r.confidence,
            activation: r.activation,
            decayRate: r.decayRate,
            createdAt: r.createdAt,
            lastAccess: r.lastAccess,
            accessCount: r.accessCount,
            embCrc: r.embCrc,
            norm: r.norm,
          };
          planned.push({ op, content: r.content, entry });
          break;
        }
        case 'delete': {
          const space = spaceOf(op.space);
          const slot = slotOf(space, op.id);
          if (slot < 0) {
            planned.push({ op, entry: undefined, content: null });
          } else {
            setSlot(space, op.id, -1);
            planned.push({ op, entry: { type: WalType.Delete, slot, id: op.id }, content: null });
          }
          break;
        }
        case 'touch': {
          const slot = slotOf(spaceOf(op.space), op.id);
          if (slot < 0 || ks.isCorrupt(slot)) {
            planned.push({ op, entry: undefined, content: null });
          } else {
            const prev = access?.get(slot) ?? ks.table.chunk(slot).accessCount[slot & CHUNK_MASK]!;
            access?.set(slot, prev + 1);
            planned.push({
              op,
              entry: { type: WalType.Touch, slot, lastAccess: op.at, accessCount: prev + 1 },
              content: null,
            });
          }
          break;
        }
        case 'dropSpace': {
          const space = spaceOf(op.space);
          if (space < 0) {
            planned.push({ op, entry: undefined, content: null });
          } else {
            spaceOverlay.set(op.space, -1);
            const ids = overlay.get(space);
            if (ids) for (const id of ids.keys()) ids.set(id, -1);
            planned.push({ op, entry: { type: WalType.SpaceDrop, space }, content: null });
          }
          break;
        }
        case 'compact':
          planned.push({ op, entry: op.entry, content: null });
          break;
        case 'relocate':
          this.#planMoves(op, planned, vectors);
          break;
        case 'barrier':
          break;
      }
    }
    return { planned, contentBytes };
  }

  /**
   * The WAL entries of the moves that still hold, each carrying the memory as it is now (nothing
   * can change it before the batch is applied: the batch holds these moves alone), and the copies
   * of their vectors to the target slots (raw bytes: a damaged vector stays detectably damaged).
   */
  #planMoves(op: Extract<Op, { t: 'relocate' }>, planned: PlannedOp[], vectors: VectorWrite[]): void {
    const ks = this.#d.keyspace;
    op.waitMs = performance.now() - op.queuedAt;
    const accepted = op.moves.filter((m) => ks.movable(m));
    this.#readMovedVectors(accepted, vectors);
    op.accepted = 0;
    for (const m of accepted) {
      const v = ks.table.get(m.from);
      planned.push({
        op: undefined,
        content: null,
        entry: {
          type: WalType.SlotMove,
          from: m.from,
          to: m.to,
          space: v.space,
          id: v.id,
          idBytes: Buffer.from(v.id, 'utf8'),
          expectedLsn: v.clsn,
          kind: v.kind,
          seg: v.seg,
          off: v.off,
          clen: v.clen,
          ...metadataOf(v),
          embCrc: v.embCrc,
          norm: v.norm,
        },
      });
      op.accepted++;
    }
    planned.push({ op, entry: undefined, content: null });
  }

  /**
   * The vectors of the moves' `from` slots, read in runs of consecutive slots (relocation moves the
   * highest used slots, mostly contiguous: one pread per run instead of one per move), queued for
   * their `to` slots.
   */
  #readMovedVectors(moves: readonly MovePlan[], vectors: VectorWrite[]): void {
    const source = this.#d.keyspace.table.vectors;
    const vb = this.#d.files.vectorBytes;
    const byFrom = [...moves].sort((a, b) => a.from - b.from);
    let i = 0;
    while (i < byFrom.length) {
      let j = i + 1;
      while (j < byFrom.length && byFrom[j]!.from === byFrom[j - 1]!.from + 1) j++;
      const buf = Buffer.allocUnsafe((j - i) * vb);
      source.readVectorsSync(byFrom[i]!.from, j - i, buf);
      for (let x = i; x < j; x++)
        vectors.push({ slot: byFrom[x]!.to, bytes: buf.subarray((x - i) * vb, (x - i + 1) * vb) });
      i = j;
    }
  }

  /** One group commit: plan, write, fsync, then apply in order and resolve. */
  async #commit(all: Op[]): Promise<void> {
    const d = this.#d;
    const batch = await this.#admit(all);
    if (batch.length === 0) return;
    const allocated: number[] = [];
    const vectors: VectorWrite[] = [];
    const limitBefore = d.keyspace.slotLimit;
    let planned: PlannedOp[];
    let contentBytes: number;
    try {
      ({ planned, contentBytes } = this.#plan(batch, allocated, vectors));
    } catch (err) {
      // Planning can fail only by running out of memory for the table: nothing was written.
      d.keyspace.release(allocated, limitBefore);
      const e = new WarmStoreError(
        'INSUFFICIENT_RESOURCES',
        `could not lay out a write batch: ${(err as Error).message}`,
        {},
        err,
      );
      for (const op of batch) op.reject(e);
      return;
    }

    try {
      await d.wal.ensureWritable();
    } catch (err) {
      d.keyspace.release(allocated, limitBefore);
      await this.#failBatch(batch, ioError('create WAL', d.wal.path, err));
      return;
    }
    let lsn = this.#lastLsn;
    const parts: ContentPart[] = [];
    const lsns: number[] = [];
    const sync = d.durability === 'sync';
    // Content and vectors at once (different files); vectors into free slots only: until the
    // WAL entries below commit, nothing reaches these bytes, and a failed batch leaves them as
    // garbage in slots that stay free. Under synchronous durability each write is a durable one
    // (on stable storage when it resolves): one trip to the I/O pool, where a write and then an
    // fdatasync took two, each waiting for a turn of the event loop (16-20 ms each with 100
    // readers busy on it). A durable write covers its own bytes only, which is all a batch
    // needs: no commit counts on it for another's bytes (compaction fsyncs its own output
    // segments before its commit; a checkpoint fsyncs the record files whole).
    // The vectors go first, before the content is laid out and the WAL entries encoded: the
    // batch's largest write is then on the disk while the event loop does that work (a batch of
    // 1000 puts: 2-4 ms of layout and encoding beside a 3 MB write of 2.5-3.5 ms).
    let vectorsDurable = true;
    const vectorWrite = this.#writeVectors(vectors, sync).then((durable) => {
      vectorsDurable = durable;
    });
    // Settled below on every path; until then a failure while the layout awaits a segment
    // rotation must not count as an unhandled rejection (which would end the process).
    vectorWrite.catch(() => undefined);
    const writes: Promise<void>[] = [vectorWrite];
    try {
      if (contentBytes > 0) await this.#layOutContent(planned, contentBytes, parts);
      for (const part of parts) {
        writes.push(
          (async () => {
            const bytes = part.buf.subarray(0, part.len);
            if (sync) await writeFullyDurable(part.seg.file, bytes, part.start);
            else await writeFully(part.seg.file, bytes, part.start);
            part.seg.dirty = !sync;
          })(),
        );
      }
      let walBytes = 0;
      for (const p of planned) if (p.entry) walBytes += walEntrySize(p.entry);
      const walBuf = this.#walScratch.take(walBytes);
      let wpos = 0;
      for (const p of planned) {
        if (!p.entry) {
          lsns.push(0);
          continue;
        }
        lsn++;
        lsns.push(lsn);
        wpos += encodeWalEntry(walBuf, wpos, lsn, p.entry, wpos === 0);
      }
      if (sync) {
        // The WAL entries are written while the content and vectors they point at are made
        // durable: one wait a batch instead of two (behind busy readers each wait is a turn of
        // the event loop, 16-20 ms; see bench/tools/put-readers.ts). The batch is acknowledged
        // only once all of it is durable, so only a WAL file's last batch can name bytes that
        // did not land: recovery checks that batch's content and vectors against their CRCs and
        // drops it whole if one is missing (a replaced memory is still whole in its old slot and
        // content, which stay its own until the batch applies).
        await settleAll([
          (async () => {
            await settleAll(writes);
            if (!vectorsDurable) await d.files.syncVectors();
          })(),
          walBytes > 0 ? d.wal.write(walBuf) : Promise.resolve(),
        ]);
      } else {
        // Relaxed durability: content and vectors are written before the WAL entries that point
        // at them (recovery cuts the replay at an entry whose bytes are missing).
        await settleAll(writes);
        if (walBytes > 0) await d.wal.write(walBuf);
      }
      for (const part of parts) part.seg.end = part.start + part.len;
      d.wal.advance(walBytes);
      this.#lastLsn = lsn;
    } catch (err) {
      // LSNs are not reused (gaps are fine), so an entry that survives a failed cut can never
      // shadow a later acknowledged one.
      this.#lastLsn = lsn;
      // A layout that failed (a segment rotation) leaves the vector write in flight: its slots are
      // not given back before it ends, or the next batch's write to one could land first.
      await Promise.allSettled(writes);
      d.keyspace.release(allocated, limitBefore);
      for (const part of parts) {
        try {
          await part.seg.file.truncate(part.start);
          part.seg.end = part.start;
        } catch {
          // Never write over bytes a surviving WAL entry might reference.
          part.seg.end = part.start + part.len;
        }
      }
      await d.wal.cutBack();
      await this.#failBatch(batch, ioError('commit', d.wal.path, err));
      return;
    }

    // Committed: apply in order. Nothing below awaits, so readers see each op whole.
    this.#applyStart = performance.now();
    const changed: number[] = [];
    const moved: number[] = [];
    for (let i = 0; i < planned.length; i++) this.#apply(planned[i]!, lsns[i]!, changed, moved);
    // Durable already (synchronous durability): the slots this batch freed may take new vectors.
    if (d.durability === 'sync') d.keyspace.releaseFrees();
    if (d.onSlotsChanged && (changed.length > 0 || moved.length > 0)) d.onSlotsChanged(changed, moved);
    d.onCommitted();
  }

  /**
   * While the disk is full, puts are refused before anything is written (unless space returned);
   * deletes, touches and compaction entries go on: they add no content, and the released reserve
   * holds their WAL entries.
   */
  async #admit(batch: Op[]): Promise<Op[]> {
    const space = this.#d.space;
    if (!space.full || !batch.some((op) => op.t === 'put')) return batch;
    if (await space.recheck()) return batch;
    const e = space.fullError();
    return batch.filter((op) => {
      if (op.t !== 'put') return true;
      op.reject(e);
      return false;
    });
  }

  /**
   * A batch failed and nothing of it was applied. On a full disk the reserve is given back, the
   * puts are refused with DISK_FULL and the other ops go back to the head of the queue once, so a
   * delete that met the full disk is retried in the room the reserve left.
   */
  async #failBatch(ops: Op[], e: WarmStoreError): Promise<void> {
    if (!isNoSpace(e)) {
      for (const op of ops) op.reject(e);
      return;
    }
    await this.#d.space.onNoSpace(e);
    const again: Op[] = [];
    for (const op of ops) {
      if (op.t === 'put') op.reject(this.#d.space.fullError(e));
      else if (this.#retried.has(op)) op.reject(e);
      else {
        this.#retried.add(op);
        again.push(op);
      }
    }
    this.#queue.unshift(...again);
  }

  /** Assigns content offsets over the active segment and, when it fills, fresh ones. */
  async #layOutContent(planned: PlannedOp[], contentBytes: number, parts: ContentPart[]): Promise<void> {
    const d = this.#d;
    let part: ContentPart | undefined;
    // Every part of the batch in one region, each part after the one before.
    const region = this.#contentScratch.take(contentBytes);
    let taken = 0;
    for (const p of planned) {
      if (!p.content || p.entry?.type !== WalType.Put) continue;
      const size = entryBytes(p.entry.idBytes.length, p.content.length);
      let seg = part?.seg ?? d.segments.active;
      const used = (part ? part.start + part.len : seg.end) - HEADER_BYTES;
      if (used > 0 && used + size > d.segmentBytes) {
        await d.segments.rotate();
        seg = d.segments.active;
        part = undefined;
      }
      if (!part) {
        part = { seg, start: seg.end, buf: region.subarray(taken), len: 0 };
        parts.push(part);
      }
      p.entry.seg = seg.id;
      p.entry.off = part.start + part.len;
      part.len += encodeEntry(part.buf, part.len, p.entry.idBytes, p.content);
      taken += size;
    }
  }

  /**
   * Writes a batch's vectors in runs, all runs in flight at once (see VECTOR_WRITES_IN_FLIGHT). A
   * bulk load fills slots in order, so most of its batches are one pwrite. Relocation and puts into
   * holes left by deletes write slots scattered among live ones: targets at most GAP_FILL_SLOTS
   * apart share a run, whose gaps are read first and written back unchanged. One pwrite of a
   * megabyte costs the event loop what one of 3 KiB does, and 512 of those took most of a
   * relocation batch's time; rewriting a slot with the bytes it holds is safe because the writer
   * is the only one that writes vectors.dat and this batch is its only write in flight. Under
   * synchronous durability (`sync`) returns whether the runs went out as durable writes; if not,
   * vectors.dat still needs its fdatasync.
   */
  async #writeVectors(vectors: VectorWrite[], sync: boolean): Promise<boolean> {
    if (vectors.length === 0) return true;
    const files = this.#d.files;
    const vb = files.vectorBytes;
    vectors.sort((a, b) => a.slot - b.slot);
    const runs: { first: number; gaps: boolean; dense: boolean; from: number; to: number }[] = [];
    let i = 0;
    while (i < vectors.length) {
      let j = i + 1;
      let gaps = false;
      let dense = true;
      while (j < vectors.length) {
        const step = vectors[j]!.slot - vectors[j - 1]!.slot;
        if (step !== 1) dense = false;
        if (step > 1) {
          // Gap slots never outnumber targets: a batch's buffers stay within twice its vectors.
          const span = vectors[j]!.slot - vectors[i]!.slot + 1;
          if (step > GAP_FILL_SLOTS + 1 || span > MAX_RUN_SLOTS || span > 2 * (j - i + 1)) break;
          gaps = true;
        }
        j++;
      }
      runs.push({ first: vectors[i]!.slot, gaps, dense, from: i, to: j });
      i = j;
    }
    // Durable: every run on stable storage when this resolves (see DURABLE_VECTOR_RUNS).
    const durable = sync && runs.length <= DURABLE_VECTOR_RUNS;
    let next = 0;
    const lane = async (): Promise<void> => {
      while (next < runs.length) {
        const r = runs[next++]!;
        if (r.dense) {
          // One slot after another (a bulk load's batch): the copies are written where they are,
          // in one pwritev. Copying them into a fresh run buffer cost a put ~2 us of the event
          // loop's time, and the buffer's first-touch page faults more (~12 us a 4 KiB page).
          await files.writeVectors(r.first, adjacentViews(vectors, r.from, r.to), durable);
          continue;
        }
        const buf = Buffer.allocUnsafe((vectors[r.to - 1]!.slot - r.first + 1) * vb);
        // Bytes past the end of the file read as zero: those slots were never written.
        // An unreadable gap fails the batch like any I/O error: nothing of it is applied.
        if (r.gaps) buf.fill(0, await files.readVectors(r.first, buf.length / vb, buf));
        // A slot written twice in one batch (the same id put twice) keeps the later bytes, which
        // the sort left last: the earlier put's slot is never reused within its batch anyway.
        for (let x = r.from; x < r.to; x++) buf.set(vectors[x]!.bytes, (vectors[x]!.slot - r.first) * vb);
        await files.writeVectors(r.first, buf, durable);
      }
    };
    await settleAll(Array.from({ length: Math.min(VECTOR_WRITES_IN_FLIGHT, runs.length) }, lane));
    return durable;
  }

  #apply(p: PlannedOp, lsn: number, changed: number[], moved: number[]): void {
    const op = p.op;
    if (op?.t === 'barrier') return;
    if (!p.entry) {
      if (op?.t === 'delete' || op?.t === 'touch') op.resolve(false);
      else if (op?.t === 'dropSpace') op.resolve(0);
      // Last of its batch: everything the batch applied was its moves.
      else if (op?.t === 'relocate')
        op.resolve({ moved: op.accepted, applyMs: performance.now() - this.#applyStart, waitMs: op.waitMs });
      return;
    }
    const t = op?.t === 'compact' ? performance.now() : 0;
    // The planned entry becomes the applied one: no copy of a put's fields per op.
    const e = p.entry as WalEntry;
    e.lsn = lsn;
    const r = this.#d.transitions.apply(e);
    // The recall index follows the slots whose embedding a put wrote or a delete, move or
    // replacement freed.
    if (e.type === WalType.Put || e.type === WalType.Delete) changed.push(e.slot);
    // A memory that moved whole keeps its vector: the index re-points it instead of re-adding it.
    else if (e.type === WalType.SlotMove) (r.count === 1 ? moved : changed).push(e.from, e.to);
    if (r.evicted !== undefined) changed.push(r.evicted);
    switch (op?.t) {
      case 'put':
        op.resolve();
        return;
      case 'delete':
      case 'touch':
        op.resolve(r.found);
        return;
      case 'dropSpace':
        op.resolve(r.count);
        return;
      case 'compact':
        op.resolve({ moved: r.count, applyMs: performance.now() - t });
        return;
    }
  }
}
