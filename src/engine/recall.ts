import { CHUNK_SLOTS, type RecordTable } from '../records/table.js';
import type { ScanPool } from '../scan/pool.js';
import type { CompiledFilter } from './filter.js';
import { ContentKind } from '../wal/entries.js';

export interface Hit {
  slot: number;
  id: string;
  score: number;
}

/**
 * Exact cosine top-k over the memories of one space (and, given a filter, only those whose
 * metadata match it) in the dense chunks. Ties are broken by id so results are deterministic
 * whatever the slot layout. Yields to the event loop after each chunk (8192 records) so a recall
 * over a large store never stalls other requests for long.
 */
export async function exactTopK(
  table: RecordTable,
  slotLimit: number,
  query: Float32Array,
  k: number,
  minScore: number,
  space: number,
  filter: CompiledFilter | undefined,
  yieldNow: () => Promise<void>,
  pool?: ScanPool,
  gate?: () => Promise<void>,
): Promise<Hit[]> {
  const dim = table.dim;
  let qn = 0;
  for (let d = 0; d < dim; d++) qn += query[d]! * query[d]!;
  qn = Math.sqrt(qn);
  // A store of more than one chunk is scanned off the event loop, by the workers.
  if (pool && slotLimit > CHUNK_SLOTS) {
    // A few more than k: rescoring below may reorder near-ties at the boundary.
    const candidates = await pool.topK(table, slotLimit, query, qn, k + 8, minScore, space, filter, gate);
    const hits: Hit[] = [];
    for (const c of candidates) {
      const id = table.id(c.slot);
      if (id === undefined) continue;
      const score = cosineOf(table, c.slot, query, qn);
      if (score >= minScore) hits.push({ slot: c.slot, id, score });
    }
    hits.sort((a, b) => (better(a, b) ? -1 : better(b, a) ? 1 : 0));
    return hits.slice(0, k);
  }
  const hits: Hit[] = [];
  let worst = -Infinity;
  // vectors.dat read a block of rows at a time (sequential preads from the page cache).
  const block = Buffer.allocUnsafe(INLINE_BLOCK * dim * 4);
  const emb = new Float32Array(block.buffer, block.byteOffset, INLINE_BLOCK * dim);
  for (let ci = 0; ci < table.chunks.length; ci++) {
    const c = table.chunks[ci]!;
    const base = ci * CHUNK_SLOTS;
    const n = Math.min(CHUNK_SLOTS, slotLimit - base);
    if (n <= 0) break;
    const kind = c.kind;
    const spaces = c.space;
    for (let b0 = 0; b0 < n; b0 += INLINE_BLOCK) {
      const bn = Math.min(INLINE_BLOCK, n - b0);
      let any = false;
      for (let i = b0; i < b0 + bn && !any; i++) any = kind[i] !== ContentKind.Free && spaces[i] === space;
      if (!any) continue;
      table.vectors.readVectorsSync(base + b0, bn, block);
      for (let i = b0; i < b0 + bn; i++) {
        if (kind[i] === ContentKind.Free || spaces[i] !== space) continue;
        if (filter && !filter.matches(c, i)) continue;
        const score = cosineAt(emb, (i - b0) * dim, dim, c.norm[i]!, query, qn);
        if (score < minScore) continue;
        if (hits.length >= k && score < worst) continue;
        const id = c.ids[i]!;
        insert(hits, { slot: base + i, id, score }, k);
        if (hits.length >= k) worst = hits[hits.length - 1]!.score;
      }
    }
    if (ci + 1 < table.chunks.length) await yieldNow();
  }
  return hits;
}

/** Rows the inline scan reads from vectors.dat at a time. */
const INLINE_BLOCK = 128;

/**
 * The exact cosine of one slot, as the inline scan computes it (its embedding read from
 * vectors.dat, unchecked: a memory returned is read again, checked, if its embedding is asked for).
 */
export function cosineOf(table: RecordTable, slot: number, query: Float32Array, qn: number): number {
  const c = table.chunk(slot);
  const nv = c.norm[slot & (CHUNK_SLOTS - 1)]!;
  if (!(nv > 0)) return 0;
  return cosineAt(table.embeddingView(slot), 0, table.dim, nv, query, qn);
}

function cosineAt(
  emb: Float32Array,
  o: number,
  dim: number,
  nv: number,
  query: Float32Array,
  qn: number,
): number {
  if (!(nv > 0)) return 0;
  let s0 = 0;
  let s1 = 0;
  let s2 = 0;
  let s3 = 0;
  let d = 0;
  for (; d + 3 < dim; d += 4, o += 4) {
    s0 += emb[o]! * query[d]!;
    s1 += emb[o + 1]! * query[d + 1]!;
    s2 += emb[o + 2]! * query[d + 2]!;
    s3 += emb[o + 3]! * query[d + 3]!;
  }
  for (; d < dim; d++, o++) s0 += emb[o]! * query[d]!;
  return Math.min(1, Math.max(-1, (s0 + s1 + s2 + s3) / (nv * qn)));
}

function better(a: Hit, b: Hit): boolean {
  return a.score > b.score || (a.score === b.score && a.id < b.id);
}

function insert(hits: Hit[], h: Hit, k: number): void {
  let i = hits.length;
  while (i > 0 && better(h, hits[i - 1]!)) i--;
  if (i >= k) return;
  hits.splice(i, 0, h);
  if (hits.length > k) hits.pop();
}
