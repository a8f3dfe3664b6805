import { crc32c, crc32cRange } from '../format/crc.js';
import { FORMAT_VERSION } from '../format/header.js';
import type { MemoryMetadata } from '../types.js';
import { embeddingSummary } from '../format/embedding.js';

/**
 * WAL entry: 0 crc32c u32 (of bytes 4..end)  4 body length u32  8 LSN f64  16 body (type u8 + payload)
 * LSNs strictly increase; replay stops at the first entry that is torn, fails its checksum, or
 * does not increase the LSN (stale bytes from a failed batch that was cut back).
 */
export const WAL_ENTRY_HEADER = 16;

export enum WalType {
  Put = 1,
  Delete = 2,
  Touch = 3,
  CompactBegin = 4,
  CompactChunk = 5,
  CompactEnd = 6,
  /** Gives a memory space its number (written in the batch of the space's first put). */
  SpaceDefine = 7,
  /** Drops a memory space and every memory in it. */
  SpaceDrop = 8,
  /**
   * Moves a memory to a lower slot (compaction's relocation, so the record files can shrink).
   * WAL format 3 and later.
   */
  SlotMove = 9,
}

export enum ContentKind {
  Free = 0,
  Absent = 1,
  Empty = 2,
  Present = 3,
}

/**
 * What a put and a slot move record of a memory: its id, metadata, content reference and a summary
 * of its embedding, which the writer put in vectors.dat (at the slot the entry names) before the
 * entry was written.
 */
export interface RecordEntryBody extends MemoryMetadata {
  /** The memory space's number (0 in WAL format 1, which had no spaces). */
  space: number;
  id: string;
  idBytes: Buffer;
  kind: ContentKind;
  seg: number;
  off: number;
  clen: number;
  /** CRC32C of the embedding's bytes. */
  embCrc: number;
  /** The embedding's L2 norm. */
  norm: number;
  /**
   * The embedding itself, only in entries read from WAL formats 1 to 3, which carried it (replay
   * writes it to vectors.dat).
   */
  embedding?: Float32Array;
}

export interface PutEntry extends RecordEntryBody {
  type: WalType.Put;
  lsn: number;
  slot: number;
}
export interface DeleteEntry {
  type: WalType.Delete;
  lsn: number;
  slot: number;
  id: string;
}
export interface TouchEntry {
  type: WalType.Touch;
  lsn: number;
  slot: number;
  lastAccess: number;
  accessCount: number;
}
export interface CompactBeginEntry {
  type: WalType.CompactBegin;
  lsn: number;
  runId: number;
  victims: number[];
}
/** One staged pointer switch: applied only if the record still holds exactly the copied bytes. */
export interface Remap {
  slot: number;
  oldSeg: number;
  oldOff: number;
  /** The record's content generation (LSN of the put that wrote it) when it was copied. */
  expectedLsn: number;
  newOff: number;
}
export interface CompactChunkEntry {
  type: WalType.CompactChunk;
  lsn: number;
  runId: number;
  outSeg: number;
  outEnd: number;
  victimsDone: number[];
  remaps: Remap[];
}
export interface CompactEndEntry {
  type: WalType.CompactEnd;
  lsn: number;
  runId: number;
  outcome: number;
}
export interface SpaceDefineEntry {
  type: WalType.SpaceDefine;
  lsn: number;
  space: number;
  name: string;
}
export interface SpaceDropEntry {
  type: WalType.SpaceDrop;
  lsn: number;
  space: number;
}
/**
 * A memory moved from slot `from` to the free slot `to`, keeping its id, metadata, content
 * reference and embedding (and its content generation: `expectedLsn`, the LSN of the put that
 * wrote it). The embedding was copied to `to` in vectors.dat (and made durable) before this entry
 * was written; the entry carries the rest of the record as it was when the move committed, so
 * replay can place it even when a checkpoint torn by a crash left neither header readable.
 */
