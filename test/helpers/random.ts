import type { MemoryRecord } from '../../src/types.js';

/** A small seeded PRNG (mulberry32): fast, deterministic, good enough for test data. */
export class Rng {
  #a: number;

  constructor(seed: number) {
    this.#a = seed >>> 0;
  }

  /** Uniform in [0, 1). */
  next(): number {
    this.#a = (this.#a + 0x6d2b79f5) >>> 0;
    let t = this.#a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** Integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** Integer in [lo, hi] inclusive. */
  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }

  bool(p = 0.5): boolean {
    return this.next() < p;
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error('pick from an empty list');
    return items[this.int(items.length)] as T;
  }
}

/** FNV-1a over the parts, so (id, seed) pairs map to well-spread 32-bit seeds. */
export function hashSeed(...parts: Array<string | number>): number {
  let h = 0x811c9dc5;
  for (const part of parts) {
    const s = `${String(part)}\u0000`;
    for (let i = 0; i < s.length; i++) {
      h ^= s.charCodeAt(i);
      h = Math.imul(h, 0x01000193) >>> 0;
    }
  }
  return h >>> 0;
}

/** A deterministic embedding in [-1, 1); never all zeros, so cosine similarity is defined. */
export function embeddingFor(seed: number, dimension: number): Float32Array {
  const r = new Rng(hashSeed('embedding', seed));
  const v = new Float32Array(dimension);
  for (let i = 0; i < dimension; i++) v[i] = r.next() * 2 - 1;
  v[0] = (v[0] ?? 0) + 0.01;
  return v;
}

// Mostly ASCII with 2-, 3- and 4-byte UTF-8 sequences mixed in, so byte and char lengths differ.
const ALPHABET = [
  ...'abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,;:!?-_\n',
  'é',
  'ß',
  'Ж',
  '漢',
  '字',
  '🙂',
  '🧠',
  '\u0000',
];

/** Upper bound on the UTF-8 size of `contentFor` (every char is at most 4 bytes). */
export const MAX_CONTENT_CHARS = 18_000;

/**
 * Deterministic content for (id, seed): ~10% absent (null), ~5% empty, otherwise sizes spread from
 * a few bytes to ~20 KB of UTF-8 (small ones most often, as real memories).
 */
export function contentFor(id: string, seed: number): string | null {
  const r = new Rng(hashSeed('content', id, seed));
  const kind = r.int(20);
  if (kind < 2) return null;
  if (kind === 2) return '';
  const bucket = r.next();
  // Sizes in characters; multi-byte chars push the largest ones towards 20 KB.
  const chars =
    bucket < 0.5 ? r.range(1, 200) : bucket < 0.85 ? r.range(200, 2500) : r.range(2500, MAX_CONTENT_CHARS);
  const parts: string[] = [`${id}#${seed}:`];
  for (let i = 0; i < chars; i++) {
    // Long ASCII runs keep the average size realistic; the rare others exercise UTF-8.
    parts.push(r.next() < 0.9 ? (ALPHABET[r.int(64)] as string) : r.pick(ALPHABET));
  }
  return parts.join('');
}

const EPOCH = 1_700_000_000_000;

/**
 * A fully specified record for (id, seed), so a test can recompute exactly what it expects to
 * read back. Numbers are exact in float32 (multiples of powers of two), whatever the engine
 * stores them as.
 */
export function recordFor(id: string, seed: number, dimension: number): MemoryRecord {
  const r = new Rng(hashSeed('meta', id, seed));
  const createdAt = EPOCH + r.int(1_000_000_000);
  return {
    id,
    embedding: embeddingFor(hashSeed(id, seed), dimension),
    content: contentFor(id, seed),
    confidence: r.int(1025) / 1024,
    activation: (r.int(4096) - 2048) / 64,
    decayRate: r.int(4096) / 4096,
    createdAt,
    lastAccess: createdAt + r.int(1_000_000),
    accessCount: r.int(100),
  };
}

/** A random record for property tests; ids are short ASCII or unicode strings. */
export function randomRecord(r: Rng, dimension: number): MemoryRecord {
  const id = r.bool(0.8) ? `id-${r.int(1_000_000)}` : `ключ-${r.int(1000)}-漢`;
  return recordFor(id, r.int(2 ** 31), dimension);
}

/** Random bytes from a seed, for file-layer tests. */
export function randomBytes(r: Rng, length: number): Buffer {
  const b = Buffer.allocUnsafe(length);
  for (let i = 0; i < length; i++) b[i] = r.int(256);
  return b;
}

/**
 * Writes `n` records `${prefix}0..` (recordFor with seed = index) to a store in batches of 1000,
 * then closes it: a store large enough to span several table chunks in a few seconds.
 */
export async function writeRecords(
  open: () => Promise<{ putMany(r: MemoryRecord[]): Promise<unknown>; close(): Promise<void> }>,
  n: number,
  prefix: string,
  dimension: number,
): Promise<void> {
  const store = await open();
  try {
    for (let i = 0; i < n; i += 1000) {
      const batch: MemoryRecord[] = [];
      for (let j = i; j < Math.min(n, i + 1000); j++) batch.push(recordFor(`${prefix}${j}`, j, dimension));
      await store.putMany(batch);
    }
  } finally {
    await store.close();
  }
}
