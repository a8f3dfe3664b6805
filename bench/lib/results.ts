/** The raw figures a run collects, per row, and where results files go. */
import * as fs from 'node:fs';
import type { LatSummary } from './measure.ts';

export interface GetResult {
  opsPerSec: number;
  lat: LatSummary;
  errors: number;
}

export interface StoreResult {
  recPerSec: number;
  seconds: number;
}

export interface DiskUsage {
  allocated: number;
  apparent: number;
  files: number;
}

export interface CompactRun {
  seconds: number;
  deleteRecPerSec: number;
  liveContentBytes: number;
  contentMBps: number;
  fractionOfBandwidth: number;
  diskBefore: number;
  diskAfter: number;
  liveLogicalBytes: number;
  readsSync: LatSummary;
  readsAsync?: LatSummary;
  readsSyncWarm: LatSummary;
  readsAsyncWarm?: LatSummary;
  eldMaxMs: number;
  eldP99Ms: number;
  eldWarmMaxMs: number;
  rssBaseline: number;
  rssPeak: number;
  extraRss: number;
  pauseMs?: number;
  details: Record<string, unknown>;
  statsBefore?: Record<string, unknown>;
  statsAfter?: Record<string, unknown>;
  verifyErrors: number;
  readErrors: number;
  cpu: { userMs: number; systemMs: number; involuntaryCtxSwitches: number; loadavg1: number[] };
  gc: { count: number; maxMs: number; totalMs: number };
  /** Bytes written (write syscalls) / read by the whole process during compaction. */
  io: { wchar: number; writeBytes: number; rchar: number };
}

export interface RecoverResult {
  openMs: number;
  sampleErrors: number;
  size?: number;
}

export interface RecallRun {
  ms: number[];
  jsBaselineMs: number[];
  top10Agreement: number;
}

/** Every figure of one row, all repetitions. */
export interface EngineResult {
  put: StoreResult[];
  diskAfterStore?: DiskUsage;
  diskAfterClose?: DiskUsage;
  getSync: GetResult[];
  getAsync: GetResult[];
  iterate: number[];
  iterateCount?: number;
  openMs: number[];
  /** Open after kill -9 of a process that had just stored every record (durable). */
  recover?: RecoverResult;
  recall?: RecallRun;
  compaction: CompactRun[];
  storeStats?: Record<string, unknown>;
  error?: string;
}

export function emptyResult(): EngineResult {
  return { put: [], getSync: [], getAsync: [], iterate: [], openMs: [], compaction: [] };
}

/** Writes `doc` to bench/results/<prefix><timestamp>.json (gitignored); returns the path. */
export function writeResultsFile(prefix: string, started: Date, doc: unknown): string {
  const outDir = new URL('../results/', import.meta.url);
  fs.mkdirSync(outDir, { recursive: true });
  const file = new URL(`${prefix}${started.toISOString().replace(/[:.]/g, '-')}.json`, outDir);
  fs.writeFileSync(file, JSON.stringify(doc, null, 2));
  return file.pathname;
}
