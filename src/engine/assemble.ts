import { join } from 'node:path';
import type { SegmentSet } from '../content/segment-set.js';
import { WarmStoreError } from '../errors.js';
import { MANIFEST_FILE, readManifest } from '../format/manifest.js';
import type { WsFileSystem } from '../fs/types.js';
import type { Keyspace } from '../records/keyspace.js';
import type { RecordFiles } from '../records/record-files.js';
import { SLOT_HEADER_BYTES } from '../records/slot-codec.js';
import { WalLog } from '../wal/log.js';
import { AnnIndex } from '../ann/ann-index.js';
import { Backup } from './backup.js';
import { Checkpointer } from './checkpointer.js';
import { DiskSpace, isNoSpace } from './disk-space.js';
import type { StoreEvents } from './events.js';
import { acquireLock } from './lock.js';
import { Maintenance } from './maintenance.js';
import { DEFAULTS, type ResolvedOptions } from './options.js';
import { Reader } from './reader.js';
import { createStore, recover, repair } from './recovery.js';
import { Scrubber } from './scrub.js';
import type { Transitions } from './transitions.js';
import { Writer } from './writer.js';

/** The components of an open, writable store. */
export interface Parts {
  files: RecordFiles;
  keyspace: Keyspace;
  segments: SegmentSet;
  wal: WalLog;
  writer: Writer;
  reader: Reader;
  transitions: Transitions;
  checkpointer: Checkpointer;
  maintenance: Maintenance;
  backup: Backup;
  space: DiskSpace;
  /** The recall index; undefined where usearch cannot load (recall then always scans). */
  ann: AnnIndex | undefined;
  scrubber: Scrubber;
}

/** What a read-only store has: recovery's state, a reader and a scrubber, nothing that writes. */
export type ReadParts = Pick<Parts, 'files' | 'keyspace' | 'segments' | 'reader' | 'scrubber'> &
  Partial<Parts>;

export interface AssembleContext {
  dir: string;
  opts: ResolvedOptions;
  events: StoreEvents;
  isOpen(): boolean;
}

/** Why an open ended read-only although it was asked to write. */
export interface ReadOnlyFallback {
  reason: string;
  err: unknown;
}

/** The components an open assembled, and the read-only fallback it had to take, if any. */
export interface Assembled {
  parts: ReadParts;
  dim: number;
  fallback?: ReadOnlyFallback;
}

/**
 * The lock, taken by writing a small file. On a full disk that write may need the reserve's last
 * pages first; with no reserve to give up, the store opens read-only without the lock (undefined)
 * rather than not at all.
 */
export async function lockStore(
  fs: WsFileSystem,
  dir: string,
  key: string,
): Promise<(() => Promise<void>) | ReadOnlyFallback> {
  try {
    return await acquireLock(fs, dir, key);
  } catch (err) {
    if (!isNoSpace(err)) throw err;
    if (await DiskSpace.freeForLock(fs, dir)) {
      try {
        return await acquireLock(fs, dir, key);
      } catch (again) {
        if (!isNoSpace(again)) throw again;
      }
    }
    // A store that does not exist yet cannot be read either: the lock's error stands.
    if (!(await fs.exists(join(dir, MANIFEST_FILE)))) throw err;
    return { reason: 'the disk is full: the lock file could not be written', err };
  }
}

/** Recovery only: every file opened for reading, nothing written, no writer. */
export async function assembleReadOnly(ctx: AssembleContext): Promise<Assembled> {
  const { dir, opts: o } = ctx;
  const fs = o.fileSystem;
  const manifest = await readManifest(fs, dir);
  if (!manifest) {
    throw new WarmStoreError('READ_ONLY', `no store in ${dir}: a read-only open does not create one`, {
      file: dir,
    });
  }
  const r = await recover({ fs, dir, manifest, dimension: o.dimension, logger: o.logger, readOnly: true });
  const reader = new Reader(r.keyspace, r.segments, r.files);
  return {
    dim: r.dim,
    parts: {
      files: r.files,
      keyspace: r.keyspace,
      segments: r.segments,
      reader,
      scrubber: newScrubber(ctx, r.keyspace, r.files, reader),
    },
  };
}

