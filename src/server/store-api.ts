import type {
  BackupOptions,
  BackupResult,
  CompactOptions,
  CompactionStats,
  ContentStorageStats,
  GetOptions,
  MaintenanceReport,
  MemoryRecord,
  RecallOptions,
  RecallResult,
  StorageStatus,
  StoredMemory,
  WarmStoreEvents,
} from '../types.js';

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
  put(record: MemoryRecord): Promise<void>;
  /** Validates every record before writing any (INVALID_INPUT names `records[i].field`), one commit. */
  putMany(records: MemoryRecord[]): Promise<void>;
  get(id: string, options?: GetOptions): Promise<StoredMemory | undefined>;
  delete(id: string): Promise<boolean>;
  has(id: string): boolean;
  /** Every memory, for the export route. */
  entries(): AsyncIterable<StoredMemory>;
  recall(embedding: Float32Array | number[], options?: RecallOptions): Promise<RecallResult[]>;
  contentStorageStats(): ContentStorageStats;
  /** The disk and write state; optional so that test doubles may leave it out (then healthy). */
  storageStatus?(): StorageStatus;
  compact(options?: CompactOptions): Promise<CompactionStats>;
  runMaintenance(): Promise<MaintenanceReport>;
  backup(dir: string, options?: BackupOptions): Promise<BackupResult>;
  close(): Promise<void>;
  on<E extends keyof WarmStoreEvents>(event: E, listener: WarmStoreEvents[E]): unknown;
  off<E extends keyof WarmStoreEvents>(event: E, listener: WarmStoreEvents[E]): unknown;
}
