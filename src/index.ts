/**
 * warmstore: the library entry point. Every public export is named here; the HTTP server lives
 * in `warmstore/server` and the core never imports it.
 */
export { WarmStore } from './engine/store.js';
export { BACKUP_INCOMPLETE_FILE } from './engine/backup.js';
export { WarmStoreError, ERROR_CODES } from './errors.js';
export type { WarmStoreErrorCode, WarmStoreErrorDetails } from './errors.js';
export type {
  MemoryMetadata,
  MemoryRecord,
  StoredMemory,
  Durability,
  WarmStoreOptions,
  CompactionLimits,
  MaintenancePolicy,
  ScrubPolicy,
  ScrubOptions,
  ScrubReport,
  ScrubStatus,
  StartupCompaction,
  VerifyOptions,
  VerifyReport,
  VerifyProblem,
  CorruptRecord,
  WarmStoreLogger,
  GetOptions,
  IndexStatus,
  SpaceOptions,
  EntriesOptions,
  SpaceInfo,
  MetadataFilter,
  Range,
  RecallOptions,
  RecallResult,
  ContentStorageStats,
  BackupOptions,
  BackupResult,
  StorageStatus,
  CompactOptions,
  CompactProgress,
  CompactionPhase,
  CompactionStats,
  MaintenanceReport,
  InterruptedCompaction,
  WarmStoreEvents,
} from './types.js';
export type { WsFile, WsFileSystem, OpenMode } from './fs/types.js';
export { NodeFileSystem, nodeFileSystem } from './fs/node-fs.js';
export { FORMAT_VERSION } from './format/header.js';
export type { Migration, FileKind } from './format/header.js';
