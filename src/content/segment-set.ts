import { join } from 'node:path';
import { WarmStoreError, ioError } from '../errors.js';
import { settleAll } from '../fs/io.js';
import type { WsFileSystem } from '../fs/types.js';
import type { ContentStorageStats } from '../types.js';
import { Segment, parseSegmentFileName, segmentFileName } from './segment.js';

/**
 * The content segments of a store and their live-byte ledger. One segment is active (appends go
 * there); the others are sealed. Every put, delete and compaction remap moves bytes between
 * "live" and "dead" here, so victim choice and `contentStorageStats()` need no scan.
 *
 * A segment is deleted only when it is sealed, holds nothing live, and no reader pins it
 * (`collect`, called by a checkpoint once no durable state refers to it).
 */
export class SegmentSet {
  readonly dir: string;
  readonly #fs: WsFileSystem;
  readonly #segments = new Map<number, Segment>();
  #active: Segment | undefined;
  #nextId: number;

  constructor(fs: WsFileSystem, dir: string, nextId: number) {
    this.#fs = fs;
    this.dir = dir;
    this.#nextId = nextId;
  }

  /** The segment appends go to. */
  get active(): Segment {
    if (!this.#active) throw new Error('no active segment before open completes');
    return this.#active;
  }

  /** The id the next created segment gets (kept in the MANIFEST). */
  get nextId(): number {
    return this.#nextId;
  }

  get(id: number): Segment | undefined {
    return this.#segments.get(id);
  }

  has(id: number): boolean {
    return this.#segments.has(id);
  }

  get count(): number {
    return this.#segments.size;
  }

  values(): IterableIterator<Segment> {
    return this.#segments.values();
  }

  /** The live map, for the compactor (which reads it, never changes membership). */
  asMap(): Map<number, Segment> {
    return this.#segments;
  }

  path(id: number): string {
    return join(this.dir, segmentFileName(id));
  }

  // ------------------------------------------------------------------ open

  /**
   * Opens every segment file among `names`. A segment whose header never became durable (or is
   * damaged) is set aside and returned with the reason; a read error or a newer format fails.
   */
  openAll(names: readonly string[], readOnly = false): Map<number, string> {
    const bad = new Map<number, string>();
    for (const n of names) {
      const id = parseSegmentFileName(n);
      if (id === undefined) continue;
      try {
        this.#segments.set(id, Segment.open(this.#fs, this.dir, id, readOnly));
      } catch (err) {
        if (!WarmStoreError.is(err, 'CORRUPTION_DETECTED')) throw ioError('open', join(this.dir, n), err);
        bad.set(id, (err as Error).message);
      }
      this.#nextId = Math.max(this.#nextId, id + 1);
    }
    return bad;
  }

  /**
   * Makes `id` the active segment if it exists, else creates a fresh one (the file is created; its
   * directory entry becomes durable with the recovery checkpoint). Every other segment is sealed.
   */
  activate(id: number): void {
    this.#active = this.#segments.get(id) ?? this.#create();
    for (const s of this.#segments.values()) s.sealed = s !== this.#active;
  }

  // ------------------------------------------------------------------ ledger

  addLive(segId: number, bytes: number): void {
    const s = this.#segments.get(segId);
    if (s) s.live += bytes;
  }

  dropLive(segId: number, bytes: number): void {
    const s = this.#segments.get(segId);
    if (s) s.live -= bytes;
  }

  resetLive(): void {
    for (const s of this.#segments.values()) s.live = 0;
  }

  /** O(segments): totals come from the ledger, not from a scan of the records. */
  stats(): ContentStorageStats {
    let total = 0;
    let live = 0;
    let segments = 0;
    for (const s of this.#segments.values()) {
      if (s.retired) continue;
      total += s.totalBytes;
      live += s.live;
      segments++;
    }
    const dead = total - live;
    return {
      totalBytes: total,
      liveBytes: live,
      deadBytes: dead,
      fragmentationRatio: total > 0 ? dead / total : 0,
      segments,
    };
  }

  // ------------------------------------------------------------------ growth

  #create(): Segment {
    const id = this.#nextId++;
    const seg = Segment.create(this.#fs, this.dir, id);
    this.#segments.set(id, seg);
    return seg;
  }

  /** A new segment whose file and directory entry are durable; nothing is left behind on failure. */
  async createDurable(): Promise<Segment> {
    const seg = this.#create();
    try {
      // Together: each is a trip to the I/O pool, and each awaited one a turn of a busy loop.
      await settleAll([seg.file.sync(), this.#fs.syncDir(this.dir)]);
      // Its header is durable; a checkpoint need not fsync it again for that (compaction's
      // output segments are fsynced by each chunk commit; puts mark what they write).
      seg.dirty = false;
    } catch (err) {
      this.#segments.delete(seg.id);
      await seg.file.close().catch(() => undefined);
      await this.#fs.unlink(seg.path).catch(() => undefined);
      throw ioError('create segment', seg.path, err);
    }
    return seg;
  }

  /** Seals the active segment (syncing what it holds) and starts a new one. */
  async rotate(): Promise<void> {
    const old = this.active;
    if (old.dirty) {
      await old.file.sync();
      old.dirty = false;
    }
    const seg = await this.createDurable();
    old.sealed = true;
    this.#active = seg;
  }

  /** fsyncs every segment written since its last fsync. */
  async syncDirty(): Promise<void> {
    for (const s of this.#segments.values()) {
      if (s.dirty && !s.retired) {
        await s.file.sync();
        s.dirty = false;
      }
    }
  }

  /** Deletes sealed segments that hold nothing live, once no reader pins them. */
  async collect(busy: ReadonlySet<number>): Promise<void> {
    // One after another: unlinking them all at once, with other changes, coincided with readers'
    // synchronous preads stalling at 1M memories (freeing 21 segments' blocks in one journal
    // commit); not taken until measured apart.
    let removed = false;
    for (const s of [...this.#segments.values()]) {
      if (s === this.#active || !s.sealed || s.live !== 0 || s.pins > 0 || busy.has(s.id)) continue;
      s.retired = true;
      this.#segments.delete(s.id);
      await s.file.close().catch(() => undefined);
      await this.#fs.unlink(s.path).catch(() => undefined);
      removed = true;
    }
    if (removed) await this.#fs.syncDir(this.dir).catch(() => undefined);
  }

  async closeAll(): Promise<void> {
    for (const s of this.#segments.values()) await s.file.close().catch(() => undefined);
  }
}
