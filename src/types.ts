import type { WsFileSystem } from './fs/types.js';

/** One memory: an id within a space, an embedding, optional content and cognitive metadata. */
export interface MemoryRecord {
  /** 1..255 bytes of UTF-8, unique within its space. */
  id: string;
  /**
   * The memory space (a tenant: a user, an agent), 1..64 bytes of UTF-8. The same id in two spaces
   * is two memories. @default 'default'
   */
  space?: string;
  /** Exactly `dimension` finite values. */
  embedding: Float32Array;
  /** `undefined`/`null` = absent; `''` = empty. The two stay distinct. */
  content?: string | null;
  /** In [0, 1]. @default 1 */
  confidence?: number;
  /** Finite. @default 0 */
  activation?: number;
  /** Finite, >= 0. @default 0 */
  decayRate?: number;
  /** Milliseconds since the epoch. @default Date.now() */
  createdAt?: number;
  /** Milliseconds since the epoch. @default createdAt */
  lastAccess?: number;
  /** Integer >= 0. @default 0 */
  accessCount?: number;
}

/** The cognitive metadata of a stored memory, every field filled in (see MemoryRecord). */
export interface MemoryMetadata {
  confidence: number;
  activation: number;
  decayRate: number;
  createdAt: number;
  lastAccess: number;
  accessCount: number;
}

/** The names of the MemoryMetadata fields, for code that walks them (import, HTTP schemas). */
export const METADATA_FIELDS = [
  'confidence',
  'activation',
  'decayRate',
  'createdAt',
  'lastAccess',
  'accessCount',
] as const satisfies readonly (keyof MemoryMetadata)[];

/** A copy of the metadata fields of `m` (a record, a WAL entry, a slot): the one place they are listed. */
export function metadataOf(m: MemoryMetadata): MemoryMetadata {
  return {
    confidence: m.confidence,
    activation: m.activation,
    decayRate: m.decayRate,
    createdAt: m.createdAt,
    lastAccess: m.lastAccess,
    accessCount: m.accessCount,
  };
}

/** A memory as stored: every field filled in. `content` is `null` when absent. */
export interface StoredMemory extends MemoryMetadata {
  id: string;
  space: string;
  embedding: Float32Array;
  content: string | null;
}

export type Durability = 'sync' | 'relaxed';

/** What open does about a heavily fragmented store: nothing, compact in the background, or first. */
export type StartupCompaction = 'off' | 'background' | 'blocking';

/** Limits of a compaction run (`WarmStoreOptions.compaction`). */
export interface CompactionLimits {
  /**
   * Ceiling on the extra memory compaction may use (read and write buffers plus the staged
   * remap table), whatever the size of the store.
   * @default 67108864 (64 MiB)
   */
  memoryBudgetBytes?: number;
  /**
   * A sealed segment is a victim when its dead fraction exceeds this (unless `force`).
   * @default 0.3
   */
  minSegmentDeadRatio?: number;
  /**
   * Extra free disk, beyond the live bytes of the victims a run copies, that must be available
   * before starting (the run's WAL entries and the checkpoint's MANIFEST). On a disk short of
   * space a run takes only the victims whose live bytes fit, so it can still free space.
   * @default 1048576 (1 MiB)
   */
  diskHeadroomBytes?: number;
}

/** When the maintenance loop and open compact (`WarmStoreOptions.maintenance`). */
export interface MaintenancePolicy {
  /** Compact when `fragmentationRatio` is strictly greater than this. @default 0.5 */
  fragmentationThreshold?: number;
  /** ...and `totalBytes` is strictly greater than this. @default 104857600 (100 MiB) */
  minTotalBytes?: number;
  /** Above this ratio at open, log a warning. @default 0.7 */
  startupWarnRatio?: number;
  /** Above this ratio at open, compact according to `startupCompaction`. @default 0.9 */
  startupCompactRatio?: number;
  /** What to do at open above `startupCompactRatio`. @default 'background' */
  startupCompaction?: StartupCompaction;
}

/**
 * The background scrub (`WarmStoreOptions.scrub`): a walk over every memory, in slot order, that
 * reads its embedding and its content back and checks them against their CRC32C, so damage on
 * disk is found before a read needs the memory. It only reads, at a bounded rate.
 */
export interface ScrubPolicy {
  /**
   * Read rate of the scrub (embeddings and content together), in bytes per second. A pass over a
   * million 768-dimension memories reads about 3 GiB of embeddings: about 100 s at the default.
   * @default 33554432 (32 MiB/s)
   */
  bytesPerSecond?: number;
  /**
   * Time from the end of one full pass to the start of the next, in ms. The first pass starts
   * this long after open, or five minutes after if that is sooner. At most 2147483647 (~24.8 days).
   * @default 86400000 (24 h)
   */
  intervalMs?: number;
}