/** The scrubber over the recovered state; its background passes start with the timers. */
function newScrubber(ctx: AssembleContext, keyspace: Keyspace, files: RecordFiles, reader: Reader): Scrubber {
  return new Scrubber({
    keyspace,
    files,
    reader,
    events: ctx.events,
    logger: ctx.opts.logger,
    policy: ctx.opts.scrub,
    defaultBytesPerSecond: DEFAULTS.scrubBytesPerSecond,
  });
}

/**
 * Recovery (reads), repair (writes), then the live components over the recovered state. On a
 * full disk where recovery cannot write, the store comes back read-only (nothing acknowledged is
 * lost: the WAL still holds it). On any other failure everything opened is closed again.
 */
export async function assemble(ctx: AssembleContext): Promise<Assembled> {
  const { dir, opts: o } = ctx;
  const fs = o.fileSystem;
  const manifest =
    (await readManifest(fs, dir)) ??
    (await createStore(fs, dir, o.dimension ?? DEFAULTS.dimension, o.durability));
  const r = await recover({ fs, dir, manifest, dimension: o.dimension, logger: o.logger });
  const wal = new WalLog(fs, dir, o.durability === 'relaxed');
  const space = new DiskSpace({ fs, dir, reserveBytes: o.diskReserveBytes, logger: o.logger });
  const reader = new Reader(r.keyspace, r.segments, r.files);
  const partial: ReadParts = {
    files: r.files,
    keyspace: r.keyspace,
    segments: r.segments,
    wal,
    space,
    reader,
    scrubber: newScrubber(ctx, r.keyspace, r.files, reader),
  };
  try {
    // Before recovery writes anything: on a nearly full disk the reserve makes room for it.
    await space.open();
    try {
      await repair(fs, r);
      // The recovery checkpoint makes the replayed state durable in records.dat and starts a
      // clean WAL, so torn tails never have to be appended after.
      await wal.start(r.nextWalNo);
    } catch (err) {
      if (!isNoSpace(err)) throw err;
      return {
        parts: partial,
        dim: r.dim,
        fallback: { reason: 'the disk is full: recovery could not write', err },
      };
    }
    // The checkpointer needs the writer; the writer only notifies it after a commit.
    const late: {
      checkpointer?: Checkpointer;
      ann?: AnnIndex;
      startIndex?: () => void;
      indexTried?: boolean;
    } = {};
    r.keyspace.deferFrees(o.durability !== 'sync');
    const writer = new Writer({
      keyspace: r.keyspace,
      files: r.files,
      segments: r.segments,
      wal,
      transitions: r.transitions,
      durability: o.durability,
      segmentBytes: o.segmentBytes,
      dim: r.dim,
      lastLsn: r.lastLsn,
      logger: o.logger,
      space,
      onCommitted: () => late.checkpointer?.afterCommit(),
      onSlotsChanged: (slots, moved) => {
        if (late.ann) {
          late.ann.moved(moved);
          late.ann.changed(slots);
        } else if (!late.indexTried) late.startIndex?.();
      },
    });
    const checkpointer = new Checkpointer({
      fs,
      dir,
      keyspace: r.keyspace,
      files: r.files,
      segments: r.segments,
      wal,
      writer,
      journal: r.journal,
      manifest: r.manifest,
      walCheckpointBytes: o.walCheckpointBytes,
      durableState: o.durability === 'sync',
      logger: o.logger,
      onNoSpace: (err) => space.onNoSpace(err),
      killPoint: o.onKillPoint,
    });
    late.checkpointer = checkpointer;
    const maintenance = new Maintenance({
      fs,
      dir,
      keyspace: r.keyspace,
      segments: r.segments,
      journal: r.journal,
      wal,
      writer,
      checkpointer,
      events: ctx.events,
      logger: o.logger,
      segmentBytes: o.segmentBytes,
      memoryBudgetBytes: o.memoryBudgetBytes,
      minSegmentDeadRatio: o.minSegmentDeadRatio,
      diskHeadroomBytes: o.diskHeadroomBytes,
      thresholds: { fragmentationThreshold: o.fragmentationThreshold, minTotalBytes: o.minTotalBytes },
      startup: {
        startupWarnRatio: o.startupWarnRatio,
        startupCompactRatio: o.startupCompactRatio,
        startupCompaction: o.startupCompaction,
      },
      killPoint: o.onKillPoint,
      interrupted: r.interrupted,
      isOpen: ctx.isOpen,
      space,
      recordFileBytes: () => r.files.bytes(),
      recordSlotBytes: SLOT_HEADER_BYTES + r.files.vectorBytes,
    });
    const parts: Parts = {
      ...partial,
      wal,
      space,
      writer,
      transitions: r.transitions,
      checkpointer,
      maintenance,
      backup: new Backup({
        fs,
        dir,
        files: r.files,
        segments: r.segments,
        journal: r.journal,
        wal,
        writer,
        holdFrees: () => r.keyspace.holdFrees(),
        betweenCheckpoints: (fn) => checkpointer.betweenCheckpoints(fn),
      }),
      ann: undefined,
      scrubber: partial.scrubber,
    };
    try {
      await checkpointer.recoveryCheckpoint();
    } catch (err) {
      // Nothing is lost: the WAL still holds what the checkpoint would have written.
      if (!isNoSpace(err)) throw err;
      return {
        parts,
        dim: r.dim,
        fallback: { reason: 'the disk is full: the recovery checkpoint could not be written', err },
      };
    }
    // After recovery: the index catches up from the recovered table, not from WAL replay. A store
    // too small for recall to use an index gets none (no worker, no file) until it grows past
    // annMinMemories; then the index is built from the table in the background.
    const startIndex = (): void => {
      if (late.indexTried) return;
      late.indexTried = true;
      const ann = AnnIndex.start({
        dir,
        keyspace: r.keyspace,
        coverage: r.manifest.annIndex,
        logger: o.logger,
        onStatus: (st) => ctx.events.emit('indexStatus', st),
        ...(o.annMergeMin !== undefined && { mergeMin: o.annMergeMin }),
        ...(o.annMinRecall !== undefined && { minRecall: o.annMinRecall }),
      });
      if (!ann) return;
      parts.ann = late.ann = ann;
      checkpointer.setIndexSaver({
        save: (lsn, background) => ann.save(lsn, background),
        committed: (saved) => ann.prune(saved),
      });
    };
    late.startIndex = (): void => {
      if (r.keyspace.size >= o.annMinMemories) startIndex();
    };
    if (r.manifest.annIndex !== undefined) startIndex();
    else late.startIndex();
    return { parts, dim: r.dim };
  } catch (err) {
    await closeFiles(partial);
    space.close();
    throw err;
  }
}

