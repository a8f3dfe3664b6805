import { Worker } from 'node:worker_threads';
import type { CompiledFilter } from '../engine/filter.js';
import { CHUNK_SLOTS, type RecordTable } from '../records/table.js';
import { scanKernelBytes } from './kernel.js';

/** One candidate of a scan: its slot and its cosine as the scan computed it. */
export interface ScanHit {
  slot: number;
  score: number;
}

/**
 * The scan worker: for each chunk it is given, dot products of the query with every row (the
 * SIMD kernel over the embedding arena, or a plain loop for a block outside it), then cosine,
 * space, filter and minimum score, keeping the best k in a min-heap. Plain CommonJS from a string:
 * no file to resolve whether warmstore runs from dist/ or from its sources.
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { memory, kernel, lane, laneBytes, dim } = workerData;
let scan;
if (memory) {
  const inst = new WebAssembly.Instance(new WebAssembly.Module(kernel), { env: { mem: memory } });
  scan = inst.exports.scan;
}
const qOff = lane * laneBytes;
const outOff = qOff + dim * 4;
const scratch = new Float64Array(${CHUNK_SLOTS});
parentPort.on('message', (m) => {
  const k = m.k;
  const heapS = new Float64Array(k);
  const heapI = new Float64Array(k);
  let size = 0;
  const push = (s, slot) => {
    if (size < k) {
      let i = size++;
      while (i > 0) {
        const p = (i - 1) >> 1;
        if (heapS[p] <= s) break;
        heapS[i] = heapS[p]; heapI[i] = heapI[p]; i = p;
      }
      heapS[i] = s; heapI[i] = slot;
      return;
    }
    if (s <= heapS[0]) return;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= k) break;
      const r = l + 1;
      const c = r < k && heapS[r] < heapS[l] ? r : l;
      if (heapS[c] >= s) break;
      heapS[i] = heapS[c]; heapI[i] = heapI[c]; i = c;
    }
    heapS[i] = s; heapI[i] = slot;
  };
  const q = m.q;
  if (scan) new Float32Array(memory.buffer, qOff, dim).set(q);
  const rows = new Int32Array(${CHUNK_SLOTS});
  for (const c of m.chunks) {
    const n = c.n;
    const kind = c.kind, space = c.space, norm = c.norm, meta = c.meta;
    // The rows in the space and the filter first: a selective recall (a small space, a narrow
    // filter) scores only those; a broad one runs the kernel over the whole chunk.
    let count = 0;
    outer: for (let i = 0; i < n; i++) {
      if (kind[i] === 0 || space[i] !== m.space) continue;
      for (const b of m.bounds) {
        const x = meta[b.field][i];
        if (x < b.lo || (x === b.lo && !b.loInclusive) || x > b.hi || (x === b.hi && !b.hiInclusive)) continue outer;
      }
      rows[count++] = i;
    }
    if (count === 0) continue;
    let dots;
    if (scan && c.arenaOffset !== undefined && count * 4 >= n) {
      scan(qOff, c.arenaOffset, n, dim, outOff);
      dots = new Float32Array(memory.buffer, outOff, n);
    } else {
      const emb = c.emb ?? new Float32Array(memory.buffer, c.arenaOffset, n * dim);
      for (let j = 0; j < count; j++) {
        const i = rows[j];
        let s = 0;
        for (let d = 0, o = i * dim; d < dim; d++, o++) s += emb[o] * q[d];
        scratch[i] = s;
      }
      dots = scratch;
    }
    for (let j = 0; j < count; j++) {
      const i = rows[j];
      const nv = norm[i];
      let s = nv > 0 ? dots[i] / (nv * m.qn) : 0;
      s = s > 1 ? 1 : s < -1 ? -1 : s;
      if (s < m.minScore) continue;
      push(s, c.base + i);
    }
  }
  parentPort.postMessage({ id: m.id, scores: heapS.subarray(0, size), slots: heapI.subarray(0, size) });
});
`;

interface Pending {
  resolve: (hits: ScanHit[]) => void;
  reject: (err: unknown) => void;
}

const METADATA = ['confidence', 'activation', 'decayRate', 'createdAt', 'lastAccess', 'accessCount'] as const;

/**
 * Exact scans off the event loop: a few worker threads, each scanning every other chunk of the
 * record table where it lies (shared memory), returning its best k. Rows being rewritten while a
 * worker reads them can give a torn score; the caller rescores every candidate from the table, so
 * that only ever costs a near-tie its place, never a wrong score.
 */