/** Options of `WarmStore.scrub`. */
export interface ScrubOptions {
  /**
   * Read rate of this pass, in bytes per second.
   * @default the store's `scrub.bytesPerSecond` (32 MiB/s when the background scrub is off)
   */
  bytesPerSecond?: number;
}

/** What one scrub pass found (`WarmStore.scrub`, event `scrubEnd`). */
export interface ScrubReport {
  /** When the pass started (ms since the epoch). */
  startedAt: number;
  durationMs: number;
  /**
   * False when the pass stopped before the last slot: the store closed, or (a background pass) a
   * `scrub()` call took over.
   */
  completed: boolean;
  /** Slots walked (used or free). */
  slots: number;
  /** Memories whose embedding (and content, when present) were read and checked. */
  checked: number;
  /**
   * Memories skipped because a write replaced, moved or deleted them while their bytes were read
   * (the slot then held another memory, or none); the next pass checks them.
   */
  skipped: number;
  /** Bytes read: embeddings and content entries. */
  bytesRead: number;
  /** Records this pass found damaged (also in `WarmStore.corruptRecords` until replaced). */
  corrupt: CorruptRecord[];
}

/** The background scrub's progress (`WarmStore.scrubStatus()`). */
export interface ScrubStatus {
  /** `off`: no background scrub (`scrub: false`, or a read-only store); `idle`: between passes. */
  state: 'off' | 'idle' | 'running';
  /** The pass in progress: when it started (ms since the epoch). */
  passStartedAt?: number;
  /** Slots the pass in progress has walked, of `passSlots` (the slot count when it started). */
  passSlotsDone: number;
  passSlots: number;
  /** When the last full pass ended (ms since the epoch). */
  lastPassCompletedAt?: number;
  /** When the next background pass starts (ms since the epoch), while idle. */
  nextPassAt?: number;
  /** Full passes completed since open. */
  passesCompleted: number;
  /** Memories checked since open (every pass, background and `scrub()`). */
  slotsChecked: number;
  /** Bytes read since open. */
  bytesRead: number;
  /** Damaged records found since open. */
  corruptFound: number;
  /** Why the last pass failed (an I/O error), if it did; the next pass runs at its time. */
  lastError?: string;
}

/** Minimal structured logger (pino-compatible). */
export interface WarmStoreLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
  debug?(obj: object, msg?: string): void;
}

/** Options of `WarmStore.open`. */
export interface WarmStoreOptions {
  /** Embedding dimension; fixed when the store is created, checked on every open. @default 768 */
  dimension?: number;
  /**
   * `'sync'`: a mutation resolves only after its WAL entry is fsynced (group commit: concurrent
   * mutations share one fsync). `'relaxed'`: resolves once written; fsync every
   * `relaxedSyncIntervalMs`.
   * @default 'sync'
   */
  durability?: Durability;
  /** fsync interval under `'relaxed'` durability. @default 100 */
  relaxedSyncIntervalMs?: number;
  /** Target size of a content segment before it is sealed. @default 67108864 (64 MiB) */
  segmentBytes?: number;
  /** Largest content accepted, in UTF-8 bytes; never above 2^32-1. @default 16777216 (16 MiB) */
  maxContentBytes?: number;
  /**
   * WAL size that triggers a checkpoint of the records file; it bounds the tail a crash leaves to
   * replay. @default 16777216 (16 MiB)
   */
  walCheckpointBytes?: number;
  /** Interval of the maintenance loop in ms, or `false` to disable it. @default 60000 */
  maintenanceIntervalMs?: number | false;
  /** Compaction limits. */
  compaction?: CompactionLimits;
  /** Trigger thresholds of the maintenance loop and the startup check. */
  maintenance?: MaintenancePolicy;
  /**
   * Recall uses the approximate index (candidates rescored exactly) only for spaces, and filter
   * match sets, larger than this; smaller ones are scanned exactly. A store holding fewer memories
   * than this keeps no index at all (no worker thread, no file) until it grows to this size.
   * @default 20000
   */
  annMinMemories?: number;
  /** Structured logger; warmstore logs nothing when absent. @default undefined */
  logger?: WarmStoreLogger;
  /** File layer; tests inject faults here. @default the Node fs layer */
  fileSystem?: WsFileSystem;
  /**
   * Disk space the store keeps for itself in a `RESERVE` file of real zero bytes, given back to
   * the file system when a write hits a full disk (ENOSPC) so that deletes, checkpoints and a
   * compaction can still run and free space, and taken again when space returns. Sized for a
   * compaction of one segment: its live bytes never exceed `segmentBytes`. 0 keeps no reserve.
   * @default the smaller of 16777216 (16 MiB) and `segmentBytes`
   */
  diskReserveBytes?: number;
  /**
   * Open for inspection or backup: nothing is written (no lock file, no repair, no recovery
   * checkpoint, no reserve) and every mutation is refused with READ_ONLY. No lock is taken, so a
   * writer may be running: the store is read as its files were at open (WAL replayed in memory).
   * @default false
   */
  readOnly?: boolean;
  /**
   * The background scrub, which reads every embedding and content entry back and checks its
   * CRC32C at a bounded rate, between long pauses (see `ScrubPolicy`); `false` turns it off.
   * `WarmStore.scrub()` runs a pass on demand either way. A read-only store never scrubs in the
   * background.
   * @default {} (on, with ScrubPolicy's defaults)
   */
  scrub?: ScrubPolicy | false;
}

