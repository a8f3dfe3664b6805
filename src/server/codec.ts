import { endianness } from 'node:os';
import { invalid } from '../errors.js';
import { metadataOf, type MemoryRecord, type StoredMemory } from '../types.js';

/** A memory as it travels in JSON (HTTP bodies, JSON Lines export and import). */
export type MemoryJson = Omit<StoredMemory, 'embedding'> & { embedding: number[] };

/** A memory as accepted in JSON: the embedding may be a number array or base64 of little-endian float32. */
export interface MemoryInputJson {
  id: string;
  /** The memory space; 'default' when absent. */
  space?: string;
  embedding: number[] | string;
  content?: string | null;
  confidence?: number;
  activation?: number;
  decayRate?: number;
  createdAt?: number;
  lastAccess?: number;
  accessCount?: number;
}

const littleEndian = endianness() === 'LE';

/** Per ASCII code: 1 a character of standard base64 only (+ /), 2 of base64url only (- _), 3 of both. */
const KIND = new Uint8Array(128);
/** Per ASCII code: the 6 bits the character stands for. */
const SIXBITS = new Uint8Array(128);
const STANDARD = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
for (let v = 0; v < 64; v++) {
  const c = STANDARD.charCodeAt(v);
  KIND[c] = v < 62 ? 3 : 1;
  SIXBITS[c] = v;
}
KIND['-'.charCodeAt(0)] = 2;
SIXBITS['-'.charCodeAt(0)] = 62;
KIND['_'.charCodeAt(0)] = 2;
SIXBITS['_'.charCodeAt(0)] = 63;
const PAD = '='.charCodeAt(0);

/**
 * The bytes of `s` if it is base64: standard (padded to a multiple of 4, or unpadded without a lone
 * last character) or base64url (its alphabet, unpadded); undefined when it is neither. The result
 * starts its own ArrayBuffer, so a Float32Array can view it.
 *
 * Node's decoder is 5x faster than a loop in JS, but it skips characters it does not know, stops
 * at an inner '=', reads both alphabets, and takes a character above 0xFF by its low byte: so the
 * string is checked to be ASCII and of one alphabet, and the decoder must write exactly the bytes
 * its length promises (a skipped character always leaves fewer, unless the length leaves a lone
 * last character: that rare shape goes through the loop below).
 */
export function decodeBase64(s: string): Uint8Array | undefined {
  const length = s.length;
  let pad = 0;
  while (pad < 2 && pad < length && s.charCodeAt(length - 1 - pad) === PAD) pad++;
  const n = length - pad;
  const rest = n % 4;
  if (rest === 1) return decodeBase64Loop(s);
  if (pad > 0 && rest + pad !== 4) return undefined;
  if (Buffer.byteLength(s, 'utf8') !== length) return undefined;
  const url = s.includes('-') || s.includes('_');
  if (url && (pad > 0 || s.includes('+') || s.includes('/'))) return undefined;
  const expected = (n >> 2) * 3 + (rest > 1 ? rest - 1 : 0);
  const out = new Uint8Array(expected);
  const written = Buffer.from(out.buffer, 0, expected).write(s, url ? 'base64url' : 'base64');
  return written === expected ? out : undefined;
}

/** `decodeBase64` in one pass of JS that checks and decodes every character. */
export function decodeBase64Loop(s: string): Uint8Array | undefined {
  let n = s.length;
  let pad = 0;
  while (pad < 2 && n > 0 && s.charCodeAt(n - 1) === PAD) {
    n--;
    pad++;
  }
  const rest = n % 4;
  if (pad > 0 && rest + pad !== 4) return undefined;
  const out = new Uint8Array((n >> 2) * 3 + (rest > 1 ? rest - 1 : 0));
  let kinds = 3;
  let high = 0;
  let o = 0;
  const whole = n - rest;
  for (let i = 0; i < whole; i += 4) {
    const a = s.charCodeAt(i);
    const b = s.charCodeAt(i + 1);
    const c = s.charCodeAt(i + 2);
    const d = s.charCodeAt(i + 3);
    high |= a | b | c | d;
    kinds &= KIND[a & 127]! & KIND[b & 127]! & KIND[c & 127]! & KIND[d & 127]!;
    const x =
      (SIXBITS[a & 127]! << 18) | (SIXBITS[b & 127]! << 12) | (SIXBITS[c & 127]! << 6) | SIXBITS[d & 127]!;
    out[o++] = x >> 16;
    out[o++] = x >> 8;
    out[o++] = x;
  }
  let x = 0;
  for (let i = whole; i < n; i++) {
    const a = s.charCodeAt(i);
    high |= a;
    kinds &= KIND[a & 127]!;
    x |= SIXBITS[a & 127]! << (18 - 6 * (i - whole));
  }
  if (rest > 1) out[o++] = x >> 16;
  if (rest > 2) out[o++] = x >> 8;
  if (high > 127 || kinds === 0) return undefined;
  // '=' and a lone last character belong to one alphabet each.
  if (pad > 0 && (kinds & 1) === 0) return undefined;
  if (rest === 1 && (kinds & 2) === 0) return undefined;
  return out;
}

