import { dirname, join } from 'node:path';
import { SegmentSet } from '../content/segment-set.js';
import { Segment, entryBytes, parseSegmentFileName, verifyEntry } from '../content/segment.js';
import { WarmStoreError, corruption, invalid, ioError } from '../errors.js';
import { crc32c } from '../format/crc.js';
import { HEADER_BYTES, encodeHeader } from '../format/header.js';
import { MANIFEST_FILE, writeManifest, type Manifest } from '../format/manifest.js';
import { writeFully } from '../fs/io.js';
import type { WsFileSystem } from '../fs/types.js';
import { Keyspace } from '../records/keyspace.js';
import { SpaceRegistry } from '../records/spaces.js';
import { loadRecords } from '../records/loader.js';
import { RecordFiles } from '../records/record-files.js';
import { RECORDS_DATA_START, RECORDS_FILE, VECTORS_FILE, slotBytesFor } from '../records/slot-codec.js';
import { CHUNK_MASK } from '../records/table.js';
import type { Durability, InterruptedCompaction, WarmStoreLogger } from '../types.js';
import { ContentKind, WalType, type WalEntry } from '../wal/entries.js';
import { parseWalFileName, readWalFile, walFileName, walFilesFrom } from '../wal/log.js';
import { CompactionJournal } from './compaction-journal.js';
import { Transitions } from './transitions.js';

/** What recovery found: the loaded state, and the repairs it leaves to `repair`. */
export interface Recovered {
  manifest: Manifest;
  dim: number;
  files: RecordFiles;
  keyspace: Keyspace;
  segments: SegmentSet;
  journal: CompactionJournal;
  /** The state transitions replay went through; live commits go through the same. */
  transitions: Transitions;
  lastLsn: number;
  /** The segment the newest content went to: appends continue there. */
  activeSegment: number;
  /** The WAL file number writing starts at (past every file replayed). */
  nextWalNo: number;
  interrupted: InterruptedCompaction | undefined;
  /** Uncommitted output of an interrupted compaction, to cut off the files. */
  cuts: { seg: Segment; end: number }[];
  /** Segment files whose header never became durable and that nothing refers to. */
  strayFiles: string[];
}

export interface RecoveryContext {
  fs: WsFileSystem;
  dir: string;
  manifest: Manifest;
  /** The dimension the caller asked for, checked against the store's. */
  dimension: number | undefined;
  logger: WarmStoreLogger | undefined;
  /** Open every file for reading only, and refuse a format-1 records.dat (migrating writes). */
  readOnly?: boolean;
}

/**
 * Creates the files of a new store, the MANIFEST last: until it exists, nothing was ever
 * acknowledged, and a crashed creation's leftovers are removed by the next attempt.
 */
export async function createStore(
  fs: WsFileSystem,
  dir: string,
  dim: number,
  durability: Durability,
): Promise<Manifest> {
  const names = await listDir(fs, dir);
  const storeFiles = names.filter(
    (n) =>
      n === RECORDS_FILE ||
      n === VECTORS_FILE ||
      parseWalFileName(n) !== undefined ||
      parseSegmentFileName(n) !== undefined,
  );
  for (const n of storeFiles) {
    const path = join(dir, n);
    let size = 0;
    try {
      const f = fs.open(path, 'r');
      size = f.size();
      f.closeSync();
    } catch (err) {
      throw ioError('stat', path, err);
    }
    const empty =
      n === RECORDS_FILE || n === VECTORS_FILE ? size <= RECORDS_DATA_START : size <= HEADER_BYTES;
    if (!empty) {
      throw corruption(`${n} holds data but the MANIFEST is missing`, { file: join(dir, MANIFEST_FILE) });
    }
  }
  for (const n of storeFiles) await fs.unlink(join(dir, n)).catch(() => undefined);
  try {
    await RecordFiles.create(fs, dir, dim);
    const seg = Segment.create(fs, dir, 1);
    try {
      await seg.file.sync();
    } finally {
      await seg.file.close().catch(() => undefined);
    }
    const w = fs.open(join(dir, walFileName(1)), 'excl');
    try {
      await writeFully(w, encodeHeader('WALG', [1, durability === 'relaxed' ? 1 : 0, 0, 0]), 0);
      await w.sync();
    } finally {
      await w.close().catch(() => undefined);
    }
    await fs.syncDir(dir);
    // The store directory itself may be new: its entry in the parent must be durable too.
    await fs.syncDir(dirname(dir));
  } catch (err) {
    throw ioError('create store', dir, err);
  }
  const m: Manifest = {
    dimension: dim,
    slotBytes: slotBytesFor(dim),
    walFileNo: 1,
    checkpointLsn: 0,
    nextSegmentId: 2,
    activeSegment: 1,
    nextCompactionRunId: 1,
    compaction: null,
    createdAt: Date.now(),
    slots: 0,
    spaces: { default: 0 },
    nextSpaceId: 1,
  };
  await writeManifest(fs, dir, m);
  return m;
}

