/**
 * Exact ground truth: the true top-k rows of every query by float32 cosine, plain and under each
 * filter. The vectors are normalized, so cosine is the inner product, which usearch's `exactSearch`
 * computes with SIMD on native threads (a 1M x 768 x 200 batch takes about a minute on 2 cores).
 * A plain JS loop checks it on a few queries, so a wrong kernel cannot pass unnoticed.
 */
import usearch, { MetricKind } from 'usearch';
import { now } from '../lib/measure.ts';

/** Row numbers of the true top-k of each query, `k` per query, best first. */
export interface Truth {
  k: number;
  rows: Int32Array;
}

/**
 * Top-k rows of `base` (n x dim) for each query (nq x dim) by inner product. Both arrays must start
 * at byte 0 of their buffers: the binding ignores `byteOffset` and would read other rows.
 */
export function exactTopK(base: Float32Array, queries: Float32Array, dim: number, k: number): Truth {
  if (base.byteOffset !== 0 || queries.byteOffset !== 0)
    throw new Error('exactTopK: arrays must start at byte 0');
  const nq = queries.length / dim;
  const r = usearch.exactSearch(base, queries, dim, k, MetricKind.IP, 2);
  const rows = new Int32Array(nq * k);
  for (let i = 0; i < nq * k; i++) rows[i] = Number(r.keys[i]);
  return { k, rows };
}

/** Top-k by inner product in a plain loop: slow, obviously right. */
export function loopTopK(base: Float32Array, q: Float32Array, dim: number, k: number): number[] {
  const n = base.length / dim;
  const best: { row: number; s: number }[] = [];
  for (let i = 0; i < n; i++) {
    let s = 0;
    const o = i * dim;
    for (let d = 0; d < dim; d++) s += base[o + d]! * q[d]!;
    if (best.length < k || s > best[best.length - 1]!.s) {
      best.push({ row: i, s });
      best.sort((a, b) => b.s - a.s);
      if (best.length > k) best.pop();
    }
  }
  return best.map((b) => b.row);
}

/** Rows of `truth` for query `qi`. */
export const truthOf = (t: Truth, qi: number): Int32Array => t.rows.subarray(qi * t.k, (qi + 1) * t.k);

/** Fraction of each query's true top-k found among its first k results, over all queries. */
export function recallAtK(found: readonly (readonly number[])[], t: Truth): number {
  let hit = 0;
  for (let qi = 0; qi < found.length; qi++) {
    const want = new Set(truthOf(t, qi));
    for (const row of found[qi]!.slice(0, t.k)) if (want.has(row)) hit++;
  }
  return hit / (found.length * t.k);
}

/**
 * The exact top-k among the rows that `keep` accepts: those rows gathered into an array of their
 * own, searched, and mapped back to base row numbers.
 */
export function filteredTopK(
  base: Float32Array,
  queries: Float32Array,
  dim: number,
  k: number,
  keep: (row: number) => boolean,
): Truth & { matches: number } {
  const n = base.length / dim;
  const rows: number[] = [];
  for (let i = 0; i < n; i++) if (keep(i)) rows.push(i);
  const sub = new Float32Array(rows.length * dim);
  rows.forEach((row, j) => sub.set(base.subarray(row * dim, (row + 1) * dim), j * dim));
  const t = exactTopK(sub, queries, dim, Math.min(k, rows.length));
  for (let i = 0; i < t.rows.length; i++) t.rows[i] = rows[t.rows[i]!]!;
  return { ...t, matches: rows.length };
}

/**
 * Mismatches between `t` and the plain loop over the first `nCheck` queries (0 when they agree),
 * and the loop's time per query.
 */
export function crossCheck(
  base: Float32Array,
  queries: Float32Array,
  dim: number,
  t: Truth,
  nCheck: number,
): { mismatches: number; loopMs: number } {
  let mismatches = 0;
  const t0 = now();
  for (let qi = 0; qi < nCheck; qi++) {
    const want = loopTopK(base, queries.subarray(qi * dim, (qi + 1) * dim), dim, t.k);
    const got = new Set(truthOf(t, qi));
    for (const row of want) if (!got.has(row)) mismatches++;
  }
  return { mismatches, loopMs: (now() - t0) / Math.max(1, nCheck) };
}
