/**
 * The end of a run: medians per row, the table (text and Markdown), the goals checked as ratios in
 * this run, and the JSON document with every raw figure.
 */
import * as os from 'node:os';
import type { EngineSpec, WarmstoreBuild } from './engines/engine.ts';
import type { RunConfig } from './lib/config.ts';
import type { Dataset } from './lib/data.ts';
import type { DiskBaseline } from './lib/disk-baseline.ts';
import { fmtBytes, fmtNum, fmtUs, mdTable, median, table } from './lib/measure.ts';
import type { EngineResult } from './lib/results.ts';

/** Medians over repetitions, per row, by metric. */
export type Summary = Record<string, Record<string, number>>;

export interface Report {
  text: string;
  md: string;
  goals: string[];
  summary: Summary;
}

function med<T>(xs: T[], f: (x: T) => number | undefined): number {
  return median(xs.map(f).filter((x): x is number => x !== undefined && Number.isFinite(x)));
}

function summarizeRow(r: EngineResult, ds: Dataset): Record<string, number> {
  const comp = r.compaction;
  return {
    putRecPerSec: med(r.put, (x) => x.recPerSec),
    getSyncOps: med(r.getSync, (x) => x.opsPerSec),
    getSyncP50: med(r.getSync, (x) => x.lat.p50us),
    getSyncP99: med(r.getSync, (x) => x.lat.p99us),
    getAsyncOps: med(r.getAsync, (x) => x.opsPerSec),
    getAsyncP50: med(r.getAsync, (x) => x.lat.p50us),
    getAsyncP99: med(r.getAsync, (x) => x.lat.p99us),
    diskRatio: (r.diskAfterStore?.allocated ?? NaN) / ds.logicalBytes,
    diskRatioClosed: (r.diskAfterClose?.allocated ?? NaN) / ds.logicalBytes,
    iterateS: median(r.iterate),
    openMs: median(r.openMs),
    recoverMs: r.recover?.openMs ?? NaN,
    recallMs: r.recall ? median(r.recall.ms) : NaN,
    recallJsMs: r.recall ? median(r.recall.jsBaselineMs) : NaN,
    deleteRecPerSec: med(comp, (c) => c.deleteRecPerSec),
    compactS: med(comp, (c) => c.seconds),
    compactFraction: med(comp, (c) => c.fractionOfBandwidth),
    compactReadP50: med(comp, (c) => c.readsSync.p50us),
    compactReadP99: med(comp, (c) => c.readsSync.p99us),
    compactReadMax: med(comp, (c) => c.readsSync.maxUs),
    warmReadP50: med(comp, (c) => c.readsSyncWarm.p50us),
    warmReadP99: med(comp, (c) => c.readsSyncWarm.p99us),
    warmReadMax: med(comp, (c) => c.readsSyncWarm.maxUs),
    compactReadMaxWorst: Math.max(...comp.map((c) => c.readsSync.maxUs)),
    compactAsyncP99: med(comp, (c) => c.readsAsync?.p99us),
    compactAsyncMax: med(comp, (c) => c.readsAsync?.maxUs),
    eldMaxMs: med(comp, (c) => c.eldMaxMs),
    eldMaxWorstMs: Math.max(...comp.map((c) => c.eldMaxMs)),
    eldWarmMaxMs: med(comp, (c) => c.eldWarmMaxMs),
    extraRss: med(comp, (c) => c.extraRss),
    diskAfterCompactRatio: med(comp, (c) => c.diskAfter / c.liveLogicalBytes),
    pauseMs: med(comp, (c) => c.pauseMs),
    compactWriteAmp: med(comp, (c) => c.io.wchar / c.liveContentBytes),
    gcMaxMs: med(comp, (c) => c.gc.maxMs),
  };
}

/** A metric's row in the table: label, cell of one row, the metric whose ratio is shown, goal. */
interface Metric {
  label: string;
  cell: (v: (k: string) => number) => string;
  /** Ratio columns compare this metric; `inverse` when lower is better (a time). */
  ratio?: { key: string; inverse?: boolean };
  goal?: string;
}

const fx = (x: number): string => (Number.isFinite(x) ? `${x.toFixed(2)}x` : '-');
const pct = (x: number): string => (Number.isFinite(x) ? `${(100 * x).toFixed(1)}%` : '-');

