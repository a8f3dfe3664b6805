import { crc32c } from './crc.js';

/**
 * The L2 norm (as a float32: how the table, the slot header and the WAL keep it) and CRC32C of an
 * embedding: what the record table keeps of it in memory.
 */
export function embeddingSummary(e: Float32Array): { norm: number; embCrc: number } {
  let s = 0;
  for (let d = 0; d < e.length; d++) {
    const x = e[d]!;
    s += x * x;
  }
  return {
    norm: Math.fround(Math.sqrt(s)),
    embCrc: crc32c(new Uint8Array(e.buffer, e.byteOffset, e.byteLength)),
  };
}
