/**
 * The client's side of the wire format: records to request JSON, response JSON to memories.
 * Embeddings travel as base64 of little-endian float32 both ways: a 768-value embedding is 4 KB
 * instead of ~15 KB of decimal text, and the bytes arrive exactly as they were sent.
 */
import { invalid } from '../errors.js';
import { decodeEmbedding, encodeEmbeddingBase64 } from '../server/codec.js';
import { METADATA_FIELDS, type MemoryRecord, type StoredMemory } from '../types.js';
import { WarmStoreClientError } from './errors.js';

const MAX_ID_BYTES = 255;
const MAX_SPACE_BYTES = 64;

/**
 * Checks what the client needs before it can build a request: an id that fits in a URL path and
 * that the server would accept. Everything else (dimension, ranges) is the server's to check, so
 * that one set of rules applies whatever the caller.
 */
export function checkId(id: unknown, field = 'id'): asserts id is string {
  if (typeof id !== 'string') throw invalid(field, 'must be a string');
  if (id.length === 0) throw invalid(field, 'must not be empty');
  if (Buffer.byteLength(id, 'utf8') > MAX_ID_BYTES) {
    throw invalid(field, `is ${Buffer.byteLength(id, 'utf8')} bytes of UTF-8; at most ${MAX_ID_BYTES}`);
  }
  if (!id.isWellFormed()) throw invalid(field, 'must be well-formed UTF-16 (no lone surrogates)');
}

/** A memory space's name: 1..64 bytes of well-formed UTF-8, so that it fits a query or a path. */
export function checkSpace(space: unknown, field = 'space'): string {
  if (typeof space !== 'string') throw invalid(field, 'must be a string');
  if (space.length === 0) throw invalid(field, 'must not be empty');
  const bytes = Buffer.byteLength(space, 'utf8');
  if (bytes > MAX_SPACE_BYTES) throw invalid(field, `is ${bytes} bytes of UTF-8; at most ${MAX_SPACE_BYTES}`);
  if (!space.isWellFormed()) throw invalid(field, 'must be well-formed UTF-16 (no lone surrogates)');
  return space;
}

/** `embedding` as the wire carries it; number arrays are converted to float32 first, as the store would. */
export function embeddingToWire(embedding: unknown, field = 'embedding'): string {
  if (embedding instanceof Float32Array) return encodeEmbeddingBase64(embedding);
  if (Array.isArray(embedding)) {
    const out = new Float32Array(embedding.length);
    for (let i = 0; i < embedding.length; i++) {
      const v: unknown = embedding[i];
      if (typeof v !== 'number') throw invalid(`${field}[${i}]`, 'must be a number');
      out[i] = v;
    }
    return encodeEmbeddingBase64(out);
  }
  throw invalid(field, 'must be a Float32Array or an array of numbers');
}

/** The request JSON of one record; `field` prefixes error names inside a batch (`memories[3]`). */
export function recordToWire(record: MemoryRecord, field = ''): Record<string, unknown> {
  const at = (name: string): string => (field === '' ? name : `${field}.${name}`);
  if (typeof record !== 'object' || record === null) throw invalid(field || 'record', 'must be an object');
  checkId(record.id, at('id'));
  const out: Record<string, unknown> = { id: record.id };
  if (record.space !== undefined) out['space'] = checkSpace(record.space, at('space'));
  out['embedding'] = embeddingToWire(record.embedding, at('embedding'));
  // Absent content is left out and null stays null: both mean "no content", and '' stays ''.
  if (record.content !== undefined) out['content'] = record.content;
  for (const f of METADATA_FIELDS) if (record[f] !== undefined) out[f] = record[f];
  return out;
}

function badResponse(what: string, why: string): WarmStoreClientError {
  return new WarmStoreClientError('BAD_RESPONSE', `the server sent ${what} that ${why}`, undefined, {});
}

/** A stored memory from its response JSON (every field requested, embedding in either encoding). */
export function memoryFromWire(value: unknown, what = 'a memory'): StoredMemory {
  if (typeof value !== 'object' || value === null) throw badResponse(what, 'is not an object');
  const o = value as Record<string, unknown>;
  if (typeof o['id'] !== 'string') throw badResponse(what, 'has no id');
  // Every request of the client asks for the space: a memory without one is not of this server.
  if (typeof o['space'] !== 'string') throw badResponse(what, 'has no space');
  const content = o['content'];
  if (content !== null && typeof content !== 'string') throw badResponse(what, 'has no content field');
  let embedding: Float32Array;
  try {
    embedding = decodeEmbedding(o['embedding']);
  } catch (err) {
    throw badResponse(what, `has no readable embedding (${(err as Error).message})`);
  }
  const m: StoredMemory = {
    id: o['id'],
    space: o['space'],
    embedding,
    content,
    confidence: 0,
    activation: 0,
    decayRate: 0,
    createdAt: 0,
    lastAccess: 0,
    accessCount: 0,
  };
  for (const f of METADATA_FIELDS) {
    const v = o[f];
    if (typeof v !== 'number') throw badResponse(what, `has no ${f}`);
    m[f] = v;
  }
  return m;
}