const METRICS: Metric[] = [
  {
    label: 'store rec/s (durable batches of 1000)',
    cell: (v) => fmtNum(v('putRecPerSec')),
    ratio: { key: 'putRecPerSec' },
    goal: '>= 1.5x',
  },
  {
    label: 'getSync ops/s',
    cell: (v) => fmtNum(v('getSyncOps')),
    ratio: { key: 'getSyncOps' },
    goal: '>= 1.0x',
  },
  { label: 'getSync p50 / p99', cell: (v) => `${fmtUs(v('getSyncP50'))} / ${fmtUs(v('getSyncP99'))}` },
  { label: 'get (async) ops/s', cell: (v) => fmtNum(v('getAsyncOps')) },
  { label: 'get (async) p50 / p99', cell: (v) => `${fmtUs(v('getAsyncP50'))} / ${fmtUs(v('getAsyncP99'))}` },
  { label: 'disk after store / logical', cell: (v) => fx(v('diskRatio')), goal: '<= 1.1x' },
  { label: 'disk after close / logical', cell: (v) => fx(v('diskRatioClosed')) },
  {
    label: 'iterate all (s)',
    cell: (v) => fmtNum(v('iterateS'), 3),
    ratio: { key: 'iterateS', inverse: true },
    goal: '< 1 s / 100K',
  },
  { label: 'open (ms)', cell: (v) => fmtNum(v('openMs'), 1), goal: '1M < 3 s' },
  { label: 'open after kill -9 (ms)', cell: (v) => fmtNum(v('recoverMs'), 1), goal: '1M < 3 s' },
  { label: 'recall top-10 exact (ms)', cell: (v) => fmtNum(v('recallMs'), 1) },
  {
    label: 'delete half: rec/s',
    cell: (v) => fmtNum(v('deleteRecPerSec')),
    ratio: { key: 'deleteRecPerSec' },
  },
  {
    label: 'compaction, half dead (s)',
    cell: (v) => fmtNum(v('compactS'), 3),
    ratio: { key: 'compactS', inverse: true },
    goal: '>= 10x fastest peer',
  },
  { label: '  live content / s, % of seq write bw', cell: (v) => pct(v('compactFraction')), goal: '>= 50%' },
  {
    label: '  reads during: p50 / p99 / max (sync)',
    cell: (v) =>
      `${fmtUs(v('compactReadP50'))} / ${fmtUs(v('compactReadP99'))} / ${fmtUs(v('compactReadMax'))}`,
    goal: 'p99 <= 100 us, max <= 5 ms',
  },
  {
    label: '  same loop, 500 ms before: p50 / p99 / max (sync)',
    cell: (v) => `${fmtUs(v('warmReadP50'))} / ${fmtUs(v('warmReadP99'))} / ${fmtUs(v('warmReadMax'))}`,
  },
  {
    label: '  reads during: p99 / max (async get)',
    cell: (v) => `${fmtUs(v('compactAsyncP99'))} / ${fmtUs(v('compactAsyncMax'))}`,
  },
  {
    label: '  worst event-loop stall (ms), median [worst]',
    cell: (v) =>
      Number.isFinite(v('eldMaxMs')) ? `${fmtNum(v('eldMaxMs'), 1)} [${fmtNum(v('eldMaxWorstMs'), 1)}]` : '-',
    goal: '<= 10 ms',
  },
  { label: '  same, 500 ms before compaction (ms)', cell: (v) => fmtNum(v('eldWarmMaxMs'), 1) },
  { label: '  longest GC pause during compaction (ms)', cell: (v) => fmtNum(v('gcMaxMs'), 1) },
  { label: '  bytes written / live content bytes', cell: (v) => fx(v('compactWriteAmp')) },
  { label: '  extra RSS', cell: (v) => fmtBytes(v('extraRss')), goal: '<= 80 MiB' },
  { label: '  reopen pause (ms)', cell: (v) => fmtNum(v('pauseMs'), 1) },
  { label: '  disk after / live logical', cell: (v) => fx(v('diskAfterCompactRatio')) },
];

/** `a / b` on one metric, turned so that above 1 is better for `a`. */
function ratioCell(S: Summary, a: string, b: string, m: Metric): string {
  if (!m.ratio) return '';
  const x = S[a]?.[m.ratio.key] ?? NaN;
  const y = S[b]?.[m.ratio.key] ?? NaN;
  return fx(m.ratio.inverse ? y / x : x / y);
}

