import { endianness } from 'node:os';
import { invalid } from '../errors.js';
import type { MemoryRecord, StoredMemory } from '../types.js';

/** A memory as it travels in JSON (HTTP bodies, JSON Lines export and import). */
export type MemoryJson = Omit<StoredMemory, 'embedding'> & { embedding: number[] };

/** A memory as accepted in JSON: the embedding may be a number array or base64 of little-endian float32. */
export interface MemoryInputJson {
  id: string;
  embedding: number[] | string;
  content?: string | null;
  confidence?: number;
  activation?: number;
  decayRate?: number;
  createdAt?: number;
  lastAccess?: number;
  accessCount?: number;
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{2,3})?$/;
const BASE64URL = /^[A-Za-z0-9_-]*$/;
const littleEndian = endianness() === 'LE';

/**
 * Turns the JSON form of an embedding into a Float32Array. Base64 is accepted because a 768-value
 * number array costs ~15 KB of JSON and a parse per value; the base64 form is 4 KB and a memcpy.
 * `Buffer.from(s, 'base64')` silently skips invalid characters, so the alphabet is checked first:
 * a mangled embedding must be refused, never stored as different numbers.
 */
export function decodeEmbedding(value: unknown, field = 'embedding'): Float32Array {
  if (Array.isArray(value)) {
    const out = new Float32Array(value.length);
    for (let i = 0; i < value.length; i++) {
      const v: unknown = value[i];
      if (typeof v !== 'number') throw invalid(`${field}[${i}]`, 'must be a number');
      out[i] = v;
    }
    return out;
  }
  if (typeof value !== 'string') throw invalid(field, 'must be an array of numbers or a base64 string');
  const encoding = BASE64.test(value) ? 'base64' : BASE64URL.test(value) ? 'base64url' : undefined;
  if (encoding === undefined) throw invalid(field, 'is not valid base64');
  const bytes = Buffer.from(value, encoding);
  if (bytes.byteLength % 4 !== 0) {
    throw invalid(
      field,
      `base64 must decode to a whole number of float32 values (got ${bytes.byteLength} bytes)`,
    );
  }
  // Copy into a fresh buffer: Buffer.from may return a slice of the shared pool at an offset that
  // is not a multiple of 4, which Float32Array cannot view.
  const out = new Float32Array(bytes.byteLength / 4);
  if (littleEndian) {
    new Uint8Array(out.buffer).set(bytes);
  } else {
    for (let i = 0; i < out.length; i++) out[i] = bytes.readFloatLE(i * 4);
  }
  return out;
}

/** Base64 of the little-endian float32 bytes; the inverse of `decodeEmbedding` for strings. */
export function encodeEmbeddingBase64(embedding: Float32Array): string {
  if (littleEndian) {
    return Buffer.from(embedding.buffer, embedding.byteOffset, embedding.byteLength).toString('base64');
  }
  const bytes = Buffer.alloc(embedding.length * 4);
  for (let i = 0; i < embedding.length; i++) bytes.writeFloatLE(embedding[i] ?? 0, i * 4);
  return bytes.toString('base64');
}

/**
 * Builds a `MemoryRecord` from its JSON form, copying only the fields that are present so that the
 * engine's defaults apply to the others (exactOptionalPropertyTypes forbids passing `undefined`).
 */
export function recordFromJson(body: MemoryInputJson): MemoryRecord {
  const record: MemoryRecord = { id: body.id, embedding: decodeEmbedding(body.embedding) };
  if (body.content !== undefined) record.content = body.content;
  if (body.confidence !== undefined) record.confidence = body.confidence;
  if (body.activation !== undefined) record.activation = body.activation;
  if (body.decayRate !== undefined) record.decayRate = body.decayRate;
  if (body.createdAt !== undefined) record.createdAt = body.createdAt;
  if (body.lastAccess !== undefined) record.lastAccess = body.lastAccess;
  if (body.accessCount !== undefined) record.accessCount = body.accessCount;
  return record;
}

/**
 * The JSON form of a stored memory. `Array.from` on a Float32Array yields the exact doubles of the
 * float32 values, so a JSON round trip reproduces every embedding bit for bit.
 */
export function memoryToJson(m: StoredMemory): MemoryJson {
  return {
    id: m.id,
    embedding: Array.from(m.embedding),
    content: m.content,
    confidence: m.confidence,
    activation: m.activation,
    decayRate: m.decayRate,
    createdAt: m.createdAt,
    lastAccess: m.lastAccess,
    accessCount: m.accessCount,
  };
}
