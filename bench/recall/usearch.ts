/**
 * The index library called directly, as warmstore's index worker calls it (the same parameters,
 * the same int8 codes, one insertion thread, k' = 30 candidates rescored with exact float32
 * cosine), but with no store around it: what the store adds over the raw index.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import usearch, { type BatchMatches, MetricKind, ScalarKind } from 'usearch';
import { DEFAULT_DIST } from '../engines/warmstore.ts';
import { gc } from '../lib/measure.ts';
import { readRows } from './data.ts';
import { type RecallJob, type SearchRun, type UsearchResult, cpuSeconds, pct, rssAnon } from './figures.ts';

const log = (line: string): void => console.log(`  [usearch] ${line}`);

/** Candidates taken from the index before rescoring: warmstore's floor for k = 10. */
const CANDIDATES = 30;
/** Vectors per `add` call, as the store's worker receives them in batches. */
const ADD_BATCH = 1000;

type Quantize = typeof import('../../src/ann/quantize.js');

export async function runUsearch(job: RecallJob): Promise<UsearchResult> {
  const { files, k } = job;
  const { n, dim } = files;
  // Query codes come from the build under test, so the bench searches the index as the store does.
  const q8 = (await import(pathToFileURL(path.join(DEFAULT_DIST, 'ann/quantize.js')).href)) as Quantize;
  const rss: Record<string, number> = { start: rssAnon() };
  const base = readRows(files.base, dim, 0, n);
  rss.baseRead = rssAnon();
  const params = {
    dimensions: dim,
    metric: MetricKind.Cos,
    quantization: ScalarKind.I8,
    connectivity: 16,
    expansion_add: 128,
    expansion_search: 128,
    multi: false,
  };
  const file = path.join(job.dir, 'index.usearch');
  let buildS: number;
  let buildCpuS: number;
  {
    const built = new usearch.Index(params);
    const t0 = performance.now();
    const c0 = cpuSeconds();
    let lastLog = t0;
    for (let from = 0; from < n; from += ADD_BATCH) {
      const count = Math.min(ADD_BATCH, n - from);
      // Float32 rows, as the store sends them (the binding quantizes them itself); a fresh array:
      // the binding reads from byte 0 of the buffer whatever the view's offset.
      const rows = base.slice(from * dim, (from + count) * dim);
      const keys = new BigUint64Array(count);
      for (let j = 0; j < count; j++) keys[j] = BigInt(from + j);
      built.add(keys, rows, 1);
      if (performance.now() - lastLog > 60_000) {
        lastLog = performance.now();
        log(`added ${from + count} in ${((lastLog - t0) / 1000).toFixed(0)} s`);
      }
    }
    buildS = (performance.now() - t0) / 1000;
    buildCpuS = cpuSeconds() - c0;
    rss.built = rssAnon();
    log(`built ${n} in ${buildS.toFixed(1)} s (CPU ${buildCpuS.toFixed(1)} s)`);
    built.save(file);
  }
  gc();
  rss.beforeLoad = rssAnon();
  // Searched as the store searches it after a reopen: loaded from its file. (An index grown by
  // single-threaded adds also refuses searches on two threads: its capacity was reserved for one.)
  const index = new usearch.Index(params);
  index.load(file);
  rss.loaded = rssAnon();
  const fileBytes = fs.statSync(file).size;

  const queries = readRows(files.queries, dim, 0, job.queries);
  const nq = job.queries;
  const codesOf = (qi: number): Int8Array => q8.quantize(queries.subarray(qi * dim, (qi + 1) * dim));
  /** The k best of `cands` by exact cosine (the vectors are normalized: the inner product). */
  const rescore = (qi: number, cands: ArrayLike<bigint>): number[] => {
    const qo = qi * dim;
    const scored: { row: number; s: number }[] = [];
    for (let j = 0; j < cands.length; j++) {
      const row = Number(cands[j]!);
      if (row >= n) continue; // unfilled result slot
      let s = 0;
      const o = row * dim;
      for (let d = 0; d < dim; d++) s += base[o + d]! * queries[qo + d]!;
      scored.push({ row, s });
    }
    scored.sort((a, b) => b.s - a.s);
    return scored.slice(0, k).map((x) => x.row);
  };
  for (let qi = 0; qi < Math.min(20, nq); qi++) index.search(codesOf(qi), CANDIDATES, 1); // warm-up
  const raw: SearchRun = { label: 'index alone', found: [], ms: [] };
  const search: SearchRun = { label: `index + rescoring of ${CANDIDATES}`, found: [], ms: [] };
  const c1 = cpuSeconds();
  for (let qi = 0; qi < nq; qi++) {
    const t = performance.now();
    const r = index.search(codesOf(qi), CANDIDATES, 1);
    const top = rescore(qi, r.keys);
    search.ms.push(performance.now() - t);
    search.found.push(top);
    raw.found.push(Array.from(r.keys.subarray(0, k), Number));
  }
  search.cpuMsPerQuery = ((cpuSeconds() - c1) * 1000) / nq;
  // Two native threads over the whole batch (the binding is synchronous: this is how it uses two cores).
  const t2 = performance.now();
  const all: Int8Array[] = [];
  for (let qi = 0; qi < nq; qi++) all.push(codesOf(qi));
  const batch: BatchMatches = index.search(all, CANDIDATES, 2);
  for (let qi = 0; qi < nq; qi++) rescore(qi, batch.keys.subarray(qi * CANDIDATES, (qi + 1) * CANDIDATES));
  search.qps = (nq * 1000) / (performance.now() - t2);
  log(`search p50 ${pct(search.ms, 50).toFixed(2)} ms, ${search.qps.toFixed(0)} q/s on 2 threads`);
  return {
    engine: 'usearch',
    buildS,
    buildCpuS,
    fileBytes,
    rssAnon: rss,
    raw,
    search,
    candidates: CANDIDATES,
  };
}