/**
 * Turns the JSON form of an embedding into a Float32Array. Base64 is accepted because a 768-value
 * number array costs ~15 KB of JSON and a parse per value; the base64 form is 4 KB and one pass.
 * A mangled embedding must be refused, never stored as different numbers.
 */
export function decodeEmbedding(value: unknown, field = 'embedding'): Float32Array {
  if (Array.isArray(value)) {
    const out = new Float32Array(value.length);
    for (let i = 0; i < value.length; i++) {
      const v: unknown = value[i];
      if (typeof v !== 'number') throw invalid(`${field}[${i}]`, 'must be a number');
      out[i] = v;
    }
    checkFinite(out, field);
    return out;
  }
  if (typeof value !== 'string') throw invalid(field, 'must be an array of numbers or a base64 string');
  const bytes = decodeBase64(value);
  if (bytes === undefined) throw invalid(field, 'is not valid base64');
  if (bytes.byteLength % 4 !== 0) {
    throw invalid(
      field,
      `base64 must decode to a whole number of float32 values (got ${bytes.byteLength} bytes)`,
    );
  }
  let out: Float32Array;
  if (littleEndian) {
    out = new Float32Array(bytes.buffer, 0, bytes.byteLength / 4);
  } else {
    out = new Float32Array(bytes.byteLength / 4);
    const view = new DataView(bytes.buffer);
    for (let i = 0; i < out.length; i++) out[i] = view.getFloat32(i * 4, true);
  }
  checkFinite(out, field);
  return out;
}

/**
 * Base64 can carry NaN and the infinities, and a JSON number such as 1e39 overflows float32 to
 * Infinity; both are refused here so the error names the element. `x * 0` is 0 for every finite
 * x and NaN otherwise: one cheap pass, and the search for the index only when something is wrong.
 */
function checkFinite(values: Float32Array, field: string): void {
  let probe = 0;
  for (let i = 0; i < values.length; i++) probe += values[i]! * 0;
  if (probe === 0) return;
  for (let i = 0; i < values.length; i++) {
    if (!Number.isFinite(values[i])) {
      throw invalid(`${field}[${i}]`, 'must be a finite float32 value (no NaN, Infinity or overflow)');
    }
  }
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
 * An embedding as a Float32Array or as its float32 bytes in the machine's byte order (as a store
 * reads them from its vectors file).
 */
export type EmbeddingValues = Float32Array | Uint8Array;

/** The float32 values of `e`: a view of the bytes when they are aligned for one, else a copy. */
function floatsOf(e: EmbeddingValues): Float32Array {
  if (e instanceof Float32Array) return e;
  if (e.byteOffset % 4 === 0) return new Float32Array(e.buffer, e.byteOffset, e.byteLength >> 2);
  return new Float32Array(new Uint8Array(e).buffer, 0, e.byteLength >> 2);
}

/** `encodeEmbeddingBase64` of either form; the bytes of a little-endian machine are the wire form. */
function embeddingBase64(e: EmbeddingValues): string {
  if (littleEndian && !(e instanceof Float32Array)) {
    return Buffer.from(e.buffer, e.byteOffset, e.byteLength).toString('base64');
  }
  return encodeEmbeddingBase64(floatsOf(e));
}

/**
 * Builds a `MemoryRecord` from its JSON form, copying only the fields that are present so that the
 * engine's defaults apply to the others (exactOptionalPropertyTypes forbids passing `undefined`).
 */
export function recordFromJson(body: MemoryInputJson): MemoryRecord {
  const record: MemoryRecord = { id: body.id, embedding: decodeEmbedding(body.embedding) };
  if (body.space !== undefined) record.space = body.space;
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
    space: m.space,
    embedding: Array.from(m.embedding),
    content: m.content,
    ...metadataOf(m),
  };
}

/** The parts of a memory a response can carry, chosen with `fields`. */
export const MEMORY_FIELDS = ['id', 'space', 'content', 'embedding', 'metadata'] as const;
export type MemoryField = (typeof MEMORY_FIELDS)[number];

/** How embeddings travel in responses: JSON number arrays, or base64 of little-endian float32. */
export const EMBEDDING_ENCODINGS = ['array', 'base64'] as const;
export type EmbeddingEncoding = (typeof EMBEDDING_ENCODINGS)[number];

/** What a memory in a response carries and how its embedding is written. */
export interface MemoryView {
  fields: ReadonlySet<MemoryField>;
  encoding: EmbeddingEncoding;
}

/**
 * A memory in a response: the parts `fields` chose (all by default), the embedding as numbers or,
 * with `encoding: 'base64'`, as a base64 string.
 */
