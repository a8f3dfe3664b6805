import { join } from 'node:path';
import { encodeHeader, registerMigration } from '../format/header.js';
import { readFully, writeFully } from '../fs/io.js';
import type { WsFileSystem } from '../fs/types.js';
import {
  RECORDS_DATA_START,
  RECORDS_FILE,
  SLOT_HEADER_BYTES,
  VECTORS_FILE,
  stampIdHash,
} from './slot-codec.js';

/**
 * RECS v1 kept each record's 352-byte header and its vector side by side in records.dat; v2 keeps
 * headers in records.dat and vectors in vectors.dat (see slot-codec.ts for why). The bytes of a
 * vector are the same in both versions; a header gains its id checksum (bytes 84..88, reserved in
 * format 1) and is resealed, unless it is free or damaged, which it stays.
 */
registerMigration({
  kind: 'RECS',
  fromVersion: 1,
  toVersion: 2,
  migrateFields: ([dim]) => [dim, SLOT_HEADER_BYTES, 0, 0],
});

/**
 * RECS v3 gives a slot header its memory space (bytes 92..96), which format 2 kept reserved and
 * zero: zero is the default space, so a format-2 header reads as a memory of the default space
 * unchanged. Only the file header's version is rewritten (by the open that finds it).
 */
registerMigration({
  kind: 'RECS',
  fromVersion: 2,
  toVersion: 3,
  migrateFields: (f) => f,
});

const STAGED = '.migrating';

/**
 * Splits a v1 records.dat into v2 records.dat and vectors.dat. Crash-safe and repeatable: both
 * new files are written under temporary names and made durable, vectors.dat is renamed into place
 * first and records.dat last, so until the final rename the v1 file is intact and the next open
 * simply runs the migration again.
 */
export async function splitV1Records(
  fs: WsFileSystem,
  dir: string,
  dim: number,
  onProgress?: (done: number, total: number) => void,
): Promise<void> {
  const v1Slot = SLOT_HEADER_BYTES + dim * 4;
  const vecBytes = dim * 4;
  const src = fs.open(join(dir, RECORDS_FILE), 'r');
  const recTmp = join(dir, RECORDS_FILE + STAGED);
  const vecTmp = join(dir, VECTORS_FILE + STAGED);
  for (const p of [recTmp, vecTmp]) await fs.unlink(p).catch(() => undefined);
  const rec = fs.open(recTmp, 'excl');
  const vec = fs.open(vecTmp, 'excl');
  try {
    const slots = Math.max(0, Math.floor((src.size() - RECORDS_DATA_START) / v1Slot));
    const area = Buffer.alloc(RECORDS_DATA_START);
    encodeHeader('RECS', [dim, SLOT_HEADER_BYTES, 0, 0]).copy(area, 0);
    await writeFully(rec, area, 0);
    area.fill(0);
    encodeHeader('VECS', [dim, vecBytes, 0, 0]).copy(area, 0);
    await writeFully(vec, area, 0);
    const per = Math.max(1, Math.floor((8 * 1024 * 1024) / v1Slot));
    const inBuf = Buffer.allocUnsafe(per * v1Slot);
    const hBuf = Buffer.allocUnsafe(per * SLOT_HEADER_BYTES);
    const vBuf = Buffer.allocUnsafe(per * vecBytes);
    for (let first = 0; first < slots; first += per) {
      const n = Math.min(per, slots - first);
      await readFully(src, inBuf, 0, n * v1Slot, RECORDS_DATA_START + first * v1Slot);
      for (let i = 0; i < n; i++) {
        inBuf.copy(hBuf, i * SLOT_HEADER_BYTES, i * v1Slot, i * v1Slot + SLOT_HEADER_BYTES);
        // Format 1 left bytes 84..88 reserved; format 2 keeps the id's checksum there.
        stampIdHash(hBuf, i * SLOT_HEADER_BYTES);
        inBuf.copy(vBuf, i * vecBytes, i * v1Slot + SLOT_HEADER_BYTES, (i + 1) * v1Slot);
      }
      await writeFully(
        rec,
        hBuf.subarray(0, n * SLOT_HEADER_BYTES),
        RECORDS_DATA_START + first * SLOT_HEADER_BYTES,
      );
      await writeFully(vec, vBuf.subarray(0, n * vecBytes), RECORDS_DATA_START + first * vecBytes);
      onProgress?.(first + n, slots);
    }
    await vec.sync();
    await rec.sync();
  } finally {
    await src.close().catch(() => undefined);
    await rec.close().catch(() => undefined);
    await vec.close().catch(() => undefined);
  }
  await fs.rename(vecTmp, join(dir, VECTORS_FILE));
  await fs.syncDir(dir);
  await fs.rename(recTmp, join(dir, RECORDS_FILE));
  await fs.syncDir(dir);
}