/** The store's disk and write state (`WarmStore.storageStatus()`). */
export interface StorageStatus {
  /** A write hit a full disk and space has not returned yet: new content is refused (DISK_FULL). */
  diskFull: boolean;
  /** Why the store entered the full state. */
  diskFullReason?: string;
  /** When it did (ms since the epoch). */
  diskFullSince?: number;
  /** Opened with `readOnly`, or fell back to it because open could not write on a full disk. */
  readOnly: boolean;
  /** Why the store is read-only. */
  readOnlyReason?: string;
  /** The reserve's configured size (`diskReserveBytes`). */
  reserveBytes: number;
  /** Bytes the reserve file holds now (less than `reserveBytes` while the disk is full). */
  reserveHeldBytes: number;
}

/** Which memory space an id is looked up in. */
export interface SpaceOptions {
  /** The memory space. @default 'default' */
  space?: string;
}

export interface GetOptions extends SpaceOptions {
  /** Bump `lastAccess` and `accessCount` (a small metadata write). @default false */
  touch?: boolean;
}

/** A range over one metadata number; every bound given must hold. */
export interface Range {
  gt?: number;
  gte?: number;
  lt?: number;
  lte?: number;
}

/** Ranges over the metadata numbers, e.g. `{ confidence: { gte: 0.5 }, createdAt: { gte: t0, lt: t1 } }`. */
export type MetadataFilter = { [K in keyof MemoryMetadata]?: Range };

export interface RecallOptions extends SpaceOptions {
  /** How many results at most. @default 10 */
  k?: number;
  /** Drop results scoring below this cosine similarity. @default -Infinity */
  minScore?: number;
  /** Only memories whose metadata fall in these ranges; results satisfy it exactly. @default undefined */
  filter?: MetadataFilter;
  /** Scan every vector of the space (the ground truth) instead of using an index. @default false */
  exact?: boolean;
  /** Bump `lastAccess`/`accessCount` of the returned memories. @default false */
  touch?: boolean;
}

export interface EntriesOptions {
  /** Only this memory space; every space when undefined. @default undefined */
  space?: string;
}

/** A memory space and how many memories it holds. */
export interface SpaceInfo {
  name: string;
  size: number;
}

export interface RecallResult {
  memory: StoredMemory;
  score: number;
}

export interface ContentStorageStats {
  /** Bytes of content entries in all segments (live and dead). */
  totalBytes: number;
  liveBytes: number;
  deadBytes: number;
  /** deadBytes / totalBytes, 0 when empty. */
  fragmentationRatio: number;
  segments: number;
}

export interface CompactProgress {
  phase: CompactionPhase;
  segmentsDone: number;
  segmentsTotal: number;
  bytesCopied: number;
  bytesToCopy: number;
  recordsMoved: number;
}

export type CompactionPhase = 'plan' | 'copy' | 'commit' | 'apply' | 'checkpoint' | 'retire' | 'done';

export interface CompactOptions {
  signal?: AbortSignal;
  onProgress?: (p: CompactProgress) => void;
  /** Compact every sealed segment holding dead bytes, whatever its ratio. @default false */
  force?: boolean;
}

export interface CompactionStats {
  durationMs: number;
  bytesBefore: number;
  bytesAfter: number;
  bytesReclaimed: number;
  recordsMoved: number;
  segmentsCompacted: number;
  /** Longest synchronous step of this compaction, measured. */
  maxPauseMs: number;
  /** True when this run continued a compaction interrupted by a crash. */
  resumed: boolean;
  /**
   * Memories moved from the tail of the record files into free slots below (relocation, after
   * the content is compacted), so that the files can be cut.
   */
  slotsMoved: number;
  /** Bytes cut off records.dat and vectors.dat by this run. */
  recordBytesReclaimed: number;
}

