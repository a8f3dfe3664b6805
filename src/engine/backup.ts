import { realpathSync } from 'node:fs';
import { basename, dirname, isAbsolute, join, relative } from 'node:path';
import { indexFilesOf } from '../ann/ann-index.js';
import type { SegmentSet } from '../content/segment-set.js';
import type { Segment } from '../content/segment.js';
import { WarmStoreError, invalid, ioError } from '../errors.js';
import { MANIFEST_FILE, readManifest, writeManifest, type Manifest } from '../format/manifest.js';
import { readFully, writeFully } from '../fs/io.js';
import type { WsFileSystem } from '../fs/types.js';
import type { RecordFiles } from '../records/record-files.js';
import type { BackupOptions, BackupResult } from '../types.js';
import { walFileName, walFilesFrom } from '../wal/log.js';
import type { CompactionJournal } from './compaction-journal.js';

/**
 * Present in a backup directory from the moment a backup starts writing there until everything
 * in it, the MANIFEST last, is durable. `WarmStore.open` refuses a directory holding it.
 */
export const BACKUP_INCOMPLETE_FILE = 'BACKUP-INCOMPLETE';

/** Bytes moved per read and write when copying a file. */
const COPY_CHUNK = 1024 * 1024;

export interface BackupDeps {
  fs: WsFileSystem;
  dir: string;
  files: Pick<RecordFiles, 'recordsPath' | 'vectorsPath'>;
  segments: SegmentSet;
  journal: Pick<CompactionJournal, 'outputs'>;
  wal: { readonly fileNo: number; readonly end: number };
  writer: { readonly lastLsn: number; barrier(fn: () => Promise<void>): Promise<void> };
  /**
   * Keeps slots freed from now on out of reuse until the returned function is called: puts write
   * vectors.dat outside checkpoints, into free slots only, so while the copy is taken no slot live
   * at the cut may take a new vector.
   */
  holdFrees(): () => void;
  /** Runs `fn` between two checkpoints (the checkpoint chain, lock 2). */
  betweenCheckpoints<T>(fn: () => Promise<T>): Promise<T>;
}

/** A segment as the backup found it between two write batches. */
interface SegmentCut {
  seg: Segment;
  /** Bytes to take: everything a WAL entry up to the backup's LSN can reference lies before. */
  end: number;
  /** May still be appended to or cut back: copied, never linked. */
  mutable: boolean;
}

/** The state fixed between two write batches. */
interface Cut {
  lsn: number;
  walFileNo: number;
  walEnd: number;
  activeSegment: number;
  nextSegmentId: number;
  segments: SegmentCut[];
}

/**
 * Online backup: a copy of the store as of one LSN, taken while it serves reads and writes.
 *
 * The copy is what a crash at that LSN would leave, minus everything after it: records.dat,
 * vectors.dat and the MANIFEST as the last checkpoint left them, the WAL from that checkpoint up
 * to the end of the last batch before the cut, and every segment up to its end at the cut. The
 * checkpoint chain is held while the record files and WAL are copied (a checkpoint rewrites the
 * former in place and deletes the latter); the segments are pinned at the cut so no checkpoint
 * deletes one before it is taken, and copied or linked after the chain is released. Opening the
 * copy replays its WAL, as recovery after a crash would.
 *
 * A segment that is sealed and not the output of a compaction in flight never changes again, so
 * it is hard-linked; the active segment and compaction outputs are copied up to their end at the
 * cut. The backup's MANIFEST names the copied active segment as active, so a store opened on the
 * backup never appends to a file it shares with the source.
 *
 * Nothing is written to the source directory. The target holds BACKUP-INCOMPLETE until the
 * MANIFEST, written last, and every file before it are durable.
 */
export class Backup {
  readonly #d: BackupDeps;

  constructor(deps: BackupDeps) {
    this.#d = deps;
  }

  /** Backups in progress, which `close` lets finish: their pins keep segments from deletion. */
  readonly #running = new Set<Promise<unknown>>();

