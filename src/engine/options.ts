import { invalid } from '../errors.js';
import { nodeFileSystem } from '../fs/node-fs.js';
import type { WsFileSystem } from '../fs/types.js';
import type { Durability, StartupCompaction, WarmStoreLogger, WarmStoreOptions } from '../types.js';
import { MAX_CONTENT_LIMIT } from './validate.js';
import { testHooksOf } from './test-hooks.js';

/**
 * The default of every option, stated once. The TSDoc `@default` tags in types.ts document these
 * values; the server and the CLI read them from here.
 */
export const DEFAULTS = {
  dimension: 768,
  durability: 'sync',
  relaxedSyncIntervalMs: 100,
  segmentBytes: 64 * 1024 * 1024,
  maxContentBytes: 16 * 1024 * 1024,
  // WAL entries no longer carry embeddings (a put's is ~400 bytes at 768 dimensions): 16 MiB is
  // about 40K puts, and bounds the tail a crash leaves to replay to well under a second.
  walCheckpointBytes: 16 * 1024 * 1024,
  maintenanceIntervalMs: 60_000,
  memoryBudgetBytes: 64 * 1024 * 1024,
  minSegmentDeadRatio: 0.3,
  diskHeadroomBytes: 1024 * 1024,
  /** The reserve's size when `diskReserveBytes` is not given: this, or `segmentBytes` if smaller. */
  diskReserveBytes: 16 * 1024 * 1024,
  fragmentationThreshold: 0.5,
  minTotalBytes: 100 * 1024 * 1024,
  startupWarnRatio: 0.7,
  startupCompactRatio: 0.9,
  startupCompaction: 'background',
  annMinMemories: 20_000,
  scrubBytesPerSecond: 32 * 1024 * 1024,
  scrubIntervalMs: 24 * 60 * 60 * 1000,
} as const;

/** The background scrub's settings, resolved (`false`: off). */
export interface ResolvedScrub {
  bytesPerSecond: number;
  intervalMs: number;
}

/** Bounds of the scrub's settings (setTimeout takes at most 2^31-1 ms). */
export const SCRUB_LIMITS = {
  minBytesPerSecond: 4096,
  maxBytesPerSecond: 2 ** 40,
  minIntervalMs: 10,
  maxIntervalMs: 2 ** 31 - 1,
} as const;

