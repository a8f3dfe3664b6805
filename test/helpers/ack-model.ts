import assert from 'node:assert/strict';
import type { StoredMemory } from '../../src/types.js';
import { expectSameRecord } from './assert.js';
import { recordFor } from './random.js';

/** A record's value: the seed of the put that wrote it, or null when deleted/absent. */
export type Value = number | null;

interface IdState {
  /** Value of the last acknowledged op (or what the previous verification observed). */
  acked: Value;
  /** An op begun and not acknowledged: it may or may not have been applied. */
  pending: { value: Value } | undefined;
}

export interface ReadableStore {
  get(id: string): Promise<StoredMemory | undefined>;
  ids(): IterableIterator<string>;
  readonly size: number;
}

export interface VerifyResult {
  /** Ids whose value was checked. */
  checked: number;
  /** Present records. */
  present: number;
  /** Ids where an un-acknowledged op turned out to be applied. */
  pendingApplied: number;
  /** Ids where an un-acknowledged op turned out not to be applied. */
  pendingDropped: number;
}

/**
 * The oracle of the crash tests. Writers announce each op with `begin ...` before starting it and
 * `ack ...` after its promise resolved; at most one op per id is in flight. After a crash, each
 * id must hold its last acknowledged value, or the value of the op begun after it (which may or
 * may not have been applied). Verification then adopts what it observed as the new baseline, so
 * one store can go through many crash rounds.
 *
 * Line protocol: `begin put <id> <seed>`, `ack put <id> <seed>`, `begin del <id>`,
 * `ack del <id> [existed]`. Other lines are ignored.
 */
export class AckModel {
  readonly dimension: number;
  readonly #ids = new Map<string, IdState>();
  acks = 0;
  begins = 0;

  constructor(dimension: number) {
    this.dimension = dimension;
  }

  /** An independent copy, to run several crash scenarios from one base store. */
  clone(): AckModel {
    const m = new AckModel(this.dimension);
    for (const [id, s] of this.#ids) {
      m.#ids.set(id, { acked: s.acked, pending: s.pending === undefined ? undefined : { ...s.pending } });
    }
    m.acks = this.acks;
    m.begins = this.begins;
    return m;
  }

  #state(id: string): IdState {
    let s = this.#ids.get(id);
    if (s === undefined) {
      s = { acked: null, pending: undefined };
      this.#ids.set(id, s);
    }
    return s;
  }

  begin(id: string, value: Value): void {
    const s = this.#state(id);
    assert.equal(s.pending, undefined, `protocol: two ops in flight on ${id}`);
    s.pending = { value };
    this.begins++;
  }

  ack(id: string, value: Value): void {
    const s = this.#state(id);
    assert.ok(s.pending !== undefined && s.pending.value === value, `protocol: ack without begin on ${id}`);
    s.acked = value;
    s.pending = undefined;
    this.acks++;
  }

  /** Feeds one protocol line; returns false for lines that are not part of the protocol. */
  feed(line: string): boolean {
    const parts = line.trim().split(' ');
    const [kind, op, id, arg] = parts;
    if ((kind !== 'begin' && kind !== 'ack') || id === undefined) return false;
    let value: Value;
    if (op === 'put') {
      value = Number(arg);
      assert.ok(Number.isSafeInteger(value), `protocol: bad seed in ${JSON.stringify(line)}`);
    } else if (op === 'del') {
      value = null;
    } else {
      return false;
    }
    if (kind === 'begin') this.begin(id, value);
    else this.ack(id, value);
    return true;
  }

  feedAll(lines: Iterable<string>): void {
    for (const l of lines) this.feed(l);
  }

  /** The values `id` may hold now. */
  allowed(id: string): Value[] {
    const s = this.#ids.get(id);
    if (s === undefined) return [null];
    return s.pending === undefined ? [s.acked] : [s.acked, s.pending.value];
  }

  /** Ids this model expects to be present for sure (no op in doubt). */
  expectedPresent(): string[] {
    return [...this.#ids].filter(([, s]) => s.pending === undefined && s.acked !== null).map(([id]) => id);
  }

  #matches(actual: StoredMemory | undefined, id: string, value: Value): boolean {
    if (value === null) return actual === undefined;
    if (actual === undefined) return false;
    try {
      expectSameRecord(actual, recordFor(id, value, this.dimension));
      return true;
    } catch {
      return false;
    }
  }

  /**
   * Checks every id against the store, then adopts the observed values as the baseline. `context`
   * goes into failure messages (round, seed, kill point) so a failure can be replayed.
   */
  async verify(store: ReadableStore, context: string): Promise<VerifyResult> {
    const result: VerifyResult = { checked: 0, present: 0, pendingApplied: 0, pendingDropped: 0 };
    const known = new Set(this.#ids.keys());
    for (const id of store.ids()) {
      assert.ok(
        known.has(id),
        `${context}: store holds ${JSON.stringify(id).slice(0, 80)}, which was never written`,
      );
    }
    for (const [id, s] of this.#ids) {
      let actual: StoredMemory | undefined;
      try {
        actual = await store.get(id);
      } catch (err) {
        const e = err as { code?: string; message?: string };
        const want = this.allowed(id)
          .map((v) => (v === null ? 'absent' : `seed ${v}`))
          .join(' or ');
        assert.fail(
          `${context}: get(${JSON.stringify(id)}) threw ${e.code ?? ''} ${e.message ?? String(err)}; want ${want}`,
        );
      }
      result.checked++;
      const candidates = this.allowed(id);
      const hit = candidates.find((v) => this.#matches(actual, id, v));
      if (hit === undefined) {
        // Re-run the strictest comparison for a precise message.
        const want = candidates.map((v) => (v === null ? 'absent' : `seed ${v}`)).join(' or ');
        const got =
          actual === undefined
            ? 'absent'
            : `content ${actual.content === null ? 'null' : `${actual.content.length} chars`}`;
        let detail = '';
        const last = s.acked;
        if (last !== null && actual !== undefined) {
          try {
            expectSameRecord(actual, recordFor(id, last, this.dimension));
          } catch (err) {
            detail = ` (vs last ack: ${(err as Error).message})`;
          }
        }
        assert.fail(`${context}: ${JSON.stringify(id)} should be ${want}, got ${got}${detail}`);
      }
      if (s.pending !== undefined) {
        if (hit === s.pending.value && hit !== s.acked) result.pendingApplied++;
        else result.pendingDropped++;
      }
      s.acked = hit;
      s.pending = undefined;
      if (hit !== null) result.present++;
    }
    assert.equal(
      store.size,
      result.present,
      `${context}: store.size ${store.size}, model says ${result.present}`,
    );
    return result;
  }
}