  run(target: string, options: BackupOptions): Promise<BackupResult> {
    const p = this.#run(target, options);
    const tracked = p.catch(() => undefined);
    this.#running.add(tracked);
    void tracked.then(() => this.#running.delete(tracked));
    return p;
  }

  /** Settles once every backup started so far has finished, however it ended. */
  async settled(): Promise<void> {
    await Promise.all([...this.#running]);
  }

  async #run(target: string, options: BackupOptions): Promise<BackupResult> {
    const d = this.#d;
    const t0 = performance.now();
    const link = options.link ?? true;
    await this.#prepareTarget(target);
    const progress = { done: 0, total: 0, files: 0, copied: 0, linked: 0 };
    const report = (n: number): void => {
      progress.done += n;
      options.onProgress?.(progress.done, progress.total);
    };
    let cut: Cut | undefined;
    let checkpointLsn = 0;
    const pinned = new Set<Segment>();
    let releaseFrees: (() => void) | undefined;
    const unpin = (s: Segment): void => {
      if (pinned.delete(s)) s.pins--;
    };
    try {
      const manifest = await d.betweenCheckpoints(async () => {
        const m = await readManifest(d.fs, d.dir);
        if (!m)
          throw ioError(
            'read',
            join(d.dir, MANIFEST_FILE),
            Object.assign(new Error('missing'), { code: 'ENOENT' }),
          );
        await d.writer.barrier(async () => {
          releaseFrees = d.holdFrees();
          cut = this.#cut();
          for (const s of cut.segments) {
            s.seg.pins++;
            pinned.add(s.seg);
          }
        });
        const c = cut!;
        const walNos = walFilesFrom(await d.fs.readdir(d.dir), m.walFileNo).filter((n) => n <= c.walFileNo);
        const sizes = [fileSize(d.fs, d.files.recordsPath), fileSize(d.fs, d.files.vectorsPath)];
        progress.total =
          sizes[0]! +
          sizes[1]! +
          walNos.reduce((a, n) => a + (n === c.walFileNo ? c.walEnd : fileSize(d.fs, this.#walPath(n))), 0) +
          c.segments.reduce((a, s) => a + s.end, 0);
        await this.#copy(d.files.recordsPath, join(target, basename(d.files.recordsPath)), undefined, report);
        // Puts go on writing vectors.dat (into free slots and past its end): the length taken
        // after the cut holds every vector the cut's state names.
        await this.#copy(d.files.vectorsPath, join(target, basename(d.files.vectorsPath)), sizes[1], report);
        releaseFrees?.();
        progress.files += 2;
        progress.copied += sizes[0]! + sizes[1]!;
        for (const n of walNos) {
          const got = await this.#copy(
            this.#walPath(n),
            join(target, walFileName(n)),
            n === c.walFileNo ? c.walEnd : undefined,
            report,
          );
          progress.files++;
          progress.copied += got;
        }
        checkpointLsn = m.checkpointLsn;
        return await this.#takeIndex(m, target, link, progress, report);
      });
      const c = cut!;
      for (const s of c.segments) {
        const to = join(target, basename(s.seg.path));
        if (link && !s.mutable && (await this.#link(s.seg.path, to))) {
          progress.linked += s.end;
          report(s.end);
        } else {
          progress.copied += await this.#copy(s.seg.path, to, s.end, report);
        }
        progress.files++;
        unpin(s.seg);
      }
      await writeManifest(d.fs, target, this.#backupManifest(manifest, c));
      progress.files++;
      try {
        await d.fs.unlink(join(target, BACKUP_INCOMPLETE_FILE));
        await d.fs.syncDir(target);
      } catch (err) {
        throw ioError('backup', join(target, BACKUP_INCOMPLETE_FILE), err);
      }
    } finally {
      releaseFrees?.();
      for (const s of [...pinned]) unpin(s);
    }
    return {
      dir: target,
      lsn: cut!.lsn,
      checkpointLsn,
      files: progress.files,
      bytesCopied: progress.copied,
      bytesLinked: progress.linked,
      durationMs: performance.now() - t0,
    };
  }

  /**
   * The recall index files the MANIFEST names, linked or copied (inside the checkpoint chain: no
   * checkpoint can replace them meanwhile, and a saved index file is never written again). Without
   * them the backup would open with a full rebuild of its index. If one is missing or cannot be
   * read, all are left out and the backup's MANIFEST names none: the copy then rebuilds its index,
   * as the source would.
   */
  async #takeIndex(
    m: Manifest,
    target: string,
    link: boolean,
    progress: { files: number; copied: number; linked: number; total: number },
    report: (n: number) => void,
  ): Promise<Manifest> {
    const names = indexFilesOf(m.annIndex);
    if (names.length === 0) return m;
    const taken: string[] = [];
    try {
      for (const name of names) {
        const from = join(this.#d.dir, name);
        const to = join(target, name);
        taken.push(to);
        const bytes = this.#d.fs.open(from, 'r');
        let size: number;
        try {
          size = bytes.size();
        } finally {
          await bytes.close();
        }
        progress.total += size;
        if (link && (await this.#link(from, to))) {
          progress.linked += size;
          report(size);
        } else {
          progress.copied += await this.#copy(from, to, undefined, report);
        }
        progress.files++;
      }
      return m;
    } catch {
      for (const to of taken) await this.#d.fs.unlink(to).catch(() => undefined);
      const { annIndex: _dropped, ...rest } = m;
      return rest;
    }
  }

  /** Inside the writer's barrier: no batch is in flight, every end is that of a whole batch. */
  #cut(): Cut {
    const d = this.#d;
    const active = d.segments.active;
    const outputs = d.journal.outputs();
    const segments: SegmentCut[] = [];
    for (const seg of d.segments.values()) {
      if (seg.retired) continue;
      // A pin here may be a compaction's output being written, not yet in the journal: treat any
      // pinned segment as one that may still change.
      const mutable = seg === active || !seg.sealed || outputs.has(seg.id) || seg.pins > 0;
      segments.push({ seg, end: seg.end, mutable });
    }
    return {
      lsn: d.writer.lastLsn,
      walFileNo: d.wal.fileNo,
      walEnd: d.wal.end,
      activeSegment: active.id,
      nextSegmentId: d.segments.nextId,
      segments,
    };
  }

  /**
   * The source's MANIFEST, but for the active segment: the one the backup copied (the source's
   * MANIFEST may still name a segment sealed since, which the backup only links).
   */
  #backupManifest(m: Manifest, c: Cut): Manifest {
    return {
      ...m,
      activeSegment: c.activeSegment,
      nextSegmentId: Math.max(m.nextSegmentId, c.nextSegmentId),
    };
  }

  #walPath(n: number): string {
    return join(this.#d.dir, walFileName(n));
  }

  /**
   * The target must be absent or an empty directory, outside the store. It gets the
   * BACKUP-INCOMPLETE marker first, durably, so that whatever happens next is detectable.
   */
  async #prepareTarget(target: string): Promise<void> {
    const fs = this.#d.fs;
    const source = realpathOr(this.#d.dir);
    const real = realpathOr(target);
    const rel = relative(source, real);
    if (rel === '' || (!rel.startsWith('..') && !isAbsolute(rel))) {
      throw invalid('dir', `the backup directory ${target} must be outside the store ${this.#d.dir}`);
    }
    let names: string[] = [];
    try {
      if (await fs.exists(target)) names = await fs.readdir(target);
    } catch (err) {
      throw invalid('dir', `${target} is not a directory (${(err as Error).message})`);
    }
    if (names.length > 0) {
      throw invalid('dir', `the backup directory ${target} is not empty (${names.length} entries)`);
    }
    const marker = join(target, BACKUP_INCOMPLETE_FILE);
    try {
      await fs.mkdir(target);
      const f = fs.open(marker, 'excl');
      try {
        await writeFully(f, Buffer.from(`backup of ${this.#d.dir} started ${new Date().toISOString()}\n`), 0);
        await f.sync();
      } finally {
        await f.close();
      }
      await fs.syncDir(target);
      await fs.syncDir(dirname(target));
    } catch (err) {
      throw ioError('backup', marker, err);
    }
  }

  /** A hard link, or false where the filesystem cannot make one (the caller copies instead). */
  async #link(from: string, to: string): Promise<boolean> {
    try {
      await this.#d.fs.link(from, to);
      // Under relaxed durability a sealed segment may not be fsynced yet: the backup's must be.
      const f = this.#d.fs.open(to, 'r');
      try {
        await f.sync();
      } finally {
        await f.close();
      }
      return true;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EXDEV' || code === 'EPERM' || code === 'EMLINK' || code === 'ENOTSUP') return false;
      throw ioError('backup link', to, err);
    }
  }

  /** Copies `from` (its first `length` bytes, or all of it) into a new, fsynced `to`. */
  async #copy(
    from: string,
    to: string,
    length: number | undefined,
    report: (n: number) => void,
  ): Promise<number> {
    const fs = this.#d.fs;
    let pos = 0;
    try {
      const src = fs.open(from, 'r');
      try {
        const dst = fs.open(to, 'excl');
        try {
          const size = length ?? src.size();
          const buf = Buffer.allocUnsafe(Math.min(COPY_CHUNK, Math.max(size, 1)));
          while (pos < size) {
            const n = await readFully(src, buf, 0, Math.min(buf.length, size - pos), pos);
            if (n === 0) break;
            await writeFully(dst, buf.subarray(0, n), pos);
            pos += n;
            report(n);
          }
          await dst.sync();
        } finally {
          await dst.close();
        }
      } finally {
        await src.close();
      }
    } catch (err) {
      throw ioError('backup copy', to, err);
    }
    return pos;
  }
}

/**
 * Refuses a directory an interrupted or failed backup left behind: it may lack files (opening it
 * would report their records as missing, or with no MANIFEST, create an empty store over them).
 */
export async function refuseIncompleteBackup(fs: WsFileSystem, dir: string): Promise<void> {
  const marker = join(dir, BACKUP_INCOMPLETE_FILE);
  if (await fs.exists(marker)) {
    throw new WarmStoreError(
      'CORRUPTION_DETECTED',
      `${dir} is an incomplete backup: ${BACKUP_INCOMPLETE_FILE} is present, so the backup that ` +
        'wrote it was interrupted or failed before it finished. Delete the directory and take the backup again.',
      { file: marker },
    );
  }
}

function fileSize(fs: WsFileSystem, path: string): number {
  try {
    const f = fs.open(path, 'r');
    try {
      return f.size();
    } finally {
      f.closeSync();
    }
  } catch (err) {
    throw ioError('stat', path, err);
  }
}

/** The real path of `p`, or of its nearest existing ancestor joined with the rest. */
function realpathOr(p: string): string {
  try {
    return realpathSync(p);
  } catch {
    const parent = dirname(p);
    return parent === p ? p : join(realpathOr(parent), basename(p));
  }
}