export class ScanPool {
  readonly #workers: Worker[] = [];
  readonly #pending = new Map<number, Pending>();
  #next = 0;
  #failed: unknown;

  private constructor(table: RecordTable) {
    const arena = table.arena;
    const kernel = scanKernelBytes();
    for (let lane = 0; lane < arena.lanes; lane++) {
      const w = new Worker(WORKER_SOURCE, {
        eval: true,
        workerData: { memory: arena.memory, kernel, lane, laneBytes: arena.laneBytes, dim: table.dim },
      });
      w.unref();
      w.on('message', (m: { id: number; scores: Float64Array; slots: Float64Array }) => {
        const p = this.#pending.get(m.id);
        this.#pending.delete(m.id);
        const hits: ScanHit[] = [];
        for (let i = 0; i < m.scores.length; i++) hits.push({ slot: m.slots[i]!, score: m.scores[i]! });
        p?.resolve(hits);
      });
      const fail = (err: unknown): void => {
        this.#failed ??= err;
        for (const p of this.#pending.values()) p.reject(err);
        this.#pending.clear();
      };
      w.on('error', fail);
      w.on('exit', (code) => fail(new Error(`scan worker exited with code ${code}`)));
      this.#workers.push(w);
    }
  }

  /** A pool, or undefined where worker threads cannot start (callers scan inline). */
  static create(table: RecordTable): ScanPool | undefined {
    try {
      return new ScanPool(table);
    } catch {
      return undefined;
    }
  }

  /**
   * The best `k` slots of `space` (matching `filter`, scoring at least `minScore`) among the first
   * `slotLimit` slots, by the scan's cosine, unsorted.
   */
  async topK(
    table: RecordTable,
    slotLimit: number,
    q: Float32Array,
    qn: number,
    k: number,
    minScore: number,
    space: number,
    filter: CompiledFilter | undefined,
  ): Promise<ScanHit[]> {
    if (this.#failed !== undefined) throw this.#failed;
    const lanes = this.#workers.length;
    const parts: object[][] = Array.from({ length: lanes }, () => []);
    for (let ci = 0; ci < table.chunks.length; ci++) {
      const base = ci * CHUNK_SLOTS;
      const n = Math.min(CHUNK_SLOTS, slotLimit - base);
      if (n <= 0) break;
      const c = table.chunks[ci]!;
      const meta: Record<string, Float64Array> = {};
      for (const f of METADATA) meta[f] = c[f];
      parts[ci % lanes]!.push({
        base,
        n,
        arenaOffset: c.embArenaOffset,
        emb: c.embArenaOffset === undefined ? c.emb : undefined,
        kind: c.kind,
        space: c.space,
        norm: c.norm,
        meta,
      });
    }
    const bounds = filter?.bounds ?? [];
    const results = await Promise.all(
      this.#workers.map(
        (w, lane) =>
          new Promise<ScanHit[]>((resolve, reject) => {
            const id = this.#next++;
            this.#pending.set(id, { resolve, reject });
            w.postMessage({ id, q, qn, k, minScore, space, bounds, chunks: parts[lane] });
          }),
      ),
    );
    return results.flat();
  }

  async close(): Promise<void> {
    for (const w of this.#workers) {
      w.removeAllListeners('exit');
      await w.terminate();
    }
  }
}