export interface SlotMoveEntry extends RecordEntryBody {
  type: WalType.SlotMove;
  lsn: number;
  from: number;
  to: number;
  /** The record's content generation (LSN of the put that wrote it), which the move keeps. */
  expectedLsn: number;
}
export type WalEntry =
  | SlotMoveEntry
  | PutEntry
  | DeleteEntry
  | TouchEntry
  | CompactBeginEntry
  | CompactChunkEntry
  | CompactEndEntry
  | SpaceDefineEntry
  | SpaceDropEntry;
export type WalEntryInput = WalEntry extends infer E ? (E extends WalEntry ? Omit<E, 'lsn'> : never) : never;

/** Exact encoded size, so a batch is encoded into one buffer without growing it. */
export function walEntrySize(e: WalEntryInput): number {
  let body = 1;
  switch (e.type) {
    case WalType.Put:
      body += 4 + 4 + 1 + 1 + 4 + 4 + 8 * 7 + e.idBytes.length + EMBEDDING_SUMMARY;
      break;
    case WalType.SpaceDefine:
      body += 4 + 1 + Buffer.byteLength(e.name);
      break;
    case WalType.SpaceDrop:
      body += 4;
      break;
    case WalType.Delete:
      body += 4 + 1 + Buffer.byteLength(e.id);
      break;
    case WalType.Touch:
      body += 4 + 16;
      break;
    case WalType.CompactBegin:
      body += 8 + 4 * e.victims.length;
      break;
    case WalType.CompactChunk:
      body += 4 + 4 + 8 + 4 + 4 * e.victimsDone.length + 4 + 32 * e.remaps.length;
      break;
    case WalType.CompactEnd:
      body += 5;
      break;
    case WalType.SlotMove:
      body += SLOT_MOVE_FIXED + e.idBytes.length + EMBEDDING_SUMMARY;
      break;
  }
  return WAL_ENTRY_HEADER + body;
}

/** What format 4 writes of an embedding after a record's id: its CRC32C (u32) and norm (f32). */
const EMBEDDING_SUMMARY = 8;

/** A slot move's bytes before its id: from, to, space, expected LSN, kind, id length, seg, clen, 7 f64. */
const SLOT_MOVE_FIXED = 4 + 4 + 4 + 8 + 1 + 1 + 4 + 4 + 8 * 7;

/** A u32, then a string of at most 255 UTF-8 bytes after its u8 length; returns the new position. */
function writeNumberAndName(b: Buffer, pos: number, n: number, name: string): number {
  b.writeUInt32LE(n, pos);
  const len = b.write(name, pos + 5, 'utf8');
  b[pos + 4] = len;
  return pos + 5 + len;
}

/** Set on the type byte of the first entry of each group commit. */
export const BATCH_START = 0x80;

