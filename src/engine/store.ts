import { realpathSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { setImmediate as yieldImmediate } from 'node:timers/promises';
import type { SegmentSet } from '../content/segment-set.js';
import { ENTRY_HEADER_BYTES } from '../content/segment.js';
import { WarmStoreError, invalid, ioError } from '../errors.js';
import { MANIFEST_FILE, readManifest } from '../format/manifest.js';
import type { Keyspace } from '../records/keyspace.js';
import type { RecordFiles } from '../records/record-files.js';
import { CHUNK_SLOTS } from '../records/table.js';
import type {
  CompactOptions,
  CompactionStats,
  ContentStorageStats,
  CorruptRecord,
  EntriesOptions,
  IndexStatus,
  GetOptions,
  InterruptedCompaction,
  MaintenanceReport,
  MemoryRecord,
  RecallOptions,
  RecallResult,
  SpaceInfo,
  SpaceOptions,
  StorageStatus,
  StoredMemory,
  VerifyOptions,
  VerifyReport,
  WarmStoreEvents,
  WarmStoreOptions,
} from '../types.js';
import { WalLog } from '../wal/log.js';
import { AnnIndex } from '../ann/ann-index.js';
import { planRecall } from '../ann/planner.js';
import { countMatches, rescoreTopK } from '../ann/rescore.js';
import { ScanPool } from '../scan/pool.js';
import { Checkpointer } from './checkpointer.js';
import { DiskSpace, isNoSpace } from './disk-space.js';
import { StoreEvents } from './events.js';
import { acquireLock } from './lock.js';
import { Maintenance } from './maintenance.js';
import { DEFAULTS, resolveOptions, type ResolvedOptions } from './options.js';
import { Reader } from './reader.js';
import { exactTopK, type Hit } from './recall.js';
import { createStore, recover, repair } from './recovery.js';
import { traced } from './tracing.js';
import { checkId, checkSpace, normalizeRecord, spaceOption, validateEmbedding } from './validate.js';
import { compileFilter } from './filter.js';
import { DEFAULT_SPACE } from '../records/spaces.js';
import type { Transitions } from './transitions.js';
import { verifyStore } from './verify.js';
import { Writer } from './writer.js';

/** The components of an open store, composed by `open`. */
interface Parts {
  files: RecordFiles;
  keyspace: Keyspace;
  segments: SegmentSet;
  wal: WalLog;
  writer: Writer;
  reader: Reader;
  transitions: Transitions;
  checkpointer: Checkpointer;
  maintenance: Maintenance;
  space: DiskSpace;
  /** The recall index; undefined where usearch cannot load (recall then always scans). */
  ann: AnnIndex | undefined;
}

/** What a read-only store has: recovery's state and a reader, nothing that writes. */
type ReadParts = Pick<Parts, 'files' | 'keyspace' | 'segments' | 'reader'> & Partial<Parts>;

/**
 * The storage engine's facade: validation, tracing, lifecycle and delegation to its components
 * (see docs/ARCHITECTURE.md for what each owns and the lock order between them).
 */
export class WarmStore {
  readonly dir: string;
  readonly #opts: ResolvedOptions;
  readonly #events: StoreEvents;
  #dim = 0;
  #parts: ReadParts | undefined;
  /** Why the store refuses every mutation (opened read-only, or open could not write). */
  #readOnly: string | undefined;
  /** Open fell back to read-only because the disk was full: reported as full too. */
  #fullAtOpen: string | undefined;
  #state: 'opening' | 'open' | 'closing' | 'closed' = 'opening';
  #releaseLock: (() => Promise<void>) | undefined;
  #timers: NodeJS.Timeout[] = [];
  #sweeping = false;
  /** null: not started yet; undefined: could not start (recall scans inline). */
  #pool: ScanPool | undefined | null = null;

  private constructor(dir: string, opts: ResolvedOptions) {
    this.dir = dir;
    this.#opts = opts;
    this.#events = new StoreEvents(opts.logger);
  }

  /** Creates or opens the store in `dir`, recovering after a crash. */
  static async open(dir: string, options?: WarmStoreOptions): Promise<WarmStore> {
    if (typeof dir !== 'string' || dir.length === 0) throw invalid('dir', 'must be a non-empty path');
    const store = new WarmStore(resolve(dir), resolveOptions(options));
    await store.#open();
    return store;
  }

  async #open(): Promise<void> {
    const o = this.#opts;
    const fs = o.fileSystem;
    if (o.readOnly) {
      // No lock: taking it is a write, and a writer may be running (a backup of a live store).
      this.#readOnly = 'opened with readOnly';
      try {
        await this.#composeReadOnly();
      } catch (err) {
        await this.#closeFiles();
        throw err;
      }
      this.#state = 'open';
      return;
    }
    try {
      await fs.mkdir(this.dir);
    } catch (err) {
      throw ioError('mkdir', this.dir, err);
    }
    let key = this.dir;
    try {
      key = realpathSync(this.dir);
    } catch {
      // fall back to the resolved path
    }
    this.#releaseLock = await this.#lock(key);
    if (!this.#releaseLock) {
      try {
        await this.#composeReadOnly();
      } catch (err) {
        await this.#closeFiles();
        throw err;
      }
      this.#state = 'open';
      return;
    }
    try {
      await this.#compose();
      this.#state = 'open';
    } catch (err) {
      await this.#closeFiles();
      await this.#unlock();
      throw err;
    }
    if (this.#readOnly !== undefined) return;
    this.#startTimers();
    try {
      await this.#parts!.maintenance!.startupCheck();
    } catch (err) {
      // A failed blocking startup compaction fails the open: release everything it held.
      await this.close();
      throw err;
    }
  }

  /**
   * The lock, taken by writing a small file. On a full disk that write may need the reserve's
   * last pages first; with no reserve to give up, the store opens read-only without the lock
   * (undefined) rather than not at all.
   */
  async #lock(key: string): Promise<(() => Promise<void>) | undefined> {
    const fs = this.#opts.fileSystem;
    try {
      return await acquireLock(fs, this.dir, key);
    } catch (err) {
      if (!isNoSpace(err)) throw err;
      if (await DiskSpace.freeForLock(fs, this.dir)) {
        try {
          return await acquireLock(fs, this.dir, key);
        } catch (again) {
          if (!isNoSpace(again)) throw again;
        }
      }
      // A store that does not exist yet cannot be read either: the lock's error stands.
      if (!(await fs.exists(join(this.dir, MANIFEST_FILE)))) throw err;
      this.#enterReadOnly('the disk is full: the lock file could not be written', err);
      return undefined;
    }
  }

  /** Open could not write on a full disk: the store serves reads only, and says so. */
  #enterReadOnly(reason: string, err?: unknown): void {
    this.#readOnly = reason;
    this.#fullAtOpen = reason;
    this.#opts.logger?.warn(
      { dir: this.dir, reason, err },
      'store opened read-only: reads work, every write is refused until a reopen with free space',
    );
  }

  /** Recovery only: every file opened for reading, nothing written, no writer. */
  async #composeReadOnly(): Promise<void> {
    const o = this.#opts;
    const fs = o.fileSystem;
    const manifest = await readManifest(fs, this.dir);
    if (!manifest) {
      throw new WarmStoreError('READ_ONLY', `no store in ${this.dir}: a read-only open does not create one`, {
        file: this.dir,
      });
    }
    const r = await recover({
      fs,
      dir: this.dir,
      manifest,
      dimension: o.dimension,
      logger: o.logger,
      readOnly: true,
    });
    this.#dim = r.dim;
    this.#parts = {
      files: r.files,
      keyspace: r.keyspace,
      segments: r.segments,
      reader: new Reader(r.keyspace, r.segments),
    };
  }

  /** Recovery (reads), repair (writes), then the live components over the recovered state. */
  async #compose(): Promise<void> {
    const o = this.#opts;
    const fs = o.fileSystem;
    const manifest =
      (await readManifest(fs, this.dir)) ??
      (await createStore(fs, this.dir, o.dimension ?? DEFAULTS.dimension, o.durability));
    const r = await recover({ fs, dir: this.dir, manifest, dimension: o.dimension, logger: o.logger });
    const wal = new WalLog(fs, this.dir, o.durability === 'relaxed');
    const space = new DiskSpace({ fs, dir: this.dir, reserveBytes: o.diskReserveBytes, logger: o.logger });
    const partial = {
      files: r.files,
      keyspace: r.keyspace,
      segments: r.segments,
      wal,
      space,
      reader: new Reader(r.keyspace, r.segments),
    };
    this.#parts = partial;
    this.#dim = r.dim;
    // Before recovery writes anything: on a nearly full disk the reserve makes room for it.
    await space.open();
    try {
      await repair(fs, r);
      // The recovery checkpoint makes the replayed state durable in records.dat and starts a clean
      // WAL, so torn tails never have to be appended after.
      await wal.start(r.nextWalNo);
    } catch (err) {
      if (!isNoSpace(err)) throw err;
      this.#enterReadOnly('the disk is full: recovery could not write', err);
      return;
    }
    const writer = new Writer({
      keyspace: r.keyspace,
      segments: r.segments,
      wal,
      transitions: r.transitions,
      durability: o.durability,
      segmentBytes: o.segmentBytes,
      dim: r.dim,
      lastLsn: r.lastLsn,
      logger: o.logger,
      space,
      // Set below: the checkpointer needs the writer, the writer only notifies it.
      onCommitted: () => this.#parts?.checkpointer?.afterCommit(),
      onSlotsChanged: (slots) => this.#parts?.ann?.changed(slots),
    });
    const checkpointer = new Checkpointer({
      fs,
      dir: this.dir,
      keyspace: r.keyspace,
      files: r.files,
      segments: r.segments,
      wal,
      writer,
      journal: r.journal,
      manifest: r.manifest,
      walCheckpointBytes: o.walCheckpointBytes,
      logger: o.logger,
      onNoSpace: (err) => space.onNoSpace(err),
    });
    const maintenance = new Maintenance({
      fs,
      dir: this.dir,
      keyspace: r.keyspace,
      segments: r.segments,
      journal: r.journal,
      wal,
      writer,
      checkpointer,
      events: this.#events,
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
      isOpen: () => this.#state === 'open',
      space,
    });
    this.#parts = {
      ...partial,
      writer,
      transitions: r.transitions,
      checkpointer,
      maintenance,
      ann: undefined,
    };
    try {
      await checkpointer.recoveryCheckpoint();
    } catch (err) {
      // Nothing is lost: the WAL still holds what the checkpoint would have written.
      if (!isNoSpace(err)) throw err;
      this.#enterReadOnly('the disk is full: the recovery checkpoint could not be written', err);
      return;
    }
    // After recovery: the index catches up from the recovered table, not from WAL replay.
    const ann = AnnIndex.start({
      dir: this.dir,
      keyspace: r.keyspace,
      coverage: r.manifest.annIndex,
      logger: o.logger,
      onStatus: (s) => this.#events.emit('indexStatus', s),
    });
    if (ann) {
      (this.#parts as Parts).ann = ann;
      checkpointer.setIndexSaver({ save: (lsn) => ann.save(lsn), committed: (saved) => ann.prune(saved) });
    }
  }

  #startTimers(): void {
    const o = this.#opts;
    const p = this.#parts as Parts;
    if (o.maintenanceIntervalMs !== false) {
      this.#timers.push(
        setInterval(() => {
          if (this.#state !== 'open' || p.maintenance.isCompacting) return;
          p.maintenance
            .runMaintenance()
            .catch((err: unknown) => o.logger?.error({ err }, 'maintenance run failed'));
        }, o.maintenanceIntervalMs),
      );
    }
    if (o.durability === 'relaxed') {
      this.#timers.push(
        setInterval(() => {
          if (this.#state !== 'open') return;
          p.writer.syncAll().catch((err: unknown) => o.logger?.error({ err }, 'background fsync failed'));
        }, o.relaxedSyncIntervalMs),
      );
    }
    for (const t of this.#timers) t.unref();
  }

  /** The components, once open; STORE_CLOSED otherwise. */
  #p(): ReadParts {
    if (this.#state !== 'open') {
      throw new WarmStoreError('STORE_CLOSED', `store ${this.dir} is ${this.#state}`, { file: this.dir });
    }
    return this.#parts!;
  }

  /** The components of a writable store; READ_ONLY when it is not one. */
  #w(): Parts {
    const p = this.#p();
    if (this.#readOnly !== undefined) {
      throw new WarmStoreError('READ_ONLY', `store ${this.dir} is read-only (${this.#readOnly})`, {
        file: this.dir,
      });
    }
    return p as Parts;
  }

  // ------------------------------------------------------------------ state

  get dimension(): number {
    return this.#dim;
  }

  get size(): number {
    return this.#parts?.keyspace.size ?? 0;
  }

  get closed(): boolean {
    return this.#state === 'closed';
  }

  get isCompacting(): boolean {
    return this.#parts?.maintenance?.isCompacting ?? false;
  }

  /** True when every mutation is refused with READ_ONLY (see `storageStatus().readOnlyReason`). */
  get readOnly(): boolean {
    return this.#readOnly !== undefined;
  }

  /**
   * The disk and write state: whether the disk is full (new content refused with DISK_FULL until
   * space returns; reads, deletes and compaction go on), whether the store is read-only, and the
   * disk reserve. O(1), no I/O.
   */
  storageStatus(): StorageStatus {
    const space = this.#parts?.space?.status() ?? {
      diskFull: false,
      reserveBytes: this.#readOnly !== undefined ? 0 : this.#opts.diskReserveBytes,
      reserveHeldBytes: 0,
    };
    if (!space.diskFull && this.#fullAtOpen !== undefined) {
      space.diskFull = true;
      space.diskFullReason = this.#fullAtOpen;
    }
    return {
      ...space,
      readOnly: this.#readOnly !== undefined,
      ...(this.#readOnly !== undefined ? { readOnlyReason: this.#readOnly } : {}),
    };
  }

  /** Records that failed their checks at open (also reported by `verify`). */
  get corruptRecords(): CorruptRecord[] {
    return this.#parts?.keyspace.corruptSlots() ?? [];
  }

  /** The recall index: whether recall uses it yet, how much it holds, how far a rebuild got. */
  get indexStatus(): IndexStatus {
    return (
      this.#parts?.ann?.status ?? { state: 'off', indexed: 0, tail: 0, built: 0, toBuild: 0, searches: 0 }
    );
  }

  /** The last maintenance report, if any ran. */
  get lastMaintenance(): MaintenanceReport | undefined {
    return this.#parts?.maintenance?.lastReport;
  }

  /** The interrupted compaction found at open, until a compaction completes. */
  get interruptedCompaction(): InterruptedCompaction | undefined {
    return this.#parts?.maintenance?.interrupted;
  }

  on<K extends keyof WarmStoreEvents>(event: K, listener: WarmStoreEvents[K]): this {
    this.#events.on(event, listener);
    return this;
  }

  off<K extends keyof WarmStoreEvents>(event: K, listener: WarmStoreEvents[K]): this {
    this.#events.off(event, listener);
    return this;
  }

  // ------------------------------------------------------------------ writes

  /** Stores (creates or replaces) a memory. Durable when it resolves under 'sync' durability. */
  async put(record: MemoryRecord): Promise<void> {
    const p = this.#w();
    const t0 = performance.now();
    const rec = normalizeRecord(record, this.#dim, this.#opts.maxContentBytes, Date.now());
    await traced(
      'warmstore.put',
      { 'warmstore.id': rec.id, 'warmstore.content_bytes': rec.content?.length ?? 0 },
      () => p.writer.put(rec),
    );
    this.#events.emit('op', 'put', performance.now() - t0);
  }

  /** Stores several memories; all are validated before any is written, and share one commit. */
  async putMany(records: MemoryRecord[]): Promise<void> {
    const p = this.#w();
    if (!Array.isArray(records)) throw invalid('records', 'must be an array');
    const now = Date.now();
    const recs = records.map((r, i) => {
      try {
        return normalizeRecord(r, this.#dim, this.#opts.maxContentBytes, now);
      } catch (err) {
        if (WarmStoreError.is(err, 'INVALID_INPUT')) {
          throw invalid(`records[${i}].${err.details.field ?? 'record'}`, err.message);
        }
        throw err;
      }
    });
    const t0 = performance.now();
    await Promise.all(recs.map((rec) => p.writer.put(rec)));
    this.#events.emit('op', 'put', performance.now() - t0);
  }

  /** Deletes a memory; resolves true if it existed. */
  async delete(id: string, options?: SpaceOptions): Promise<boolean> {
    const p = this.#w();
    checkId(id);
    const space = spaceOption(options);
    const t0 = performance.now();
    const r = await traced('warmstore.delete', { 'warmstore.id': id }, () => p.writer.delete(space, id));
    this.#events.emit('op', 'delete', performance.now() - t0);
    return r;
  }

  // ------------------------------------------------------------------ spaces

  /** The live memory spaces and how many memories each holds ('default' always listed). */
  spaces(): SpaceInfo[] {
    const ks = this.#p().keyspace;
    const out = ks.spaces.entries().map(([name, id]) => ({ name, size: ks.sizeOf(id) }));
    if (!out.some((s) => s.name === DEFAULT_SPACE)) out.push({ name: DEFAULT_SPACE, size: 0 });
    return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  /**
   * Deletes a memory space and every memory in it: durable when it resolves (one WAL entry), and
   * online (the memories vanish at once; their slots are freed in the background, and their content
   * becomes dead bytes for compaction). Resolves with how many memories the space held.
   */
  async deleteSpace(space: string): Promise<number> {
    const p = this.#w();
    const name = checkSpace(space);
    const n = await traced('warmstore.deleteSpace', { 'warmstore.space': name }, () =>
      p.writer.dropSpace(name),
    );
    if (n > 0) this.#sweep(p);
    return n;
  }

  /** Frees the slots of dropped spaces a chunk at a time, between other work. */
  #sweep(p: Parts): void {
    if (this.#sweeping) return;
    this.#sweeping = true;
    let from = 0;
    const step = (): void => {
      if (this.#state !== 'open' || from >= p.keyspace.slotLimit) {
        this.#sweeping = false;
        return;
      }
      p.transitions.sweep(from, CHUNK_SLOTS);
      from += CHUNK_SLOTS;
      setImmediate(step);
    };
    setImmediate(step);
  }

  // ------------------------------------------------------------------ reads

  has(id: string, options?: SpaceOptions): boolean {
    const p = this.#p();
    checkId(id);
    const sid = p.keyspace.spaces.idOf(spaceOption(options));
    return sid !== undefined && p.keyspace.lookup(sid, id) !== undefined;
  }

  /**
   * The memory stored under `id`, or undefined. Reads its content with a synchronous pread while
   * those stay fast, and through the thread pool for a second after one did not (a page-cache
   * miss), so a cold cache never holds the event loop read after read.
   */
  async get(id: string, options: GetOptions = {}): Promise<StoredMemory | undefined> {
    const p = this.#p();
    checkId(id);
    const space = spaceOption(options);
    const t0 = performance.now();
    try {
      return await traced('warmstore.get', { 'warmstore.id': id }, async (span) => {
        if (options.touch === true) await this.#w().writer.touch(space, id, Date.now());
        const slot = this.#slotOf(p, space, id);
        if (slot === undefined) return undefined;
        const m = await p.reader.read(slot, id);
        span.setAttribute('warmstore.content_bytes', m.content?.length ?? 0);
        return m;
      });
    } finally {
      this.#events.emit('op', 'get', performance.now() - t0);
    }
  }

  /**
   * Synchronous read: a page-cached pread, no hop through the thread pool. On a page-cache miss it
   * waits for the disk on the calling thread; `get` avoids that.
   */
  getSync(id: string, options?: SpaceOptions): StoredMemory | undefined {
    const p = this.#p();
    checkId(id);
    const slot = this.#slotOf(p, spaceOption(options), id);
    return slot === undefined ? undefined : p.reader.readSync(slot, id);
  }

  /** The scan workers, started by the first recall over more than one table chunk. */
  #scanPool(ks: Keyspace): ScanPool | undefined {
    if (this.#pool === null) this.#pool = ScanPool.create(ks.table);
    return this.#pool;
  }

  #slotOf(p: ReadParts, space: string, id: string): number | undefined {
    const sid = p.keyspace.spaces.idOf(space);
    return sid === undefined ? undefined : p.keyspace.lookup(sid, id);
  }

  /**
   * Every memory of one space, or of every space, in slot order. A memory written during
   * iteration may or may not appear.
   */
  async *entries(options: EntriesOptions = {}): AsyncGenerator<StoredMemory> {
    const p = this.#p();
    if (typeof options !== 'object' || options === null) throw invalid('options', 'must be an object');
    let sid: number | undefined;
    if (options.space !== undefined) {
      sid = p.keyspace.spaces.idOf(checkSpace(options.space));
      if (sid === undefined) return;
    }
    yield* p.reader.entries(() => {
      if (this.#state !== 'open') throw new WarmStoreError('STORE_CLOSED', 'store closed during iteration');
    }, sid);
  }

  /** Ids of one space, or of every space. */
  *ids(options: EntriesOptions = {}): IterableIterator<string> {
    const ks = this.#p().keyspace;
    if (options.space === undefined) {
      yield* ks.ids();
      return;
    }
    const sid = ks.spaces.idOf(checkSpace(options.space));
    if (sid !== undefined) yield* ks.ids(sid);
  }

  /**
   * Cosine top-k of one space, best first (ties broken by id). With a filter, only memories whose
   * metadata fall in its ranges; k results whenever k memories match.
   */
  async recall(embedding: Float32Array | number[], options: RecallOptions = {}): Promise<RecallResult[]> {
    const p = this.#p();
    const q = validateEmbedding(embedding, this.#dim);
    if (typeof options !== 'object' || options === null) throw invalid('options', 'must be an object');
    const k = options.k ?? 10;
    if (!Number.isInteger(k) || k < 1 || k > 100_000) throw invalid('k', 'must be an integer in [1, 100000]');
    const minScore = options.minScore ?? -Infinity;
    if (typeof minScore !== 'number' || Number.isNaN(minScore)) throw invalid('minScore', 'must be a number');
    if (options.exact !== undefined && typeof options.exact !== 'boolean')
      throw invalid('exact', 'must be a boolean');
    const space = spaceOption(options);
    const filter = compileFilter(options.filter);
    let qn = 0;
    for (let d = 0; d < q.length; d++) qn += q[d]! * q[d]!;
    if (qn === 0) throw invalid('embedding', 'must not be the zero vector (cosine is undefined)');
    const t0 = performance.now();
    const out = await traced('warmstore.recall', { 'warmstore.k': k }, async () => {
      const ks = p.keyspace;
      const sid = ks.spaces.idOf(space);
      if (sid === undefined) return [];
      const hits =
        (options.exact !== true && (await this.#indexTopK(p, q, k, minScore, sid, filter))) ||
        (await exactTopK(
          ks.table,
          ks.slotLimit,
          q,
          k,
          minScore,
          sid,
          filter,
          () => yieldImmediate(),
          ks.slotLimit > CHUNK_SLOTS ? this.#scanPool(ks) : undefined,
        ));
      const results: RecallResult[] = [];
      for (const h of hits) {
        // The scan yielded: skip a hit whose slot was deleted or reused meanwhile.
        if (!ks.holds(sid, h.id, h.slot)) continue;
        if (options.touch === true) {
          await this.#w().writer.touch(space, h.id, Date.now());
          if (!ks.holds(sid, h.id, h.slot)) continue;
        }
        results.push({ memory: await p.reader.readBulk(h.slot), score: h.score });
      }
      return results;
    });
    this.#events.emit('op', 'recall', performance.now() - t0);
    return out;
  }

  /**
   * Top k through the recall index, or undefined when the planner prefers an exact scan or the
   * index left fewer than k of at least k matching memories. Candidates and the unacknowledged tail
   * are rescored exactly and checked against the id index, so scores are exact and nothing deleted
   * or replaced is returned.
   */
  async #indexTopK(
    p: ReadParts,
    q: Float32Array,
    k: number,
    minScore: number,
    sid: number,
    filter: ReturnType<typeof compileFilter>,
  ): Promise<Hit[] | undefined> {
    const ann = p.ann;
    const ks = p.keyspace;
    if (!ann?.ready) return undefined;
    const spaceSize = ks.sizeOf(sid);
    const minMemories = this.#opts.annMinMemories;
    // Counting matches costs a pass over the metadata columns: skip it when the space is too small.
    const matches = filter && spaceSize > minMemories ? countMatches(ks, sid, filter) : spaceSize;
    const plan = planRecall({
      k,
      exact: false,
      ready: true,
      total: ks.size,
      spaceSize,
      matches,
      tail: ann.tailSize,
      minMemories,
    });
    if (plan.path === 'exact') return undefined;
    let slots: Float64Array;
    try {
      slots = await ann.search(q, plan.candidates);
    } catch (err) {
      this.#opts.logger?.warn({ err }, 'recall index search failed: scanning exactly');
      return undefined;
    }
    // The tail as of now: every write after the search was posted is still unacknowledged.
    const hits = rescoreTopK(ks, [...slots, ...ann.tailSlots()], q, k, minScore, sid, filter);
    if (hits.length < k && hits.length < matches) return undefined;
    return hits;
  }

  /** Live and dead content bytes, from the per-segment ledger (O(segments), no scan). */
  contentStorageStats(): ContentStorageStats {
    const p = this.#parts;
    return p
      ? p.segments.stats()
      : { totalBytes: 0, liveBytes: 0, deadBytes: 0, fragmentationRatio: 0, segments: 0 };
  }

  // ------------------------------------------------------------------ maintenance

  /**
   * Makes records.dat durable up to now and starts a fresh WAL. Lock order: the checkpoint chain
   * (2) is taken before the writer queue (3), never the other way round.
   */
  checkpoint(): Promise<void> {
    return this.#w().checkpointer.checkpoint();
  }

  /** Online compaction. See docs/ARCHITECTURE.md, "Compaction state machine". */
  compact(options: CompactOptions = {}): Promise<CompactionStats> {
    let p: Parts;
    try {
      p = this.#w();
    } catch (err) {
      return Promise.reject(err);
    }
    return p.maintenance.compact(options);
  }

  /** Checks fragmentation against the thresholds and compacts if warranted; reports why. */
  runMaintenance(): Promise<MaintenanceReport> {
    let p: Parts;
    try {
      p = this.#w();
    } catch (err) {
      return Promise.reject(err);
    }
    return p.maintenance.runMaintenance();
  }

  /**
   * fsck: reads every record and every content entry, checks every checksum and owner id, and
   * cross-checks the per-segment live counts against a recount.
   */
  async verify(options: VerifyOptions = {}): Promise<VerifyReport> {
    const p = this.#p();
    if (typeof options !== 'object' || options === null) throw invalid('options', 'must be an object');
    return verifyStore(
      {
        keyspace: p.keyspace,
        files: p.files,
        segments: p.segments,
        reader: p.reader,
        // A read-only store checks what its files hold; the WAL's newer state is not in them.
        checkpoint: () => (this.#readOnly === undefined ? p.checkpointer!.checkpoint() : Promise.resolve()),
      },
      options,
    );
  }

  // ------------------------------------------------------------------ close

  /** Finishes queued writes, stops compaction safely, checkpoints and releases the lock. */
  async close(): Promise<void> {
    if (this.#state === 'closed' || this.#state === 'closing') return;
    this.#state = 'closing';
    for (const t of this.#timers) clearInterval(t);
    this.#timers = [];
    const p = this.#parts;
    if (p?.maintenance && p.writer && p.checkpointer && this.#readOnly === undefined) {
      await p.maintenance.stopCompaction(new Error('store closing'));
      try {
        if (this.#opts.durability === 'relaxed') await p.writer.syncAll();
        else await p.writer.barrier(async () => undefined);
        await p.checkpointer.checkpoint();
      } catch (err) {
        // The WAL still holds everything acknowledged; the next open replays it.
        this.#opts.logger?.error({ err }, 'checkpoint at close failed');
      }
    }
    await this.#pool?.close().catch(() => undefined);
    p?.space?.close();
    try {
      await this.#closeFiles();
    } finally {
      this.#state = 'closed';
      await this.#unlock();
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  async #closeFiles(): Promise<void> {
    const p = this.#parts;
    if (!p) return;
    await p.ann?.close();
    await p.files.close();
    await p.wal?.close();
    await p.segments.closeAll();
  }

  async #unlock(): Promise<void> {
    const release = this.#releaseLock;
    this.#releaseLock = undefined;
    await release?.();
  }

  /** For tests and tools: the slots-per-chunk of the in-memory table. */
  static readonly chunkSlots = CHUNK_SLOTS;
  static readonly entryHeaderBytes = ENTRY_HEADER_BYTES;
}
