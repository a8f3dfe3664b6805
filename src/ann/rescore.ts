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

/** Rows an estimate of matches looks at, at most: a sample this size finds a 1% filter about 300 times. */
const SAMPLE_ROWS = 32_768;

/**
 * Memories of `space` whose metadata match `filter`: counted over every row of a small store,
 * estimated from an even sample of rows in a large one (a full pass over a million rows would cost
 * more than the 1%-selective recall it helps to plan). The planner only needs the order of
 * magnitude: the index path checks its own results and falls back to the exact scan when it finds
 * fewer than k of what the estimate promised.
 */
export function countMatches(ks: Keyspace, space: number, filter: CompiledFilter): number {
  const table = ks.table;
  const limit = ks.slotLimit;
  const stride = Math.max(1, Math.floor(limit / SAMPLE_ROWS));
  let n = 0;
  for (let slot = 0; slot < limit; slot += stride) {
    const c = table.chunks[slot >>> CHUNK_SHIFT]!;
    const i = slot & CHUNK_MASK;
    if (c.space[i] === space && c.ids[i] !== undefined && filter.matches(c, i)) n++;
  }
  return n * stride;
}
