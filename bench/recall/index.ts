/**
 * Recall at scale (`npm run bench -- --only recall`): warmstore's recall index against the index
 * library called directly and against LanceDB, on clustered and uniform vectors, each engine in a
 * child process of its own reading the same generated files, scored against exact ground truth.
 * Options: docs/benchmarks.md, "Recall at scale".
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { RunConfig } from '../lib/config.ts';
import { fmtBytes, gc } from '../lib/measure.ts';
import { list, num } from '../lib/options.ts';
import { writeResultsFile } from '../lib/results.ts';
import { log } from '../phases/context.ts';
import {
  DATA_KINDS,
  type DataKind,
  SELECTIVITIES,
  type VectorFiles,
  activations,
  ensureVectors,
  readRows,
} from './data.ts';
import {
  type DatasetRun,
  type EngineRecallResult,
  type RecallEngine,
  type RecallJob,
  RECALL_ENGINES,
} from './figures.ts';
import { type ScoredDataset, printDataset, scoreDataset } from './report.ts';
import { type Truth, crossCheck, exactTopK, filteredTopK, truthOf } from './truth.ts';

const BENCH_DIR = fileURLToPath(new URL('..', import.meta.url));

export interface RecallOptions {
  kinds: DataKind[];
  engines: RecallEngine[];
  queries: number;
  flatQueries: number;
  exactQueries: number;
  lanceRefine: number[];
  lanceNprobes: number;
  indexTimeoutS: number;
  /** Generated vectors, reused by the next run when kept (`--keep`). */
  dataDir: string;
}

function readRecallOptions(): RecallOptions {
  const kinds = list('data', DATA_KINDS.join(',')).map((k) => {
    if (!(DATA_KINDS as readonly string[]).includes(k))
      throw new Error(`--data: unknown data ${k}; ${DATA_KINDS.join(',')}`);
    return k as DataKind;
  });
  const engines = list('recall-engines', RECALL_ENGINES.join(',')).map((e) => {
    if (!(RECALL_ENGINES as readonly string[]).includes(e))
      throw new Error(`--recall-engines: unknown engine ${e}; ${RECALL_ENGINES.join(',')}`);
    return e as RecallEngine;
  });
  return {
    kinds,
    engines,
    queries: num('queries', 200),
    flatQueries: num('flat-queries', 20),
    exactQueries: num('exact-queries', 50),
    lanceRefine: list('lance-refine', '0,30,50').map(Number),
    lanceNprobes: num('lance-nprobes', 20),
    indexTimeoutS: num('index-timeout-s', 7200),
    dataDir: fileURLToPath(new URL('../.data/recall-data', import.meta.url)),
  };
}

/** Ground truth for the plain recalls and for each filter, with its checks. */
export interface Truths {
  plain: Truth;
  filtered: Truth[];
  run: DatasetRun['truth'];
}

/**
 * Reads the vectors here, in a plain function, so that the 3 GB of a 1M base is garbage once it
 * returns (a suspended async function may keep its locals alive).
 */
export function groundTruth(files: VectorFiles, k: number): Truths {
  const dim = files.dim;
  const base = readRows(files.base, dim, 0, files.n);
  const queries = readRows(files.queries, dim, 0, files.nq);
  const t0 = performance.now();
  const plain = exactTopK(base, queries, dim, k);
  const act = activations(base.length / dim);
  const filtered = SELECTIVITIES.map((sel) =>
    filteredTopK(base, queries, dim, k, (i) => act[i]! < sel.below),
  );
  const seconds = (performance.now() - t0) / 1000;
  const check = crossCheck(base, queries, dim, plain, 3);
  // How close neighbours are: the mean cosine of the true 1st and 10th.
  const nq = queries.length / dim;
  const dot = (row: number, qi: number): number => {
    let s = 0;
    for (let d = 0; d < dim; d++) s += base[row * dim + d]! * queries[qi * dim + d]!;
    return s;
  };
  let top1 = 0;
  let top10 = 0;
  for (let qi = 0; qi < nq; qi++) {
    const rows = truthOf(plain, qi);
    top1 += dot(rows[0]!, qi);
    top10 += dot(rows[k - 1]!, qi);
  }
  return {
    plain,
    filtered,
    run: {
      seconds,
      loopMismatches: check.mismatches,
      loopMsPerQuery: check.loopMs,
      meanTop1: top1 / nq,
      meanTop10: top10 / nq,
    },
  };
}

function runChild(job: RecallJob): Promise<void> {
  const env = { ...process.env };
  if (job.engine === 'lancedb') {
    env.LANCE_CPU_THREADS ??= '2';
    env.RUST_LOG ??= 'error';
    env.LANCEDB_LOG ??= 'error';
  }
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', path.join(BENCH_DIR, 'recall', 'child.ts'), JSON.stringify(job)],
    { cwd: BENCH_DIR, env, stdio: 'inherit' },
  );
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('exit', (code, signal) =>
      code === 0 ? resolve() : reject(new Error(`${job.engine} child exited with ${signal ?? code}`)),
    );
  });
}