export function encodeWalEntry(
  b: Buffer,
  pos: number,
  lsn: number,
  e: WalEntryInput,
  batchStart = false,
): number {
  const start = pos;
  pos += 8;
  b.writeDoubleLE(lsn, pos);
  pos += 8;
  b[pos++] = e.type | (batchStart ? BATCH_START : 0);
  switch (e.type) {
    case WalType.Put: {
      b.writeUInt32LE(e.slot, pos);
      b.writeUInt32LE(e.space, pos + 4);
      pos = writeRecordBody(b, pos + 8, e);
      break;
    }
    case WalType.Delete:
      pos = writeNumberAndName(b, pos, e.slot, e.id);
      break;
    case WalType.Touch:
      b.writeUInt32LE(e.slot, pos);
      b.writeDoubleLE(e.lastAccess, pos + 4);
      b.writeDoubleLE(e.accessCount, pos + 12);
      pos += 20;
      break;
    case WalType.CompactBegin:
      b.writeUInt32LE(e.runId, pos);
      b.writeUInt32LE(e.victims.length, pos + 4);
      pos += 8;
      for (const v of e.victims) {
        b.writeUInt32LE(v, pos);
        pos += 4;
      }
      break;
    case WalType.CompactChunk:
      b.writeUInt32LE(e.runId, pos);
      b.writeUInt32LE(e.outSeg, pos + 4);
      b.writeDoubleLE(e.outEnd, pos + 8);
      b.writeUInt32LE(e.victimsDone.length, pos + 16);
      pos += 20;
      for (const v of e.victimsDone) {
        b.writeUInt32LE(v, pos);
        pos += 4;
      }
      b.writeUInt32LE(e.remaps.length, pos);
      pos += 4;
      for (const r of e.remaps) {
        b.writeUInt32LE(r.slot, pos);
        b.writeUInt32LE(r.oldSeg, pos + 4);
        b.writeDoubleLE(r.oldOff, pos + 8);
        b.writeDoubleLE(r.expectedLsn, pos + 16);
        b.writeDoubleLE(r.newOff, pos + 24);
        pos += 32;
      }
      break;
    case WalType.CompactEnd:
      b.writeUInt32LE(e.runId, pos);
      b[pos + 4] = e.outcome;
      pos += 5;
      break;
    case WalType.SpaceDefine:
      pos = writeNumberAndName(b, pos, e.space, e.name);
      break;
    case WalType.SpaceDrop:
      b.writeUInt32LE(e.space, pos);
      pos += 4;
      break;
    case WalType.SlotMove: {
      b.writeUInt32LE(e.from, pos);
      b.writeUInt32LE(e.to, pos + 4);
      b.writeUInt32LE(e.space, pos + 8);
      b.writeDoubleLE(e.expectedLsn, pos + 12);
      pos = writeRecordBody(b, pos + 20, e);
      break;
    }
  }
  // body length excludes the LSN; crc covers length, LSN and body.
  b.writeUInt32LE(pos - start - WAL_ENTRY_HEADER, start + 4);
  b.writeUInt32LE(crc32cRange(b, start + 4, pos), start);
  return pos - start;
}

export interface DecodeResult {
  entries: WalEntry[];
  /** Offset just past the last valid entry. */
  validEnd: number;
  /** Why decoding stopped before the end of the buffer, if it did. */
  stopReason?: string;
  /**
   * Offset of an intact batch found after the damaged entry. Batches are written one after the
   * other, each only after the previous one was fsynced, so a complete later batch means the
   * damage is not a torn tail but corruption of acknowledged entries.
   */
  laterBatchAt?: number;
  /**
   * Index in `entries` of the first entry of the last batch decoded (0 when no entry marks a
   * batch start). Only the last batch of a file can be one that was never acknowledged.
   */
  lastBatch: number;
}

/**
 * Decodes entries from `start`; stops (without throwing) at a torn or stale tail. `version` is the
 * file's WAL format: version 1 puts carry no memory space (they belong to the default one).
 */
export function decodeWal(
  b: Buffer,
  start: number,
  dimension: number,
  afterLsn: number,
  version: number = FORMAT_VERSION.WALG,
): DecodeResult {
  const entries: WalEntry[] = [];
  let pos = start;
  let lastLsn = afterLsn;
  let lastBatch = 0;
  while (pos < b.length) {
    if (b.length - pos < WAL_ENTRY_HEADER + 1)
      return { entries, validEnd: pos, stopReason: 'torn entry header', lastBatch };
    const bodyLen = b.readUInt32LE(pos + 4);
    const end = pos + WAL_ENTRY_HEADER + bodyLen;
    if (bodyLen < 1 || end > b.length) return { entries, validEnd: pos, stopReason: 'torn entry', lastBatch };
    if (crc32c(b.subarray(pos + 4, end)) !== b.readUInt32LE(pos)) {
      const later = findLaterBatch(b, end);
      return {
        entries,
        validEnd: pos,
        stopReason: 'checksum mismatch',
        lastBatch,
        ...(later === undefined ? {} : { laterBatchAt: later }),
      };
    }
    const lsn = b.readDoubleLE(pos + 8);
    if (!(lsn > lastLsn))
      return { entries, validEnd: pos, stopReason: 'stale entry (LSN does not increase)', lastBatch };
    const e = decodeBody(b, pos + WAL_ENTRY_HEADER, end, lsn, dimension, version);
    if (!e) return { entries, validEnd: pos, stopReason: 'malformed entry', lastBatch };
    if (((b[pos + WAL_ENTRY_HEADER] ?? 0) & BATCH_START) !== 0) lastBatch = entries.length;
    entries.push(e);
    lastLsn = lsn;
    pos = end;
  }
  return { entries, validEnd: pos, lastBatch };
}

