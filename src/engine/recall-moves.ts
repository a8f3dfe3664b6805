import type { Keyspace } from '../records/keyspace.js';
import { CHUNK_MASK } from '../records/table.js';
import type { CompiledFilter } from './filter.js';
import { cosineOf, type Hit } from './recall.js';

/**
 * A recall's hits corrected for slot moves that happened while it ran (a scan yields, and
 * compaction's relocation, or an update written to a free slot, may meanwhile carry a memory from
 * a slot the scan had not reached to one it had passed). Each hit is re-pointed to its memory's
 * current slot (and scored again there), the memories moved since `since` are scored exactly and
 * merged in, and the top k are kept (one per id). Returns
 * undefined when more moves happened than the keyspace remembers: the caller runs the recall
 * again.
 */
export function withMovedMemories(
  ks: Keyspace,
  since: number,
  hits: Hit[],
  q: { q: Float32Array; k: number; minScore: number; space: number; filter: CompiledFilter | undefined },
): Hit[] | undefined {
  if (ks.moveCount === since) return hits;
  const moved = ks.movedSince(since);
  if (!moved) return undefined;
  const table = ks.table;
  let qn = 0;
  for (let d = 0; d < q.q.length; d++) qn += q.q[d]! * q.q[d]!;
  qn = Math.sqrt(qn);
  const byId = new Map<string, Hit>();
  for (const h of hits) {
    if (ks.holds(q.space, h.id, h.slot)) {
      byId.set(h.id, h);
      continue;
    }
    // Moved by relocation (same embedding) or by an update (maybe not): scored again, and
    // filtered again, as it is now.
    const slot = ks.indexed(q.space, h.id);
    if (slot === undefined) continue;
    if (q.filter && !q.filter.matches(table.chunk(slot), slot & CHUNK_MASK)) continue;
    const score = cosineOf(table, slot, q.q, qn);
    if (score >= q.minScore) byId.set(h.id, { slot, id: h.id, score });
  }
  for (const slot of moved) {
    const id = table.id(slot);
    if (id === undefined || byId.has(id) || !ks.holds(q.space, id, slot)) continue;
    if (q.filter && !q.filter.matches(table.chunk(slot), slot & CHUNK_MASK)) continue;
    const score = cosineOf(table, slot, q.q, qn);
    if (score >= q.minScore) byId.set(id, { slot, id, score });
  }
  const out = [...byId.values()].sort(
    (a, b) => b.score - a.score || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0),
  );
  if (out.length > q.k) out.length = q.k;
  return out;
}