/** Runs `job` in its child process; its result, or the error that stopped it. */
async function runJob(job: RecallJob): Promise<EngineRecallResult | { engine?: undefined; error: string }> {
  try {
    await runChild(job);
    return JSON.parse(fs.readFileSync(job.out, 'utf8')) as EngineRecallResult | { error: string };
  } catch (e) {
    return { error: String(e) };
  }
}

async function runDataset(cfg: RunConfig, o: RecallOptions, kind: DataKind): Promise<ScoredDataset> {
  const { count: n, dim } = cfg;
  const k = 10;
  log(`-- ${kind} ${n} x ${dim}, ${o.queries} queries (load ${os.loadavg().map((x) => x.toFixed(2))})`);
  const t0 = performance.now();
  const files = ensureVectors(o.dataDir, kind, n, o.queries, dim);
  const generateS = (performance.now() - t0) / 1000;
  log(`vectors: ${files.base} (${generateS < 1 ? 'reused' : `generated in ${generateS.toFixed(1)} s`})`);
  try {
    const truths = groundTruth(files, k);
    gc();
    const tr = truths.run;
    log(
      `ground truth: ${tr.seconds.toFixed(1)} s (exact search, 2 threads); plain loop disagrees on ` +
        `${tr.loopMismatches} of 30 rows; mean cosine of the true 1st ${tr.meanTop1.toFixed(3)}, 10th ${tr.meanTop10.toFixed(3)}; ` +
        `this process's RSS now ${fmtBytes(process.memoryUsage.rss())}`,
    );
    const run: DatasetRun = { kind, n, dim, generateS, truth: tr, engines: {} };
    for (const engine of o.engines) {
      const dir = path.join(cfg.root, `${engine}-${kind}`);
      const out = path.join(cfg.root, `${engine}-${kind}.json`);
      fs.rmSync(dir, { recursive: true, force: true });
      const job: RecallJob = {
        engine,
        files,
        dir,
        k,
        queries: o.queries,
        flatQueries: o.flatQueries,
        exactQueries: o.exactQueries,
        lanceRefine: o.lanceRefine,
        lanceNprobes: o.lanceNprobes,
        batch: cfg.batch,
        indexTimeoutS: o.indexTimeoutS,
        out,
      };
      log(`${engine} (load ${os.loadavg().map((x) => x.toFixed(2))})`);
      const result = await runJob(job);
      if (result.engine === 'warmstore') {
        log(`warmstore: open again in a fresh process (load ${os.loadavg().map((x) => x.toFixed(2))})`);
        const reopen = await runJob({ ...job, engine: 'warmstore-reopen', out: `${out}.reopen` });
        result.reopen =
          reopen.engine === 'warmstore-reopen' || 'error' in reopen ? reopen : { error: 'wrong result' };
      }
      run.engines[engine] = result;
      if (!cfg.keep) fs.rmSync(dir, { recursive: true, force: true });
      const r = run.engines[engine];
      if (r && 'error' in r) log(`${engine} FAILED: ${r.error}`);
    }
    return scoreDataset(run, truths.plain, truths.filtered);
  } finally {
    // Its own files only: another run may be reading other sizes from the same directory.
    if (!cfg.keep) for (const f of [files.base, files.queries]) fs.rmSync(f, { force: true });
  }
}

export async function recallBench(cfg: RunConfig): Promise<void> {
  const o = readRecallOptions();
  const started = new Date();
  fs.mkdirSync(cfg.root, { recursive: true });
  log(
    `warmstore recall bench: ${cfg.count} x ${cfg.dim}, data ${o.kinds.join(',')}, engines ${o.engines.join(',')}; ` +
      `node ${process.version}, ${os.cpus().length} x ${os.cpus()[0]?.model}, ${fmtBytes(os.totalmem())} RAM; ` +
      `load average ${os.loadavg().map((x) => x.toFixed(2))}`,
  );
  const datasets: ScoredDataset[] = [];
  try {
    for (const kind of o.kinds) {
      const d = await runDataset(cfg, o, kind);
      datasets.push(d);
      printDataset(d);
    }
  } finally {
    if (!cfg.keep) {
      fs.rmSync(cfg.root, { recursive: true, force: true });
    }
  }
  const doc = { kind: 'recall', started: started.toISOString(), options: o, count: cfg.count, datasets };
  log(`results written to ${writeResultsFile('recall-', started, doc)}`);
  log(`load average at the end: ${os.loadavg().map((x) => x.toFixed(2))}`);
}
