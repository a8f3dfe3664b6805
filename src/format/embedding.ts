import { crc32c } from './crc.js';

/**
 * The sum of the squares of `e[from, to)`, in float64 (four accumulators: the loop is on the put
 * path). Every norm warmstore stores comes from here, so the same embedding always gets the same
 * bits, wherever it lies (the accumulators take its values counted from `from`).
 */
export function sumOfSquares(e: Float32Array, from = 0, to = e.length): number {
  let s0 = 0;
  let s1 = 0;
  let s2 = 0;
  let s3 = 0;
  const n = to;
  let i = from;
  for (; i + 3 < n; i += 4) {
    const a = e[i]!;
    const b = e[i + 1]!;
    const c = e[i + 2]!;
    const d = e[i + 3]!;
    s0 += a * a;
    s1 += b * b;
    s2 += c * c;
    s3 += d * d;
  }
  for (; i < n; i++) s0 += e[i]! * e[i]!;
  return s0 + s1 + s2 + s3;
}

/** The L2 norm as a float32 (how the table, the slot header and the WAL keep it). */
export function normOf(sumSq: number): number {
  return Math.fround(Math.sqrt(sumSq));
}

/** CRC32C of an embedding's bytes. */
export function embeddingCrc(e: Float32Array): number {
  return crc32c(new Uint8Array(e.buffer, e.byteOffset, e.byteLength));
}

/** The norm and CRC32C of an embedding: what the record table keeps of it in memory. */
export function embeddingSummary(e: Float32Array): { norm: number; embCrc: number } {
  return { norm: normOf(sumOfSquares(e)), embCrc: embeddingCrc(e) };
}
