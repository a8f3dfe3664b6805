import { closeSync, openSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import type { CompiledFilter } from '../engine/filter.js';
import { ioError } from '../errors.js';
import { RECORDS_DATA_START } from '../records/slot-codec.js';
import { CHUNK_SLOTS, SCAN_LANES, type Chunk, type RecordTable } from '../records/table.js';
import { scanKernelBytes } from './kernel.js';

/** One candidate of a scan: its slot and its cosine as the scan computed it. */
export interface ScanHit {
  slot: number;
  score: number;
}

/** Rows a worker reads from vectors.dat and scores at a time. */
const BLOCK_ROWS = 256;
/** Chunks a lane scans per slice of a background scan (8192 rows each: ~2-3 ms at 768 dimensions). */
const BACKGROUND_CHUNKS = 1;
/** Rows a selective scan reads past a match to reach the next one in the same pread. */
const SELECTIVE_GAP = 4;

/**
 * The scan worker: for each chunk it is given, the rows in the space and the filter (over the
 * chunk's shared metadata), their embeddings read from vectors.dat into its own WebAssembly memory
 * a block at a time, dot products by the SIMD kernel (or a plain loop when the dimension is not a
 * multiple of 8), then cosine and minimum score, keeping the best k in a min-heap. A broad recall
 * reads whole blocks; a selective one reads only runs around its matches. Plain CommonJS from a
 * string: no file to resolve whether warmstore runs from dist/ or from its sources.
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const fs = require('node:fs');
const { kernel, dim, fd, dataStart } = workerData;
const BLOCK = ${BLOCK_ROWS};
const GAP = ${SELECTIVE_GAP};
const rowBytes = dim * 4;
const align = (x) => Math.ceil(x / 16) * 16;
const qOff = 0;
const outOff = align(dim * 4);
const rowsOff = align(outOff + BLOCK * 4);
const pages = Math.ceil((rowsOff + BLOCK * rowBytes) / 65536);
let memory, scan;
if (dim % 8 === 0) {
  try {
    memory = new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
    scan = new WebAssembly.Instance(new WebAssembly.Module(kernel), { env: { mem: memory } }).exports.scan;
  } catch {
    memory = undefined;
    scan = undefined;
  }
}
const buf = memory ? memory.buffer : new SharedArrayBuffer(rowsOff + BLOCK * rowBytes);
const rowsU8 = new Uint8Array(buf, rowsOff, BLOCK * rowBytes);
const rowsF32 = new Float32Array(buf, rowsOff, BLOCK * dim);
const outF32 = new Float32Array(buf, outOff, BLOCK);
const qF32 = new Float32Array(buf, qOff, dim);
const read = (first, n) => {
  const want = n * rowBytes;
  let got = 0;
  while (got < want) {
    const r = fs.readSync(fd, rowsU8, got, want - got, dataStart + first * rowBytes + got);
    if (r === 0) break;
    got += r;
  }
  if (got < want) rowsU8.fill(0, got, want);
};
const dots = (n) => {
  if (scan) {
    scan(qOff, rowsOff, n, dim, outOff);
    return;
  }
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let d = 0, o = i * dim; d < dim; d++, o++) s += rowsF32[o] * qF32[d];
    outF32[i] = s;
  }
};
const rows = new Int32Array(${CHUNK_SLOTS});
// The chunks this worker scans, by chunk index, as the pool sent them (once each).
const chunks = [];
// The rows of one chunk in the space and the filter, a column at a time: the first bound's column
// in one tight pass, then the survivors checked against the rest (bounds are inclusive).
const select = (c, n, sp, bounds) => {
  const kind = c.kind, space = c.space;
  let count = 0;
  if (bounds.length === 0) {
    for (let i = 0; i < n; i++) if (kind[i] !== 0 && space[i] === sp) rows[count++] = i;
    return count;
  }
  const col = c.meta[bounds[0].field], lo = bounds[0].lo, hi = bounds[0].hi;
  for (let i = 0; i < n; i++) {
    const x = col[i];
    if (x >= lo && x <= hi) rows[count++] = i;
  }
  let kept = 0;
  outer: for (let j = 0; j < count; j++) {
    const i = rows[j];
    if (kind[i] === 0 || space[i] !== sp) continue;
    for (let b = 1; b < bounds.length; b++) {
      const x = c.meta[bounds[b].field][i];
      if (!(x >= bounds[b].lo && x <= bounds[b].hi)) continue outer;
    }
    rows[kept++] = i;
  }
  return kept;
};
parentPort.on('message', (m) => {
  for (const d of m.add) chunks[d.ci] = d;
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
  qF32.set(m.q);
  try {
    const first = m.from + ((m.lane - (m.from % m.lanes) + m.lanes) % m.lanes);
    for (let ci = first; ci < m.to && ci * ${CHUNK_SLOTS} < m.slotLimit; ci += m.lanes) {
      const c = chunks[ci];
      const base = ci * ${CHUNK_SLOTS};
      const n = Math.min(${CHUNK_SLOTS}, m.slotLimit - base);
      const norm = c.norm;
      const count = select(c, n, m.space, m.bounds);
      if (count === 0) continue;
      // A run of rows read in one pread: a broad scan bridges any gap within a block.
      const gap = count * 4 >= n ? BLOCK : GAP;
      let j = 0;
      while (j < count) {
        const start = rows[j];
        let e = j + 1;
        while (e < count && rows[e] - start < BLOCK && rows[e] - rows[e - 1] <= gap) e++;
        const len = rows[e - 1] - start + 1;
        read(base + start, len);
        dots(len);
        for (let x = j; x < e; x++) {
          const i = rows[x];
          const nv = norm[i];
          let s = nv > 0 ? outF32[i - start] / (nv * m.qn) : 0;
          s = s > 1 ? 1 : s < -1 ? -1 : s;
          if (s < m.minScore) continue;
          push(s, base + i);
        }
        j = e;
      }
    }
    parentPort.postMessage({ id: m.id, scores: heapS.subarray(0, size), slots: heapI.subarray(0, size) });
  } catch (err) {
    parentPort.postMessage({ id: m.id, error: String(err && err.message || err) });
  }
});
`;

/** Keeps the `k` best hits of `hits` (by score), in place, unsorted beyond that. */
function keepBest(hits: ScanHit[], k: number): void {
  if (hits.length <= k) return;
  hits.sort((a, b) => b.score - a.score);
  hits.length = k;
}

interface Pending {
  resolve: (hits: ScanHit[]) => void;
  reject: (err: unknown) => void;
}

const METADATA = ['confidence', 'activation', 'decayRate', 'createdAt', 'lastAccess', 'accessCount'] as const;

/**
 * Exact scans off the event loop: a few worker threads, each scanning every other chunk of the
 * record table (its metadata where it lies, in shared memory; its embeddings read from
 * vectors.dat), returning its best k. A slot rewritten while a worker reads it can give a torn
 * score; the caller rescores every candidate, so that only ever costs a near-tie its place, never
 * a wrong score.
 */
export class ScanPool {
  readonly #workers: Worker[] = [];
  readonly #pending = new Map<number, Pending>();
  readonly #fd: number;
  /** By lane, the chunk objects its worker holds, by chunk index. */
  readonly #sent: Chunk[][] = [];
  #next = 0;
  #failed: unknown;

  private constructor(table: RecordTable) {
    const kernel = scanKernelBytes();
    const path = table.vectors.path;
    // One read-only descriptor the workers share (descriptors belong to the process); closed once
    // they are gone.
    this.#fd = openSync(path, 'r');
    for (let lane = 0; lane < SCAN_LANES; lane++) {
      const w = new Worker(WORKER_SOURCE, {
        eval: true,
        workerData: { kernel, dim: table.dim, fd: this.#fd, dataStart: RECORDS_DATA_START },
      });
      w.unref();
      w.on('message', (m: { id: number; scores: Float64Array; slots: Float64Array; error?: string }) => {
        const p = this.#pending.get(m.id);
        this.#pending.delete(m.id);
        if (m.error !== undefined) {
          p?.reject(ioError('read', path, new Error(m.error)));
          return;
        }
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
      this.#sent.push([]);
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
   * `slotLimit` slots, by the scan's cosine, unsorted. With a `gate`, a background scan: in
   * slices, each awaiting the gate first.
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
    gate?: () => Promise<void>,
  ): Promise<ScanHit[]> {
    const limit = Math.min(slotLimit, table.capacity);
    const chunks = Math.ceil(limit / CHUNK_SLOTS);
    const ask = { q, qn, k, minScore, space, bounds: filter?.bounds ?? [], slotLimit: limit };
    if (!gate) return this.#scan(table, ask, 0, chunks);
    // A background scan: a few chunks a lane at a time, each slice waiting for the gate (no
    // foreground work in flight), so it never holds both cores while a caller waits.
    const hits: ScanHit[] = [];
    const step = BACKGROUND_CHUNKS * this.#workers.length;
    for (let from = 0; from < chunks; from += step) {
      await gate();
      hits.push(...(await this.#scan(table, ask, from, Math.min(chunks, from + step))));
      if (hits.length > 4 * k) keepBest(hits, k);
    }
    keepBest(hits, k);
    return hits;
  }

  /** Chunks `from` .. `to` (exclusive) of the scan `ask`, each lane scanning its own. */
  async #scan(table: RecordTable, ask: object, from: number, to: number): Promise<ScanHit[]> {
    if (this.#failed !== undefined) throw this.#failed;
    const lanes = this.#workers.length;
    const slotLimit = Math.min(to * CHUNK_SLOTS, table.capacity);
    const results = await Promise.all(
      this.#workers.map(
        (w, lane) =>
          new Promise<ScanHit[]>((resolve, reject) => {
            const id = this.#next++;
            this.#pending.set(id, { resolve, reject });
            const add = this.#unsent(table, slotLimit, lane, lanes);
            w.postMessage({ ...ask, id, from, to, lane, lanes, add });
          }),
      ),
    );
    return results.flat();
  }

  /**
   * The chunks of `lane` below `slotLimit` its worker has not been sent yet (their arrays are
   * shared, so each is sent once; a chunk object replaced at an index is sent again).
   */
  #unsent(table: RecordTable, slotLimit: number, lane: number, lanes: number): object[] {
    const sent = this.#sent[lane]!;
    const add: object[] = [];
    for (let ci = lane; ci * CHUNK_SLOTS < slotLimit; ci += lanes) {
      const c = table.chunks[ci]!;
      if (sent[ci] === c) continue;
      sent[ci] = c;
      const meta: Record<string, Float64Array> = {};
      for (const f of METADATA) meta[f] = c[f];
      add.push({ ci, kind: c.kind, space: c.space, norm: c.norm, meta });
    }
    return add;
  }

  async close(): Promise<void> {
    // A scan still waiting (a background one between slices) fails instead of hanging.
    const closed = new Error('scan pool closed');
    this.#failed ??= closed;
    for (const p of this.#pending.values()) p.reject(closed);
    this.#pending.clear();
    for (const w of this.#workers) {
      w.removeAllListeners('exit');
      await w.terminate();
    }
    closeSync(this.#fd);
  }
}
