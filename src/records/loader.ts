import { corruption } from '../errors.js';
import type { Keyspace } from './keyspace.js';
import type { RecordFiles } from './record-files.js';
import {
  SLOT_HEADER_BYTES,
  decodeSlot,
  loadSlotHeader,
  looksFree,
  storedEmbeddingCrc,
} from './slot-codec.js';
import { CHUNK_SLOTS } from './table.js';
import { VectorVerifier, verifyVectorsInline } from './vector-verifier.js';

/**
 * Loads records.dat and vectors.dat into the keyspace, a table chunk (8192 slots) at a time. Reads
 * only. Three stages overlap: chunk k+1 is read straight into the table (no intermediate buffer),
 * a worker thread checks chunk k's vector checksums where they lie, and this thread decodes chunk
 * k-1's headers. A slot failing either checksum is held as corrupt: a checkpoint that crashed may
 * have torn it, and WAL replay may still rewrite it.
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
  const vecBytes = files.vectorBytes;
  const table = keyspace.table;
  const nChunks = Math.ceil(slots / CHUNK_SLOTS);
  const hbufs = [0, 1, 2].map(() => Buffer.allocUnsafe(CHUNK_SLOTS * SLOT_HEADER_BYTES));

  interface Loaded {
    first: number;
    n: number;
    hbuf: Buffer;
    /** Bytes of vectors read (vectors.dat may end early: a checkpoint cut short). */
    vgot: number;
    bad: Promise<Set<number>>;
  }
  const readChunk = (ci: number): Promise<[number, number]> => {
    const first = ci * CHUNK_SLOTS;
    const n = Math.min(CHUNK_SLOTS, slots - first);
    table.ensure(first + n - 1);
    const emb = table.chunk(first).emb;
    return Promise.all([
      files.readHeaders(first, n, hbufs[ci % 3]!),
      files.readVectors(first, n, new Uint8Array(emb.buffer, emb.byteOffset, n * vecBytes)),
    ]);
  };

  /** Rows of one chunk whose vector does not match its header's checksum. */
  const checkVectors = async (
    verifier: VectorVerifier | undefined,
    first: number,
    n: number,
    hbuf: Buffer,
    vgot: number,
  ): Promise<Set<number>> => {
    const rows = new Uint32Array(n);
    const expected = new Uint32Array(n);
    const bad = new Set<number>();
    let m = 0;
    for (let i = 0; i < n; i++) {
      const pos = i * SLOT_HEADER_BYTES;
      if (looksFree(hbuf, pos)) continue;
      if ((i + 1) * vecBytes > vgot) {
        bad.add(i);
        continue;
      }
      rows[m] = i;
      expected[m] = storedEmbeddingCrc(hbuf, pos);
      m++;
    }
    const emb = table.chunk(first).emb;
    const r = rows.subarray(0, m);
    const e = expected.subarray(0, m);
    let found: number[];
    try {
      found = verifier
        ? await verifier.verify(emb, vecBytes, r, e)
        : verifyVectorsInline(emb, vecBytes, r, e);
    } catch {
      found = verifyVectorsInline(emb, vecBytes, r, e);
    }
    for (const i of found) bad.add(i);
    return bad;
  };

  const decodeChunk = (l: Loaded, bad: Set<number>): void => {
    const c = table.chunk(l.first);
    const vview = Buffer.from(c.emb.buffer, c.emb.byteOffset, l.vgot);
    for (let i = 0; i < l.n; i++) {
      const slot = l.first + i;
      const pos = i * SLOT_HEADER_BYTES;
      // Fast path: a valid header goes straight into the table (no object per record).
      const id = bad.has(i) ? undefined : loadSlotHeader(l.hbuf, pos, c, i, files.dim);
      if (id !== undefined) {
        keyspace.load(id, slot, c.clsn[i]!);
        continue;
      }
      // The fast path declined: the slot is free or damaged, and decodeSlot says which and why.
      const d = decodeSlot(l.hbuf, pos, vview, i * vecBytes, files.dim, !bad.has(i));
      if (d.state === 'free') continue;
      if (d.state === 'used') throw new Error(`slot ${slot}: a valid header the loader declined`);
      const file = d.where === 'vector' ? files.vectorsPath : files.recordsPath;
      keyspace.markCorrupt(slot, d.id, d.reason, file, d.idHash);
    }
  };

  const verifier = nChunks > 1 ? VectorVerifier.create() : undefined;
  try {
    let reads = nChunks > 0 ? readChunk(0) : undefined;
    let prev: Loaded | undefined;
    for (let ci = 0; ci <= nChunks; ci++) {
      let cur: Loaded | undefined;
      if (ci < nChunks) {
        const [, vgot] = await reads!;
        reads = ci + 1 < nChunks ? readChunk(ci + 1) : undefined;
        // Settled later; a failure surfaces when it is awaited, never as an unhandled rejection.
        reads?.catch(() => undefined);
        const first = ci * CHUNK_SLOTS;
        const n = Math.min(CHUNK_SLOTS, slots - first);
        const hbuf = hbufs[ci % 3]!;
        cur = { first, n, hbuf, vgot, bad: checkVectors(verifier, first, n, hbuf, vgot) };
        cur.bad.catch(() => undefined);
      }
      if (prev) decodeChunk(prev, await prev.bad);
      prev = cur;
    }
  } finally {
    await verifier?.close().catch(() => undefined);
  }
}
