import type { ContentStorageStats, InterruptedCompaction, StartupCompaction } from '../types.js';

/** The thresholds of the maintenance loop. */
export interface MaintenanceThresholds {
  fragmentationThreshold: number;
  minTotalBytes: number;
}

export interface MaintenanceDecision {
  action: 'compact' | 'skip' | 'busy';
  reason: string;
  /** Compact every segment holding dead bytes, whatever its dead ratio (a full disk). */
  force?: boolean;
}

/**
 * The record files' slack: slots below the slot limit that hold no memory (deleted ones that
 * compaction can move the tail into, then cut off), and the bytes one slot takes in both files.
 */
export interface RecordSlack {
  freeSlots: number;
  slots: number;
  slotBytes: number;
}

/**
 * Whether a maintenance run compacts: when fragmentation is strictly above its threshold and the
 * content strictly above its minimum size (both boundaries strict: exactly at the threshold does
 * not trigger), when the record files are as slack by the same rule (free slots over the slot
 * limit above the threshold, and the bytes the free slots take above the minimum size: deletes of
 * memories whose content is small or empty leave little dead content but whole slots), when a compaction
 * interrupted by a crash is waiting to be resumed, or, on a full disk, whenever there are dead
 * bytes at all (forced: every segment with dead bytes qualifies).
 */
export function decideMaintenance(
  stats: ContentStorageStats,
  t: MaintenanceThresholds,
  compacting: boolean,
  interrupted: InterruptedCompaction | undefined,
  diskFull = false,
  records?: RecordSlack,
): MaintenanceDecision {
  if (compacting) return { action: 'busy', reason: 'a compaction is already running' };
  // On a full disk, dead bytes are the only space the store can win back by itself: any will do.
  if (diskFull && stats.deadBytes > 0) {
    return {
      action: 'compact',
      force: true,
      reason: `the disk is full and ${stats.deadBytes} dead bytes can be reclaimed`,
    };
  }
  const fragmented = stats.fragmentationRatio > t.fragmentationThreshold;
  const bigEnough = stats.totalBytes > t.minTotalBytes;
  if (interrupted) {
    return { action: 'compact', reason: `resuming interrupted compaction run ${interrupted.runId}` };
  }
  if (fragmented && bigEnough) {
    return {
      action: 'compact',
      reason: `fragmentation ${stats.fragmentationRatio.toFixed(4)} > ${t.fragmentationThreshold} and ${stats.totalBytes} bytes > ${t.minTotalBytes}`,
    };
  }
  if (records && !diskFull && records.slots > 0) {
    const slack = records.freeSlots / records.slots;
    const freeBytes = records.freeSlots * records.slotBytes;
    if (slack > t.fragmentationThreshold && freeBytes > t.minTotalBytes) {
      return {
        action: 'compact',
        reason: `record files: ${records.freeSlots} of ${records.slots} slots free (${slack.toFixed(4)} > ${t.fragmentationThreshold}) and their ${freeBytes} bytes > ${t.minTotalBytes}`,
      };
    }
  }
  return {
    action: 'skip',
    reason: !fragmented
      ? `fragmentation ${stats.fragmentationRatio.toFixed(4)} is not above ${t.fragmentationThreshold}`
      : `total ${stats.totalBytes} bytes is not above ${t.minTotalBytes}`,
  };
}

export interface StartupPolicy {
  startupWarnRatio: number;
  startupCompactRatio: number;
  startupCompaction: StartupCompaction;
}

export interface StartupDecision {
  /** Log that the store is heavily fragmented. */
  warn: boolean;
  /** Compact right after open, and how; 'off' when not. */
  compact: StartupCompaction;
}

/**
 * What open does about fragmentation: warn strictly above `startupWarnRatio`; compact (in the
 * background or before open returns) strictly above `startupCompactRatio`, or whenever a
 * compaction interrupted by a crash is waiting.
 */
export function decideStartup(
  stats: ContentStorageStats,
  p: StartupPolicy,
  interrupted: InterruptedCompaction | undefined,
): StartupDecision {
  const want = stats.fragmentationRatio > p.startupCompactRatio || interrupted !== undefined;
  return {
    warn: stats.fragmentationRatio > p.startupWarnRatio,
    compact: want ? p.startupCompaction : 'off',
  };
}