/**
 * Loads a store's state from its files: records, segments, then every WAL file from the
 * checkpointed one on, replayed through the same transitions live commits use. Changes nothing on
 * disk (but for the one-time, crash-safe split of a format-1 records.dat); what needs repairing
 * is returned for `repair`.
 */
export async function recover(ctx: RecoveryContext): Promise<Recovered> {
  const { fs, dir, manifest, logger } = ctx;
  const dim = manifest.dimension;
  if (ctx.dimension !== undefined && ctx.dimension !== dim) {
    throw invalid('dimension', `the store was created with dimension ${dim}, not ${ctx.dimension}`);
  }
  if (manifest.slotBytes !== slotBytesFor(dim)) {
    throw corruption(`manifest slot size ${manifest.slotBytes} does not match dimension ${dim}`, {
      file: join(dir, MANIFEST_FILE),
    });
  }
  const names = await listDir(fs, dir);
  const readOnly = ctx.readOnly === true;
  const files = await RecordFiles.open(fs, dir, dim, logger, readOnly);
  const segments = new SegmentSet(fs, dir, manifest.nextSegmentId);
  try {
    const keyspace = new Keyspace(dim, new SpaceRegistry(manifest.spaces, manifest.nextSpaceId));
    keyspace.table.attachVectors(files.vectorSource());
    await loadRecords(files, keyspace, manifest.slots);
    const badSegments = segments.openAll(names, readOnly);
    const journal = new CompactionJournal(manifest.compaction, manifest.nextCompactionRunId);
    const transitions = new Transitions(keyspace, segments, journal);

    const walNos = walFilesFrom(names, manifest.walFileNo);
    let lastLsn = manifest.checkpointLsn;
    let activeSegment = manifest.activeSegment;
    const wals: NonNullable<Awaited<ReturnType<typeof readWalFile>>>[] = [];
    let readLsn = lastLsn;
    for (const no of walNos) {
      const wal = await readWalFile(fs, dir, no, dim, readLsn, logger);
      if (!wal) continue;
      wals.push(wal);
      readLsn = wal.entries.at(-1)?.lsn ?? readLsn;
    }
    // The last entry of the tail to write each slot's vector: only its vector is still in the
    // file (a slot freed and reused later holds the later put's).
    const lastWriter = new Map<number, WalEntry>();
    for (const wal of wals) {
      for (const e of wal.entries) {
        if (e.type === WalType.Put) lastWriter.set(e.slot, e);
        else if (e.type === WalType.SlotMove) lastWriter.set(e.to, e);
      }
    }
    replay: for (const wal of wals) {
      for (let i = 0; i < wal.entries.length; i++) {
        if (i === wal.lastBatch && !wal.relaxed) {
          // Under synchronous durability a batch's WAL entries are written while its content and
          // vectors are made durable (one wait a batch, not two), so a file's last batch (never
          // acknowledged: the next batch starts only once all its writes are durable; a later
          // file follows one whose cut back failed) may name bytes that did not land. Such a
          // batch is dropped whole: none of its ops was acknowledged, and a memory it replaced is
          // still whole in its old slot and content, which stay its own until the batch applies.
          const lost = unlandedEntry(wal.entries, i, lastWriter, files, segments);
          if (lost) {
            logger?.warn(
              { file: wal.path, lsn: lost.lsn, dropped: wal.entries.length - i },
              'a write batch never acknowledged lost its content or embeddings in the crash; it is dropped',
            );
            // Their LSNs are not handed out again (see Writer: gaps are fine, reuse is not).
            lastLsn = Math.max(lastLsn, wal.entries.at(-1)!.lsn);
            continue replay;
          }
        }
        const e = wal.entries[i]!;
        if (wal.relaxed && e.type === WalType.Put && e.kind === ContentKind.Present) {
          const seg = segments.get(e.seg);
          if (!seg || e.off + entryBytes(e.idBytes.length, e.clen) > seg.end) {
            logger?.warn(
              { file: wal.path, lsn: e.lsn, segment: e.seg },
              'relaxed durability: WAL entries past here lost their content in the crash; cut',
            );
            break replay;
          }
        }
        if ((e.type === WalType.Put || e.type === WalType.SlotMove) && e.embedding) {
          // WAL formats before 4 carried the embedding; it goes where format 4 keeps it.
          writeCarriedVector(files, e.type === WalType.Put ? e.slot : e.to, e.embedding, readOnly);
        } else if (
          wal.relaxed &&
          e.type === WalType.Put &&
          lastWriter.get(e.slot) === e &&
          !vectorLanded(files, e.slot, e.embCrc)
        ) {
          // Relaxed durability syncs vectors.dat and the WAL on a timer, and the kernel may have
          // flushed the WAL page without the vector's: as with lost content, replay stops here.
          logger?.warn(
            { file: wal.path, lsn: e.lsn, slot: e.slot },
            'relaxed durability: WAL entries past here lost their embedding in the crash; cut',
          );
          break replay;
        }
        if (
          wal.relaxed &&
          e.type === WalType.SlotMove &&
          !e.embedding &&
          lastWriter.get(e.to) === e &&
          !vectorLanded(files, e.to, e.embCrc)
        ) {
          // Under relaxed durability any relocation batch may have lost its copied vectors (the
          // memory is still whole in `from`): replay stops, as for a put.
          logger?.warn(
            { file: wal.path, lsn: e.lsn, from: e.from, to: e.to },
            'relaxed durability: WAL entries past here lost a moved embedding in the crash; cut',
          );
          break replay;
        }
        transitions.apply(e);
        if (e.type === WalType.Put && e.kind === ContentKind.Present)
          activeSegment = Math.max(activeSegment, e.seg);
        lastLsn = e.lsn;
      }
    }

    // Slots still unreadable after replay are real corruption: loud, but the store stays usable.
    for (const c of keyspace.corruptSlots()) logger?.error({ ...c }, 'corrupt record');

    const table = keyspace.table;
    for (let s = 0; s < keyspace.slotLimit; s++) {
      if (table.isUsed(s)) lastLsn = Math.max(lastLsn, table.chunk(s).clsn[s & CHUNK_MASK]!);
    }

    // An interrupted compaction: its uncommitted output is cut (logically now, on disk in repair).
    const cuts: Recovered['cuts'] = [];
    let interrupted: InterruptedCompaction | undefined;
    const run = journal.current;
    if (run) {
      let discarded = 0;
      for (const [idText, end] of Object.entries(run.outputs)) {
        const seg = segments.get(Number(idText));
        if (seg && seg.end > end) {
          discarded += seg.end - end;
          seg.end = end;
          cuts.push({ seg, end });
        }
      }
      const done = new Set(run.victimsDone);
      interrupted = {
        runId: run.runId,
        committedChunks: run.committedChunks,
        discardedBytes: discarded,
        victimsRemaining: run.victims.filter((v) => !done.has(v) && segments.has(v)),
      };
      logger?.warn({ ...interrupted }, 'found an interrupted compaction');
      journal.end();
    }

    // Slots of spaces dropped before the crash: a drop is durable before its slots are swept.
    keyspace.dropDeadSpaceIndexes();
    const swept = transitions.sweep(0, keyspace.slotLimit);
    if (swept > 0) logger?.info({ swept }, 'freed the slots of dropped memory spaces');
    checkReferences(keyspace, segments, badSegments);
    keyspace.rebuildFreeList();
    const lastWal = walNos.length > 0 ? walNos[walNos.length - 1]! : manifest.walFileNo - 1;
    return {
      manifest,
      dim,
      files,
      keyspace,
      segments,
      journal,
      transitions,
      lastLsn,
      activeSegment,
      nextWalNo: Math.max(lastWal, manifest.walFileNo) + 1,
      interrupted,
      cuts,
      strayFiles: [...badSegments.keys()].map((id) => segments.path(id)),
    };
  } catch (err) {
    await files.close();
    await segments.closeAll();
    throw err;
  }
}

