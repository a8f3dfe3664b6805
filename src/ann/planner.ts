/** What a recall knows when it picks between the index and an exact scan. */
export interface PlanInput {
  k: number;
  /** The caller asked for an exact scan. */
  exact: boolean;
  /** The index is loaded or built and tracks every write. */
  ready: boolean;
  /** Memories in the whole store (the index holds all spaces). */
  total: number;
  /** Memories in the recalled space. */
  spaceSize: number;
  /** Memories of the space that match the filter (the space size without one). */
  matches: number;
  /** Written slots the index has not acknowledged yet (scanned exactly on every recall). */
  tail: number;
  /** Spaces and match sets at or below this size are scanned exactly. */
  minMemories: number;
  /** Sampled recall of the index says its answers are too poor to use (see quality.ts). */
  lowQuality?: boolean;
}

export type Plan =
  | {
      path: 'exact';
      reason: 'requested' | 'not-ready' | 'small' | 'selective' | 'tail' | 'wide' | 'quality';
    }
  | { path: 'index'; candidates: number };

/** Candidates asked of the index for k results before selectivity: the int8 index ranks coarsely. */
export function baseCandidates(k: number): number {
  return Math.max(30, 3 * k);
}

/**
 * Index or exact scan. The index post-filters, so it is asked for more candidates the fewer
 * memories match (k' = max(30, 3k) x total / matches). It is not worth it, and the exact scan is
 * chosen, when the space or the match set is small (an exact scan of a few memories is cheap), when
 * the matches are under 5% of the store (the candidates would mostly be filtered out), when the
 * unacknowledged tail is over 10% of the store (its exact scan costs as much), when k' reaches
 * half the store, or when sampled recall says the index answers too poorly (data without
 * low-dimensional structure).
 */
export function planRecall(i: PlanInput): Plan {
  if (i.exact) return { path: 'exact', reason: 'requested' };
  if (!i.ready) return { path: 'exact', reason: 'not-ready' };
  if (i.lowQuality === true) return { path: 'exact', reason: 'quality' };
  if (i.spaceSize <= i.minMemories || i.matches <= i.minMemories) return { path: 'exact', reason: 'small' };
  if (i.matches < 0.05 * i.total) return { path: 'exact', reason: 'selective' };
  if (i.tail > 0.1 * i.total) return { path: 'exact', reason: 'tail' };
  const candidates = Math.ceil((baseCandidates(i.k) * i.total) / i.matches);
  if (candidates * 2 > i.total) return { path: 'exact', reason: 'wide' };
  return { path: 'index', candidates };
}