/** The goals, checked on one warmstore 'sync' row against the peers of this run. */
function goalsOf(S: Summary, row: string, peers: string[], ds: Dataset, bw: DiskBaseline): string[] {
  const goals: string[] = [];
  const v = (n: string, k: string): number => S[n]?.[k] ?? NaN;
  const check = (x: number, ok: (x: number) => boolean, s: (x: number) => string): void => {
    if (Number.isFinite(x)) goals.push(`${ok(x) ? 'PASS' : 'FAIL'}  ${s(x)}`);
  };
  if (S.lmdb) {
    check(
      v(row, 'putRecPerSec') / v('lmdb', 'putRecPerSec'),
      (x) => x >= 1.5,
      (x) => `put >= 1.5x lmdb-js: ${x.toFixed(2)}x`,
    );
    check(
      v(row, 'getSyncOps') / v('lmdb', 'getSyncOps'),
      (x) => x >= 1.0,
      (x) => `get (getSync) >= 1.0x lmdb-js: ${x.toFixed(2)}x`,
    );
  }
  check(
    v(row, 'diskRatio'),
    (x) => x <= 1.1,
    (x) => `disk <= 1.1x logical: ${x.toFixed(2)}x`,
  );
  const peerTimes = peers.map((p) => v(p, 'compactS')).filter(Number.isFinite);
  if (peerTimes.length)
    check(
      Math.min(...peerTimes) / v(row, 'compactS'),
      (x) => x >= 10,
      (x) => `compaction >= 10x faster than fastest peer: ${x.toFixed(1)}x`,
    );
  check(
    v(row, 'compactFraction'),
    (x) => x >= 0.5,
    (x) =>
      `compaction >= 50% of seq write bandwidth: ${(100 * x).toFixed(1)}% of ${fmtBytes(bw.bytesPerSec)}/s`,
  );
  check(
    v(row, 'compactReadP99'),
    (x) => x <= 100,
    (x) => `reads during compaction p99 <= 100 us: ${fmtUs(x)}`,
  );
  check(
    v(row, 'compactReadMaxWorst'),
    (x) => x <= 5000,
    (x) => `reads during compaction max <= 5 ms (worst rep): ${fmtUs(x)}`,
  );
  check(
    v(row, 'eldMaxWorstMs'),
    (x) => x <= 10,
    (x) => `worst event-loop stall <= 10 ms (worst rep): ${x.toFixed(1)} ms`,
  );
  check(
    v(row, 'extraRss'),
    (x) => x <= 80 * 2 ** 20,
    (x) => `extra RSS during compaction <= 64+16 MiB: ${fmtBytes(x)}`,
  );
  check(
    (v(row, 'iterateS') * 100_000) / ds.n,
    (x) => x < 1,
    (x) => `iterate 100K < 1 s: ${x.toFixed(3)} s per 100K`,
  );
  check(
    (v(row, 'openMs') * 1_000_000) / ds.n,
    (x) => x < 1000,
    // Open has fixed costs (threads, files) that a straight line from a small store multiplies:
    // the 1M figure itself comes from tools/open-profile.ts.
    (x) =>
      `open of 1M < 1 s (linear extrapolation of ${ds.n}; at 1M measure tools/open-profile.ts): ${(x / 1000).toFixed(2)} s`,
  );
  check(
    (v(row, 'recoverMs') * 1_000_000) / ds.n,
    (x) => x < 3000,
    (x) => `recovery (open after kill -9) of 1M < 3 s (linear extrapolation): ${(x / 1000).toFixed(2)} s`,
  );
  const rc = v(row, 'recallMs');
  if (Number.isFinite(rc))
    goals.push(
      `info  recall exact top-10 over ${ds.n}: ${rc.toFixed(1)} ms; plain JS loop ${v(row, 'recallJsMs').toFixed(1)} ms ` +
        `(usearch SIMD not in this run; the target quoted is 28 ms for 100K)`,
    );
  return goals;
}

/** Short column name of a row in ratio headers (the default build keeps the old 'ws-sync'). */
const short = (row: string): string => (row === 'warmstore-sync' ? 'ws-sync' : row);

