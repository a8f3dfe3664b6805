import { corruption } from '../errors.js';
import type { Keyspace } from './keyspace.js';
import type { RecordFiles } from './record-files.js';
import { HeaderVerifier, verifyHeadersInline } from './header-verifier.js';
import { SLOT_HEADER_BYTES, decodeSlot, loadSlotHeader } from './slot-codec.js';
import { CHUNK_SLOTS } from './table.js';

/**
 * Loads records.dat's slot headers into the keyspace, a table chunk (8192 slots) at a time, three
 * stages overlapping: chunk k+1 read, chunk k's header checksums checked on a worker thread, chunk
 * k-1 decoded here. Reads only. vectors.dat is not read: the
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
  // Shared, so the checksum worker reads them in place: chunk k+1 is read while chunk k's header
  // checksums are checked on the worker and chunk k-1 is decoded here.
  const hbufs = [0, 1, 2].map(() => Buffer.from(new SharedArrayBuffer(CHUNK_SLOTS * SLOT_HEADER_BYTES)));
  const vbuf = Buffer.allocUnsafe(files.vectorBytes);

  const readChunk = (ci: number): Promise<number> => {
    const first = ci * CHUNK_SLOTS;
    const n = Math.min(CHUNK_SLOTS, slots - first);
    table.ensure(first + n - 1);
    return files.readHeaders(first, n, hbufs[ci % 3]!);
  };

  const countOf = (ci: number): number => Math.min(CHUNK_SLOTS, slots - ci * CHUNK_SLOTS);

  const checkChunk = async (verifier: HeaderVerifier | undefined, ci: number): Promise<Set<number>> => {
    const hbuf = hbufs[ci % 3]!;
    const n = countOf(ci);
    let bad: number[];
    try {
      bad = verifier
        ? await verifier.verify(hbuf, n, SLOT_HEADER_BYTES)
        : verifyHeadersInline(hbuf, n, SLOT_HEADER_BYTES);
    } catch {
      bad = verifyHeadersInline(hbuf, n, SLOT_HEADER_BYTES);
    }
    return new Set(bad);
  };

  // A header without its norm (an older format) has it computed from its vector: one function for
  // the whole load, told the slot, rather than a closure made per slot (a million at 1M).
  let current = 0;
  const vectorOfCurrent = (): Float32Array => {
    files.readVectorSync(current, vbuf, 0);
    return new Float32Array(vbuf.buffer, vbuf.byteOffset, files.dim);
  };

  const decodeChunk = (ci: number, bad: Set<number>): void => {
    const first = ci * CHUNK_SLOTS;
    const n = countOf(ci);
    const hbuf = hbufs[ci % 3]!;
    const c = table.chunk(first);
    for (let i = 0; i < n; i++) {
      const slot = first + i;
      const pos = i * SLOT_HEADER_BYTES;
      current = slot;
      // Fast path: a valid header goes straight into the table (no object per record).
      const id =
        bad.size > 0 && bad.has(i) ? undefined : loadSlotHeader(hbuf, pos, c, i, vectorOfCurrent, true);
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

  const verifier = nChunks > 1 ? HeaderVerifier.create() : undefined;
  try {
    let reading = nChunks > 0 ? readChunk(0) : undefined;
    let checking: Promise<Set<number>> | undefined;
    for (let ci = 0; ci <= nChunks; ci++) {
      let next: Promise<Set<number>> | undefined;
      if (ci < nChunks) {
        await reading!;
        next = checkChunk(verifier, ci);
        next.catch(() => undefined);
        // Into the buffer of chunk ci-2, decoded in the previous round.
        reading = ci + 1 < nChunks ? readChunk(ci + 1) : undefined;
        // Settled later; a failure surfaces when it is awaited, never as an unhandled rejection.
        reading?.catch(() => undefined);
      }
      if (checking) decodeChunk(ci - 1, await checking);
      checking = next;
    }
  } finally {
    await verifier?.close().catch(() => undefined);
  }
}
