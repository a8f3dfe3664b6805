import { setImmediate as yieldImmediate } from 'node:timers/promises';
import type { AnnIndex } from '../ann/ann-index.js';
import { planRecall } from '../ann/planner.js';
import { countMatches, rescoreTopK } from '../ann/rescore.js';
import type { Keyspace } from '../records/keyspace.js';
import { CHUNK_SLOTS } from '../records/table.js';
import { ScanPool } from '../scan/pool.js';
import type { WarmStoreLogger } from '../types.js';
import type { CompiledFilter } from './filter.js';
import { exactTopK, type Hit } from './recall.js';

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

  constructor(annMinMemories: number, logger: WarmStoreLogger | undefined) {
    this.#annMinMemories = annMinMemories;
    this.#logger = logger;
  }

  async topK(ks: Keyspace, ann: AnnIndex | undefined, r: RecallQuery): Promise<Hit[]> {
    const viaIndex = r.exact ? undefined : await this.#indexTopK(ks, ann, r);
    if (viaIndex) return viaIndex;
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
    );
  }

  async close(): Promise<void> {
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
    const plan = planRecall({
      k: r.k,
      exact: false,
      ready: true,
      total: ks.size,
      spaceSize,
      matches,
      tail: ann.tailSize,
      minMemories,
    });
    if (plan.path === 'exact') return undefined;
    let slots: Float64Array;
    try {
      slots = await ann.search(r.q, plan.candidates);
    } catch (err) {
      this.#logger?.warn({ err }, 'recall index search failed: scanning exactly');
      return undefined;
    }
    // The tail as of now: every write after the search was posted is still unacknowledged.
    const hits = rescoreTopK(ks, [...slots, ...ann.tailSlots()], r.q, r.k, r.minScore, r.space, r.filter);
    if (hits.length < r.k && hits.length < matches) return undefined;
    return hits;
  }
}
