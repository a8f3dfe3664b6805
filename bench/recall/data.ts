/**
 * The recall benchmark's vectors, generated once per kind and size into float32 files that every
 * engine reads (at 1M x 768 that is 3 GB: no engine gets a copy it did not ask for).
 *
 * - `clustered`: a 48-dimensional latent Gaussian mixture (200 clusters of Zipf-like popularity
 *   around a shared mean offset, so that random pairs have a positive cosine as real embedding
 *   models give), projected to 768 dimensions by a fixed random matrix, plus isotropic noise,
 *   L2-normalized. Neighbourhoods are dense: the true 10th neighbour is nearly as close as the 1st.
 * - `uniform`: random directions (normalized Gaussian vectors), the worst case for any index.
 *
 * Queries come from the same distribution (a separate random stream), never copies of base rows.
 * Each record also carries an `activation` drawn uniformly from [0, 1), which the filtered recalls
 * select on: `activation < 0.1` keeps 10% of the records, `activation < 0.01` keeps 1%.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { rng } from '../lib/data.ts';

export const DATA_KINDS = ['clustered', 'uniform'] as const;
export type DataKind = (typeof DATA_KINDS)[number];

/** Where one data set lives; rows are `dim` float32 values, little-endian, no header. */
export interface VectorFiles {
  kind: DataKind;
  n: number;
  dim: number;
  /** Queries in the query file. */
  nq: number;
  base: string;
  queries: string;
}

const LATENT = 48;
const CLUSTERS = 200;
const WITHIN = 0.6;
const NOISE = 0.35;
const MEAN_OFFSET = 0.7;
const ACTIVATION_SEED = 0xac71;

/** A standard normal draw (Box-Muller). */
function gauss(r: () => number): number {
  let u = 0;
  while (u === 0) u = r();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * r());
}

/** Writes normalized vectors of one kind into `out` at row `o`, drawing from `r`. */
type RowWriter = (out: Float32Array, o: number, r: () => number) => void;

function rowWriter(kind: DataKind, dim: number): RowWriter {
  const normalize = (out: Float32Array, o: number): void => {
    let s = 0;
    for (let d = 0; d < dim; d++) s += out[o + d]! * out[o + d]!;
    s = 1 / Math.sqrt(s);
    for (let d = 0; d < dim; d++) out[o + d]! *= s;
  };
  if (kind === 'uniform') {
    return (out, o, r) => {
      for (let d = 0; d < dim; d++) out[o + d] = gauss(r);
      normalize(out, o);
    };
  }
  // The projection and the cluster centres come from their own seed, so base rows and queries share them.
  const r0 = rng(12345);
  const w = new Float32Array(LATENT * dim);
  for (let i = 0; i < w.length; i++) w[i] = gauss(r0) / Math.sqrt(LATENT);
  const mu = new Float32Array(LATENT).map(() => gauss(r0) * MEAN_OFFSET);
  const centers = new Float32Array(CLUSTERS * LATENT);
  for (let c = 0; c < CLUSTERS; c++)
    for (let j = 0; j < LATENT; j++) centers[c * LATENT + j] = mu[j]! + gauss(r0);
  const z = new Float32Array(LATENT);
  return (out, o, r) => {
    // Squaring a uniform draw makes low cluster numbers far more common: some topics dominate.
    const c = Math.min(CLUSTERS - 1, Math.floor(CLUSTERS * r() ** 2));
    for (let j = 0; j < LATENT; j++) z[j] = centers[c * LATENT + j]! + WITHIN * gauss(r);
    for (let d = 0; d < dim; d++) out[o + d] = NOISE * gauss(r);
    for (let j = 0; j < LATENT; j++) {
      const zj = z[j]!;
      const row = j * dim;
      for (let d = 0; d < dim; d++) out[o + d]! += zj * w[row + d]!;
    }
    normalize(out, o);
  };
}

function writeRows(file: string, n: number, dim: number, write: RowWriter, r: () => number): void {
  const tmp = `${file}.tmp`;
  const fd = fs.openSync(tmp, 'w');
  try {
    const chunk = 10_000;
    const buf = new Float32Array(chunk * dim);
    for (let i = 0; i < n; i += chunk) {
      const m = Math.min(chunk, n - i);
      for (let k = 0; k < m; k++) write(buf, k * dim, r);
      fs.writeSync(fd, new Uint8Array(buf.buffer, 0, m * dim * 4));
    }
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
}

function hasRows(file: string, rows: number, dim: number): boolean {
  try {
    return fs.statSync(file).size === rows * dim * 4;
  } catch {
    return false;
  }
}

/**
 * The files of `kind` with `n` rows and `nq` queries under `dir`, generated unless a previous run
 * left them there (same name, same size: generation is deterministic).
 */
export function ensureVectors(dir: string, kind: DataKind, n: number, nq: number, dim: number): VectorFiles {
  fs.mkdirSync(dir, { recursive: true });
  const files: VectorFiles = {
    kind,
    n,
    dim,
    nq,
    base: path.join(dir, `${kind}-${n}x${dim}.f32`),
    queries: path.join(dir, `${kind}-q${nq}x${dim}.f32`),
  };
  const write = rowWriter(kind, dim);
  if (!hasRows(files.base, n, dim))
    writeRows(files.base, n, dim, write, rng(kind === 'clustered' ? 777 : 555));
  if (!hasRows(files.queries, nq, dim)) writeRows(files.queries, nq, dim, write, rng(4242));
  return files;
}

/** Rows `from` .. `from + count` of a vector file, in a fresh array (starting at byte 0 of its buffer). */
export function readRows(file: string, dim: number, from: number, count: number): Float32Array {
  const out = new Float32Array(count * dim);
  const fd = fs.openSync(file, 'r');
  try {
    const bytes = new Uint8Array(out.buffer);
    // One read returns at most ~2 GiB on Linux: loop.
    let done = 0;
    while (done < bytes.length) {
      const got = fs.readSync(fd, bytes, done, Math.min(1 << 30, bytes.length - done), from * dim * 4 + done);
      if (got === 0) throw new Error(`${file}: short read at row ${from + done / (dim * 4)}`);
      done += got;
    }
  } finally {
    fs.closeSync(fd);
  }
  return out;
}

/** Every record's `activation`, uniform in [0, 1), the same for a given `n` in every process. */
export function activations(n: number): Float64Array {
  const r = rng(ACTIVATION_SEED);
  const a = new Float64Array(n);
  for (let i = 0; i < n; i++) a[i] = r();
  return a;
}

/** A filtered recall: records whose activation is below `below` (that fraction of them). */
export interface Selectivity {
  label: string;
  below: number;
}

export const SELECTIVITIES: readonly Selectivity[] = [
  { label: '10%', below: 0.1 },
  { label: '1%', below: 0.01 },
];

/** The id warmstore stores row `i` under, and back. */
export const rowId = (i: number): string => `r${i}`;
export const idRow = (id: string): number => Number(id.slice(1));