export type MemoryResponseJson = Partial<Omit<StoredMemory, 'embedding'>> & {
  space?: string;
  embedding?: number[] | string;
};

/** Every part of a memory: the default of reads by id. */
export const ALL_FIELDS: ReadonlySet<MemoryField> = new Set(MEMORY_FIELDS);
/** Recall hits leave the embedding out unless it is asked for: the caller already has a query vector. */
export const RECALL_FIELDS: ReadonlySet<MemoryField> = new Set(
  MEMORY_FIELDS.filter((f) => f !== 'embedding'),
);

/**
 * Reads `fields` from a query string (`id,content`) or a JSON body (`["id", "content"]`).
 * `undefined` gives `defaults`.
 */
export function parseFields(
  value: string | readonly string[] | undefined,
  defaults: ReadonlySet<MemoryField>,
): ReadonlySet<MemoryField> {
  if (value === undefined) return defaults;
  const names = typeof value === 'string' ? value.split(',').map((s) => s.trim()) : value;
  const out = new Set<MemoryField>();
  for (const name of names) {
    if (!(MEMORY_FIELDS as readonly string[]).includes(name)) {
      throw invalid(
        'fields',
        `unknown field ${JSON.stringify(name)}; expected some of ${MEMORY_FIELDS.join(', ')}`,
      );
    }
    out.add(name as MemoryField);
  }
  if (out.size === 0) throw invalid('fields', `must name at least one of ${MEMORY_FIELDS.join(', ')}`);
  return out;
}

/** JSON of a finite number as `JSON.stringify` writes it; non-finite values become null as there. */
const num = (v: number): string => (Number.isFinite(v) ? String(v) : 'null');

/** Like `num`, but keeps the sign of -0 (`String(-0)` is "0"), so that arrays round-trip every bit. */
const embeddingNum = (v: number): string => (v === 0 ? (1 / v < 0 ? '-0' : '0') : num(v));

/**
 * A string none of whose characters `JSON.stringify` escapes: no `"`, `\`, control U+0000..U+001F
 * or surrogate (a lone one is escaped; a pair fails this test too and is left to `JSON.stringify`,
 * which keeps it). Written with the characters that pass unchanged, so that the pattern holds no
 * control characters, and anchored: one match attempt over the whole string runs in about half
 * the time of an unanchored search for a bad character, which tries every start position.
 */
const PLAIN = /^[\x20\x21\x23-\x5b\x5d-\ud7ff\ue000-\uffff]*$/;

/**
 * A string as `JSON.stringify` writes it. Contents are mostly plain text: one scan that finds
 * nothing to escape costs a fraction of `JSON.stringify`, which builds a new string as it scans.
 */
export function jsonString(s: string): string {
  return PLAIN.test(s) ? `"${s}"` : JSON.stringify(s);
}

/**
 * The JSON text of a memory, written by hand because this is the hot path of reads. A schema
 * serializer formats each embedding value in a JS loop; writing base64 straight into the text
 * skips that work entirely (base64 needs no escaping), and even the number form is about twice
 * as fast as the generic serializers at 768 dimensions. `String(float32 value)` is the exact
 * double of the float32, so number arrays round-trip bit for bit.
 *
 * The pieces are joined once at the end: `join` writes one flat string, where a chain of `+`
 * leaves a rope that the response path (its byte length, then the socket write) flattens again,
 * a copy of the whole text each time.
 */
export function memoryJsonText(
  m: Omit<StoredMemory, 'embedding'> & { embedding: EmbeddingValues },
  view: MemoryView,
): string {
  const { fields } = view;
  const parts: string[] = ['{'];
  let sep = '"';
  if (fields.has('id')) {
    parts.push(sep, 'id":', jsonString(m.id));
    sep = ',"';
  }
  if (fields.has('space')) {
    parts.push(sep, 'space":', jsonString(m.space));
    sep = ',"';
  }
  if (fields.has('content')) {
    parts.push(sep, 'content":', m.content === null ? 'null' : jsonString(m.content));
    sep = ',"';
  }
  if (fields.has('embedding')) {
    if (view.encoding === 'base64') {
      parts.push(sep, 'embedding":"', embeddingBase64(m.embedding), '"');
    } else {
      const e = floatsOf(m.embedding);
      let s = '[';
      for (let i = 0; i < e.length; i++) s += i === 0 ? embeddingNum(e[i]!) : `,${embeddingNum(e[i]!)}`;
      parts.push(sep, 'embedding":', s, ']');
    }
    sep = ',"';
  }
  if (fields.has('metadata')) {
    // One JSON.stringify writes the six numbers as `num` does (null for a non-finite one), in
    // about half the time of six String() calls; its keys are METADATA_FIELDS, in that order.
    const meta = JSON.stringify(metadataOf(m));
    parts.push(sep === '"' ? '' : ',', meta.slice(1, -1));
  }
  parts.push('}');
  return parts.join('');
}
