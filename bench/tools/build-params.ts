/**
 * The index library alone, built with one set of graph parameters over the first N rows of a
 * float32 data file: build wall and CPU time, then recall@10 against exact search for each search
 * expansion, with `CANDIDATES` hits rescored by exact cosine as the store rescores them. Used to
 * choose the build parameters by measurement.
 *
 *   [MODE=i8|pca:R] [CANDIDATES=30] node --import tsx tools/build-params.ts ROWS.f32 QUERIES.f32 N \
 *     [M=16] [EFC=128] [THREADS=1] [NICE=0]
 *
 * THREADS > 1 adds on that many native threads; NICE > 0 lowers this process's priority first.
 * MODE=pca:R indexes the int8 codes of the top R principal components instead of all dimensions.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import usearch, { MetricKind, ScalarKind } from 'usearch';
import { quantizeInto } from '../../src/ann/quantize.ts';

const [rowsFile, queriesFile, nArg, mArg = '16', efcArg = '128', thrArg = '1', niceArg = '0'] =
  process.argv.slice(2);
if (!rowsFile || !queriesFile || !nArg)
  throw new Error('usage: build-params.ts ROWS QUERIES N [M] [EFC] [THREADS] [NICE]');
const dim = 768;
const n = Number(nArg);
const M = Number(mArg);
const efc = Number(efcArg);
const threads = Number(thrArg);
if (Number(niceArg) > 0) os.setPriority(Number(niceArg));
const K = 10;
const CANDIDATES = Number(process.env.CANDIDATES ?? 30);

function readRows(file: string, from: number, count: number): Float32Array {
  const out = new Float32Array(count * dim);
  const fd = fs.openSync(file, 'r');
  try {
    fs.readSync(fd, new Uint8Array(out.buffer), 0, out.byteLength, from * dim * 4);
  } finally {
    fs.closeSync(fd);
  }
  return out;
}

const cpu = (): number => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};

const base = readRows(rowsFile, 0, n);
const nq = fs.statSync(queriesFile).size / (dim * 4);
const queries = readRows(queriesFile, 0, nq);

// Exact top-K by inner product (rows are normalized): the ground truth.
const truthFile = path.join(os.tmpdir(), `truth-${path.basename(rowsFile)}-${n}-${nq}.json`);
let truth: number[][];
if (fs.existsSync(truthFile)) truth = JSON.parse(fs.readFileSync(truthFile, 'utf8')) as number[][];
else {
  const r = usearch.exactSearch(base, queries, dim, K, MetricKind.IP, 0);
  truth = [];
  for (let q = 0; q < nq; q++) truth.push(Array.from(r.keys.subarray(q * K, (q + 1) * K), Number));
  fs.writeFileSync(truthFile, JSON.stringify(truth));
}

// MODE: 'i8' (as the store), 'pca:R' (i8 codes of the top R principal components of a 20K
// sample, centred).
const mode = process.env.MODE ?? 'i8';
const tp0 = performance.now();
const sampleN = Math.min(n, 20000);
const mean = new Float64Array(dim);
for (let i = 0; i < sampleN; i++) for (let d = 0; d < dim; d++) mean[d]! += base[i * dim + d]! / sampleN;
let codeDim = dim;
let encode: (v: Float32Array, o: number, out: Int8Array, oo: number) => void = (v, o, out, oo) =>
  quantizeInto(v, o, dim, out, oo);
if (mode.startsWith('pca:')) {
  const r = Number(mode.slice(4));
  // Covariance of the centred sample, then the top r eigenvectors by subspace iteration.
  const C = new Float64Array(dim * dim);
  const x = new Float64Array(dim);
  for (let i = 0; i < sampleN; i++) {
    for (let d = 0; d < dim; d++) x[d] = base[i * dim + d]! - mean[d]!;
    for (let a = 0; a < dim; a++) {
      const xa = x[a]!;
      const row = a * dim;
      for (let b = a; b < dim; b++) C[row + b]! += xa * x[b]!;
    }
  }
  for (let a = 0; a < dim; a++) for (let b = 0; b < a; b++) C[a * dim + b] = C[b * dim + a]!;
  let Q = new Float64Array(dim * r);
  for (let i = 0; i < Q.length; i++) Q[i] = Math.random() - 0.5;
  const orth = (Q: Float64Array): void => {
    for (let j = 0; j < r; j++) {
      for (let p = 0; p < j; p++) {
        let dot = 0;
        for (let d = 0; d < dim; d++) dot += Q[d * r + j]! * Q[d * r + p]!;
        for (let d = 0; d < dim; d++) Q[d * r + j]! -= dot * Q[d * r + p]!;
      }
      let nn = 0;
      for (let d = 0; d < dim; d++) nn += Q[d * r + j]! ** 2;
      nn = 1 / Math.sqrt(nn);
      for (let d = 0; d < dim; d++) Q[d * r + j]! *= nn;
    }
  };
  orth(Q);
  for (let it = 0; it < 12; it++) {
    const Z = new Float64Array(dim * r);
    for (let a = 0; a < dim; a++)
      for (let b = 0; b < dim; b++) {
        const c = C[a * dim + b]!;
        if (c === 0) continue;
        for (let j = 0; j < r; j++) Z[a * r + j]! += c * Q[b * r + j]!;
      }
    orth(Z);
    Q = Z;
  }
  const P = new Float32Array(r * dim);
  for (let j = 0; j < r; j++) for (let d = 0; d < dim; d++) P[j * dim + d] = Q[d * r + j]!;
  const tmp = new Float32Array(r);
  codeDim = r;
  encode = (v, o, out, oo) => {
    for (let j = 0; j < r; j++) {
      let s = 0;
      for (let d = 0; d < dim; d++) s += P[j * dim + d]! * (v[o + d]! - mean[d]!);
      tmp[j] = s;
    }
    quantizeInto(tmp, 0, r, out, oo);
  };
}
console.log(`mode ${mode}: prepared in ${((performance.now() - tp0) / 1000).toFixed(1)} s`);
const codeBytes = codeDim;
const codeOf = (v: Float32Array): Int8Array => {
  const out = new Int8Array(codeBytes);
  encode(v, 0, out, 0);
  return out;
};
const params = {
  dimensions: codeDim,
  metric: MetricKind.Cos,
  quantization: ScalarKind.I8,
  connectivity: M,
  expansion_add: efc,
  expansion_search: 128,
  multi: false,
};
const index = new usearch.Index(params);
const BATCH = 1000;
let addMs = 0;
const t0 = performance.now();
const c0 = cpu();
for (let from = 0; from < n; from += BATCH) {
  const count = Math.min(BATCH, n - from);
  const codes = new Int8Array(count * codeBytes);
  const keys = new BigUint64Array(count);
  for (let j = 0; j < count; j++) {
    encode(base, (from + j) * dim, codes, j * codeBytes);
    keys[j] = BigInt(from + j);
  }
  const ta = performance.now();
  index.add(keys, codes, threads);
  addMs += performance.now() - ta;
}
const buildS = (performance.now() - t0) / 1000;
const buildCpu = cpu() - c0;
const file = path.join(os.tmpdir(), `build-params-${process.pid}.usearch`);
index.save(file);
const bytes = fs.statSync(file).size;

const out: string[] = [];
for (const efs of [64, 96, 128, 192, 256]) {
  const idx = new usearch.Index({ ...params, expansion_search: efs });
  idx.view(file);
  for (let q = 0; q < 20; q++) idx.search(codeOf(queries.subarray(q * dim, (q + 1) * dim)), CANDIDATES, 1);
  let hit = 0;
  const ms: number[] = [];
  for (let q = 0; q < nq; q++) {
    const qv = queries.subarray(q * dim, (q + 1) * dim);
    const t = performance.now();
    const r = idx.search(codeOf(qv), CANDIDATES, 1);
    const scored: { row: number; s: number }[] = [];
    for (const key of r.keys) {
      const row = Number(key);
      if (row >= n) continue;
      let s = 0;
      for (let d = 0; d < dim; d++) s += base[row * dim + d]! * qv[d]!;
      scored.push({ row, s });
    }
    scored.sort((a, b) => b.s - a.s);
    ms.push(performance.now() - t);
    const want = new Set(truth[q]);
    for (const x of scored.slice(0, K)) if (want.has(x.row)) hit++;
  }
  ms.sort((a, b) => a - b);
  out.push(`efs=${efs} recall@10=${(hit / (nq * K)).toFixed(4)} p50=${ms[ms.length >> 1]!.toFixed(2)}ms`);
}
fs.rmSync(file);
console.log(
  `${mode} n=${n} cand=${CANDIDATES} M=${M} efc=${efc} threads=${threads} nice=${niceArg} build ${buildS.toFixed(1)} s (adds ${(addMs / 1000).toFixed(1)} s) cpu ${buildCpu.toFixed(1)} s ` +
    `file ${(bytes / 2 ** 20).toFixed(0)} MiB load ${os.loadavg()[0]!.toFixed(1)}\n  ${out.join('\n  ')}`,
);
