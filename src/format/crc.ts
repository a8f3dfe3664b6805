import { crc32c as nativeCrc32c } from '@node-rs/crc32';

/** CRC32C (Castagnoli), hardware-accelerated through @node-rs/crc32. */
export function crc32c(data: Uint8Array, initial = 0): number {
  const buf = Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  return nativeCrc32c(buf, initial) >>> 0;
}
