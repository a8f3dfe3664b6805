import type { Segment } from '../content/segment.js';
import type { WsFileSystem } from '../fs/types.js';
import type { MovePlan } from '../records/keyspace.js';
import type { RecordTable } from '../records/table.js';
import type { ContentStorageStats, WarmStoreEvents, WarmStoreLogger } from '../types.js';
import type { WalEntryInput } from '../wal/entries.js';

/** What the compactor may touch of the engine; everything else stays private to the store. */
export interface CompactorHost {
  fs: WsFileSystem;
  dir: string;
  segmentBytes: number;
  memoryBudgetBytes: number;
  minSegmentDeadRatio: number;
  diskHeadroomBytes: number;
  /** Bytes the next checkpoint adds to the record files (slots never checkpointed yet). */
  checkpointGrowthBytes(): number;
  logger: WarmStoreLogger | undefined;
  killPoint(name: string): void;
  table(): RecordTable;
  /** One past the highest slot ever used. */
  slotLimit(): number;
  segments(): Map<number, Segment>;
  activeId(): number;
  stats(): ContentStorageStats;
  nextRunId(): number;
  /** A new sealed, pinned segment whose directory entry is durable. */
  createOutputSegment(): Promise<Segment>;
  /** Seals the active segment (between two write batches) so it can be a victim. */
  sealActive(): Promise<void>;
  /** Commits a compaction WAL entry through the writer; resolves after it is durable and applied. */
  submit(entry: WalEntryInput): Promise<{ moved: number; applyMs: number }>;
  checkpoint(): Promise<void>;
  /** Plans up to `max` slot moves, reserving their target slots until `settleMoves`. */
  /** `first` starts a relocation run (the free list is sorted and the scan starts at the top). */
  planMoves(max: number, first: boolean): MovePlan[];
  /**
   * Commits slot moves through the writer (a batch of their own); resolves with how many moved, how
   * long applying them held the event loop, and how long the batch waited for the writer.
   */
  relocate(moves: readonly MovePlan[]): Promise<{ moved: number; applyMs: number; waitMs: number }>;
  /** Releases the target slots of planned moves that did not happen. */
  settleMoves(moves: readonly MovePlan[]): void;
  /** Lowers the slot limit to the highest slot in use, between two write batches. */
  shrinkSlots(): Promise<{ before: number; after: number }>;
  /** Bytes records.dat and vectors.dat take now. */
  recordFileBytes(): number;
  /** The disk is full: relocation (whose WAL entries carry whole records) waits for room. */
  diskFull(): boolean;
  emit<K extends keyof WarmStoreEvents>(event: K, arg: Parameters<WarmStoreEvents[K]>[0]): void;
}
