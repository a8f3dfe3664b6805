/**
 * warmstore/client: a typed client of the warmstore HTTP server, with the method names of the
 * embedded store. It needs nothing but Node's fetch; the core never imports it.
 */
export {
  WarmStoreClient,
  type WarmStoreClientOptions,
  type RemoteStorageStats,
  type RemoteCompactOptions,
  type RefusedRecord,
} from './client.js';
export type { CallOptions } from './transport.js';
export { WarmStoreClientError, type ClientErrorCode, type ClientErrorDetails } from './errors.js';
export { WarmStoreError, ERROR_CODES } from '../errors.js';
export type { WarmStoreErrorCode, WarmStoreErrorDetails } from '../errors.js';
export type {
  CompactionStats,
  ContentStorageStats,
  EntriesOptions,
  GetOptions,
  MaintenanceReport,
  MemoryRecord,
  MetadataFilter,
  Range,
  RecallOptions,
  RecallResult,
  SpaceInfo,
  SpaceOptions,
  StoredMemory,
} from '../types.js';
