import assert from 'node:assert/strict';
import type { MemoryRecord, StoredMemory } from '../../src/types.js';

export interface SameRecordOptions {
  /** Fields not compared (e.g. lastAccess/accessCount after a touch). */
  ignore?: ReadonlyArray<keyof StoredMemory>;
  /** Prefix for failure messages (which round, which seed). */
  context?: string;
}

/** Where two strings first differ, so a failure on 20 KB contents stays readable. */
export function describeStringDiff(actual: string, expected: string): string {
  const n = Math.min(actual.length, expected.length);
  let i = 0;
  while (i < n && actual.charCodeAt(i) === expected.charCodeAt(i)) i++;
  const around = (s: string): string => JSON.stringify(s.slice(Math.max(0, i - 10), i + 20));
  return `lengths ${actual.length} vs ${expected.length}, first difference at ${i}: got ${around(actual)}, want ${around(expected)}`;
}

/** Bit-level equality, so -0 vs 0 or a changed NaN payload would show. */
function bitsEqual(a: Float32Array, b: Float32Array): boolean {
  if (a.length !== b.length) return false;
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < a.length; i++) if (x[i] !== y[i]) return false;
  return true;
}

/**
 * Asserts that a stored memory is exactly the record that was put: same id, bit-identical
 * embedding, same content with absent (null/undefined) and empty ('') kept distinct, and every
 * metadata field either equal to what was given or to its documented default.
 */
export function expectSameRecord(
  actual: StoredMemory | undefined,
  expected: MemoryRecord,
  options: SameRecordOptions = {},
): asserts actual is StoredMemory {
  const ctx =
    options.context === undefined
      ? `id ${JSON.stringify(expected.id)}`
      : `${options.context}: id ${JSON.stringify(expected.id)}`;
  const ignore = new Set(options.ignore ?? []);
  assert.ok(actual !== undefined, `${ctx}: record missing`);
  assert.equal(actual.id, expected.id, `${ctx}: id`);
  assert.ok(actual.embedding instanceof Float32Array, `${ctx}: embedding is not a Float32Array`);
  if (!ignore.has('embedding')) {
    assert.ok(
      bitsEqual(actual.embedding, expected.embedding),
      `${ctx}: embedding differs (length ${actual.embedding.length} vs ${expected.embedding.length})`,
    );
  }
  if (!ignore.has('content')) {
    const want = expected.content ?? null;
    if (want === null) {
      assert.equal(
        actual.content,
        null,
        `${ctx}: content should be absent (null), got ${typeof actual.content}`,
      );
    } else {
      assert.equal(
        typeof actual.content,
        'string',
        `${ctx}: content should be a string, got ${String(actual.content)}`,
      );
      if (actual.content !== want) {
        assert.fail(`${ctx}: content differs: ${describeStringDiff(actual.content as string, want)}`);
      }
    }
  }
  const expectField = (
    field: keyof StoredMemory,
    want: number | undefined,
    fallback: number | undefined,
  ): void => {
    if (ignore.has(field)) return;
    const value = want ?? fallback;
    if (value === undefined) return;
    assert.ok(Object.is(actual[field], value), `${ctx}: ${field} is ${String(actual[field])}, want ${value}`);
  };
  expectField('confidence', expected.confidence, 1);
  expectField('activation', expected.activation, 0);
  expectField('decayRate', expected.decayRate, 0);
  expectField('createdAt', expected.createdAt, undefined);
  expectField('lastAccess', expected.lastAccess, expected.createdAt);
  expectField('accessCount', expected.accessCount, 0);
}
