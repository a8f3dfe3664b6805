import { invalid } from '../errors.js';
import { TEST_HOOKS, testHooksOf, type TestHooks } from '../engine/test-hooks.js';
import type { WarmStoreOptions } from '../types.js';

/**
 * Returns a copy of `options` that carries `hooks` (merged over any hooks `options` already
 * carries). The hooks live under a symbol, not a documented option, so they stay out of
 * `WarmStoreOptions`; the symbol is an own enumerable property, so `{ ...options }` keeps it.
 * `options` itself is not changed.
 */
export function withTestHooks(options: WarmStoreOptions, hooks: TestHooks): WarmStoreOptions {
  if (typeof options !== 'object' || options === null) throw invalid('options', 'must be an object');
  if (typeof hooks !== 'object' || hooks === null) throw invalid('hooks', 'must be an object');
  const { onKillPoint, annMergeMin, annMinRecall } = hooks;
  if (onKillPoint !== undefined && typeof onKillPoint !== 'function')
    throw invalid('hooks.onKillPoint', 'must be a function');
  if (annMergeMin !== undefined && !(Number.isSafeInteger(annMergeMin) && annMergeMin > 0))
    throw invalid('hooks.annMergeMin', 'must be a positive integer');
  if (
    annMinRecall !== undefined &&
    !(typeof annMinRecall === 'number' && annMinRecall >= 0 && annMinRecall <= 1)
  )
    throw invalid('hooks.annMinRecall', 'must be a number from 0 to 1');
  const merged: TestHooks = { ...testHooksOf(options) };
  if (onKillPoint !== undefined) merged.onKillPoint = onKillPoint;
  if (annMergeMin !== undefined) merged.annMergeMin = annMergeMin;
  if (annMinRecall !== undefined) merged.annMinRecall = annMinRecall;
  const copy: WarmStoreOptions & { [TEST_HOOKS]?: TestHooks } = { ...options };
  copy[TEST_HOOKS] = merged;
  return copy;
}
