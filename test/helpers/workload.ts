import type { MemoryRecord, StoredMemory } from '../../src/types.js';
import { expectSameRecord } from './assert.js';
import { Rng, recordFor } from './random.js';

/** The part of WarmStore a workload drives. */
export interface WorkloadStore {
  put(record: MemoryRecord): Promise<void>;
  putMany(records: MemoryRecord[]): Promise<void>;
  delete(id: string): Promise<boolean>;
  get(id: string): Promise<StoredMemory | undefined>;
}

export interface WorkloadOptions {
  /** Drives the choice of ops and ids. */
  seed: number;
  /**
   * Put seeds are `seedBase + n`: give each round its own base so values of different rounds
   * never collide and the oracle can tell which op wrote what.
   */
  seedBase: number;
  dimension: number;
  /** Ids are `${idPrefix}${0..idSpace-1}`. */
  idSpace: number;
  idPrefix?: string;
  /** Ops in flight at once (each on a different id). */
  concurrency: number;
  /** Stop after this many ops have been started. @default Infinity */
  maxOps?: number;
  /** Checked before each op; a true answer stops the workers. */
  shouldStop?: () => boolean;
  /** Receives protocol lines (`begin put <id> <seed>`, `ack del <id> <existed>`...) as they happen. */
  emit: (line: string) => void;
  /** Fractions of put / putMany / delete; the rest are read-your-writes checks. */
  mix?: { put: number; putMany: number; del: number };
}

export interface WorkloadResult {
  started: number;
  acked: number;
  /** First error that stopped a worker, if any (the others stop at their next op). */
  error: unknown;
}

/**
 * Random puts, updates, batch puts and deletes with several ops in flight, never two on the same
 * id, announcing each op before it starts and after it resolves. Reads check that this session's
 * acknowledged writes are visible (read-your-writes) and throw on a mismatch.
 */
export async function runWorkload(store: WorkloadStore, o: WorkloadOptions): Promise<WorkloadResult> {
  const r = new Rng(o.seed);
  const prefix = o.idPrefix ?? 'm';
  const mix = o.mix ?? { put: 0.55, putMany: 0.12, del: 0.18 };
  const busy = new Set<string>();
  // Values this session acknowledged: what a read must return (null = deleted).
  const mine = new Map<string, number | null>();
  const result: WorkloadResult = { started: 0, acked: 0, error: undefined };
  let nextSeed = 0;
  const maxOps = o.maxOps ?? Infinity;
  const stop = (): boolean =>
    result.error !== undefined || result.started >= maxOps || (o.shouldStop?.() ?? false);

  const freeId = (): string | undefined => {
    if (busy.size >= o.idSpace) return undefined;
    for (;;) {
      const id = `${prefix}${r.int(o.idSpace)}`;
      if (!busy.has(id)) return id;
    }
  };

  const worker = async (): Promise<void> => {
    while (!stop()) {
      const roll = r.next();
      result.started++;
      if (roll < mix.put + mix.putMany) {
        const n = roll < mix.put ? 1 : r.range(2, 4);
        const batch: Array<{ id: string; seed: number }> = [];
        for (let i = 0; i < n; i++) {
          const id = freeId();
          if (id === undefined) break;
          busy.add(id);
          batch.push({ id, seed: o.seedBase + nextSeed++ });
        }
        if (batch.length === 0) continue;
        for (const b of batch) o.emit(`begin put ${b.id} ${b.seed}`);
        const records = batch.map((b) => recordFor(b.id, b.seed, o.dimension));
        if (n === 1 && records[0] !== undefined) await store.put(records[0]);
        else await store.putMany(records);
        for (const b of batch) {
          o.emit(`ack put ${b.id} ${b.seed}`);
          mine.set(b.id, b.seed);
          busy.delete(b.id);
        }
        result.acked += batch.length;
      } else if (roll < mix.put + mix.putMany + mix.del) {
        const id = freeId();
        if (id === undefined) continue;
        busy.add(id);
        o.emit(`begin del ${id}`);
        const existed = await store.delete(id);
        o.emit(`ack del ${id} ${existed}`);
        mine.set(id, null);
        busy.delete(id);
        result.acked++;
      } else {
        const candidates = [...mine.keys()].filter((id) => !busy.has(id));
        if (candidates.length === 0) continue;
        const id = r.pick(candidates);
        busy.add(id);
        const got = await store.get(id);
        busy.delete(id);
        const want = mine.get(id) ?? null;
        if (want === null) {
          if (got !== undefined) throw new Error(`read-your-writes: ${id} was deleted but reads back`);
        } else {
          expectSameRecord(got, recordFor(id, want, o.dimension), { context: 'read-your-writes' });
        }
      }
    }
  };

  await Promise.all(
    Array.from({ length: o.concurrency }, () =>
      worker().catch((err: unknown) => {
        result.error ??= err;
      }),
    ),
  );
  return result;
}