/**
 * The background timers of a writable store: the maintenance loop, relaxed durability's fsync and
 * the scrub's passes (the scrubber keeps its own timer; `close` stops it).
 */
export function startTimers(p: Parts, o: ResolvedOptions, isOpen: () => boolean): NodeJS.Timeout[] {
  p.scrubber.start();
  const timers: NodeJS.Timeout[] = [];
  if (o.maintenanceIntervalMs !== false) {
    timers.push(
      setInterval(() => {
        if (!isOpen() || p.maintenance.isCompacting) return;
        p.maintenance
          .runMaintenance()
          .catch((err: unknown) => o.logger?.error({ err }, 'maintenance run failed'));
      }, o.maintenanceIntervalMs),
    );
  }
  if (o.durability === 'relaxed') {
    timers.push(
      setInterval(() => {
        if (!isOpen()) return;
        p.writer.syncAll().catch((err: unknown) => o.logger?.error({ err }, 'background fsync failed'));
      }, o.relaxedSyncIntervalMs),
    );
  }
  for (const t of timers) t.unref();
  return timers;
}

/** Closes every file the components hold. */
export async function closeFiles(p: ReadParts): Promise<void> {
  await p.ann?.close();
  await p.files.close();
  await p.wal?.close();
  await p.segments.closeAll();
}
