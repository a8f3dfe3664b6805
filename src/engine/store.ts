import { EventEmitter } from 'node:events';
import { realpathSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { setImmediate as yieldImmediate } from 'node:timers/promises';
import { SpanStatusCode, trace, type Span } from '@opentelemetry/api';
import { runCompaction, type CompactorHost } from '../compaction/compactor.js';
import {
  ENTRY_HEADER_BYTES,
  Segment,
  encodeEntry,
  entryBytes,
  parseSegmentFileName,
  verifyEntry,
  writeFully,
} from '../content/segment.js';
import { WarmStoreError, corruption, invalid, ioError } from '../errors.js';
import { HEADER_BYTES, decodeHeader, encodeHeader } from '../format/header.js';
import {
  MANIFEST_FILE,
  readManifest,
  writeManifest,
  type Manifest,
  type ManifestCompaction,
} from '../format/manifest.js';
import { nodeFileSystem } from '../fs/node-fs.js';
import type { WsFile, WsFileSystem } from '../fs/types.js';
import { splitV1Records } from '../records/migrate.js';
import { VectorVerifier, verifyVectorsInline } from '../records/vector-verifier.js';
import {
  RECORDS_DATA_START,
  RECORDS_FILE,
  SLOT_HEADER_BYTES,
  VECTORS_FILE,
  decodeSlot,
  encodeFreeHeader,
  encodeSlotHeader,
  encodeVector,
  headerOffset,
  idHash,
  loadSlotHeader,
  slotBytesFor,
  vectorOffset,
} from '../records/slot-codec.js';
import { CHUNK_MASK, CHUNK_SLOTS, DIRTY_FULL, RecordTable } from '../records/table.js';
import type {
  CompactOptions,
  CompactionStats,
  ContentStorageStats,
  GetOptions,
  InterruptedCompaction,
  MaintenanceReport,
  MemoryRecord,
  RecallOptions,
  RecallResult,
  StoredMemory,
  WarmStoreEvents,
  WarmStoreLogger,
  WarmStoreOptions,
} from '../types.js';
import {
  ContentKind,
  WalType,
  decodeWal,
  encodeWalEntry,
  walEntrySize,
  type CompactChunkEntry,
  type PutEntry,
  type WalEntry,
  type WalEntryInput,
} from '../wal/entries.js';
import { acquireLock } from './lock.js';
import { exactTopK } from './recall.js';
import { testHooksOf } from './test-hooks.js';
import {
  MAX_CONTENT_LIMIT,
  checkId,
  normalizeRecord,
  validateEmbedding,
  type NormalizedRecord,
} from './validate.js';

const tracer = trace.getTracer('warmstore');
const WAL_PREFIX = 'wal-';
const walFileName = (n: number): string => `${WAL_PREFIX}${String(n).padStart(8, '0')}.log`;
const parseWalFileName = (name: string): number | undefined => {
  const m = /^wal-(\d{8,})\.log$/.exec(name);
  return m ? Number(m[1]) : undefined;
};
/** Reads bigger than this go through the async path with a segment pin, so they never block. */
const SYNC_READ_LIMIT = 256 * 1024;
/**
 * A synchronous read slower than this is taken for a page-cache miss on a busy disk (a GC pause
 * landing inside a read is usually shorter; a lower bar sent `get` to the pool on every scavenge)...
 */
const SLOW_SYNC_READ_MS = 20;
/** ...after which `get` reads through the thread pool for this long. */
const POOL_READ_WINDOW_MS = 1000;
/** A group-commit batch stops growing here, bounding the buffers one flush allocates. */
const MAX_BATCH_BYTES = 32 * 1024 * 1024;
/** Headers written in one pwrite at most (180 KB). */
const CHECKPOINT_HEADER_RUN = 512;
/** Clean headers a checkpoint run may bridge to reach the next dirty one. */
const CHECKPOINT_HEADER_GAP = 16;
/** Vectors written in one pwrite at most (about 200 KB at 768 dimensions). */
const CHECKPOINT_RUN_SLOTS = 64;
/** A checkpoint step yields to the event loop once it has run this long. */
const CHECKPOINT_STEP_MS = 4;
/** Vectors a checkpoint run may bridge to reach the next changed one. */
const CHECKPOINT_GAP_SLOTS = 4;

interface ResolvedOptions {
  dimension: number | undefined;
  durability: 'sync' | 'relaxed';
  relaxedSyncIntervalMs: number;
  segmentBytes: number;
  maxContentBytes: number;
  walCheckpointBytes: number;
  maintenanceIntervalMs: number | false;
  memoryBudgetBytes: number;
  minSegmentDeadRatio: number;
  diskHeadroomBytes: number;
  fragmentationThreshold: number;
  minTotalBytes: number;
  startupWarnRatio: number;
  startupCompactRatio: number;
  startupCompaction: 'off' | 'background' | 'blocking';
  logger: WarmStoreLogger | undefined;
  fileSystem: WsFileSystem;
  onKillPoint: ((name: string) => void) | undefined;
}

function int(v: unknown, field: string, dflt: number, min: number, max: number): number {
  if (v === undefined) return dflt;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw invalid(field, `must be an integer in [${min}, ${max}]`);
  }
  return v;
}

function ratio(v: unknown, field: string, dflt: number): number {
  if (v === undefined) return dflt;
  if (typeof v !== 'number' || !(v >= 0 && v <= 1)) throw invalid(field, 'must be a number in [0, 1]');
  return v;
}

function resolveOptions(o: WarmStoreOptions = {}): ResolvedOptions {
  if (typeof o !== 'object' || o === null) throw invalid('options', 'must be an object');
  const durability = o.durability ?? 'sync';
  if (durability !== 'sync' && durability !== 'relaxed')
    throw invalid('durability', "must be 'sync' or 'relaxed'");
  const mi = o.maintenanceIntervalMs;
  if (mi !== undefined && mi !== false && (typeof mi !== 'number' || !Number.isInteger(mi) || mi < 10)) {
    throw invalid('maintenanceIntervalMs', 'must be an integer >= 10 or false');
  }
  const c = o.compaction ?? {};
  const m = o.maintenance ?? {};
  const sc = m.startupCompaction ?? 'background';
  if (sc !== 'off' && sc !== 'background' && sc !== 'blocking') {
    throw invalid('maintenance.startupCompaction', "must be 'off', 'background' or 'blocking'");
  }
  const headroom = c.diskHeadroomBytes ?? 16 * 1024 * 1024;
  if (typeof headroom !== 'number' || !Number.isFinite(headroom) || headroom < 0) {
    throw invalid('compaction.diskHeadroomBytes', 'must be a number >= 0');
  }
  const minTotal = m.minTotalBytes ?? 100 * 1024 * 1024;
  if (typeof minTotal !== 'number' || !Number.isFinite(minTotal) || minTotal < 0) {
    throw invalid('maintenance.minTotalBytes', 'must be a number >= 0');
  }
  return {
    dimension: o.dimension === undefined ? undefined : int(o.dimension, 'dimension', 768, 1, 65536),
    durability,
    relaxedSyncIntervalMs: int(o.relaxedSyncIntervalMs, 'relaxedSyncIntervalMs', 100, 1, 3_600_000),
    segmentBytes: int(o.segmentBytes, 'segmentBytes', 64 * 1024 * 1024, 4096, 2 ** 40),
    maxContentBytes: int(o.maxContentBytes, 'maxContentBytes', 16 * 1024 * 1024, 0, MAX_CONTENT_LIMIT),
    walCheckpointBytes: int(o.walCheckpointBytes, 'walCheckpointBytes', 64 * 1024 * 1024, 4096, 2 ** 40),
    maintenanceIntervalMs: mi ?? 60_000,
    memoryBudgetBytes: int(c.memoryBudgetBytes, 'compaction.memoryBudgetBytes', 64 * 1024 * 1024, 0, 2 ** 40),
    minSegmentDeadRatio: ratio(c.minSegmentDeadRatio, 'compaction.minSegmentDeadRatio', 0.3),
    diskHeadroomBytes: headroom,
    fragmentationThreshold: ratio(m.fragmentationThreshold, 'maintenance.fragmentationThreshold', 0.5),
    minTotalBytes: minTotal,
    startupWarnRatio: ratio(m.startupWarnRatio, 'maintenance.startupWarnRatio', 0.7),
    startupCompactRatio: ratio(m.startupCompactRatio, 'maintenance.startupCompactRatio', 0.9),
    startupCompaction: sc,
    logger: o.logger,
    fileSystem: o.fileSystem ?? nodeFileSystem,
    onKillPoint: testHooksOf(o).onKillPoint,
  };
}

type Op =
  | { t: 'put'; rec: NormalizedRecord; resolve: () => void; reject: (e: unknown) => void }
  | { t: 'delete'; id: string; resolve: (b: boolean) => void; reject: (e: unknown) => void }
  | { t: 'touch'; id: string; at: number; resolve: (found: boolean) => void; reject: (e: unknown) => void }
  | {
      t: 'compact';
      entry: WalEntryInput;
      resolve: (r: { moved: number; applyMs: number }) => void;
      reject: (e: unknown) => void;
    }
  | { t: 'barrier'; fn: () => Promise<void>; resolve: () => void; reject: (e: unknown) => void };

interface PlannedOp {
  op: Op;
  entry: WalEntryInput | undefined;
  /** For puts: bytes of content to append; offset assigned when the batch is laid out. */
  content: Buffer | null;
}

interface CorruptSlot {
  reason: string;
  file: string;
  /** The slot's own bytes are bad (kept as found); otherwise only its content reference is. */
  raw: boolean;
  /** The id checksum under which the slot is also found, when its id bytes cannot be trusted. */
  lostHash?: number;
}

export interface VerifyProblem {
  kind: string;
  id?: string;
  file?: string;
  message: string;
}

export interface VerifyReport {
  ok: boolean;
  records: number;
  segments: number;
  bytesChecked: number;
  problems: VerifyProblem[];
}

/**
 * The storage engine. See docs/ARCHITECTURE.md for the files, the write path, the lock order and
 * the compaction state machine.
 */
