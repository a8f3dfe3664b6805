import type {
  BackupOptions,
  BackupResult,
  CompactOptions,
  CompactionStats,
  ContentStorageStats,
  EntriesOptions,
  GetOptions,
  MaintenanceReport,
  MemoryRecord,
  RecallOptions,
  RecallResult,
  StorageStatus,
  ScrubStatus,
  SpaceInfo,
  SpaceOptions,
  StoredMemory,
  WarmStoreEvents,
  VerifyReport,
  IndexStatus,
} from '../types.js';
import type { StoredMemoryBytes } from '../engine/reader.js';

/**
 * The slice of `WarmStore` the server uses. The server depends on this shape rather than on the
 * class so that unit tests can drive error paths (507, corruption) that a real store cannot be
 * made to produce on demand.
 */
export interface StoreApi {
  readonly dir: string;
  readonly dimension: number;
  readonly closed: boolean;
  readonly isCompacting: boolean;
  readonly size: number;
  readonly indexStatus: IndexStatus;
  put(record: MemoryRecord): Promise<void>;
  /** Validates every record before writing any (INVALID_INPUT names `records[i].field`), one commit. */
  putMany(records: MemoryRecord[]): Promise<void>;
  get(id: string, options?: GetOptions): Promise<StoredMemory | undefined>;
  /**
   * `get` with the embedding as its stored bytes (float32 in the machine's byte order), without a
   * promise when the read completes synchronously. Optional: without it the server uses `get`.
   */
  getBytes?(
    id: string,
    options?: GetOptions,
  ): StoredMemoryBytes | undefined | Promise<StoredMemoryBytes | undefined>;
  delete(id: string, options?: SpaceOptions): Promise<boolean>;
  has(id: string, options?: SpaceOptions): boolean;
  /** The memories of one space, or of every space, for the export route. */
  entries(options?: EntriesOptions): AsyncIterable<StoredMemory>;
  /** Cosine top-k of one space; `filter` and `exact` as in `RecallOptions`. */
  recall(embedding: Float32Array | number[], options?: RecallOptions): Promise<RecallResult[]>;
  /** The live memory spaces and their sizes, by name ('default' always listed). */
  spaces(): SpaceInfo[];
  /** Deletes a space and every memory in it; resolves with how many it held (0 when none). */
  deleteSpace(space: string): Promise<number>;
  contentStorageStats(): ContentStorageStats;
  /** The disk and write state; optional so that test doubles may leave it out (then healthy). */
  storageStatus?(): StorageStatus;
  /** The scrub's progress; optional like `storageStatus` (then left out of the storage route). */
  scrubStatus?(): ScrubStatus;
  compact(options?: CompactOptions): Promise<CompactionStats>;
  runMaintenance(): Promise<MaintenanceReport>;
  verify(): Promise<VerifyReport>;
  backup(dir: string, options?: BackupOptions): Promise<BackupResult>;
  close(): Promise<void>;
  on<E extends keyof WarmStoreEvents>(event: E, listener: WarmStoreEvents[E]): unknown;
  off<E extends keyof WarmStoreEvents>(event: E, listener: WarmStoreEvents[E]): unknown;
}