/** Walks intact entries from `pos` (just past a damaged one) looking for a batch start. */
function findLaterBatch(b: Buffer, pos: number): number | undefined {
  while (pos + WAL_ENTRY_HEADER + 1 <= b.length) {
    const len = b.readUInt32LE(pos + 4);
    const end = pos + WAL_ENTRY_HEADER + len;
    if (len < 1 || end > b.length) return undefined;
    if (crc32c(b.subarray(pos + 4, end)) !== b.readUInt32LE(pos)) return undefined;
    if (((b[pos + WAL_ENTRY_HEADER] ?? 0) & BATCH_START) !== 0) return pos;
    pos = end;
  }
  return undefined;
}

function decodeBody(
  b: Buffer,
  pos: number,
  end: number,
  lsn: number,
  dim: number,
  version: number,
): WalEntry | undefined {
  const type = (b[pos++] ?? 0) & ~BATCH_START;
  switch (type) {
    case WalType.Put: {
      const slot = b.readUInt32LE(pos);
      // Format 1 had no spaces: every memory is in space 0.
      const space = version >= 2 ? b.readUInt32LE(pos + 4) : 0;
      const body = readRecordBody(b, pos + (version >= 2 ? 8 : 4), end, dim, version);
      return body && { type: WalType.Put, lsn, slot, space, ...body };
    }
    case WalType.Delete: {
      const slot = b.readUInt32LE(pos);
      const n = b[pos + 4] ?? 0;
      if (pos + 5 + n !== end) return undefined;
      return { type: WalType.Delete, lsn, slot, id: b.toString('utf8', pos + 5, pos + 5 + n) };
    }
    case WalType.Touch:
      if (pos + 20 !== end) return undefined;
      return {
        type: WalType.Touch,
        lsn,
        slot: b.readUInt32LE(pos),
        lastAccess: b.readDoubleLE(pos + 4),
        accessCount: b.readDoubleLE(pos + 12),
      };
    case WalType.CompactBegin: {
      const runId = b.readUInt32LE(pos);
      const n = b.readUInt32LE(pos + 4);
      pos += 8;
      if (pos + n * 4 !== end) return undefined;
      const victims: number[] = [];
      for (let i = 0; i < n; i++, pos += 4) victims.push(b.readUInt32LE(pos));
      return { type: WalType.CompactBegin, lsn, runId, victims };
    }
    case WalType.CompactChunk: {
      const runId = b.readUInt32LE(pos);
      const outSeg = b.readUInt32LE(pos + 4);
      const outEnd = b.readDoubleLE(pos + 8);
      const nd = b.readUInt32LE(pos + 16);
      pos += 20;
      const victimsDone: number[] = [];
      for (let i = 0; i < nd; i++, pos += 4) victimsDone.push(b.readUInt32LE(pos));
      const n = b.readUInt32LE(pos);
      pos += 4;
      if (pos + n * 32 !== end) return undefined;
      const remaps: Remap[] = [];
      for (let i = 0; i < n; i++, pos += 32) {
        remaps.push({
          slot: b.readUInt32LE(pos),
          oldSeg: b.readUInt32LE(pos + 4),
          oldOff: b.readDoubleLE(pos + 8),
          expectedLsn: b.readDoubleLE(pos + 16),
          newOff: b.readDoubleLE(pos + 24),
        });
      }
      return { type: WalType.CompactChunk, lsn, runId, outSeg, outEnd, victimsDone, remaps };
    }
    case WalType.CompactEnd:
      if (pos + 5 !== end) return undefined;
      return { type: WalType.CompactEnd, lsn, runId: b.readUInt32LE(pos), outcome: b[pos + 4] ?? 0 };
    case WalType.SpaceDefine: {
      const n = b[pos + 4] ?? 0;
      if (version < 2 || pos + 5 + n !== end) return undefined;
      return {
        type: WalType.SpaceDefine,
        lsn,
        space: b.readUInt32LE(pos),
        name: b.toString('utf8', pos + 5, pos + 5 + n),
      };
    }
    case WalType.SpaceDrop:
      if (version < 2 || pos + 4 !== end) return undefined;
      return { type: WalType.SpaceDrop, lsn, space: b.readUInt32LE(pos) };
    case WalType.SlotMove: {
      if (version < 3 || pos + SLOT_MOVE_FIXED > end) return undefined;
      const from = b.readUInt32LE(pos);
      const to = b.readUInt32LE(pos + 4);
      const space = b.readUInt32LE(pos + 8);
      const expectedLsn = b.readDoubleLE(pos + 12);
      const body = readRecordBody(b, pos + 20, end, dim, version);
      return body && { type: WalType.SlotMove, lsn, from, to, space, expectedLsn, ...body };
    }
    default:
      return undefined;
  }
}

