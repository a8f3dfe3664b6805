import { invalid } from '../errors.js';
import type { Chunk } from '../records/table.js';
import { METADATA_FIELDS, type MemoryMetadata } from '../types.js';

type Field = keyof MemoryMetadata;
const RANGE_KEYS = ['gt', 'gte', 'lt', 'lte'] as const;

/**
 * One field's bounds, both inclusive and always present (open ends are infinities; `gt v` is kept
 * as `gte` the next double above v, `lt v` as `lte` the one below), so that a check is two
 * comparisons wherever it runs: here, in the scan workers, in models.
 */
interface Bounds {
  field: Field;
  lo: number;
  hi: number;
}

/** A compiled filter: a predicate over one slot of a table chunk, and its parts for estimates. */
export interface CompiledFilter {
  readonly bounds: readonly Bounds[];
  matches(c: Chunk, i: number): boolean;
}

const bits = new Float64Array(1);
const word = new BigInt64Array(bits.buffer);

/** The next double after finite `v` towards +Infinity (`up`) or -Infinity. */
export function nextDouble(v: number, up: boolean): number {
  if (v === 0) return up ? Number.MIN_VALUE : -Number.MIN_VALUE;
  bits[0] = v;
  // Away from zero the magnitude grows by one unit in the last place, towards zero it shrinks.
  word[0]! += v > 0 === up ? 1n : -1n;
  return bits[0]!;
}

/**
 * Checks a recall filter (ranges over the metadata numbers) and compiles it. Throws INVALID_INPUT
 * naming the field for an unknown key, a non-finite bound or an empty object. Undefined means no
 * filter.
 */
export function compileFilter(filter: unknown): CompiledFilter | undefined {
  if (filter === undefined) return undefined;
  if (typeof filter !== 'object' || filter === null || Array.isArray(filter)) {
    throw invalid('filter', 'must be an object of ranges, e.g. { confidence: { gte: 0.5 } }');
  }
  const bounds: Bounds[] = [];
  for (const [key, range] of Object.entries(filter as Record<string, unknown>)) {
    if (!(METADATA_FIELDS as readonly string[]).includes(key)) {
      throw invalid(`filter.${key}`, `is not a metadata field (${METADATA_FIELDS.join(', ')})`);
    }
    if (range === undefined) continue;
    if (typeof range !== 'object' || range === null || Array.isArray(range)) {
      throw invalid(`filter.${key}`, 'must be an object with gt, gte, lt or lte');
    }
    const b: Bounds = { field: key as Field, lo: -Infinity, hi: Infinity };
    let any = false;
    for (const [rk, v] of Object.entries(range as Record<string, unknown>)) {
      if (!(RANGE_KEYS as readonly string[]).includes(rk)) {
        throw invalid(`filter.${key}.${rk}`, `is not a range key (${RANGE_KEYS.join(', ')})`);
      }
      if (v === undefined) continue;
      if (typeof v !== 'number' || !Number.isFinite(v))
        throw invalid(`filter.${key}.${rk}`, 'must be a finite number');
      any = true;
      // Two lower (or upper) bounds keep the tighter one.
      if (rk === 'gt' || rk === 'gte') b.lo = Math.max(b.lo, rk === 'gt' ? nextDouble(v, true) : v);
      else b.hi = Math.min(b.hi, rk === 'lt' ? nextDouble(v, false) : v);
    }
    if (any) bounds.push(b);
  }
  if (bounds.length === 0) return undefined;
  return {
    bounds,
    matches(c: Chunk, i: number): boolean {
      for (const b of bounds) {
        const x = c[b.field][i]!;
        if (!(x >= b.lo && x <= b.hi)) return false;
      }
      return true;
    },
  };
}

/** Whether a plain value passes the filter (for models and checks outside the table). */
export function matchesMetadata(f: CompiledFilter | undefined, m: MemoryMetadata): boolean {
  if (!f) return true;
  for (const b of f.bounds) {
    const x = m[b.field];
    if (!(x >= b.lo && x <= b.hi)) return false;
  }
  return true;
}
