import type { IndexStatus, WarmStore } from '../../../src/index.js';
import { Rng } from '../../helpers/random.js';

/**
 * Clustered test vectors: a 32-dimensional Gaussian mixture projected to `dim` by a fixed random
 * matrix, plus a little isotropic noise, L2-normalized. Real embeddings have such low-dimensional
 * structure; uniform random vectors have none and defeat any approximate index.
 */
export class Clustered {
  readonly dim: number;
  readonly #rng: Rng;
  readonly #proj: Float64Array;
  readonly #centers: Float64Array[];

  constructor(dim: number, seed: number, clusters = 50) {
    this.dim = dim;
    this.#rng = new Rng(seed);
    this.#proj = new Float64Array(32 * dim).map(() => this.#gauss());
    this.#centers = Array.from({ length: clusters }, () => new Float64Array(32).map(() => this.#gauss() * 2));
  }

  #gauss(): number {
    let u = 0;
    while (u === 0) u = this.#rng.next();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * this.#rng.next());
  }

  next(): Float32Array {
    const c = this.#centers[this.#rng.int(this.#centers.length)]!;
    const z = c.map((x) => x + this.#gauss());
    const out = new Float32Array(this.dim);
    let n = 0;
    for (let d = 0; d < this.dim; d++) {
      let s = 0;
      for (let j = 0; j < 32; j++) s += z[j]! * this.#proj[j * this.dim + d]!;
      s += this.#gauss() * 0.5;
      out[d] = s;
      n += s * s;
    }
    n = Math.sqrt(n);
    for (let d = 0; d < this.dim; d++) out[d]! /= n;
    return out;
  }
}

/** Waits until the index is ready and has acknowledged every write. */
export async function indexSettled(store: WarmStore, timeoutMs = 120_000): Promise<IndexStatus> {
  const t0 = Date.now();
  for (;;) {
    const s = store.indexStatus;
    if (s.state === 'ready' && s.tail === 0) return s;
    if (s.state === 'failed' || s.state === 'off') throw new Error(`index ${s.state}: ${s.error ?? ''}`);
    if (Date.now() - t0 > timeoutMs) throw new Error(`index not settled: ${JSON.stringify(s)}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
