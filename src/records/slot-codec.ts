import { crc32c } from '../format/crc.js';
import { idHashOfBytes, idHashOfString } from './id-index.js';
import { ContentKind } from '../wal/entries.js';
import type { Chunk, SlotValue } from './table.js';

/**
 * A record lives in two files at the same slot number, so that what changes often (metadata,
 * content references) is stored apart from what changes rarely (the embedding):
 *
 * records.dat (RECS v2): a 4 KiB area holding the file header, then 352-byte slot headers:
 *   0 header crc32c u32 (of bytes 4..352)  4 kind u8  5 id length u8  6 flags u8 (bit 0: norm
 *   stored)  7 reserved u8
 *   8 segment u32  12 content length u32  16 content offset f64  24 content LSN f64
 *   32 confidence  40 activation  48 decayRate  56 createdAt  64 lastAccess  72 accessCount (f64)
 *   80 embedding crc32c u32  84 id crc32c u32 (never 0; 0 in headers format 1 wrote)
 *   88 embedding norm f32 (when flag bit 0; saves open a pass over every vector)
 *   92 memory space number u32 (format 3; reserved and zero before, which is the default space)
 *   96 id (up to 255 bytes)
 * vectors.dat (VECS v1): a 4 KiB area holding the file header, then dim x f32 per slot.
 *
 * A compaction remap or a touch rewrites only headers, which lie contiguous: checkpointing the
 * remap of every other record writes 352 bytes per record, not the 3 KB embedding beside it (in
 * RECS v1 the two were interleaved, and such a checkpoint rewrote the whole file). The embedding
 * CRC sits in the header, so a header and a vector from two different checkpoints never pass as
 * one record. The id's own checksum lets a header whose id bytes are damaged still be found by the
 * id it was written for (a lookup raises CORRUPTION_DETECTED instead of finding nothing). An
 * all-zero header is a free slot (never written, or deleted).
 */
export const RECORDS_FILE = 'records.dat';
export const VECTORS_FILE = 'vectors.dat';
/** Where slot 0 starts in both files, after the 4 KiB header area. */
export const RECORDS_DATA_START = 4096;
export const SLOT_HEADER_BYTES = 352;
/** Header flag: bytes 88..92 hold the embedding's norm. */
const FLAG_NORM = 1;

/** The bytes one record takes on disk, header and vector (the MANIFEST's `slotBytes`). */
export function slotBytesFor(dim: number): number {
  return SLOT_HEADER_BYTES + dim * 4;
}

export function headerOffset(slot: number): number {
  return RECORDS_DATA_START + slot * SLOT_HEADER_BYTES;
}

export function vectorOffset(slot: number, dim: number): number {
  return RECORDS_DATA_START + slot * dim * 4;
}

/** Copies the embedding's bytes to `b` at `pos`. */
export function encodeVector(b: Buffer, pos: number, embedding: Float32Array): void {
  b.set(new Uint8Array(embedding.buffer, embedding.byteOffset, embedding.byteLength), pos);
}

/**
 * The 352-byte header of slot `i` of chunk `c`, straight from the table's typed arrays (a
 * checkpoint encodes hundreds of thousands of these; no object per slot).
 */
export function encodeSlotHeader(b: Buffer, pos: number, c: Chunk, i: number): void {
  // A DataView's setters are inlined by V8; Buffer's writeDoubleLE is several times slower here.
  const dv = viewOf(b);
  b.fill(0, pos, pos + SLOT_HEADER_BYTES);
  const idLen = b.write(c.ids[i] ?? '', pos + 96, 255, 'utf8');
  dv.setUint32(pos + 84, idHashOfBytes(b.subarray(pos + 96, pos + 96 + idLen)), true);
  b[pos + 4] = c.kind[i]!;
  b[pos + 5] = idLen;
  b[pos + 6] = FLAG_NORM;
  dv.setFloat32(pos + 88, c.norm[i]!, true);
  dv.setUint32(pos + 92, c.space[i]!, true);
  dv.setUint32(pos + 8, c.seg[i]!, true);
  dv.setUint32(pos + 12, c.clen[i]!, true);
  dv.setFloat64(pos + 16, c.off[i]!, true);
  dv.setFloat64(pos + 24, c.clsn[i]!, true);
  dv.setFloat64(pos + 32, c.confidence[i]!, true);
  dv.setFloat64(pos + 40, c.activation[i]!, true);
  dv.setFloat64(pos + 48, c.decayRate[i]!, true);
  dv.setFloat64(pos + 56, c.createdAt[i]!, true);
  dv.setFloat64(pos + 64, c.lastAccess[i]!, true);
  dv.setFloat64(pos + 72, c.accessCount[i]!, true);
  dv.setUint32(pos + 80, c.embCrc[i]!, true);
  dv.setUint32(pos, crc32c(b.subarray(pos + 4, pos + SLOT_HEADER_BYTES)), true);
}

