import { invalid } from '../errors.js';
import type { Chunk } from '../records/table.js';
import { METADATA_FIELDS, type MemoryMetadata } from '../types.js';

type Field = keyof MemoryMetadata;
const RANGE_KEYS = ['gt', 'gte', 'lt', 'lte'] as const;

/** One field's bounds, every one present (open ends are infinities). */
interface Bounds {
  field: Field;
  lo: number;
  loInclusive: boolean;
  hi: number;
  hiInclusive: boolean;
}

/** A compiled filter: a predicate over one slot of a table chunk, and its parts for estimates. */
export interface CompiledFilter {
  readonly bounds: readonly Bounds[];
  matches(c: Chunk, i: number): boolean;
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
    const b: Bounds = {
      field: key as Field,
      lo: -Infinity,
      loInclusive: true,
      hi: Infinity,
      hiInclusive: true,
    };
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
      if (rk === 'gt' || rk === 'gte') {
        const inclusive = rk === 'gte';
        if (v > b.lo || (v === b.lo && !inclusive)) {
          b.lo = v;
          b.loInclusive = inclusive;
        }
      } else {
        const inclusive = rk === 'lte';
        if (v < b.hi || (v === b.hi && !inclusive)) {
          b.hi = v;
          b.hiInclusive = inclusive;
        }
      }
    }
    if (any) bounds.push(b);
  }
  if (bounds.length === 0) return undefined;
  return {
    bounds,
    matches(c: Chunk, i: number): boolean {
      for (const b of bounds) {
        const x = c[b.field][i]!;
        if (x < b.lo || (x === b.lo && !b.loInclusive)) return false;
        if (x > b.hi || (x === b.hi && !b.hiInclusive)) return false;
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
    if (x < b.lo || (x === b.lo && !b.loInclusive)) return false;
    if (x > b.hi || (x === b.hi && !b.hiInclusive)) return false;
  }
  return true;
}
