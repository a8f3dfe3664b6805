/**
 * Deterministic workload: N memories with random 768-dim float32 embeddings, 50..2000 bytes of
 * random (word-like, ASCII) text and cognitive metadata. Every engine stores exactly these records.
 */
import type { StoredMemory } from '../../src/index.js';

/** mulberry32: small, fast, deterministic. Returns floats in [0, 1). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A record as every engine stores and returns it: the engine's own stored shape. */
export type BenchMemory = StoredMemory;

export const META_BYTES = 6 * 8; // confidence, activation, decayRate, createdAt, lastAccess, accessCount

export class Dataset {
  readonly n: number;
  readonly dim: number;
  readonly records: BenchMemory[];
  /** All embeddings, contiguous; record i's embedding is a view into it. */
  readonly embeddings: Float32Array;
  /** Sum over records of id + embedding + content + metadata bytes. */
  readonly logicalBytes: number;
  readonly contentBytes: number;

  constructor(n: number, dim = 768, seed = 0x5eed) {
    this.n = n;
    this.dim = dim;
    const r = rng(seed);
    this.embeddings = new Float32Array(n * dim);
    for (let i = 0; i < this.embeddings.length; i++) this.embeddings[i] = r() * 2 - 1;
    const pool = textPool(r, 4 << 20);
    const ids = new Set<string>();
    this.records = new Array(n);
    let logical = 0;
    let content = 0;
    const now = Date.UTC(2026, 0, 1);
    for (let i = 0; i < n; i++) {
      let id: string;
      do {
        id = 'mem-' + hex8(r) + hex8(r);
      } while (ids.has(id));
      ids.add(id);
      const len = 50 + Math.floor(r() * 1951); // 50..2000 bytes (ASCII: 1 byte per char)
      const off = Math.floor(r() * (pool.length - len));
      // Flatten so that each record owns its string (not a slice of the 4 MiB pool).
      const text = Buffer.from(pool.slice(off, off + len), 'latin1').toString('latin1');
      const createdAt = now - Math.floor(r() * 86_400_000 * 365);
      this.records[i] = {
        id,
        space: 'default',
        embedding: this.embeddings.subarray(i * dim, (i + 1) * dim),
        content: text,
        confidence: Math.round(r() * 1000) / 1000,
        activation: r() * 10 - 5,
        decayRate: r() * 0.1,
        createdAt,
        lastAccess: createdAt + Math.floor(r() * 86_400_000),
        accessCount: Math.floor(r() * 100),
      };
      logical += Buffer.byteLength(id) + dim * 4 + len + META_BYTES;
      content += len;
    }
    this.logicalBytes = logical;
    this.contentBytes = content;
  }
}

function hex8(r: () => number): string {
  return Math.floor(r() * 0x100000000)
    .toString(16)
    .padStart(8, '0');
}

function textPool(r: () => number, bytes: number): string {
  const letters = 'abcdefghijklmnopqrstuvwxyz';
  const vocab: string[] = [];
  for (let i = 0; i < 4000; i++) {
    const wl = 2 + Math.floor(r() * 9);
    let w = '';
    for (let j = 0; j < wl; j++) w += letters[Math.floor(r() * 26)];
    vocab.push(w);
  }
  const parts: string[] = [];
  let size = 0;
  while (size < bytes) {
    // Zipf-ish: small indices far more frequent, like natural text.
    const w = vocab[Math.floor(Math.pow(r(), 2.5) * vocab.length)]!;
    const sep = r() < 0.08 ? '. ' : r() < 0.05 ? ', ' : ' ';
    parts.push(w, sep);
    size += w.length + sep.length;
  }
  return parts.join('');
}

/**
 * Peer value encoding (lmdb-js, classic-level): one binary blob per record.
 * [u32 contentLen or 0xffffffff][u32 0][6 x f64 metadata][dim x f32 embedding][utf-8 content]
 */
const HEADER = 8 + META_BYTES;

export function encodeValue(m: BenchMemory): Buffer {
  const contentLen = m.content === null ? 0 : Buffer.byteLength(m.content);
  const embBytes = m.embedding.byteLength;
  const buf = Buffer.allocUnsafe(HEADER + embBytes + contentLen);
  buf.writeUInt32LE(m.content === null ? 0xffffffff : contentLen, 0);
  buf.writeUInt32LE(0, 4);
  buf.writeDoubleLE(m.confidence, 8);
  buf.writeDoubleLE(m.activation, 16);
  buf.writeDoubleLE(m.decayRate, 24);
  buf.writeDoubleLE(m.createdAt, 32);
  buf.writeDoubleLE(m.lastAccess, 40);
  buf.writeDoubleLE(m.accessCount, 48);
  buf.set(new Uint8Array(m.embedding.buffer, m.embedding.byteOffset, embBytes), HEADER);
  if (m.content !== null) buf.write(m.content, HEADER + embBytes, 'utf8');
  return buf;
}

export function decodeValue(id: string, buf: Uint8Array, dim: number): BenchMemory {
  const b = Buffer.isBuffer(buf) ? buf : Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  const clen = b.readUInt32LE(0);
  const embBytes = dim * 4;
  // Copy: the source may be unaligned and may be a reused buffer.
  const emb = new Float32Array(dim);
  new Uint8Array(emb.buffer).set(b.subarray(HEADER, HEADER + embBytes));
  return {
    id,
    space: 'default',
    embedding: emb,
    content: clen === 0xffffffff ? null : b.toString('utf8', HEADER + embBytes, HEADER + embBytes + clen),
    confidence: b.readDoubleLE(8),
    activation: b.readDoubleLE(16),
    decayRate: b.readDoubleLE(24),
    createdAt: b.readDoubleLE(32),
    lastAccess: b.readDoubleLE(40),
    accessCount: b.readDoubleLE(48),
  };
}

/** Float32Array -> Buffer view (no copy). */
export function embBuffer(e: Float32Array): Buffer {
  return Buffer.from(e.buffer, e.byteOffset, e.byteLength);
}

/** Buffer (maybe unaligned) -> fresh Float32Array. */
export function bufferToEmb(b: Uint8Array): Float32Array {
  const emb = new Float32Array(b.byteLength / 4);
  new Uint8Array(emb.buffer).set(b);
  return emb;
}

/** Random permutation of 0..n-1. */
export function shuffled(n: number, r: () => number): Uint32Array {
  const a = new Uint32Array(n);
  for (let i = 0; i < n; i++) a[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    const t = a[i]!;
    a[i] = a[j]!;
    a[j] = t;
  }
  return a;
}

/** `count` indices drawn uniformly from 0..n-1 (repeats allowed), the same for a given seed. */
export function randomIndices(n: number, count: number, seed: number): Uint32Array {
  const r = rng(seed);
  const a = new Uint32Array(count);
  for (let i = 0; i < count; i++) a[i] = Math.floor(r() * n);
  return a;
}

/** Whether a record read back is the one stored (content, length and a sample of the embedding). */
export function checkRecord(v: BenchMemory | undefined, want: BenchMemory): boolean {
  return (
    v !== undefined &&
    v.content === want.content &&
    v.embedding.length === want.embedding.length &&
    v.embedding[7] === want.embedding[7] &&
    v.accessCount === want.accessCount
  );
}