export function summarize(
  specs: readonly EngineSpec[],
  results: Readonly<Record<string, EngineResult>>,
  ds: Dataset,
  bw: DiskBaseline,
): Report {
  const names = specs.map((s) => s.row).filter((n) => results[n]);
  const S: Summary = {};
  for (const n of names) S[n] = summarizeRow(results[n]!, ds);
  const peers = specs.filter((s) => s.kind === 'peer').map((s) => s.row);
  const wsSync = specs.filter((s) => s.kind === 'warmstore' && s.durability === 'sync').map((s) => s.row);

  // Ratio columns: each warmstore 'sync' build against lmdb-js, then each later build against the
  // first one (the before/after comparison of `--engines`).
  const ratios: { header: string; a: string; b: string }[] = wsSync.map((r) => ({
    header: `${short(r)} / lmdb`,
    a: r,
    b: 'lmdb',
  }));
  for (const r of wsSync.slice(1)) ratios.push({ header: `${r} / ${wsSync[0]}`, a: r, b: wsSync[0]! });

  const header = ['metric', ...names, ...ratios.map((c) => c.header), 'goal'];
  const body = METRICS.map((m) => [
    m.label,
    ...names.map((n) => m.cell((k) => S[n]?.[k] ?? NaN)),
    ...ratios.map((c) => ratioCell(S, c.a, c.b, m)),
    m.goal ?? '',
  ]);

  const goals: string[] = [];
  for (const row of wsSync) {
    const own = goalsOf(S, row, peers, ds, bw);
    goals.push(...(wsSync.length > 1 ? own.map((g) => g.replace(/^(\w+) {2}/, `$1  [${row}] `)) : own));
  }
  goals.push(
    `info  seq write ${fmtBytes(bw.bytesPerSec)}/s (best of start/end, ${bw.mib} MiB + fdatasync), ` +
      `fdatasync 4 KiB p50 ${fmtUs(bw.fdatasync.p50us)}`,
  );
  return { text: table([header, ...body]), md: mdTable([header, ...body]), goals, summary: S };
}

export function printReport(cfg: RunConfig, ds: Dataset, report: Report): void {
  console.log('');
  console.log(
    `Results (median of ${cfg.reps}; ${cfg.count} records of ~${(ds.logicalBytes / ds.n / 1024).toFixed(1)} KiB):`,
  );
  console.log(report.text);
  console.log('');
  console.log('Goals (ratios in this run):');
  for (const g of report.goals) console.log('  ' + g);
  console.log(`load average at end: ${os.loadavg().map((x) => x.toFixed(2))}`);
}

/** A warmstore build as the results file records it. */
export interface BuildInfo extends WarmstoreBuild {
  git: { commit: string; dirtySrc: boolean } | undefined;
}

/** Everything the results file holds: the run's setting, every raw figure, the summary. */
export function resultsDocument(run: {
  cfg: RunConfig;
  started: Date;
  rows: readonly EngineSpec[];
  builds: readonly BuildInfo[];
  ds: Dataset;
  disk: DiskBaseline;
  report: Report;
  results: Readonly<Record<string, EngineResult>>;
}): Record<string, unknown> {
  const { cfg, ds, disk, report } = run;
  return {
    startedAt: run.started.toISOString(),
    finishedAt: new Date().toISOString(),
    argv: process.argv.slice(2),
    config: {
      count: cfg.count,
      dim: cfg.dim,
      batch: cfg.batch,
      reps: cfg.reps,
      phases: [...cfg.phases],
      engines: run.rows.map((r) => r.row),
      readers: cfg.readers,
    },
    // The first build's commit, where files from before `builds` existed had the only one.
    engine: run.builds[0]?.git,
    builds: run.builds,
    machine: {
      node: process.version,
      cpus: os.cpus().length,
      cpu: os.cpus()[0]?.model,
      totalmem: os.totalmem(),
      loadavgEnd: os.loadavg(),
    },
    dataset: { n: ds.n, logicalBytes: ds.logicalBytes, contentBytes: ds.contentBytes },
    bandwidth: { used: disk.bytesPerSec, runs: disk.runs },
    fdatasync: disk.fdatasync,
    summary: report.summary,
    markdownTable: report.md,
    goals: report.goals,
    raw: run.results,
  };
}