/**
 * The writes recovery leaves behind: cut an interrupted compaction's uncommitted output, delete
 * segment files that never became durable, and pick the segment appends continue in. The caller
 * then starts a fresh WAL and runs the recovery checkpoint.
 */
export async function repair(fs: WsFileSystem, r: Recovered): Promise<void> {
  if (r.files.olderHeader) await r.files.stampVersion();
  for (const { seg, end } of r.cuts) {
    try {
      await seg.file.truncate(end);
      await seg.file.sync();
    } catch (err) {
      throw ioError('truncate', seg.path, err);
    }
  }
  for (const path of r.strayFiles) await fs.unlink(path).catch(() => undefined);
  r.segments.activate(r.activeSegment);
}

/**
 * Recounts every segment's live bytes from the records, and holds as corrupt a record whose
 * content reference names a missing segment or runs past a segment's end. A damaged segment that
 * nothing refers to is left in `bad` (a creation that never became durable).
 */
function checkReferences(keyspace: Keyspace, segments: SegmentSet, bad: Map<number, string>): void {
  segments.resetLive();
  const table = keyspace.table;
  for (let s = 0; s < keyspace.slotLimit; s++) {
    if (!table.isUsed(s) || keyspace.isCorrupt(s)) continue;
    const c = table.chunk(s);
    const i = s & CHUNK_MASK;
    if (c.kind[i] !== ContentKind.Present) continue;
    const segId = c.seg[i]!;
    const seg = segments.get(segId);
    const size = entryBytes(c.idLen[i]!, c.clen[i]!);
    if (!seg) {
      const why = bad.get(segId);
      bad.delete(segId);
      keyspace.markBadReference(s, why ?? `content segment ${segId} is missing`, segments.path(segId));
    } else if (c.off[i]! < HEADER_BYTES || c.off[i]! + size > seg.end) {
      keyspace.markBadReference(
        s,
        `content reference ${c.off[i]}+${size} is beyond the end of the segment`,
        segments.path(segId),
      );
    } else {
      seg.live += size;
    }
  }
}