/** Options after validation, every default filled in. */
export interface ResolvedOptions {
  /** Undefined: take the store's own (or the default when creating it). */
  dimension: number | undefined;
  durability: Durability;
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
  startupCompaction: StartupCompaction;
  annMinMemories: number;
  diskReserveBytes: number;
  readOnly: boolean;
  scrub: ResolvedScrub | false;
  logger: WarmStoreLogger | undefined;
  fileSystem: WsFileSystem;
  onKillPoint: ((name: string) => void) | undefined;
  /** Test hook: smallest recall-index delta worth a merge. */
  annMergeMin: number | undefined;
  /** Test hook: sampled index recall below which recall scans exactly. */
  annMinRecall: number | undefined;
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

function nonNegative(v: unknown, field: string, dflt: number): number {
  if (v === undefined) return dflt;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw invalid(field, 'must be a number >= 0');
  return v;
}

function oneOf<T extends string>(v: unknown, field: string, dflt: T, allowed: readonly T[]): T {
  if (v === undefined) return dflt;
  if (!allowed.includes(v as T)) throw invalid(field, `must be ${allowed.map((a) => `'${a}'`).join(' or ')}`);
  return v as T;
}

function section(v: unknown, field: string): Record<string, unknown> {
  if (v === undefined) return {};
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw invalid(field, 'must be an object');
  return v as Record<string, unknown>;
}

/** The scrub's read rate: an integer number of bytes per second. */
export function scrubRate(v: unknown, field: string, dflt: number): number {
  const L = SCRUB_LIMITS;
  return int(v, field, dflt, L.minBytesPerSecond, L.maxBytesPerSecond);
}

function resolveScrub(v: unknown): ResolvedScrub | false {
  if (v === false) return false;
  if (v !== undefined && (typeof v !== 'object' || v === null || Array.isArray(v))) {
    throw invalid('scrub', 'must be an object or false');
  }
  const s = section(v, 'scrub');
  return {
    bytesPerSecond: scrubRate(s.bytesPerSecond, 'scrub.bytesPerSecond', DEFAULTS.scrubBytesPerSecond),
    intervalMs: int(
      s.intervalMs,
      'scrub.intervalMs',
      DEFAULTS.scrubIntervalMs,
      SCRUB_LIMITS.minIntervalMs,
      SCRUB_LIMITS.maxIntervalMs,
    ),
  };
}

/** The kill-point hook carried by `withTestHooks`, if it is a function (anything else is ignored). */
function killPointHook(o: WarmStoreOptions): ((name: string) => void) | undefined {
  const hook = testHooksOf(o).onKillPoint;
  return typeof hook === 'function' ? hook : undefined;
}

/** The recall-index merge threshold carried by `withTestHooks`, if it is a positive integer. */
function mergeMinHook(o: WarmStoreOptions): number | undefined {
  const v = testHooksOf(o).annMergeMin;
  return Number.isSafeInteger(v) && v! > 0 ? v : undefined;
}

/** The recall floor carried by `withTestHooks`, if it is a number in [0, 1]. */
function minRecallHook(o: WarmStoreOptions): number | undefined {
  const v = testHooksOf(o).annMinRecall;
  return typeof v === 'number' && v >= 0 && v <= 1 ? v : undefined;
}

/** Validates `WarmStore.open`'s options; throws INVALID_INPUT naming the first bad field. */
export function resolveOptions(options: WarmStoreOptions = {}): ResolvedOptions {
  const o = section(options, 'options') as WarmStoreOptions;
  const mi = o.maintenanceIntervalMs;
  if (mi !== undefined && mi !== false && (typeof mi !== 'number' || !Number.isInteger(mi) || mi < 10)) {
    throw invalid('maintenanceIntervalMs', 'must be an integer >= 10 or false');
  }
  const c = section(o.compaction, 'compaction');
  const m = section(o.maintenance, 'maintenance');
  const D = DEFAULTS;
  const segmentBytes = int(o.segmentBytes, 'segmentBytes', D.segmentBytes, 4096, 2 ** 40);
  if (o.readOnly !== undefined && typeof o.readOnly !== 'boolean')
    throw invalid('readOnly', 'must be a boolean');
  return {
    dimension: o.dimension === undefined ? undefined : int(o.dimension, 'dimension', D.dimension, 1, 65536),
    durability: oneOf<Durability>(o.durability, 'durability', D.durability, ['sync', 'relaxed']),
    relaxedSyncIntervalMs: int(
      o.relaxedSyncIntervalMs,
      'relaxedSyncIntervalMs',
      D.relaxedSyncIntervalMs,
      1,
      3_600_000,
    ),
    segmentBytes,
    maxContentBytes: int(o.maxContentBytes, 'maxContentBytes', D.maxContentBytes, 0, MAX_CONTENT_LIMIT),
    walCheckpointBytes: int(o.walCheckpointBytes, 'walCheckpointBytes', D.walCheckpointBytes, 4096, 2 ** 40),
    maintenanceIntervalMs: mi ?? D.maintenanceIntervalMs,
    memoryBudgetBytes: int(
      c.memoryBudgetBytes,
      'compaction.memoryBudgetBytes',
      D.memoryBudgetBytes,
      0,
      2 ** 40,
    ),
    minSegmentDeadRatio: ratio(
      c.minSegmentDeadRatio,
      'compaction.minSegmentDeadRatio',
      D.minSegmentDeadRatio,
    ),
    diskHeadroomBytes: nonNegative(c.diskHeadroomBytes, 'compaction.diskHeadroomBytes', D.diskHeadroomBytes),
    fragmentationThreshold: ratio(
      m.fragmentationThreshold,
      'maintenance.fragmentationThreshold',
      D.fragmentationThreshold,
    ),
    minTotalBytes: nonNegative(m.minTotalBytes, 'maintenance.minTotalBytes', D.minTotalBytes),
    startupWarnRatio: ratio(m.startupWarnRatio, 'maintenance.startupWarnRatio', D.startupWarnRatio),
    startupCompactRatio: ratio(
      m.startupCompactRatio,
      'maintenance.startupCompactRatio',
      D.startupCompactRatio,
    ),
    startupCompaction: oneOf<StartupCompaction>(
      m.startupCompaction,
      'maintenance.startupCompaction',
      D.startupCompaction,
      ['off', 'background', 'blocking'],
    ),
    annMinMemories: int(o.annMinMemories, 'annMinMemories', D.annMinMemories, 0, 2 ** 32),
    diskReserveBytes: int(
      o.diskReserveBytes,
      'diskReserveBytes',
      Math.min(D.diskReserveBytes, segmentBytes),
      0,
      2 ** 40,
    ),
    readOnly: o.readOnly === true,
    scrub: resolveScrub(o.scrub),
    logger: o.logger,
    fileSystem: o.fileSystem ?? nodeFileSystem,
    onKillPoint: killPointHook(o),
    annMergeMin: mergeMinHook(o),
    annMinRecall: minRecallHook(o),
  };
}
