import { setImmediate as yieldImmediate } from 'node:timers/promises';
import type { SegmentSet } from '../content/segment-set.js';
import type { WarmStoreError } from '../errors.js';
import type { Keyspace } from '../records/keyspace.js';
import type { RecordFiles } from '../records/record-files.js';
import { SLOT_HEADER_BYTES, decodeSlot } from '../records/slot-codec.js';
import { CHUNK_MASK } from '../records/table.js';
import type { VerifyOptions, VerifyProblem, VerifyReport } from '../types.js';
import type { Reader } from './reader.js';

export interface VerifyDeps {
  keyspace: Keyspace;
  files: RecordFiles;
  segments: SegmentSet;
  reader: Reader;
  /** Makes records.dat current first, so every durable slot on disk can be compared. */
  checkpoint(): Promise<void>;
}

/**
 * fsck: reads every record and every content entry, checks every checksum and owner id, compares
 * each slot on disk with memory, and cross-checks the per-segment live counts against a recount.
 */
export async function verifyStore(d: VerifyDeps, options: VerifyOptions = {}): Promise<VerifyReport> {
  const ks = d.keyspace;
  const problems: VerifyProblem[] = [];
  let bytes = 0;
  let records = 0;
  for (const c of ks.corruptSlots()) {
    problems.push({
      kind: 'corrupt-record',
      id: c.id ?? `<slot ${c.slot}>`,
      file: c.file,
      message: c.reason,
    });
  }
  await d.checkpoint();
  const hbuf = Buffer.allocUnsafe(SLOT_HEADER_BYTES);
  const vbuf = Buffer.allocUnsafe(d.files.vectorBytes);
  for (let slot = 0; slot < ks.slotLimit; slot++) {
    if (!ks.isUsed(slot)) continue;
    records++;
    if (ks.isCorrupt(slot)) continue;
    const id = ks.table.id(slot)!;
    // A slot changed since the last checkpoint is not on disk yet (a write that ran after the
    // checkpoint above, or, in a read-only store, a WAL entry replayed in memory): nothing to compare.
    const onDisk = ks.table.chunk(slot).dirty[slot & CHUNK_MASK] === 0;
    if (onDisk) checkSlotOnDisk(d, slot, id, hbuf, vbuf, problems);
    bytes += await checkContent(d, slot, id, problems);
    if (records % 1024 === 0) {
      options.onProgress?.(records, ks.size);
      await yieldImmediate();
    }
  }
  // Garbage counts are cross-checked in one synchronous pass, so compaction or writes running
  // meanwhile cannot make the recount and the counters disagree.
  const recount = new Map<number, number>();
  for (let slot = 0; slot < ks.slotLimit; slot++) {
    // What the ledger counts: a slot a scrub found damaged still counts, one found at open does not.
    const live = ks.liveContent(slot);
    if (live) recount.set(live.seg, (recount.get(live.seg) ?? 0) + live.bytes);
  }
  for (const s of d.segments.values()) {
    const expected = recount.get(s.id) ?? 0;
    if (expected !== s.live) {
      problems.push({
        kind: 'garbage-count',
        file: s.path,
        message: `segment ${s.id} counts ${s.live} live bytes, records reference ${expected}`,
      });
    }
    if (s.live > s.totalBytes) {
      problems.push({
        kind: 'garbage-count',
        file: s.path,
        message: `segment ${s.id} has more live than total bytes`,
      });
    }
  }
  options.onProgress?.(records, ks.size);
  return { ok: problems.length === 0, records, segments: d.segments.count, bytesChecked: bytes, problems };
}

/** Reads and checks one record's content; a failure becomes a problem. Returns the bytes read. */
async function checkContent(
  d: VerifyDeps,
  slot: number,
  id: string,
  problems: VerifyProblem[],
): Promise<number> {
  try {
    return await d.reader.checkContent(slot);
  } catch (err) {
    const e = err as WarmStoreError;
    problems.push({
      kind: 'corrupt-content',
      id,
      file: (e.details?.file as string) ?? '',
      message: e.message,
    });
    return 0;
  }
}

/** Compares one slot's header and vector in the record files with the store's record. */
function checkSlotOnDisk(
  d: VerifyDeps,
  slot: number,
  id: string,
  hbuf: Buffer,
  vbuf: Buffer,
  problems: VerifyProblem[],
): void {
  const n = d.files.readHeaderSync(slot, hbuf, 0);
  const vn = d.files.readVectorSync(slot, vbuf, 0);
  const dec = n === SLOT_HEADER_BYTES ? decodeSlot(hbuf, 0, vbuf.subarray(0, vn), 0, d.files.dim) : undefined;
  if (!dec || dec.state !== 'used' || dec.value.id !== id) {
    problems.push({
      kind: 'corrupt-record',
      id,
      file: dec?.state === 'corrupt' && dec.where === 'vector' ? d.files.vectorsPath : d.files.recordsPath,
      message: dec?.state === 'corrupt' ? dec.reason : 'record on disk does not match the store',
    });
  }
}
