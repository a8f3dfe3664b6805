/**
 * `memoryJsonText` against `JSON.stringify`: the same bytes, field for field, whatever the view.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  ALL_FIELDS,
  RECALL_FIELDS,
  encodeEmbeddingBase64,
  memoryJsonText,
  parseFields,
  type MemoryView,
} from '../../../src/server/codec.js';
import { METADATA_FIELDS, type StoredMemory } from '../../../src/types.js';

const base: StoredMemory = {
  id: 'plain-id',
  space: 'default',
  embedding: Float32Array.from([0.1, 3.4028234663852886e38, 1.401298464324817e-45, -7.25]),
  content: 'plain text, with punctuation: and "quotes" and \\ and é€ and 🧠',
  confidence: 0.734,
  activation: -4.123456789012345,
  decayRate: 0.0123456789,
  createdAt: 1_700_000_000_123,
  lastAccess: 1_764_000_000_456,
  accessCount: 0,
};

/** What JSON.stringify writes for the same view: the fields in their order, base64 embeddings. */
function reference(m: StoredMemory, view: MemoryView): string {
  const o: Record<string, unknown> = {};
  if (view.fields.has('id')) o['id'] = m.id;
  if (view.fields.has('space')) o['space'] = m.space;
  if (view.fields.has('content')) o['content'] = m.content;
  if (view.fields.has('embedding'))
    o['embedding'] =
      view.encoding === 'base64' ? encodeEmbeddingBase64(m.embedding) : Array.from(m.embedding);
  if (view.fields.has('metadata')) for (const f of METADATA_FIELDS) o[f] = m[f];
  return JSON.stringify(o);
}

describe('memoryJsonText', () => {
  const memories: StoredMemory[] = [
    base,
    { ...base, content: null },
    { ...base, content: '' },
    { ...base, id: 'line\nbreak', content: 'tab\there \u0000 \u001f \ud83e lone' },
    { ...base, activation: Number.NaN, decayRate: Number.POSITIVE_INFINITY, confidence: -0 },
    { ...base, accessCount: 123_456, createdAt: 0, lastAccess: 1e21 },
  ];
  const views: MemoryView[] = [
    { fields: ALL_FIELDS, encoding: 'base64' },
    { fields: ALL_FIELDS, encoding: 'array' },
    { fields: RECALL_FIELDS, encoding: 'array' },
    { fields: parseFields('metadata', ALL_FIELDS), encoding: 'array' },
    { fields: parseFields('metadata,id', ALL_FIELDS), encoding: 'array' },
    { fields: parseFields('embedding,content', ALL_FIELDS), encoding: 'base64' },
    { fields: parseFields('id', ALL_FIELDS), encoding: 'base64' },
  ];

  it('writes the bytes JSON.stringify writes for every view', () => {
    for (const m of memories)
      for (const view of views) {
        const label = `${JSON.stringify(m.content)} ${[...view.fields].join(',')} ${view.encoding}`;
        assert.equal(memoryJsonText(m, view), reference(m, view), label);
      }
  });

  it('writes the metadata in the order of METADATA_FIELDS', () => {
    const text = memoryJsonText(base, { fields: parseFields('metadata', ALL_FIELDS), encoding: 'array' });
    assert.deepEqual(Object.keys(JSON.parse(text) as object), [...METADATA_FIELDS]);
  });
});