export class WarmStore {
  readonly dir: string;
  #opts: ResolvedOptions;
  #fs: WsFileSystem;
  #dim = 0;
  #manifest!: Manifest;
  #releaseLock: (() => Promise<void>) | undefined;
  /** Slot headers (records.dat) and slot vectors (vectors.dat): one record, two files. */
  #records!: WsFile;
  #vectors!: WsFile;
  #table!: RecordTable;
  #index = new Map<string, number>();
  #free: number[] = [];
  #nextSlot = 0;
  #corrupt = new Map<number, CorruptSlot>();
  /**
   * Corrupt slots whose id bytes may be damaged, by the id checksum their header kept: a lookup of
   * the id they were written for finds them and fails loudly instead of finding nothing.
   */
  #lostIds = new Map<number, number>();
  /** Until when `get` reads content through the thread pool (see get). */
  #poolReadsUntil = 0;
  #segments = new Map<number, Segment>();
  #active!: Segment;
  #wal!: { file: WsFile; fileNo: number; end: number };
  #lastLsn = 0;
  #walBroken = false;
  #queue: Op[] = [];
  #flushing = false;
  #state: 'opening' | 'open' | 'closing' | 'closed' = 'opening';
  #emitter = new EventEmitter();
  #checkpointChain: Promise<void> = Promise.resolve();
  #checkpointPending = false;
  #compaction: ManifestCompaction | null = null;
  #interrupted: InterruptedCompaction | undefined;
  #compactionRun: { promise: Promise<CompactionStats>; abort: AbortController } | undefined;
  #maintenanceTimer: NodeJS.Timeout | undefined;
  #relaxedTimer: NodeJS.Timeout | undefined;
  #lastMaintenance: MaintenanceReport | undefined;

  private constructor(dir: string, opts: ResolvedOptions) {
    this.dir = dir;
    this.#opts = opts;
    this.#fs = opts.fileSystem;
  }

  /** Creates or opens the store in `dir`, recovering after a crash. */
  static async open(dir: string, options?: WarmStoreOptions): Promise<WarmStore> {
    if (typeof dir !== 'string' || dir.length === 0) throw invalid('dir', 'must be a non-empty path');
    const opts = resolveOptions(options);
    const abs = resolve(dir);
    const store = new WarmStore(abs, opts);
    await store.#open();
    return store;
  }

  get dimension(): number {
    return this.#dim;
  }

  get size(): number {
    return this.#index.size;
  }

  get closed(): boolean {
    return this.#state === 'closed';
  }

  get isCompacting(): boolean {
    return this.#compactionRun !== undefined;
  }

  /** Ids whose record failed its checksum at open (also reported by `verify`). */
  get corruptRecords(): { slot: number; id: string | undefined; reason: string; file: string }[] {
    return [...this.#corrupt].map(([slot, c]) => ({ slot, id: this.#table.id(slot), ...c }));
  }

  on<K extends keyof WarmStoreEvents>(event: K, listener: WarmStoreEvents[K]): this {
    this.#emitter.on(event, listener);
    return this;
  }

  off<K extends keyof WarmStoreEvents>(event: K, listener: WarmStoreEvents[K]): this {
    this.#emitter.off(event, listener);
    return this;
  }

  #emit<K extends keyof WarmStoreEvents>(event: K, ...args: Parameters<WarmStoreEvents[K]>): void {
    if (this.#emitter.listenerCount(event) === 0) return;
    try {
      this.#emitter.emit(event, ...args);
    } catch (err) {
      this.#opts.logger?.error({ err, event }, 'warmstore event listener threw');
    }
  }

  #checkOpen(): void {
    if (this.#state !== 'open') {
      throw new WarmStoreError('STORE_CLOSED', `store ${this.dir} is ${this.#state}`, { file: this.dir });
    }
  }

  // ---------------------------------------------------------------- open and recovery