export interface MaintenanceReport {
  at: number;
  stats: ContentStorageStats;
  thresholds: { fragmentationThreshold: number; minTotalBytes: number };
  decision: 'compacted' | 'skipped' | 'failed' | 'busy';
  reason: string;
  compaction?: CompactionStats;
  error?: { code: string; message: string };
  /** What open found about an interrupted compaction, until a compaction runs. */
  interruptedCompaction?: InterruptedCompaction;
  checkpointed: boolean;
}

export interface InterruptedCompaction {
  runId: number;
  committedChunks: number;
  /** Bytes of uncommitted output cut off at open. */
  discardedBytes: number;
  victimsRemaining: number[];
}

/** Lifecycle events, for metrics and logs outside the core. */
export interface WarmStoreEvents {
  op: (op: 'put' | 'get' | 'delete' | 'recall', durationMs: number) => void;
  compactionStart: (info: { runId: number; victims: number; resumed: boolean }) => void;
  compactionProgress: (p: CompactProgress) => void;
  /**
   * Every compaction run ends with exactly one of these. `refused`: INSUFFICIENT_RESOURCES (memory
   * budget or free disk), decided before anything was written; no `compactionStart` precedes it.
   */
  compactionEnd: (
    result:
      | { outcome: 'success'; stats: CompactionStats }
      | { outcome: 'failure' | 'aborted' | 'refused'; error: Error },
  ) => void;
  compactionPause: (ms: number) => void;
  /** The recall index changed state or made build progress (see `WarmStore.indexStatus`). */
  indexStatus: (s: IndexStatus) => void;
  /**
   * A scrub pass found a damaged record: its embedding or content no longer matches its CRC32C.
   * Also logged (error) and listed in `WarmStore.corruptRecords`.
   */
  scrubCorruption: (c: CorruptRecord) => void;
  /** A scrub pass ended, completed or stopped by close (`completed: false`). */
  scrubEnd: (r: ScrubReport) => void;
}

/**
 * The approximate recall index. `loading`: its file is being read; `building`: being rebuilt from
 * the table (`built` of `toBuild` memories sent); `ready`: used by recall; `failed`, or `off` (usearch
 * could not load, or the store is read-only): recall scans exactly, as it does until `ready`.
 */
export interface IndexStatus {
  state: 'off' | 'loading' | 'building' | 'ready' | 'failed';
  /** Vectors the index holds, as of the worker's last acknowledgement. */
  indexed: number;
  /** Memories written but not yet acknowledged by the index worker (recall scans them exactly). */
  tail: number;
  /** Rebuild progress: memories sent to the index so far, of `toBuild`. */
  built: number;
  toBuild: number;
  /** Recalls answered through the index since open (the others scanned exactly). */
  searches: number;
  /**
   * Vectors held in memory: the delta written since the last merge. The rest of the index is a
   * saved file read through the page cache.
   */
  resident: number;
  /** Merges of the delta into a new base file since open. */
  merges: number;
  /**
   * Sampled recall@k of the index's answers against exact ones, once a few samples exist. Below
   * 0.8 recall scans exactly (data without low-dimensional structure defeats the index).
   */
  recallEstimate?: number;
  /** Why the index failed. */
  error?: string;
}

export interface VerifyOptions {
  /** Called as records are checked, with the count so far and the total. @default undefined */
  onProgress?: (done: number, total: number) => void;
}

export interface VerifyProblem {
  /** `corrupt-record`, `corrupt-content` or `garbage-count`. */
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
 * A record that failed its checks (at open, or in a scrub pass); reading its id raises
 * CORRUPTION_DETECTED until a put or delete of the id replaces it.
 */
export interface CorruptRecord {
  slot: number;
  /** The id as read, when its bytes could be read at all. */
  id: string | undefined;
  reason: string;
  file: string;
}

/** Options of `WarmStore.backup`. */
export interface BackupOptions {
  /**
   * Hard-link content segments that can never change again (sealed, not a compaction's output in
   * flight) instead of copying them. A link costs no space and no time, but shares the disk with
   * the store: copy the finished backup elsewhere to survive the loss of that disk. Falls back to
   * a copy where links are impossible (another filesystem).
   * @default true
   */
  link?: boolean;
  /** Called as bytes are copied or linked: done and total, in bytes. @default undefined */
  onProgress?: (done: number, total: number) => void;
}

/** What `WarmStore.backup` produced. */
export interface BackupResult {
  /** The backup directory (absolute). */
  dir: string;
  /** Every write acknowledged with an LSN up to this one is in the backup; nothing later is. */
  lsn: number;
  /** The checkpoint the backup's records.dat and vectors.dat come from. */
  checkpointLsn: number;
  /** Files in the backup. */
  files: number;
  /** Bytes copied. */
  bytesCopied: number;
  /** Bytes of segments hard-linked rather than copied. */
  bytesLinked: number;
  durationMs: number;
}
