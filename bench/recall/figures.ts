/**
 * What each engine's child process reports to the recall benchmark, and the process figures they
 * share. Children report raw results (rows found per query, each query's latency); the parent
 * scores them against the ground truth, so every engine is scored by the same code.
 */
import * as fs from 'node:fs';
import type { DataKind, VectorFiles } from './data.ts';

/** One engine's job, passed to its child process as JSON. */
export interface RecallJob {
  /** `warmstore-reopen` opens the store a `warmstore` job left in the same `dir`. */
  engine: RecallEngine | 'warmstore-reopen';
  files: VectorFiles;
  /** A directory of the engine's own, removed by the parent afterwards. */
  dir: string;
  /** Results per query. */
  k: number;
  /** Queries measured (from the start of the query file). */
  queries: number;
  /** Queries measured on LanceDB flat search (its scan is slow). */
  flatQueries: number;
  /** Queries measured with `exact: true` on warmstore. */
  exactQueries: number;
  /** LanceDB IVF_PQ refine factors tried (0: none). */
  lanceRefine: number[];
  lanceNprobes: number;
  /** Durable batch size of the fill. */
  batch: number;
  /** Give up waiting for warmstore's index after this long. */
  indexTimeoutS: number;
  /** Where the child writes its result (JSON). */
  out: string;
}

export const RECALL_ENGINES = ['warmstore', 'usearch', 'lancedb'] as const;
export type RecallEngine = (typeof RECALL_ENGINES)[number];

/** A batch of searches: rows found per query, in order, and each query's latency. */
export interface SearchRun {
  label: string;
  found: number[][];
  ms: number[];
  /** Queries per second with two in flight (or two native threads), when measured. */
  qps?: number;
  /** Process CPU time (all threads) per query, single-query pass. */
  cpuMsPerQuery?: number;
  /** Results outside the filter (must be 0), for filtered searches. */
  violations?: number;
  /** Queries that got fewer than k results although k records match. */
  short?: number;
  /** Records matching the filter. */
  matches?: number;
}

export interface WarmstoreResult {
  engine: 'warmstore';
  fillS: number;
  /** From the end of the fill until the index was ready and had acknowledged every write. */
  catchUpS: number;
  /** The index's state when the fill ended. */
  atFillEnd: Record<string, unknown>;
  search: SearchRun;
  /** Recalls the index answered during `search` (the rest were exact scans). */
  indexSearches: number;
  exact: SearchRun;
  filters: SearchRun[];
  /** The store opened again in a fresh process (filled in by the parent). */
  reopen?: WarmstoreReopen | { error: string };
  indexFileBytes: number;
  storeBytes: number;
  /** RssAnon at each step, bytes. */
  rssAnon: Record<string, number>;
}

/** open() time, and from the start of open() until the index is ready; RssAnon at each step. */
export interface WarmstoreReopen {
  engine: 'warmstore-reopen';
  openMs: number;
  readyMs: number;
  recallSample: SearchRun;
  rssAnon: Record<string, number>;
}

export interface UsearchResult {
  engine: 'usearch';
  buildS: number;
  buildCpuS: number;
  fileBytes: number;
  rssAnon: Record<string, number>;
  /** Index results alone (its i8 ranking), and after exact rescoring of the candidates. */
  raw: SearchRun;
  search: SearchRun;
  candidates: number;
}

export interface LanceResult {
  engine: 'lancedb';
  createTableS: number;
  buildS: number;
  buildCpuS: number;
  diskBytes: number;
  indexBytes: number;
  ivfPq: (SearchRun & { nprobes: number; refine: number })[];
  flat: SearchRun;
  rssAnon: Record<string, number>;
}

export type EngineRecallResult = WarmstoreResult | WarmstoreReopen | UsearchResult | LanceResult;

/** A dataset's run: its shape, the ground truth checks, each engine's result or error. */
export interface DatasetRun {
  kind: DataKind;
  n: number;
  dim: number;
  generateS: number;
  truth: {
    seconds: number;
    loopMismatches: number;
    loopMsPerQuery: number;
    meanTop1: number;
    meanTop10: number;
  };
  engines: Partial<Record<RecallEngine, EngineRecallResult | { error: string }>>;
}

/** RssAnon of this process (anonymous resident memory: the heap, native allocations), bytes. */
export function rssAnon(): number {
  try {
    const m = /^RssAnon:\s+(\d+) kB/m.exec(fs.readFileSync('/proc/self/status', 'utf8'));
    return m ? Number(m[1]) * 1024 : NaN;
  } catch {
    return NaN;
  }
}

/** Process CPU time so far (user + system, all threads), seconds. */
export function cpuSeconds(): number {
  const c = process.cpuUsage();
  return (c.user + c.system) / 1e6;
}

/** The p-th percentile (0..100) of `xs`, nearest rank. */
export function pct(xs: readonly number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}

/** Bytes of the files under `dir` whose names pass `keep` (every file by default). */
export function dirBytes(dir: string, keep: (name: string) => boolean = () => true): number {
  let total = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = `${dir}/${e.name}`;
    if (e.isDirectory()) total += dirBytes(p, keep);
    else if (keep(e.name)) total += fs.statSync(p).size;
  }
  return total;
}

/**
 * Runs `fn` for each query index `0..n-1` with two calls in flight at any time, and returns the
 * rate in queries per second.
 */
export async function twoInFlight(n: number, fn: (qi: number) => Promise<unknown>): Promise<number> {
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < n) await fn(next++);
  };
  const t0 = performance.now();
  await Promise.all([lane(), lane()]);
  return (n * 1000) / (performance.now() - t0);
}
