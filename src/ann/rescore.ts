import { cosineOf } from '../engine/recall.js';
import type { CompiledFilter } from '../engine/filter.js';
import type { Hit } from '../engine/recall.js';
import type { Keyspace } from '../records/keyspace.js';
import { CHUNK_MASK, CHUNK_SHIFT } from '../records/table.js';

/**
 * Top k of candidate slots by exact f32 cosine from the table, keeping only slots that still hold
 * a live memory of `space` (through the id index, so a deleted, replaced or dropped memory never
 * passes) whose metadata match the filter. Candidates may repeat. Same scores and tie-break (by id)
 * as the exact scan, so either path ranks a memory the same.
 */
export function rescoreTopK(
  ks: Keyspace,
  candidates: Iterable<number>,
  query: Float32Array,
  k: number,
  minScore: number,
  space: number,
  filter: CompiledFilter | undefined,
): Hit[] {
  const table = ks.table;
  const dim = table.dim;
  let qn = 0;
  for (let d = 0; d < dim; d++) qn += query[d]! * query[d]!;
  qn = Math.sqrt(qn);
  const seen = new Set<number>();
  const hits: Hit[] = [];
  const limit = ks.slotLimit;
  for (const slot of candidates) {
    if (slot >= limit || seen.has(slot)) continue;
    seen.add(slot);
    const c = table.chunks[slot >>> CHUNK_SHIFT];
    if (!c) continue;
    const i = slot & CHUNK_MASK;
    const id = c.ids[i];
    if (id === undefined || c.space[i] !== space || !ks.holds(space, id, slot)) continue;
    if (filter && !filter.matches(c, i)) continue;
    // The exact scan's own cosine, so both paths give a memory bit-identical scores.
    const score = cosineOf(ks.table, slot, query, qn);
    if (score >= minScore) hits.push({ slot, id, score });
  }
  hits.sort((a, b) => b.score - a.score || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  if (hits.length > k) hits.length = k;
  return hits;
}

/** Memories of `space` whose metadata match `filter`: one pass over the in-memory columns. */
export function countMatches(ks: Keyspace, space: number, filter: CompiledFilter): number {
  const table = ks.table;
  const limit = ks.slotLimit;
  let n = 0;
  for (let ci = 0; ci < table.chunks.length; ci++) {
    const c = table.chunks[ci]!;
    const end = Math.min(CHUNK_MASK + 1, limit - (ci << CHUNK_SHIFT));
    for (let i = 0; i < end; i++) {
      if (c.space[i] === space && c.ids[i] !== undefined && filter.matches(c, i)) n++;
    }
  }
  return n;
}