/**
 * Open's fast path: when the header at `b[pos]` is a valid used slot, writes it into slot `i` of
 * chunk `c` and returns its id; returns undefined for anything else (free, damaged), which the
 * caller hands to decodeSlot for the details. No object per record. `vector` reads the embedding,
 * needed only for a header written before headers stored the norm. `checked`: the header's
 * checksum was already verified (open checks them on a worker thread).
 */
export function loadSlotHeader(
  b: Buffer,
  pos: number,
  c: Chunk,
  i: number,
  vector: () => Float32Array,
  checked = false,
): string | undefined {
  const dv = viewOf(b);
  const kind = b[pos + 4]!;
  const idLen = b[pos + 5]!;
  if (kind < ContentKind.Absent || kind > ContentKind.Present || idLen === 0) return undefined;
  if (!checked && crc32c(b.subarray(pos + 4, pos + SLOT_HEADER_BYTES)) !== dv.getUint32(pos, true))
    return undefined;
  const id = utf8Of(b, pos + 96, pos + 96 + idLen);
  c.ids[i] = id;
  c.idLen[i] = idLen;
  c.kind[i] = kind;
  c.seg[i] = dv.getUint32(pos + 8, true);
  c.clen[i] = dv.getUint32(pos + 12, true);
  c.off[i] = dv.getFloat64(pos + 16, true);
  c.clsn[i] = dv.getFloat64(pos + 24, true);
  c.confidence[i] = dv.getFloat64(pos + 32, true);
  c.activation[i] = dv.getFloat64(pos + 40, true);
  c.decayRate[i] = dv.getFloat64(pos + 48, true);
  c.createdAt[i] = dv.getFloat64(pos + 56, true);
  c.lastAccess[i] = dv.getFloat64(pos + 64, true);
  c.accessCount[i] = dv.getFloat64(pos + 72, true);
  c.embCrc[i] = dv.getUint32(pos + 80, true);
  c.space[i] = dv.getUint32(pos + 92, true);
  if ((b[pos + 6]! & FLAG_NORM) !== 0) {
    c.norm[i] = dv.getFloat32(pos + 88, true);
  } else {
    const emb = vector();
    let s = 0;
    for (let d = 0; d < emb.length; d++) s += emb[d]! * emb[d]!;
    c.norm[i] = Math.sqrt(s);
  }
  return id;
}

type Utf8Slicer = (this: Buffer, start: number, end: number) => string;
const utf8Slice = (Buffer.prototype as unknown as { utf8Slice?: Utf8Slicer }).utf8Slice;
/**
 * `b.toString('utf8', start, end)` without its argument handling, which took as long as the
 * decoding itself for the million short ids an open reads (Node's own `toString` ends in this
 * method; where a runtime lacks it, `toString` is used).
 */
function utf8Of(b: Buffer, start: number, end: number): string {
  return utf8Slice ? utf8Slice.call(b, start, end) : b.toString('utf8', start, end);
}

let lastBuf: Buffer | undefined;
let lastView: DataView | undefined;
/** The DataView of `b`, cached for the buffer a checkpoint or an open goes through header by header. */
function viewOf(b: Buffer): DataView {
  if (b !== lastBuf || !lastView) {
    lastBuf = b;
    lastView = new DataView(b.buffer, b.byteOffset, b.byteLength);
  }
  return lastView;
}

/** The id checksum stored in a slot header (CRC32C of the id's UTF-8 bytes, 0 mapped to 1). */
export { idHashOfBytes as idHashOf, idHashOfString as idHash };

/**
 * Adds the id checksum to a format-1 header that has none (bytes 84..88 zero), resealing its CRC.
 * Leaves free, damaged or already stamped headers as they are. Returns whether it changed `b`.
 */