/** What a put and a slot move both carry of a record, after their own leading fields. */
type RecordBody = Omit<RecordEntryBody, 'space'>;

/**
 * Writes a record's body at `pos`: content kind (u8), id length (u8), segment (u32), content length
 * (u32), offset and the six metadata numbers (f64 each), the id, then the embedding's CRC32C (u32)
 * and norm (f32): the embedding itself is in vectors.dat (formats 1 to 3 carried it here, after
 * the id). Returns the end.
 */
function writeRecordBody(b: Buffer, pos: number, e: Omit<RecordBody, 'id'>): number {
  b[pos] = e.kind;
  b[pos + 1] = e.idBytes.length;
  b.writeUInt32LE(e.seg, pos + 2);
  b.writeUInt32LE(e.clen, pos + 6);
  // One write per field (no array of them): a put encodes this once.
  b.writeDoubleLE(e.off, pos + 10);
  b.writeDoubleLE(e.confidence, pos + 18);
  b.writeDoubleLE(e.activation, pos + 26);
  b.writeDoubleLE(e.decayRate, pos + 34);
  b.writeDoubleLE(e.createdAt, pos + 42);
  b.writeDoubleLE(e.lastAccess, pos + 50);
  b.writeDoubleLE(e.accessCount, pos + 58);
  pos += 66;
  // TypedArray set, not Buffer#copy: no view of the target is made.
  b.set(e.idBytes, pos);
  pos += e.idBytes.length;
  b.writeUInt32LE(e.embCrc, pos);
  b.writeFloatLE(e.norm, pos + 4);
  return pos + EMBEDDING_SUMMARY;
}

/** Reads what `writeRecordBody` wrote, which must end exactly at `end`; undefined if it does not. */
function readRecordBody(
  b: Buffer,
  pos: number,
  end: number,
  dim: number,
  version: number,
): RecordBody | undefined {
  const kind = b[pos] as ContentKind;
  const idLen = b[pos + 1] ?? 0;
  const seg = b.readUInt32LE(pos + 2);
  const clen = b.readUInt32LE(pos + 6);
  pos += 10;
  const f: number[] = [];
  for (let i = 0; i < 7; i++, pos += 8) f.push(b.readDoubleLE(pos));
  const carried = version < 4;
  if (pos + idLen + (carried ? dim * 4 : EMBEDDING_SUMMARY) !== end) return undefined;
  const idBytes = Buffer.from(b.subarray(pos, pos + idLen));
  pos += idLen;
  let summary: { embCrc: number; norm: number; embedding?: Float32Array };
  if (carried) {
    const embedding = new Float32Array(dim);
    Buffer.from(embedding.buffer).set(b.subarray(pos, pos + dim * 4));
    summary = { ...embeddingSummary(embedding), embedding };
  } else {
    summary = { embCrc: b.readUInt32LE(pos), norm: b.readFloatLE(pos + 4) };
  }
  return {
    id: idBytes.toString('utf8'),
    idBytes,
    kind,
    seg,
    off: f[0]!,
    clen,
    confidence: f[1]!,
    activation: f[2]!,
    decayRate: f[3]!,
    createdAt: f[4]!,
    lastAccess: f[5]!,
    accessCount: f[6]!,
    ...summary,
  };
}
