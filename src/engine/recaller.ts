import { setImmediate as yieldImmediate, setTimeout as sleep } from 'node:timers/promises';
import type { AnnIndex } from '../ann/ann-index.js';
import { baseCandidates, planRecall } from '../ann/planner.js';
import { overlap } from '../ann/quality.js';
import { countMatches, rescoreTopK } from '../ann/rescore.js';
import type { Keyspace } from '../records/keyspace.js';
import { CHUNK_SLOTS } from '../records/table.js';
import { ScanPool } from '../scan/pool.js';
import type { WarmStoreLogger } from '../types.js';
import type { CompiledFilter } from './filter.js';
import { exactTopK, type Hit } from './recall.js';

/** Longest a background scan's slice waits for a pause in recalls. */
const GATE_MAX_WAIT_MS = 50;
/** A pause in recalls this long lets a background scan's slice run. */
const QUIET_MS = 2;

/** One recall's question, checked by the facade. */
export interface RecallQuery {
  q: Float32Array;
  k: number;
  minScore: number;
  /** The space's number. */
  space: number;
  filter: CompiledFilter | undefined;
  exact: boolean;
}

/**
 * Chooses how a recall is answered and answers it: through the recall index when the planner
 * says it pays (candidates and the unacknowledged tail rescored exactly), else by an exact scan
 * (on the scan workers once the table has more than one chunk). Either way the hits carry exact
 * scores; the facade checks them against the keyspace and reads the memories.
 */
export class Recaller {
  readonly #annMinMemories: number;
  readonly #logger: WarmStoreLogger | undefined;
  /** null: not started yet; undefined: could not start (recall scans inline). */
  #pool: ScanPool | undefined | null = null;
  /** Recalls in flight (a background scan waits for none). */
  #active = 0;
  #lastEnd = -Infinity;
  #closed = false;

  constructor(annMinMemories: number, logger: WarmStoreLogger | undefined) {
    this.#annMinMemories = annMinMemories;
    this.#logger = logger;
  }

  async topK(ks: Keyspace, ann: AnnIndex | undefined, r: RecallQuery): Promise<Hit[]> {
    this.#active++;
    try {
      const viaIndex = r.exact ? undefined : await this.#indexTopK(ks, ann, r);
      return viaIndex ?? (await this.#exactTopK(ks, r));
    } finally {
      this.#active--;
      this.#lastEnd = performance.now();
    }
  }

  /**
   * Resolves once no recall has been in flight for QUIET_MS, or after GATE_MAX_WAIT_MS so that a
   * steady stream of recalls cannot starve it. A quality sample's exact scan waits here before
   * each slice: at a million memories it costs ~200 ms of both cores, which run all at once would
   * slow a hundred callers' recalls; in slices behind this gate it delays at most one recall
   * by a slice (a chunk a lane, ~3-5 ms) per GATE_MAX_WAIT_MS, and none where recalls leave gaps.
   */
  #gate = async (): Promise<void> => {
    const deadline = performance.now() + GATE_MAX_WAIT_MS;
    while (!this.#closed && performance.now() < deadline) {
      if (this.#active === 0 && performance.now() - this.#lastEnd >= QUIET_MS) return;
      await sleep(QUIET_MS, undefined, { ref: false });
    }
  };

  #exactTopK(ks: Keyspace, r: RecallQuery, background = false): Promise<Hit[]> {
    const pool = ks.slotLimit > CHUNK_SLOTS ? this.#scanPool(ks) : undefined;
    return exactTopK(
      ks.table,
      ks.slotLimit,
      r.q,
      r.k,
      r.minScore,
      r.space,
      r.filter,
      () => yieldImmediate(),
      pool,
      background ? this.#gate : undefined,
    );
  }

  async close(): Promise<void> {
    this.#closed = true;
    await this.#pool?.close().catch(() => undefined);
  }

  /** The scan workers, started by the first recall over more than one table chunk. */
  #scanPool(ks: Keyspace): ScanPool | undefined {
    if (this.#pool === null) this.#pool = ScanPool.create(ks.table);
    return this.#pool;
  }

  /**
   * Top k through the recall index, or undefined when the planner prefers an exact scan or the
   * index left fewer than k of at least k matching memories. Candidates and the unacknowledged tail
   * are rescored exactly and checked against the id index, so scores are exact and nothing deleted
   * or replaced is returned.
   */
  async #indexTopK(ks: Keyspace, ann: AnnIndex | undefined, r: RecallQuery): Promise<Hit[] | undefined> {
    if (!ann?.ready) return undefined;
    const spaceSize = ks.sizeOf(r.space);
    const minMemories = this.#annMinMemories;
    // Counting matches costs a pass over the metadata columns: skip it when the space is too small.
    const matches = r.filter && spaceSize > minMemories ? countMatches(ks, r.space, r.filter) : spaceSize;
    const quality = ann.quality;
    const plan = planRecall({
      k: r.k,
      exact: false,
      ready: true,
      total: ks.size,
      spaceSize,
      matches,
      tail: ann.tailSize,
      minMemories,
      lowQuality: quality.low,
    });
    if (plan.path === 'exact') {
      if (plan.reason !== 'quality') return undefined;
      // Scanning exactly because the index answered poorly: now and then ask it again, so that an
      // index whose data changed can be used again.
      const exact = await this.#exactTopK(ks, r);
      if (quality.wantSample()) {
        const candidates = Math.ceil((baseCandidates(r.k) * ks.size) / Math.max(matches, 1));
        const approx = await this.#search(ks, ann, r, candidates);
        quality.done(approx ? overlap(approx, exact) : 0, approx ? exact.length : 0);
      }
      return exact;
    }
    const hits = await this.#search(ks, ann, r, plan.candidates);
    if (!hits || (hits.length < r.k && hits.length < matches)) return undefined;
    if (hits.length > 0 && quality.wantSample()) {
      // The exact answer beside the index's, off the caller's path (one at a time).
      this.#exactTopK(ks, r, true).then(
        (exact) => quality.done(overlap(hits, exact), exact.length),
        () => quality.done(0, 0),
      );
    }
    return hits;
  }

  /** The index's candidates and the unacknowledged tail, rescored; undefined if the search failed. */
  async #search(ks: Keyspace, ann: AnnIndex, r: RecallQuery, candidates: number): Promise<Hit[] | undefined> {
    let slots: number[];
    try {
      slots = await ann.search(r.q, candidates);
    } catch (err) {
      this.#logger?.warn({ err }, 'recall index search failed: scanning exactly');
      return undefined;
    }
    // The tail as of now: every write after the search was posted is still unacknowledged.
    return rescoreTopK(ks, [...slots, ...ann.tailSlots()], r.q, r.k, r.minScore, r.space, r.filter);
  }
}