export function stampIdHash(b: Buffer, pos: number): boolean {
  const end = pos + SLOT_HEADER_BYTES;
  if (isZero(b, pos, end) || b.readUInt32LE(pos + 84) !== 0) return false;
  if (crc32c(b.subarray(pos + 4, end)) !== b.readUInt32LE(pos)) return false;
  const idLen = b[pos + 5] ?? 0;
  if (idLen === 0) return false;
  b.writeUInt32LE(idHashOfBytes(b.subarray(pos + 96, pos + 96 + idLen)), pos + 84);
  b.writeUInt32LE(crc32c(b.subarray(pos + 4, end)), pos);
  return true;
}

/**
 * Cheap test for a free header (checksum and kind both zero), for a pass over a whole chunk; a
 * damaged header is caught by decodeSlot, not here.
 */
export function looksFree(b: Buffer, pos: number): boolean {
  return b.readUInt32LE(pos) === 0 && b[pos + 4] === 0;
}

/** The embedding checksum a header stores (bytes 80..84). */
export function storedEmbeddingCrc(b: Buffer, pos: number): number {
  return b.readUInt32LE(pos + 80);
}

export function encodeFreeHeader(b: Buffer, pos: number): void {
  b.fill(0, pos, pos + SLOT_HEADER_BYTES);
}

export type DecodedSlot =
  | { state: 'free' }
  | {
      state: 'used';
      value: SlotValue;
      embCrc: number;
      /** The stored norm of the embedding, when the header has one. */
      norm: number | undefined;
    }
  | {
      state: 'corrupt';
      /** The id as the (possibly damaged) bytes read; confirmed only when it matches `idHash`. */
      id: string | undefined;
      /** The stored id checksum, 0 when absent. */
      idHash: number;
      reason: string;
      where: 'header' | 'vector';
    };

function isZero(b: Buffer, start: number, end: number): boolean {
  for (let i = start; i < end; i++) if (b[i] !== 0) return false;
  return true;
}

/**
 * Decodes the header at `b[pos]` and, when `vb` is given, checks the vector at `vb[vpos]` against
 * it. A vector shorter than the dimension (its file ends early) fails the embedding checksum like
 * any other damage.
 */
export function decodeSlot(
  b: Buffer,
  pos: number,
  vb: Buffer | undefined,
  vpos: number,
  dim: number,
): DecodedSlot {
  const end = pos + SLOT_HEADER_BYTES;
  if (isZero(b, pos, end)) return { state: 'free' };
  const idLen = b[pos + 5] ?? 0;
  const guessId = idLen > 0 && idLen <= 255 ? b.toString('utf8', pos + 96, pos + 96 + idLen) : undefined;
  const storedIdHash = b.readUInt32LE(pos + 84);
  if (crc32c(b.subarray(pos + 4, end)) !== b.readUInt32LE(pos)) {
    return {
      state: 'corrupt',
      id: guessId,
      idHash: storedIdHash,
      reason: 'record header checksum mismatch',
      where: 'header',
    };
  }
  const kind = b[pos + 4] as ContentKind;
  if (kind < ContentKind.Absent || kind > ContentKind.Present || idLen === 0) {
    return {
      state: 'corrupt',
      id: guessId,
      idHash: storedIdHash,
      reason: 'record header fields out of range',
      where: 'header',
    };
  }
  const embCrc = b.readUInt32LE(pos + 80);
  const embBytes = vb?.subarray(vpos, vpos + dim * 4);
  if (embBytes && (embBytes.length !== dim * 4 || crc32c(embBytes) !== embCrc)) {
    return {
      state: 'corrupt',
      id: guessId,
      idHash: storedIdHash,
      reason: 'embedding checksum mismatch',
      where: 'vector',
    };
  }
  return {
    state: 'used',
    embCrc,
    norm: ((b[pos + 6] ?? 0) & FLAG_NORM) !== 0 ? b.readFloatLE(pos + 88) : undefined,
    value: {
      embCrc,
      norm: ((b[pos + 6] ?? 0) & FLAG_NORM) !== 0 ? b.readFloatLE(pos + 88) : 0,
      id: guessId ?? '',
      space: b.readUInt32LE(pos + 92),
      idLen,
      kind,
      seg: b.readUInt32LE(pos + 8),
      clen: b.readUInt32LE(pos + 12),
      off: b.readDoubleLE(pos + 16),
      clsn: b.readDoubleLE(pos + 24),
      confidence: b.readDoubleLE(pos + 32),
      activation: b.readDoubleLE(pos + 40),
      decayRate: b.readDoubleLE(pos + 48),
      createdAt: b.readDoubleLE(pos + 56),
      lastAccess: b.readDoubleLE(pos + 64),
      accessCount: b.readDoubleLE(pos + 72),
    },
  };
}