  async #open(): Promise<void> {
    const fs = this.#fs;
    try {
      await fs.mkdir(this.dir);
    } catch (err) {
      throw ioError('mkdir', this.dir, err);
    }
    let key = this.dir;
    try {
      key = realpathSync(this.dir);
    } catch {
      // fall back to the resolved path
    }
    this.#releaseLock = await acquireLock(fs, this.dir, key);
    try {
      await this.#recover();
      this.#state = 'open';
    } catch (err) {
      await this.#closeFiles();
      await this.#releaseLock();
      this.#releaseLock = undefined;
      throw err;
    }
    this.#startTimers();
    await this.#startupCheck();
  }

  async #listDir(): Promise<string[]> {
    try {
      return await this.#fs.readdir(this.dir);
    } catch (err) {
      throw ioError('readdir', this.dir, err);
    }
  }

  async #recover(): Promise<void> {
    const fs = this.#fs;
    let manifest = await readManifest(fs, this.dir);
    if (!manifest) manifest = await this.#initialize();
    if (this.#opts.dimension !== undefined && this.#opts.dimension !== manifest.dimension) {
      throw invalid(
        'dimension',
        `the store was created with dimension ${manifest.dimension}, not ${this.#opts.dimension}`,
      );
    }
    this.#manifest = manifest;
    this.#dim = manifest.dimension;
    if (manifest.slotBytes !== slotBytesFor(this.#dim)) {
      throw corruption(`manifest slot size ${manifest.slotBytes} does not match dimension ${this.#dim}`, {
        file: join(this.dir, MANIFEST_FILE),
      });
    }
    this.#table = new RecordTable(this.#dim);
    this.#compaction = manifest.compaction;

    const names = await this.#listDir();
    await this.#loadRecords();
    const badSegments = this.#loadSegments(names);

    // Replay every WAL file from the checkpointed one on.
    const walNos = names
      .map(parseWalFileName)
      .filter((n): n is number => n !== undefined && n >= manifest.walFileNo)
      .sort((a, b) => a - b);
    let lastLsn = manifest.checkpointLsn;
    let maxPutSeg = manifest.activeSegment;
    let stopReplay = false;
    for (const no of walNos) {
      if (stopReplay) break;
      const path = join(this.dir, walFileName(no));
      let buf: Buffer;
      try {
        buf = await fs.readFile(path);
      } catch (err) {
        throw ioError('read', path, err);
      }
      if (buf.length < HEADER_BYTES) continue; // created but its header never became durable
      const relaxedWal = decodeHeader(buf.subarray(0, HEADER_BYTES), 'WALG', path).fields[1] === 1;
      const res = decodeWal(buf, HEADER_BYTES, this.#dim, lastLsn);
      if (res.laterBatchAt !== undefined && !relaxedWal) {
        throw corruption(
          `WAL entry at offset ${res.validEnd} is damaged but the batch at ${res.laterBatchAt} after it is intact`,
          { file: path, offset: res.validEnd },
        );
      }
      if (res.stopReason && res.validEnd < buf.length) {
        this.#opts.logger?.warn(
          { file: path, validEnd: res.validEnd, size: buf.length, reason: res.stopReason },
          'cut a torn WAL tail',
        );
      }
      for (const e of res.entries) {
        if (relaxedWal && e.type === WalType.Put && e.kind === ContentKind.Present) {
          const seg = this.#segments.get(e.seg);
          if (!seg || e.off + entryBytes(e.idBytes.length, e.clen) > seg.end) {
            this.#opts.logger?.warn(
              { file: path, lsn: e.lsn, segment: e.seg },
              'relaxed durability: WAL entries past here lost their content in the crash; cut',
            );
            stopReplay = true;
            break;
          }
        }
        this.#replay(e);
        if (e.type === WalType.Put && e.kind === ContentKind.Present) maxPutSeg = Math.max(maxPutSeg, e.seg);
        lastLsn = e.lsn;
      }
    }

    // Slots still unreadable after replay are real corruption: loud, but the store stays usable.
    for (const [slot, c] of this.#corrupt) {
      this.#opts.logger?.error({ slot, id: this.#table.id(slot), ...c }, 'corrupt record');
    }

    let maxClsn = 0;
    for (let s = 0; s < this.#nextSlot; s++) {
      if (!this.#table.isUsed(s)) continue;
      const c = this.#table.chunk(s);
      maxClsn = Math.max(maxClsn, c.clsn[s & CHUNK_MASK]!);
    }
    this.#lastLsn = Math.max(lastLsn, maxClsn);

    // An interrupted compaction: cut its uncommitted output and remember what is left to do.
    if (this.#compaction) {
      let discarded = 0;
      for (const [idText, end] of Object.entries(this.#compaction.outputs)) {
        const seg = this.#segments.get(Number(idText));
        if (seg && seg.end > end) {
          discarded += seg.end - end;
          try {
            await seg.file.truncate(end);
            await seg.file.sync();
          } catch (err) {
            throw ioError('truncate', seg.path, err);
          }
          seg.end = end;
        }
      }
      const done = new Set(this.#compaction.victimsDone);
      this.#interrupted = {
        runId: this.#compaction.runId,
        committedChunks: this.#compaction.committedChunks,
        discardedBytes: discarded,
        victimsRemaining: this.#compaction.victims.filter((v) => !done.has(v) && this.#segments.has(v)),
      };
      this.#opts.logger?.warn({ ...this.#interrupted }, 'found an interrupted compaction');
      this.#compaction = null;
    }

    this.#manifest.nextSegmentId = Math.max(
      this.#manifest.nextSegmentId,
      ...[...this.#segments.keys(), ...badSegments.keys()].map((n) => n + 1),
    );
    // Active segment: the newest one new content went to.
    let active = this.#segments.get(maxPutSeg);
    if (!active || badSegments.has(maxPutSeg)) active = this.#createSegment();
    this.#active = active;
    for (const s of this.#segments.values()) s.sealed = s !== active;

    this.#validateRefs(badSegments);
    for (const id of badSegments.keys()) {
      // Unreadable and unreferenced: a segment whose creation never became durable.
      const path = join(this.dir, `seg-${String(id).padStart(8, '0')}.dat`);
      await fs.unlink(path).catch(() => undefined);
    }

    const lastWal = walNos.length > 0 ? walNos[walNos.length - 1]! : manifest.walFileNo - 1;
    // The recovery checkpoint makes the replayed state durable in records.dat and starts a clean
    // WAL, so torn tails never have to be appended after.
    await this.#openNewWal(Math.max(lastWal, manifest.walFileNo) + 1);
    await this.#doCheckpoint(false);
  }

  async #initialize(): Promise<Manifest> {
    const fs = this.#fs;
    const names = await this.#listDir();
    const storeFiles = names.filter(
      (n) =>
        n === RECORDS_FILE ||
        n === VECTORS_FILE ||
        parseWalFileName(n) !== undefined ||
        parseSegmentFileName(n) !== undefined,
    );
    for (const n of storeFiles) {
      const path = join(this.dir, n);
      let size = 0;
      try {
        const f = fs.open(path, 'r');
        size = f.size();
        f.closeSync();
      } catch (err) {
        throw ioError('stat', path, err);
      }
      const empty =
        n === RECORDS_FILE || n === VECTORS_FILE ? size <= RECORDS_DATA_START : size <= HEADER_BYTES;
      if (!empty) {
        throw corruption(`${n} holds data but the MANIFEST is missing`, {
          file: join(this.dir, MANIFEST_FILE),
        });
      }
    }
    // Leftovers of a creation that crashed before its manifest: nothing was ever acknowledged.
    for (const n of storeFiles) await fs.unlink(join(this.dir, n)).catch(() => undefined);
    const dim = this.#opts.dimension ?? 768;
    const recPath = join(this.dir, RECORDS_FILE);
    const opened: WsFile[] = [];
    try {
      const f = fs.open(recPath, 'excl');
      opened.push(f);
      const head = Buffer.alloc(RECORDS_DATA_START);
      encodeHeader('RECS', [dim, SLOT_HEADER_BYTES, 0, 0]).copy(head, 0);
      await writeFully(f, head, 0);
      await f.sync();
      const vf = fs.open(join(this.dir, VECTORS_FILE), 'excl');
      opened.push(vf);
      head.fill(0);
      encodeHeader('VECS', [dim, dim * 4, 0, 0]).copy(head, 0);
      await writeFully(vf, head, 0);
      await vf.sync();
      const seg = Segment.create(fs, this.dir, 1);
      opened.push(seg.file);
      await seg.file.sync();
      const w = fs.open(join(this.dir, walFileName(1)), 'excl');
      opened.push(w);
      await writeFully(w, encodeHeader('WALG', [1, this.#opts.durability === 'relaxed' ? 1 : 0, 0, 0]), 0);
      await w.sync();
      await fs.syncDir(this.dir);
      // The store directory itself may be new: its entry in the parent must be durable too.
      await fs.syncDir(dirname(this.dir));
    } catch (err) {
      throw ioError('create store', this.dir, err);
    } finally {
      for (const f of opened) await f.close().catch(() => undefined);
    }
    const m: Manifest = {
      dimension: dim,
      slotBytes: slotBytesFor(dim),
      walFileNo: 1,
      checkpointLsn: 0,
      nextSegmentId: 2,
      activeSegment: 1,
      nextCompactionRunId: 1,
      compaction: null,
      createdAt: Date.now(),
    };
    await writeManifest(fs, this.dir, m);
    return m;
  }

  #openRecordFiles(): { head: Buffer; n: number } {
    const path = join(this.dir, RECORDS_FILE);
    try {
      this.#records = this.#fs.open(path, 'rw');
    } catch (err) {
      throw ioError('open', path, err);
    }
    const head = Buffer.alloc(HEADER_BYTES);
    try {
      return { head, n: this.#records.readSync(head, 0, HEADER_BYTES, 0) };
    } catch (err) {
      throw ioError('read', path, err);
    }
  }

  async #loadRecords(): Promise<void> {
    const path = join(this.dir, RECORDS_FILE);
    const vpath = join(this.dir, VECTORS_FILE);
    let { head, n } = this.#openRecordFiles();
    let h = decodeHeader(head.subarray(0, n), 'RECS', path);
    if (h.version === 1) {
      // RECS v1 (headers and vectors interleaved): split it once, then read it as v2.
      if (h.fields[0] !== this.#dim) {
        throw corruption(`records header says dimension ${h.fields[0]}, manifest says ${this.#dim}`, {
          file: path,
        });
      }
      await this.#records.close().catch(() => undefined);
      try {
        await splitV1Records(this.#fs, this.dir, this.#dim);
      } catch (err) {
        throw ioError('migrate', path, err);
      }
      this.#opts.logger?.info({ file: path }, 'records.dat migrated from format 1 to 2');
      ({ head, n } = this.#openRecordFiles());
      h = decodeHeader(head.subarray(0, n), 'RECS', path);
    }
    if (h.fields[0] !== this.#dim || h.fields[1] !== SLOT_HEADER_BYTES) {
      throw corruption(`records header says dimension ${h.fields[0]}, manifest says ${this.#dim}`, {
        file: path,
      });
    }
    try {
      this.#vectors = this.#fs.open(vpath, 'rw');
      n = this.#vectors.readSync(head, 0, HEADER_BYTES, 0);
    } catch (err) {
      throw ioError('open', vpath, err);
    }
    const vh = decodeHeader(head.subarray(0, n), 'VECS', vpath);
    if (vh.fields[0] !== this.#dim || vh.fields[1] !== this.#dim * 4) {
      throw corruption(`vectors header says dimension ${vh.fields[0]}, manifest says ${this.#dim}`, {
        file: vpath,
      });
    }
    const vecBytes = this.#dim * 4;
    const slots = Math.max(0, Math.floor((this.#records.size() - RECORDS_DATA_START) / SLOT_HEADER_BYTES));
    const readAll = async (
      f: WsFile,
      buf: Uint8Array,
      want: number,
      pos: number,
      p: string,
    ): Promise<number> => {
      let got = 0;
      try {
        while (got < want) {
          const r = await f.read(buf, got, want - got, pos + got);
          if (r === 0) break;
          got += r;
        }
      } catch (err) {
        throw ioError('read', p, err);
      }
      return got;
    };
    // A chunk of the table at a time: its vectors are read straight into the chunk's embedding
    // array (no intermediate buffer, no second copy; the pages are faulted in by the read on a
    // libuv thread). Three stages overlap: chunk k+1 is read while a worker thread checks the
    // vectors of chunk k and this thread decodes the headers of chunk k-1.
    const nChunks = Math.ceil(slots / CHUNK_SLOTS);
    const hbufs = [0, 1, 2].map(() => Buffer.allocUnsafe(CHUNK_SLOTS * SLOT_HEADER_BYTES));
    const readChunk = (ci: number): Promise<[number, number]> => {
      const first = ci * CHUNK_SLOTS;
      const n = Math.min(CHUNK_SLOTS, slots - first);
      this.#table.ensure(first + n - 1);
      const emb = this.#table.chunk(first).emb;
      return Promise.all([
        readAll(this.#records, hbufs[ci % 3]!, n * SLOT_HEADER_BYTES, headerOffset(first), path),
        // vectors.dat may end early (a checkpoint cut short): those vectors read as missing.
        readAll(
          this.#vectors,
          new Uint8Array(emb.buffer, emb.byteOffset, n * vecBytes),
          n * vecBytes,
          vectorOffset(first, this.#dim),
          vpath,
        ),
      ]);
    };
    const verifier = nChunks > 1 ? VectorVerifier.create() : undefined;
    interface Loaded {
      first: number;
      n: number;
      hbuf: Buffer;
      vgot: number;
      bad: Promise<Set<number>>;
    }
    try {
      let reads = nChunks > 0 ? readChunk(0) : undefined;
      let prev: Loaded | undefined;
      for (let ci = 0; ci <= nChunks; ci++) {
        let cur: Loaded | undefined;
        if (ci < nChunks) {
          const [, vgot] = await reads!;
          reads = ci + 1 < nChunks ? readChunk(ci + 1) : undefined;
          // Settled later; a failure surfaces when it is awaited, never as an unhandled rejection.
          reads?.catch(() => undefined);
          const first = ci * CHUNK_SLOTS;
          const n = Math.min(CHUNK_SLOTS, slots - first);
          const hbuf = hbufs[ci % 3]!;
          cur = { first, n, hbuf, vgot, bad: this.#checkVectors(verifier, first, n, hbuf, vgot) };
          cur.bad.catch(() => undefined);
        }
        if (prev) this.#loadChunk(prev.first, prev.n, prev.hbuf, prev.vgot, await prev.bad, path, vpath);
        prev = cur;
      }
    } finally {
      await verifier?.close().catch(() => undefined);
    }
  }

  /**
   * Vector rows of one loaded chunk whose checksum does not match their header's, on the worker
   * when there is one. Rows past the end of vectors.dat are bad without looking.
   */
  async #checkVectors(
    verifier: VectorVerifier | undefined,
    first: number,
    n: number,
    hbuf: Buffer,
    vgot: number,
  ): Promise<Set<number>> {
    const vecBytes = this.#dim * 4;
    const rows = new Uint32Array(n);
    const expected = new Uint32Array(n);
    const bad = new Set<number>();
    let m = 0;
    for (let i = 0; i < n; i++) {
      const pos = i * SLOT_HEADER_BYTES;
      // Free headers are all zero; anything else is checked (a damaged header fails on its own).
      if (hbuf.readUInt32LE(pos) === 0 && hbuf[pos + 4] === 0) continue;
      if ((i + 1) * vecBytes > vgot) {
        bad.add(i);
        continue;
      }
      rows[m] = i;
      expected[m] = hbuf.readUInt32LE(pos + 80);
      m++;
    }
    const emb = this.#table.chunk(first).emb;
    const r = rows.subarray(0, m);
    const e = expected.subarray(0, m);
    let found: number[];
    try {
      found = verifier
        ? await verifier.verify(emb, vecBytes, r, e)
        : verifyVectorsInline(emb, vecBytes, r, e);
    } catch {
      found = verifyVectorsInline(emb, vecBytes, r, e);
    }
    for (const i of found) bad.add(i);
    return bad;
  }

  #loadChunk(
    first: number,
    n: number,
    hbuf: Buffer,
    vgot: number,
    bad: Set<number>,
    path: string,
    vpath: string,
  ): void {
    const vecBytes = this.#dim * 4;
    const c = this.#table.chunk(first);
    const vview = Buffer.from(c.emb.buffer, c.emb.byteOffset, vgot);
    for (let i = 0; i < n; i++) {
      const slot = first + i;
      const pos = i * SLOT_HEADER_BYTES;
      // Fast path: a valid header goes straight into the table (no object per record).
      const fast = bad.has(i) ? undefined : loadSlotHeader(hbuf, pos, c, i, this.#dim);
      if (fast !== undefined) {
        this.#nextSlot = Math.max(this.#nextSlot, slot + 1);
        if (!this.#keepNewer(fast, slot, c.clsn[i]!)) {
          this.#table.clear(slot);
          this.#table.markFull(slot);
          continue;
        }
        this.#index.set(fast, slot);
        continue;
      }
      // The fast path declined: the slot is free or damaged, and decodeSlot says which and why.
      const d = decodeSlot(hbuf, pos, vview, i * vecBytes, this.#dim, !bad.has(i));
      if (d.state === 'free') continue;
      if (d.state === 'used') throw new Error(`slot ${slot}: a valid header the loader declined`);
      this.#nextSlot = Math.max(this.#nextSlot, slot + 1);
      // Possibly a slot torn by a checkpoint that crashed: WAL replay may still rewrite it.
      this.#markCorrupt(slot, d.id, d.reason, d.where === 'vector' ? vpath : path, d.idHash);
    }
  }

  /**
   * Two slots claiming one id at open: slots are checkpointed at different instants. Keeps the
   * newer (clearing the other and marking it for the next checkpoint); WAL replay settles the
   * rest. Returns whether `slot` is the one kept.
   */
  #keepNewer(id: string, slot: number, clsn: number): boolean {
    const prev = this.#index.get(id);
    if (prev === undefined || prev === slot) return true;
    if (this.#table.chunk(prev).clsn[prev & CHUNK_MASK]! <= clsn) {
      this.#table.clear(prev);
      this.#table.markFull(prev);
      return true;
    }
    return false;
  }

  /** The slot holding `id`: the index, else a corrupt slot whose header kept this id's checksum. */
  #lookup(id: string): number | undefined {
    const slot = this.#index.get(id);
    if (slot !== undefined || this.#lostIds.size === 0) return slot;
    return this.#lostIds.get(idHash(id));
  }

  /**
   * Drops the index entry of whatever other id `slot` was known under: a corrupt slot found by its
   * id checksum is indexed under the damaged id it was read with, until a put or delete of its
   * real id repairs it.
   */
  #forgetOccupant(slot: number, id: string): void {
    const occupant = this.#table.isUsed(slot) ? this.#table.id(slot) : undefined;
    if (occupant !== undefined && occupant !== id && this.#index.get(occupant) === slot)
      this.#index.delete(occupant);
  }

  #clearCorrupt(slot: number): void {
    const c = this.#corrupt.get(slot);
    if (c?.lostHash !== undefined && this.#lostIds.get(c.lostHash) === slot) this.#lostIds.delete(c.lostHash);
    this.#corrupt.delete(slot);
  }

  #markCorrupt(
    slot: number,
    guessId: string | undefined,
    reason: string,
    file: string,
    storedIdHash = 0,
  ): void {
    this.#table.ensure(slot);
    this.#nextSlot = Math.max(this.#nextSlot, slot + 1);
    const id = guessId !== undefined && !this.#index.has(guessId) ? guessId : `<slot ${slot}>`;
    this.#table.set(slot, {
      id,
      idLen: Buffer.byteLength(id),
      kind: ContentKind.Absent,
      seg: 0,
      off: 0,
      clen: 0,
      clsn: 0,
      confidence: 0,
      activation: 0,
      decayRate: 0,
      createdAt: 0,
      lastAccess: 0,
      accessCount: 0,
      embedding: new Float32Array(this.#dim),
    });
    this.#table.chunk(slot).norm[slot & CHUNK_MASK] = 0;
    if (guessId !== undefined && id === guessId) this.#index.set(id, slot);
    const c: CorruptSlot = { reason, file, raw: true };
    // The id bytes read may be the damaged part: unless they match the stored id checksum, the slot
    // is also registered under that checksum (a flip in the checksum instead leaves the id right,
    // and the index entry above finds it).
    if (
      storedIdHash !== 0 &&
      (guessId === undefined || idHash(guessId) !== storedIdHash) &&
      !this.#lostIds.has(storedIdHash)
    ) {
      this.#lostIds.set(storedIdHash, slot);
      c.lostHash = storedIdHash;
    }
    this.#corrupt.set(slot, c);
  }

  #loadSegments(names: string[]): Map<number, string> {
    const bad = new Map<number, string>();
    for (const n of names) {
      const id = parseSegmentFileName(n);
      if (id === undefined) continue;
      try {
        this.#segments.set(id, Segment.open(this.#fs, this.dir, id));
      } catch (err) {
        // Only a segment whose header never became durable (or is damaged) is set aside; a read
        // error or a newer format fails the open rather than being mistaken for an empty file.
        if (!WarmStoreError.is(err, 'CORRUPTION_DETECTED')) throw ioError('open', join(this.dir, n), err);
        bad.set(id, (err as Error).message);
      }
    }
    return bad;
  }

  /** Applies one WAL entry during recovery. Idempotent against slots checkpointed later. */
  #replay(e: WalEntry): void {
    switch (e.type) {
      case WalType.Put: {
        this.#table.ensure(e.slot);
        this.#nextSlot = Math.max(this.#nextSlot, e.slot + 1);
        const occupant = this.#table.isUsed(e.slot) ? this.#table.id(e.slot) : undefined;
        if (occupant !== undefined && occupant !== e.id && this.#index.get(occupant) === e.slot) {
          this.#index.delete(occupant);
        }
        const other = this.#index.get(e.id);
        if (other !== undefined && other !== e.slot) {
          this.#table.clear(other);
          this.#clearCorrupt(other);
          this.#table.markFull(other);
        }
        this.#setFromPut(e.slot, e.id, e.idBytes.length, e, e.lsn);
        this.#clearCorrupt(e.slot);
        this.#index.set(e.id, e.slot);
        this.#table.markFull(e.slot);
        break;
      }
      case WalType.Delete: {
        if (
          e.slot < this.#nextSlot &&
          this.#table.isUsed(e.slot) &&
          (this.#table.id(e.slot) === e.id || this.#corrupt.get(e.slot)?.lostHash === idHash(e.id))
        ) {
          this.#table.clear(e.slot);
          this.#clearCorrupt(e.slot);
          this.#table.markFull(e.slot);
        }
        if (this.#index.get(e.id) === e.slot) this.#index.delete(e.id);
        break;
      }
      case WalType.Touch: {
        if (e.slot < this.#nextSlot && this.#table.isUsed(e.slot)) {
          const c = this.#table.chunk(e.slot);
          c.lastAccess[e.slot & CHUNK_MASK] = e.lastAccess;
          c.accessCount[e.slot & CHUNK_MASK] = e.accessCount;
          this.#table.markHeader(e.slot);
        }
        break;
      }
      default:
        this.#applyCompactEntry(e, false);
    }
  }

  #setFromPut(
    slot: number,
    id: string,
    idLen: number,
    v: Omit<PutEntry, 'type' | 'lsn' | 'slot' | 'id' | 'idBytes'>,
    lsn: number,
  ): void {
    this.#table.set(slot, {
      id,
      idLen,
      kind: v.kind,
      seg: v.kind === ContentKind.Present ? v.seg : 0,
      off: v.kind === ContentKind.Present ? v.off : 0,
      clen: v.kind === ContentKind.Present ? v.clen : 0,
      clsn: lsn,
      confidence: v.confidence,
      activation: v.activation,
      decayRate: v.decayRate,
      createdAt: v.createdAt,
      lastAccess: v.lastAccess,
      accessCount: v.accessCount,
      embedding: v.embedding,
    });
  }

  /** Compaction entries, at run time (live accounting on) and at replay (recomputed afterwards). */
  #applyCompactEntry(e: WalEntry, live: boolean): number {
    switch (e.type) {
      case WalType.CompactBegin:
        this.#compaction = {
          runId: e.runId,
          victims: e.victims,
          victimsDone: [],
          outputs: {},
          committedChunks: 0,
        };
        this.#manifest.nextCompactionRunId = Math.max(this.#manifest.nextCompactionRunId, e.runId + 1);
        return 0;
      case WalType.CompactChunk:
        return this.#applyChunk(e, live);
      case WalType.CompactEnd:
        this.#compaction = null;
        return 0;
      default:
        return 0;
    }
  }

  #applyChunk(e: CompactChunkEntry, live: boolean): number {
    let moved = 0;
    const out = this.#segments.get(e.outSeg);
    for (const r of e.remaps) {
      if (r.slot >= this.#nextSlot || !this.#table.isUsed(r.slot)) continue;
      const c = this.#table.chunk(r.slot);
      const i = r.slot & CHUNK_MASK;
      // Compare-and-swap: only a record still holding exactly the copied bytes switches; one
      // updated or deleted meanwhile keeps its newer value and the copy counts as garbage.
      if (
        c.kind[i] !== ContentKind.Present ||
        c.seg[i] !== r.oldSeg ||
        c.off[i] !== r.oldOff ||
        c.clsn[i] !== r.expectedLsn
      ) {
        continue;
      }
      c.seg[i] = e.outSeg;
      c.off[i] = r.newOff;
      this.#table.markHeader(r.slot);
      moved++;
      if (live) {
        const size = entryBytes(c.idLen[i]!, c.clen[i]!);
        const old = this.#segments.get(r.oldSeg);
        if (old) old.live -= size;
        if (out) out.live += size;
      }
    }
    if (this.#compaction && this.#compaction.runId === e.runId) {
      if (e.outSeg !== 0) this.#compaction.outputs[String(e.outSeg)] = e.outEnd;
      this.#compaction.victimsDone.push(...e.victimsDone);
      this.#compaction.committedChunks++;
    }
    return moved;
  }

  #validateRefs(badSegments: Map<number, string>): void {
    for (const s of this.#segments.values()) s.live = 0;
    for (let s = 0; s < this.#nextSlot; s++) {
      if (!this.#table.isUsed(s) || this.#corrupt.has(s)) continue;
      const c = this.#table.chunk(s);
      const i = s & CHUNK_MASK;
      if (c.kind[i] !== ContentKind.Present) continue;
      const segId = c.seg[i]!;
      const seg = this.#segments.get(segId);
      const size = entryBytes(c.idLen[i]!, c.clen[i]!);
      if (!seg) {
        const why = badSegments.get(segId);
        badSegments.delete(segId);
        this.#corrupt.set(s, {
          reason: why ?? `content segment ${segId} is missing`,
          file: this.#segmentPath(segId),
          raw: false,
        });
      } else if (c.off[i]! < HEADER_BYTES || c.off[i]! + size > seg.end) {
        this.#corrupt.set(s, {
          reason: `content reference ${c.off[i]}+${size} is beyond the end of the segment`,
          file: this.#segmentPath(segId),
          raw: false,
        });
      } else {
        seg.live += size;
      }
    }
  }

  #segmentPath(id: number): string {
    return join(this.dir, `seg-${String(id).padStart(8, '0')}.dat`);
  }

  #createSegment(): Segment {
    const id = this.#manifest.nextSegmentId++;
    const seg = Segment.create(this.#fs, this.dir, id);
    this.#segments.set(id, seg);
    return seg;
  }

  async #openNewWal(fileNo: number): Promise<void> {
    const path = join(this.dir, walFileName(fileNo));
    let file: WsFile | undefined;
    try {
      if (await this.#fs.exists(path)) await this.#fs.unlink(path);
      file = this.#fs.open(path, 'excl');
      // Field 1 records the durability the file was written under: replay treats a dangling
      // content reference in a relaxed WAL as the end of what reached the disk.
      const relaxed = this.#opts.durability === 'relaxed' ? 1 : 0;
      await writeFully(file, encodeHeader('WALG', [fileNo, relaxed, 0, 0]), 0);
      await file.sync();
      await this.#fs.syncDir(this.dir);
    } catch (err) {
      await file?.close().catch(() => undefined);
      throw ioError('create WAL', path, err);
    }
    this.#wal = { file, fileNo, end: HEADER_BYTES };
  }

  /** Switches to a new WAL file; the old one stays until a checkpoint covers it. */
  async #replaceWal(): Promise<void> {
    const old = this.#wal;
    await this.#openNewWal(old.fileNo + 1);
    this.#walBroken = false;
    await old.file.close().catch(() => undefined);
  }

  #startTimers(): void {
    if (this.#opts.maintenanceIntervalMs !== false) {
      this.#maintenanceTimer = setInterval(() => {
        if (this.#state !== 'open' || this.isCompacting) return;
        this.runMaintenance().catch((err: unknown) =>
          this.#opts.logger?.error({ err }, 'maintenance run failed'),
        );
      }, this.#opts.maintenanceIntervalMs);
      this.#maintenanceTimer.unref();
    }
    if (this.#opts.durability === 'relaxed') {
      this.#relaxedTimer = setInterval(() => {
        if (this.#state !== 'open') return;
        this.#barrier(() => this.#syncAll()).catch((err: unknown) =>
          this.#opts.logger?.error({ err }, 'background fsync failed'),
        );
      }, this.#opts.relaxedSyncIntervalMs);
      this.#relaxedTimer.unref();
    }
  }

  async #startupCheck(): Promise<void> {
    const stats = this.contentStorageStats();
    const o = this.#opts;
    const wantCompact = stats.fragmentationRatio > o.startupCompactRatio || this.#interrupted !== undefined;
    if (stats.fragmentationRatio > o.startupWarnRatio) {
      o.logger?.warn({ ...stats, threshold: o.startupWarnRatio }, 'content storage is heavily fragmented');
    }
    if (!wantCompact || o.startupCompaction === 'off') return;
    const run = this.compact({ force: true });
    if (o.startupCompaction === 'blocking') {
      await run;
    } else {
      run.catch((err: unknown) => o.logger?.error({ err }, 'startup compaction failed'));
    }
  }

  // ---------------------------------------------------------------- write path

  #enqueue<T>(make: (resolve: (v: T) => void, reject: (e: unknown) => void) => Op): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.#queue.push(make(resolve, reject));
      if (!this.#flushing) {
        this.#flushing = true;
        // One macrotask of delay lets every mutation issued in this tick share the fsync.
        setImmediate(() => void this.#drain());
      }
    });
  }

  #barrier(fn: () => Promise<void>): Promise<void> {
    return this.#enqueue<void>((resolve, reject) => ({ t: 'barrier', fn, resolve, reject }));
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
          bytes += op.t === 'put' ? (op.rec.content?.length ?? 0) + this.#dim * 4 + 128 : 64;
          n++;
        }
        await this.#commit(this.#queue.splice(0, n));
      }
    } finally {
      this.#flushing = false;
    }
    if (this.#queue.length > 0) {
      this.#flushing = true;
      setImmediate(() => void this.#drain());
    }
  }

  #allocSlot(): number {
    const s = this.#free.pop();
    if (s !== undefined) return s;
    const slot = this.#nextSlot++;
    this.#table.ensure(slot);
    return slot;
  }

  /** One group commit: lay out, write, fsync, then apply in order and resolve. */
  async #commit(batch: Op[]): Promise<void> {
    const overlay = new Map<string, number>();
    const access = new Map<number, number>();
    const allocated: number[] = [];
    const planned: PlannedOp[] = [];
    const nextSlotBefore = this.#nextSlot;
    let contentBytes = 0;
    const slotOf = (id: string): number => {
      const o = overlay.get(id);
      return o !== undefined ? o : (this.#lookup(id) ?? -1);
    };
    for (const op of batch) {
      switch (op.t) {
        case 'put': {
          let slot = slotOf(op.rec.id);
          if (slot < 0) {
            slot = this.#allocSlot();
            allocated.push(slot);
          }
          overlay.set(op.rec.id, slot);
          access.set(slot, op.rec.accessCount);
          const r = op.rec;
          if (r.content) contentBytes += entryBytes(r.idBytes.length, r.content.length);
          planned.push({
            op,
            content: r.content,
            entry: {
              type: WalType.Put,
              slot,
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
              embedding: r.embedding,
            },
          });
          break;
        }
        case 'delete': {
          const slot = slotOf(op.id);
          if (slot < 0) {
            planned.push({ op, entry: undefined, content: null });
          } else {
            overlay.set(op.id, -1);
            planned.push({ op, entry: { type: WalType.Delete, slot, id: op.id }, content: null });
          }
          break;
        }
        case 'touch': {
          const slot = slotOf(op.id);
          if (slot < 0 || this.#corrupt.has(slot)) {
            planned.push({ op, entry: undefined, content: null });
          } else {
            const prev = access.get(slot) ?? this.#table.chunk(slot).accessCount[slot & CHUNK_MASK]!;
            access.set(slot, prev + 1);
            planned.push({
              op,
              entry: { type: WalType.Touch, slot, lastAccess: op.at, accessCount: prev + 1 },
              content: null,
            });
          }
          break;
        }
        case 'compact':
          planned.push({ op, entry: op.entry, content: null });
          break;
        case 'barrier':
          break;
      }
    }

    if (this.#walBroken) {
      try {
        await this.#replaceWal();
      } catch (err) {
        const e = ioError('create WAL', this.dir, err);
        for (const op of batch) op.reject(e);
        return;
      }
    }
    const walEnd = this.#wal.end;
    let lsn = this.#lastLsn;
    // Content is laid out over the active segment and, when it fills, fresh ones.
    const parts: { seg: Segment; start: number; buf: Buffer; len: number }[] = [];
    try {
      if (contentBytes > 0) {
        let part: { seg: Segment; start: number; buf: Buffer; len: number } | undefined;
        let remaining = contentBytes;
        for (const p of planned) {
          if (!p.content || p.entry?.type !== WalType.Put) continue;
          const size = entryBytes(p.entry.idBytes.length, p.content.length);
          let seg = part?.seg ?? this.#active;
          const used = (part ? part.start + part.len : seg.end) - HEADER_BYTES;
          if (used > 0 && used + size > this.#opts.segmentBytes) {
            await this.#rotateActive();
            seg = this.#active;
            part = undefined;
          }
          if (!part) {
            part = { seg, start: seg.end, buf: Buffer.allocUnsafe(remaining), len: 0 };
            parts.push(part);
          }
          p.entry.seg = seg.id;
          p.entry.off = part.start + part.len;
          part.len += encodeEntry(part.buf, part.len, p.entry.idBytes, p.content);
          remaining -= size;
        }
      }
      let walBytes = 0;
      for (const p of planned) if (p.entry) walBytes += walEntrySize(p.entry);
      const walBuf = Buffer.allocUnsafe(walBytes);
      let wpos = 0;
      const lsns: number[] = [];
      for (const p of planned) {
        if (!p.entry) {
          lsns.push(0);
          continue;
        }
        lsn++;
        lsns.push(lsn);
        wpos += encodeWalEntry(walBuf, wpos, lsn, p.entry, wpos === 0);
      }
      const sync = this.#opts.durability === 'sync';
      for (const part of parts) {
        await writeFully(part.seg.file, part.buf.subarray(0, part.len), part.start);
        part.seg.dirty = !sync;
        // Content is durable before the WAL entry that points at it is even written: the kernel
        // may flush a written page at any moment, so write order alone would not do.
        if (sync) await part.seg.file.sync();
      }
      if (walBytes > 0) {
        await writeFully(this.#wal.file, walBuf, this.#wal.end);
        if (sync) await this.#wal.file.sync();
      }
      for (const part of parts) part.seg.end = part.start + part.len;
      this.#wal.end += walBytes;
      this.#lastLsn = lsn;

      // Committed: apply in order. Nothing below awaits, so readers see each op whole.
      for (let i = 0; i < planned.length; i++) {
        this.#apply(planned[i]!, lsns[i]!);
      }
    } catch (err) {
      // Roll back everything in memory and cut the files back. LSNs are not reused (gaps are
      // fine), so an entry that survives a failed cut can never shadow a later acknowledged one.
      this.#lastLsn = lsn;
      for (const s of allocated) if (s < nextSlotBefore) this.#free.push(s);
      this.#nextSlot = nextSlotBefore;
      for (const part of parts) {
        try {
          await part.seg.file.truncate(part.start);
          part.seg.end = part.start;
        } catch {
          // Never write over bytes a surviving WAL entry might reference.
          part.seg.end = part.start + part.len;
        }
      }
      try {
        await this.#wal.file.truncate(walEnd);
        this.#wal.end = walEnd;
      } catch {
        // A tail we could not cut may be torn: continue in a fresh WAL file so nothing
        // acknowledged is ever written behind it.
        this.#walBroken = true;
      }
      const e = ioError('commit', this.#wal.file.path, err);
      for (const p of planned) p.op.reject(e);
      return;
    }
    if (this.#wal.end - HEADER_BYTES > this.#opts.walCheckpointBytes && !this.#checkpointPending) {
      this.checkpoint().catch((err: unknown) =>
        this.#opts.logger?.error({ err }, 'background checkpoint failed'),
      );
    }
  }

  #apply(p: PlannedOp, lsn: number): void {
    const op = p.op;
    const e = p.entry;
    switch (op.t) {
      case 'put': {
        if (e?.type !== WalType.Put) return;
        this.#dropLive(e.slot);
        this.#forgetOccupant(e.slot, e.id);
        this.#setFromPut(e.slot, e.id, e.idBytes.length, e, lsn);
        this.#index.set(e.id, e.slot);
        this.#clearCorrupt(e.slot);
        if (e.kind === ContentKind.Present) {
          const seg = this.#segments.get(e.seg);
          if (seg) seg.live += entryBytes(e.idBytes.length, e.clen);
        }
        this.#table.markFull(e.slot);
        op.resolve();
        return;
      }
      case 'delete': {
        if (e?.type !== WalType.Delete) {
          op.resolve(false);
          return;
        }
        this.#dropLive(e.slot);
        this.#forgetOccupant(e.slot, e.id);
        this.#table.clear(e.slot);
        this.#index.delete(e.id);
        this.#clearCorrupt(e.slot);
        this.#free.push(e.slot);
        this.#table.markFull(e.slot);
        op.resolve(true);
        return;
      }
      case 'touch': {
        if (e?.type !== WalType.Touch) {
          op.resolve(false);
          return;
        }
        const c = this.#table.chunk(e.slot);
        c.lastAccess[e.slot & CHUNK_MASK] = e.lastAccess;
        c.accessCount[e.slot & CHUNK_MASK] = e.accessCount;
        this.#table.markHeader(e.slot);
        op.resolve(true);
        return;
      }
      case 'compact': {
        if (!e) return;
        const t = performance.now();
        const moved = this.#applyCompactEntry({ ...e, lsn } as WalEntry, true);
        op.resolve({ moved, applyMs: performance.now() - t });
        return;
      }
      case 'barrier':
        return;
    }
  }

  #dropLive(slot: number): void {
    if (!this.#table.isUsed(slot) || this.#corrupt.has(slot)) return;
    const c = this.#table.chunk(slot);
    const i = slot & CHUNK_MASK;
    if (c.kind[i] !== ContentKind.Present) return;
    const seg = this.#segments.get(c.seg[i]!);
    if (seg) seg.live -= entryBytes(c.idLen[i]!, c.clen[i]!);
  }

  async #rotateActive(): Promise<void> {
    const old = this.#active;
    if (old.dirty) {
      await old.file.sync();
      old.dirty = false;
    }
    const seg = this.#createSegment();
    try {
      await seg.file.sync();
      await this.#fs.syncDir(this.dir);
    } catch (err) {
      this.#segments.delete(seg.id);
      await seg.file.close().catch(() => undefined);
      await this.#fs.unlink(seg.path).catch(() => undefined);
      throw ioError('create segment', seg.path, err);
    }
    old.sealed = true;
    this.#active = seg;
  }

  async #syncAll(): Promise<void> {
    for (const s of this.#segments.values()) {
      if (s.dirty && !s.retired) {
        await s.file.sync();
        s.dirty = false;
      }
    }
    await this.#wal.file.sync();
  }

  // ---------------------------------------------------------------- public mutations

  /** Stores (creates or replaces) a memory. Durable when it resolves under 'sync' durability. */
  async put(record: MemoryRecord): Promise<void> {
    this.#checkOpen();
    const t0 = performance.now();
    const rec = normalizeRecord(record, this.#dim, this.#opts.maxContentBytes, Date.now());
    await this.#traced(
      'warmstore.put',
      { 'warmstore.id': rec.id, 'warmstore.content_bytes': rec.content?.length ?? 0 },
      () => this.#enqueue<void>((resolve, reject) => ({ t: 'put', rec, resolve, reject })),
    );
    this.#emit('op', 'put', performance.now() - t0);
  }

  /** Stores several memories; all are validated before any is written, and share one commit. */
  async putMany(records: MemoryRecord[]): Promise<void> {
    this.#checkOpen();
    if (!Array.isArray(records)) throw invalid('records', 'must be an array');
    const now = Date.now();
    const recs = records.map((r, i) => {
      try {
        return normalizeRecord(r, this.#dim, this.#opts.maxContentBytes, now);
      } catch (err) {
        if (WarmStoreError.is(err, 'INVALID_INPUT')) {
          throw invalid(`records[${i}].${err.details.field ?? 'record'}`, err.message);
        }
        throw err;
      }
    });
    const t0 = performance.now();
    await Promise.all(
      recs.map((rec) => this.#enqueue<void>((resolve, reject) => ({ t: 'put', rec, resolve, reject }))),
    );
    this.#emit('op', 'put', performance.now() - t0);
  }

  /** Deletes a memory; resolves true if it existed. */
  async delete(id: string): Promise<boolean> {
    this.#checkOpen();
    checkId(id);
    const t0 = performance.now();
    const r = await this.#traced('warmstore.delete', { 'warmstore.id': id }, () =>
      this.#enqueue<boolean>((resolve, reject) => ({ t: 'delete', id, resolve, reject })),
    );
    this.#emit('op', 'delete', performance.now() - t0);
    return r;
  }

  // ---------------------------------------------------------------- read path

  has(id: string): boolean {
    this.#checkOpen();
    checkId(id);
    return this.#lookup(id) !== undefined;
  }

  /**
   * The memory stored under `id`, or undefined. Reads its content with a synchronous pread while
   * those stay fast, and through the thread pool for a second after one did not (a page-cache
   * miss), so a cold cache never holds the event loop read after read.
   */
  async get(id: string, options: GetOptions = {}): Promise<StoredMemory | undefined> {
    this.#checkOpen();
    checkId(id);
    if (typeof options !== 'object' || options === null) throw invalid('options', 'must be an object');
    const t0 = performance.now();
    const span = tracer.startSpan('warmstore.get', { attributes: { 'warmstore.id': id } });
    try {
      if (options.touch === true) {
        await this.#enqueue<boolean>((resolve, reject) => ({
          t: 'touch',
          id,
          at: Date.now(),
          resolve,
          reject,
        }));
      }
      const slot = this.#lookup(id);
      if (slot === undefined) return undefined;
      if (this.#corrupt.has(slot)) throw this.#corruptError(slot, id);
      // The common case stays synchronous: one page-cached pread (~2 us; a thread-pool hop costs
      // ~200 us here). But a pread that misses the cache holds the event loop for the disk's
      // latency (80 ms seen during a compaction), so after one slow read `get` goes through the
      // pool for a while. `getSync` always reads synchronously: its caller chose to.
      let m: StoredMemory;
      if (this.#isSmall(slot) && performance.now() >= this.#poolReadsUntil) {
        const t = performance.now();
        m = this.#readSlotSync(slot);
        const now = performance.now();
        if (now - t > SLOW_SYNC_READ_MS) this.#poolReadsUntil = now + POOL_READ_WINDOW_MS;
      } else {
        m = await this.#readSlot(slot, true);
      }
      span.setAttribute('warmstore.content_bytes', m.content?.length ?? 0);
      return m;
    } catch (err) {
      span.recordException(err as Error);
      span.setStatus({ code: SpanStatusCode.ERROR, message: (err as Error).message });
      throw err;
    } finally {
      span.end();
      this.#emit('op', 'get', performance.now() - t0);
    }
  }

  #isSmall(slot: number): boolean {
    const c = this.#table.chunk(slot);
    const i = slot & CHUNK_MASK;
    return entryBytes(c.idLen[i]!, c.clen[i]!) <= SYNC_READ_LIMIT;
  }

  /**
   * Synchronous read: a page-cached pread, no hop through the thread pool. On a page-cache miss it
   * waits for the disk on the calling thread; `get` avoids that.
   */
  getSync(id: string): StoredMemory | undefined {
    this.#checkOpen();
    checkId(id);
    const slot = this.#lookup(id);
    if (slot === undefined) return undefined;
    if (this.#corrupt.has(slot)) throw this.#corruptError(slot, id);
    return this.#readSlotSync(slot);
  }

  #corruptError(slot: number, requested?: string): WarmStoreError {
    const c = this.#corrupt.get(slot)!;
    const id = requested ?? this.#table.id(slot) ?? `<slot ${slot}>`;
    return corruption(
      c.lostHash !== undefined && requested !== undefined
        ? `${c.reason} (found by the id's checksum; its id bytes are damaged)`
        : c.reason,
      { id, file: c.file, slot },
    );
  }

  #snapshot(slot: number): {
    m: StoredMemory;
    seg: Segment | undefined;
    off: number;
    clen: number;
    idLen: number;
  } {
    if (this.#corrupt.has(slot)) throw this.#corruptError(slot);
    const v = this.#table.get(slot);
    const m: StoredMemory = {
      id: v.id,
      embedding: v.embedding,
      content: v.kind === ContentKind.Absent ? null : '',
      confidence: v.confidence,
      activation: v.activation,
      decayRate: v.decayRate,
      createdAt: v.createdAt,
      lastAccess: v.lastAccess,
      accessCount: v.accessCount,
    };
    if (v.kind !== ContentKind.Present) return { m, seg: undefined, off: 0, clen: 0, idLen: v.idLen };
    const seg = this.#segments.get(v.seg);
    if (!seg) {
      throw corruption(`content segment ${v.seg} is missing`, {
        id: v.id,
        file: join(this.dir, `seg-${v.seg}`),
      });
    }
    return { m, seg, off: v.off, clen: v.clen, idLen: v.idLen };
  }

  #readSlotSync(slot: number): StoredMemory {
    const s = this.#snapshot(slot);
    if (!s.seg) return s.m;
    const size = entryBytes(s.idLen, s.clen);
    const buf = s.seg.readSync(s.off, size);
    s.m.content = verifyEntry(buf, Buffer.from(s.m.id, 'utf8'), s.clen, s.seg.path, s.m.id, s.off).toString(
      'utf8',
    );
    return s.m;
  }

  async #readSlot(slot: number, forceAsync: boolean): Promise<StoredMemory> {
    const s = this.#snapshot(slot);
    if (!s.seg) return s.m;
    const size = entryBytes(s.idLen, s.clen);
    if (!forceAsync && size <= SYNC_READ_LIMIT) {
      const buf = s.seg.readSync(s.off, size);
      s.m.content = verifyEntry(buf, Buffer.from(s.m.id, 'utf8'), s.clen, s.seg.path, s.m.id, s.off).toString(
        'utf8',
      );
      return s.m;
    }
    // The pin keeps the segment's file open even if compaction retires it while we wait.
    const seg = s.seg;
    seg.pins++;
    try {
      const buf = await seg.read(s.off, size);
      s.m.content = verifyEntry(buf, Buffer.from(s.m.id, 'utf8'), s.clen, seg.path, s.m.id, s.off).toString(
        'utf8',
      );
      return s.m;
    } finally {
      seg.pins--;
    }
  }

  /** Every memory, in slot order. A memory written during iteration may or may not appear. */
  async *entries(): AsyncGenerator<StoredMemory> {
    this.#checkOpen();
    let n = 0;
    for (let slot = 0; slot < this.#nextSlot; slot++) {
      if (this.#state !== 'open') throw new WarmStoreError('STORE_CLOSED', 'store closed during iteration');
      if (!this.#table.isUsed(slot)) continue;
      yield await this.#readSlot(slot, false);
      if (++n % 4096 === 0) await yieldImmediate();
    }
  }

  *ids(): IterableIterator<string> {
    this.#checkOpen();
    yield* this.#index.keys();
  }

  /** Exact cosine top-k over every memory, best first; ties broken by id. */
  async recall(embedding: Float32Array | number[], options: RecallOptions = {}): Promise<RecallResult[]> {
    this.#checkOpen();
    const q = validateEmbedding(embedding, this.#dim);
    if (typeof options !== 'object' || options === null) throw invalid('options', 'must be an object');
    const k = options.k ?? 10;
    if (!Number.isInteger(k) || k < 1 || k > 100_000) throw invalid('k', 'must be an integer in [1, 100000]');
    const minScore = options.minScore ?? -Infinity;
    if (typeof minScore !== 'number' || Number.isNaN(minScore)) throw invalid('minScore', 'must be a number');
    let qn = 0;
    for (let d = 0; d < q.length; d++) qn += q[d]! * q[d]!;
    if (qn === 0) throw invalid('embedding', 'must not be the zero vector (cosine is undefined)');
    const t0 = performance.now();
    const out = await this.#traced('warmstore.recall', { 'warmstore.k': k }, async () => {
      const hits = await exactTopK(this.#table, this.#nextSlot, q, k, minScore, () => yieldImmediate());
      const results: RecallResult[] = [];
      for (const h of hits) {
        // The scan yielded: skip a hit whose slot was deleted or reused meanwhile.
        if (this.#index.get(h.id) !== h.slot) continue;
        if (options.touch === true) {
          await this.#enqueue<boolean>((resolve, reject) => ({
            t: 'touch',
            id: h.id,
            at: Date.now(),
            resolve,
            reject,
          }));
          if (this.#index.get(h.id) !== h.slot) continue;
        }
        results.push({ memory: await this.#readSlot(h.slot, false), score: h.score });
      }
      return results;
    });
    this.#emit('op', 'recall', performance.now() - t0);
    return out;
  }

  contentStorageStats(): ContentStorageStats {
    let total = 0;
    let live = 0;
    let segments = 0;
    for (const s of this.#segments.values()) {
      if (s.retired) continue;
      total += s.totalBytes;
      live += s.live;
      segments++;
    }
    const dead = total - live;
    return {
      totalBytes: total,
      liveBytes: live,
      deadBytes: dead,
      fragmentationRatio: total > 0 ? dead / total : 0,
      segments,
    };
  }

  async #traced<T>(name: string, attrs: Record<string, string | number>, fn: () => Promise<T>): Promise<T> {
    // startSpan, not startActiveSpan: no context propagation is needed inside the engine and it
    // costs a quarter as much on the hot path.
    const span: Span = tracer.startSpan(name, { attributes: attrs });
    try {
      return await fn();
    } catch (err) {
      span.recordException(err as Error);
      span.setStatus({ code: SpanStatusCode.ERROR, message: (err as Error).message });
      throw err;
    } finally {
      span.end();
    }
  }

  // ---------------------------------------------------------------- checkpoint

  /**
   * Makes records.dat durable up to now and starts a fresh WAL. Lock order: the checkpoint chain
   * (2) is taken before the writer queue (3), never the other way round.
   */
  checkpoint(): Promise<void> {
    this.#checkOpen();
    return this.#checkpointNow();
  }

  #checkpointNow(): Promise<void> {
    this.#checkpointPending = true;
    const run = this.#checkpointChain.then(() => this.#doCheckpoint());
    this.#checkpointChain = run.catch(() => undefined);
    return run.finally(() => {
      this.#checkpointPending = false;
    });
  }

  async #doCheckpoint(rotateWal = true): Promise<void> {
    const old = this.#wal;
    let lsn = this.#lastLsn;
    let taken: Uint8Array[] = [];
    if (rotateWal) {
      // Rotate between two batches, so every entry up to `lsn` is in the old file.
      try {
        await this.#barrier(async () => {
          lsn = this.#lastLsn;
          await old.file.sync();
          await this.#openNewWal(old.fileNo + 1);
          taken = this.#table.takeDirty();
        });
      } catch (err) {
        throw ioError('checkpoint', old.file.path, err);
      }
    } else {
      taken = this.#table.takeDirty();
    }
    try {
      // Asynchronous pwrites: once the page cache holds enough dirty pages the kernel throttles
      // writers inside write(2) for 100 ms and more, which a synchronous call would turn into an
      // event-loop stall. Every dirty slot rewrites its header in records.dat; only slots whose
      // embedding changed (puts) rewrite their vector in vectors.dat.
      const pace = { work: 0, stepStart: performance.now() };
      const hbuf = Buffer.allocUnsafe(CHECKPOINT_HEADER_RUN * SLOT_HEADER_BYTES);
      const vecBytes = this.#dim * 4;
      const vbuf = Buffer.allocUnsafe(CHECKPOINT_RUN_SLOTS * vecBytes);
      for (let ci = 0; ci < taken.length; ci++) {
        const flags = taken[ci]!;
        const base = ci * CHUNK_SLOTS;
        // Headers: read the run back, then encode only its dirty slots. A clean slot's bytes on
        // disk already are its current state (or the evidence of its corruption), and a
        // page-cached read of the run costs less than re-encoding the clean headers.
        await this.#writeRuns(
          pace,
          flags,
          base,
          (f) => f !== 0,
          CHECKPOINT_HEADER_GAP,
          CHECKPOINT_HEADER_RUN,
          async (first, count) => {
            const bytes = count * SLOT_HEADER_BYTES;
            let got = 0;
            while (got < bytes) {
              const r = await this.#records.read(hbuf, got, bytes - got, headerOffset(first) + got);
              if (r === 0) break;
              got += r;
            }
            hbuf.fill(0, got, bytes);
            for (let x = 0; x < count; x++) {
              if (flags[first - base + x] !== 0)
                this.#encodeHeaderInto(hbuf, x * SLOT_HEADER_BYTES, first + x);
            }
            await writeFully(this.#records, hbuf.subarray(0, bytes), headerOffset(first));
          },
        );
        // Vectors: only slots whose embedding changed; a bridged clean vector is rewritten from
        // memory (a copy, no checksum).
        await this.#writeRuns(
          pace,
          flags,
          base,
          (f, slot) => f === DIRTY_FULL && slot < this.#nextSlot && this.#table.isUsed(slot),
          CHECKPOINT_GAP_SLOTS,
          CHECKPOINT_RUN_SLOTS,
          async (first, count) => {
            for (let x = 0; x < count; x++) this.#encodeVectorInto(vbuf, x * vecBytes, first + x);
            await writeFully(
              this.#vectors,
              vbuf.subarray(0, count * vecBytes),
              vectorOffset(first, this.#dim),
            );
          },
        );
        await yieldImmediate();
      }
      // Everything a checkpointed slot may point at must be durable before records.dat is.
      for (const s of this.#segments.values()) {
        if (s.dirty && !s.retired) {
          await s.file.sync();
          s.dirty = false;
        }
      }
      await this.#wal.file.sync();
      await this.#vectors.sync();
      await this.#records.sync();
      this.#manifest = {
        ...this.#manifest,
        walFileNo: this.#wal.fileNo,
        checkpointLsn: lsn,
        activeSegment: this.#active.id,
        compaction: this.#compaction ? structuredClone(this.#compaction) : null,
      };
      await writeManifest(this.#fs, this.dir, this.#manifest);
    } catch (err) {
      this.#table.restoreDirty(taken);
      // The old WAL file stays on disk (the manifest still points at it); only the handle goes.
      if (rotateWal) await old.file.close().catch(() => undefined);
      throw ioError('checkpoint', join(this.dir, RECORDS_FILE), err);
    }
    if (rotateWal) await old.file.close().catch(() => undefined);
    for (const name of await this.#listDir()) {
      const no = parseWalFileName(name);
      if (no !== undefined && no < this.#wal.fileNo)
        await this.#fs.unlink(join(this.dir, name)).catch(() => undefined);
    }
    await this.#collectSegments();
  }

  /**
   * Writes runs of one chunk's slots through `write(first, count)`: a run starts at a slot
   * `wanted` says needs writing and bridges at most `gap` slots that do not (one pwrite of a few
   * extra slots beats many scattered small ones, and rewriting an unchanged slot with its current
   * state is harmless: a checkpoint may record any state at or after its LSN). Yields once a step
   * has run CHECKPOINT_STEP_MS.
   */
  async #writeRuns(
    pace: { work: number; stepStart: number },
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
        if (performance.now() - pace.stepStart > CHECKPOINT_STEP_MS) {
          await yieldImmediate();
          pace.stepStart = performance.now();
        }
      }
    }
  }

  #encodeHeaderInto(buf: Buffer, pos: number, slot: number): void {
    if (slot >= this.#nextSlot || !this.#table.isUsed(slot)) {
      encodeFreeHeader(buf, pos);
      return;
    }
    if (this.#corrupt.get(slot)?.raw === true) {
      // Leave a corrupt slot's bytes as found on disk: re-read them for evidence, never mask them.
      buf.fill(0, pos, pos + SLOT_HEADER_BYTES);
      this.#records.readSync(buf, pos, SLOT_HEADER_BYTES, headerOffset(slot));
      return;
    }
    encodeSlotHeader(buf, pos, this.#table.chunk(slot), slot & CHUNK_MASK);
  }

  #encodeVectorInto(buf: Buffer, pos: number, slot: number): void {
    const vecBytes = this.#dim * 4;
    if (slot >= this.#nextSlot || !this.#table.isUsed(slot)) {
      buf.fill(0, pos, pos + vecBytes);
      return;
    }
    if (this.#corrupt.get(slot)?.raw === true) {
      buf.fill(0, pos, pos + vecBytes);
      this.#vectors.readSync(buf, pos, vecBytes, vectorOffset(slot, this.#dim));
      return;
    }
    const c = this.#table.chunk(slot);
    const at = (slot & CHUNK_MASK) * this.#dim;
    encodeVector(buf, pos, c.emb.subarray(at, at + this.#dim));
  }

  /** Deletes sealed segments that hold nothing live, once no reader pins them. */
  async #collectSegments(): Promise<void> {
    const busy = new Set<number>();
    if (this.#compaction) for (const k of Object.keys(this.#compaction.outputs)) busy.add(Number(k));
    let removed = false;
    for (const s of [...this.#segments.values()]) {
      if (s === this.#active || !s.sealed || s.live !== 0 || s.pins > 0 || busy.has(s.id)) continue;
      s.retired = true;
      this.#segments.delete(s.id);
      await s.file.close().catch(() => undefined);
      await this.#fs.unlink(s.path).catch(() => undefined);
      removed = true;
    }
    if (removed) await this.#fs.syncDir(this.dir).catch(() => undefined);
  }

  // ---------------------------------------------------------------- compaction and maintenance

  /** Online compaction. See docs/ARCHITECTURE.md, "Compaction state machine". */
  compact(options: CompactOptions = {}): Promise<CompactionStats> {
    try {
      this.#checkOpen();
    } catch (err) {
      return Promise.reject(err);
    }
    if (typeof options !== 'object' || options === null)
      return Promise.reject(invalid('options', 'must be an object'));
    if (this.#compactionRun) {
      return Promise.reject(new WarmStoreError('COMPACTION_IN_PROGRESS', 'a compaction is already running'));
    }
    const abort = new AbortController();
    const onAbort = (): void => abort.abort(options.signal?.reason);
    options.signal?.addEventListener('abort', onAbort, { once: true });
    if (options.signal?.aborted) abort.abort(options.signal.reason);
    const interrupted = this.#interrupted;
    const promise = runCompaction(this.#compactorHost(), {
      signal: abort.signal,
      onProgress: options.onProgress,
      force: options.force === true,
      resumeVictims: interrupted?.victimsRemaining ?? [],
      resumed: interrupted !== undefined,
    })
      .then((stats) => {
        this.#interrupted = undefined;
        return stats;
      })
      .finally(() => {
        options.signal?.removeEventListener('abort', onAbort);
        this.#compactionRun = undefined;
      });
    this.#compactionRun = { promise, abort };
    return promise;
  }

  #compactorHost(): CompactorHost {
    return {
      fs: this.#fs,
      dir: this.dir,
      segmentBytes: this.#opts.segmentBytes,
      memoryBudgetBytes: this.#opts.memoryBudgetBytes,
      minSegmentDeadRatio: this.#opts.minSegmentDeadRatio,
      diskHeadroomBytes: this.#opts.diskHeadroomBytes,
      logger: this.#opts.logger,
      killPoint: (name) => this.#opts.onKillPoint?.(name),
      table: () => this.#table,
      slotLimit: () => this.#nextSlot,
      segments: () => this.#segments,
      activeId: () => this.#active.id,
      stats: () => this.contentStorageStats(),
      nextRunId: () => this.#manifest.nextCompactionRunId++,
      createOutputSegment: async () => {
        const seg = this.#createSegment();
        seg.sealed = true;
        seg.pins++;
        try {
          await seg.file.sync();
          await this.#fs.syncDir(this.dir);
        } catch (err) {
          seg.pins--;
          throw err;
        }
        return seg;
      },
      sealActive: () =>
        this.#barrier(async () => {
          if (this.#active.totalBytes > 0) await this.#rotateActive();
        }),
      submit: (entry) =>
        this.#enqueue<{ moved: number; applyMs: number }>((resolve, reject) => ({
          t: 'compact',
          entry,
          resolve,
          reject,
        })),
      checkpoint: () => this.#checkpointNow(),
      emit: (ev, arg) => {
        if (this.#emitter.listenerCount(ev) > 0) this.#emitter.emit(ev, arg);
      },
    };
  }

  /** Checks fragmentation against the thresholds and compacts if warranted; reports why. */
  async runMaintenance(): Promise<MaintenanceReport> {
    this.#checkOpen();
    const o = this.#opts;
    const stats = this.contentStorageStats();
    const report: MaintenanceReport = {
      at: Date.now(),
      stats,
      thresholds: { fragmentationThreshold: o.fragmentationThreshold, minTotalBytes: o.minTotalBytes },
      decision: 'skipped',
      reason: '',
      checkpointed: false,
    };
    if (this.#interrupted) report.interruptedCompaction = { ...this.#interrupted };
    const fragmented = stats.fragmentationRatio > o.fragmentationThreshold;
    const bigEnough = stats.totalBytes > o.minTotalBytes;
    if (this.#compactionRun) {
      report.decision = 'busy';
      report.reason = 'a compaction is already running';
    } else if ((fragmented && bigEnough) || this.#interrupted) {
      report.reason = this.#interrupted
        ? `resuming interrupted compaction run ${this.#interrupted.runId}`
        : `fragmentation ${stats.fragmentationRatio.toFixed(4)} > ${o.fragmentationThreshold} and ${stats.totalBytes} bytes > ${o.minTotalBytes}`;
      try {
        report.compaction = await this.compact();
        report.decision = 'compacted';
      } catch (err) {
        report.decision = WarmStoreError.is(err, 'COMPACTION_IN_PROGRESS') ? 'busy' : 'failed';
        report.error = { code: (err as WarmStoreError).code ?? 'UNKNOWN', message: (err as Error).message };
      }
    } else {
      report.reason = !fragmented
        ? `fragmentation ${stats.fragmentationRatio.toFixed(4)} is not above ${o.fragmentationThreshold}`
        : `total ${stats.totalBytes} bytes is not above ${o.minTotalBytes}`;
    }
    if (this.#state === 'open' && this.#wal.end > HEADER_BYTES && report.decision !== 'compacted') {
      await this.#checkpointNow();
      report.checkpointed = true;
    } else if (report.decision === 'compacted') {
      report.checkpointed = true;
    }
    this.#lastMaintenance = report;
    return report;
  }

  /** The last maintenance report, if any ran. */
  get lastMaintenance(): MaintenanceReport | undefined {
    return this.#lastMaintenance;
  }

  /** The interrupted compaction found at open, until a compaction completes. */
  get interruptedCompaction(): InterruptedCompaction | undefined {
    return this.#interrupted;
  }

  // ---------------------------------------------------------------- verify (fsck)

  /**
   * Reads every record and every content entry, checks every checksum and owner id, and
   * cross-checks the per-segment live counts against a recount.
   */
  async verify(options: { onProgress?: (done: number, total: number) => void } = {}): Promise<VerifyReport> {
    this.#checkOpen();
    const problems: VerifyProblem[] = [];
    let bytes = 0;
    let records = 0;
    const recount = new Map<number, number>();
    const recPath = join(this.dir, RECORDS_FILE);
    for (const [slot, c] of this.#corrupt) {
      problems.push({
        kind: 'corrupt-record',
        id: this.#table.id(slot) ?? `<slot ${slot}>`,
        file: c.file,
        message: c.reason,
      });
    }
    // Durable slots on disk must decode (a checkpoint has just been written below).
    await this.#checkpointNow();
    const hbuf = Buffer.allocUnsafe(SLOT_HEADER_BYTES);
    const vbuf = Buffer.allocUnsafe(this.#dim * 4);
    const vecPath = join(this.dir, VECTORS_FILE);
    for (let slot = 0; slot < this.#nextSlot; slot++) {
      if (!this.#table.isUsed(slot)) continue;
      records++;
      if (this.#corrupt.has(slot)) continue;
      const id = this.#table.id(slot)!;
      const n = this.#records.readSync(hbuf, 0, SLOT_HEADER_BYTES, headerOffset(slot));
      const vn = this.#vectors.readSync(vbuf, 0, vbuf.length, vectorOffset(slot, this.#dim));
      const d = n === SLOT_HEADER_BYTES ? decodeSlot(hbuf, 0, vbuf.subarray(0, vn), 0, this.#dim) : undefined;
      if (!d || d.state !== 'used' || d.value.id !== id) {
        problems.push({
          kind: 'corrupt-record',
          id,
          file: d?.state === 'corrupt' && d.where === 'vector' ? vecPath : recPath,
          message: d?.state === 'corrupt' ? d.reason : 'record on disk does not match the store',
        });
      }
      try {
        const s = this.#snapshot(slot);
        if (s.seg) {
          const size = entryBytes(s.idLen, s.clen);
          const b = await s.seg.read(s.off, size);
          verifyEntry(b, Buffer.from(id, 'utf8'), s.clen, s.seg.path, id, s.off);
          bytes += size;
        }
      } catch (err) {
        const e = err as WarmStoreError;
        problems.push({
          kind: 'corrupt-content',
          id,
          file: (e.details?.file as string) ?? '',
          message: e.message,
        });
      }
      if (records % 1024 === 0) {
        options.onProgress?.(records, this.#index.size);
        await yieldImmediate();
      }
    }
    // Garbage counts are cross-checked in one synchronous pass, so compaction or writes running
    // meanwhile cannot make the recount and the counters disagree.
    for (let slot = 0; slot < this.#nextSlot; slot++) {
      if (!this.#table.isUsed(slot) || this.#corrupt.has(slot)) continue;
      const c = this.#table.chunk(slot);
      const i = slot & CHUNK_MASK;
      if (c.kind[i] !== ContentKind.Present) continue;
      recount.set(c.seg[i]!, (recount.get(c.seg[i]!) ?? 0) + entryBytes(c.idLen[i]!, c.clen[i]!));
    }
    for (const s of this.#segments.values()) {
      const expected = recount.get(s.id) ?? 0;
      if (expected !== s.live) {
        problems.push({
          kind: 'garbage-count',
          file: s.path,
          message: `segment ${s.id} counts ${s.live} live bytes, records reference ${expected}`,
        });
      }
      if (s.live > s.totalBytes) {
        problems.push({
          kind: 'garbage-count',
          file: s.path,
          message: `segment ${s.id} has more live than total bytes`,
        });
      }
    }
    options.onProgress?.(records, this.#index.size);
    return {
      ok: problems.length === 0,
      records,
      segments: this.#segments.size,
      bytesChecked: bytes,
      problems,
    };
  }

  // ---------------------------------------------------------------- close

  /** Finishes queued writes, stops compaction safely, checkpoints and releases the lock. */
  async close(): Promise<void> {
    if (this.#state === 'closed' || this.#state === 'closing') return;
    this.#state = 'closing';
    clearInterval(this.#maintenanceTimer);
    clearInterval(this.#relaxedTimer);
    if (this.#compactionRun) {
      this.#compactionRun.abort.abort(new Error('store closing'));
      await this.#compactionRun.promise.catch(() => undefined);
    }
    try {
      await this.#barrier(async () => {
        if (this.#opts.durability === 'relaxed') await this.#syncAll();
      });
      await this.#checkpointNow();
    } catch (err) {
      // The WAL still holds everything acknowledged; the next open replays it.
      this.#opts.logger?.error({ err }, 'checkpoint at close failed');
    } finally {
      await this.#closeFiles();
      this.#state = 'closed';
      await this.#releaseLock?.();
      this.#releaseLock = undefined;
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  async #closeFiles(): Promise<void> {
    const files: (WsFile | undefined)[] = [
      this.#records,
      this.#vectors,
      this.#wal?.file,
      ...[...this.#segments.values()].map((s) => s.file),
    ];
    for (const f of files) await f?.close().catch(() => undefined);
  }

  /** For tests and tools: the slots-per-chunk of the in-memory table. */
  static readonly chunkSlots = CHUNK_SLOTS;
  static readonly entryHeaderBytes = ENTRY_HEADER_BYTES;
}
