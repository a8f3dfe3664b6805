import { corruption } from '../errors.js';
import type { Keyspace } from './keyspace.js';
import type { RecordFiles } from './record-files.js';
import { SLOT_HEADER_BYTES, decodeSlot, loadSlotHeader } from './slot-codec.js';
import { CHUNK_SLOTS } from './table.js';

/**
 * Loads records.dat's slot headers into the keyspace, a table chunk (8192 slots) at a time, the
 * read of chunk k+1 overlapping the decoding of chunk k. Reads only. vectors.dat is not read: the
 * embeddings stay in the file and each is checked against its header's CRC32C when it is read
 * (`get`, iteration, `verify`). A header failing its checksum is held as corrupt: a checkpoint that
 * crashed may have torn it, and WAL replay may still rewrite it.
 *
 * `expectedSlots` is how many slots the last checkpoint left in the files (from the MANIFEST): a
 * records.dat holding fewer was cut short, and its missing records would otherwise read as absent.
 * Files holding more are read only that far: past it lie slots a compaction freed before a crash
 * stopped it from cutting the files (the next checkpoint cuts them), or slots a later, unfinished
 * checkpoint wrote, which WAL replay writes again.
 */
export async function loadRecords(
  files: RecordFiles,
  keyspace: Keyspace,
  expectedSlots: number | undefined,
): Promise<void> {
  const found = files.headerSlots();
  if (expectedSlots !== undefined && found < expectedSlots) {
    throw corruption(
      `records.dat holds ${found} slot headers but the last checkpoint wrote ${expectedSlots}: the file was cut short`,
      { file: files.recordsPath, expectedSlots, foundSlots: found },
    );
  }
  const slots = expectedSlots === undefined ? found : expectedSlots;
  const table = keyspace.table;
  keyspace.reserveIndex(slots);
  const nChunks = Math.ceil(slots / CHUNK_SLOTS);
  const hbufs = [0, 1].map(() => Buffer.allocUnsafe(CHUNK_SLOTS * SLOT_HEADER_BYTES));
  const vbuf = Buffer.allocUnsafe(files.vectorBytes);

  const readChunk = (ci: number): Promise<number> => {
    const first = ci * CHUNK_SLOTS;
    const n = Math.min(CHUNK_SLOTS, slots - first);
    table.ensure(first + n - 1);
    return files.readHeaders(first, n, hbufs[ci % 2]!);
  };

  const decodeChunk = (ci: number): void => {
    const first = ci * CHUNK_SLOTS;
    const n = Math.min(CHUNK_SLOTS, slots - first);
    const hbuf = hbufs[ci % 2]!;
    const c = table.chunk(first);
    for (let i = 0; i < n; i++) {
      const slot = first + i;
      const pos = i * SLOT_HEADER_BYTES;
      // Fast path: a valid header goes straight into the table (no object per record).
      const id = loadSlotHeader(hbuf, pos, c, i, () => {
        files.readVectorSync(slot, vbuf, 0);
        return new Float32Array(vbuf.buffer, vbuf.byteOffset, files.dim);
      });
      if (id !== undefined) {
        // The header's id checksum (verified with it) is the index's hash: no string hashing.
        keyspace.load(id, slot, c.clsn[i]!, hbuf.readUInt32LE(pos + 84));
        continue;
      }
      // The fast path declined: the slot is free or damaged, and decodeSlot says which and why.
      const d = decodeSlot(hbuf, pos, undefined, 0, files.dim);
      if (d.state === 'free') continue;
      if (d.state === 'used') throw new Error(`slot ${slot}: a valid header the loader declined`);
      keyspace.markCorrupt(slot, d.id, d.reason, files.recordsPath, d.idHash);
    }
  };

  let reading = nChunks > 0 ? readChunk(0) : undefined;
  for (let ci = 0; ci < nChunks; ci++) {
    await reading!;
    reading = ci + 1 < nChunks ? readChunk(ci + 1) : undefined;
    // Settled later; a failure surfaces when it is awaited, never as an unhandled rejection.
    reading?.catch(() => undefined);
    decodeChunk(ci);
  }
}