async function listDir(fs: WsFileSystem, dir: string): Promise<string[]> {
  try {
    return await fs.readdir(dir);
  } catch (err) {
    throw ioError('readdir', dir, err);
  }
}

/** Writes an embedding a WAL entry of format 3 or older carried to its slot in vectors.dat. */
function writeCarriedVector(
  files: RecordFiles,
  slot: number,
  embedding: Float32Array,
  readOnly: boolean,
): void {
  if (readOnly) {
    throw new WarmStoreError(
      'READ_ONLY',
      `${files.vectorsPath}: the WAL is in an older format whose embeddings must be written to vectors.dat by one writable open before a read-only one`,
      { file: files.vectorsPath },
    );
  }
  try {
    files.writeVectorsSync(
      slot,
      new Uint8Array(embedding.buffer, embedding.byteOffset, embedding.byteLength),
    );
  } catch (err) {
    throw ioError('write', files.vectorsPath, err);
  }
}

/**
 * The first entry of the batch starting at `from` whose content or vector is not on the disk, if
 * any. A vector counts only where the entry is the last in the tail to write its slot (a later put
 * into the freed slot replaced it); content, where its segment still exists (a segment goes only
 * at a checkpoint past every entry naming it).
 */
function unlandedEntry(
  entries: readonly WalEntry[],
  from: number,
  lastWriter: ReadonlyMap<number, WalEntry>,
  files: RecordFiles,
  segments: SegmentSet,
): WalEntry | undefined {
  for (let i = from; i < entries.length; i++) {
    const e = entries[i]!;
    if (e.type === WalType.Put) {
      if (!e.embedding && lastWriter.get(e.slot) === e && !vectorLanded(files, e.slot, e.embCrc)) return e;
      if (e.kind === ContentKind.Present) {
        const seg = segments.get(e.seg);
        if (seg && !contentLanded(seg, e.off, e.idBytes, e.clen, e.id)) return e;
      }
    } else if (e.type === WalType.SlotMove) {
      if (!e.embedding && lastWriter.get(e.to) === e && !vectorLanded(files, e.to, e.embCrc)) return e;
    }
  }
  return undefined;
}

/** Whether `seg` holds, at `off`, the whole content entry a WAL entry names. */
function contentLanded(seg: Segment, off: number, idBytes: Buffer, clen: number, id: string): boolean {
  const size = entryBytes(idBytes.length, clen);
  if (off < HEADER_BYTES || off + size > seg.end) return false;
  // An I/O error reading it fails the open (never a reason to drop a batch); a mismatch is bytes
  // that did not land.
  const buf = seg.readSync(off, size);
  try {
    verifyEntry(buf, idBytes, clen, seg.path, id, off);
    return true;
  } catch {
    return false;
  }
}

/** Whether vectors.dat holds, at `slot`, the embedding whose CRC32C a WAL entry recorded. */
function vectorLanded(files: RecordFiles, slot: number, embCrc: number): boolean {
  const buf = Buffer.allocUnsafe(files.vectorBytes);
  let got: number;
  try {
    got = files.readVectorSync(slot, buf, 0);
  } catch (err) {
    throw ioError('read', files.vectorsPath, err);
  }
  return got === buf.length && crc32c(buf) === embCrc;
}
