import { SpanStatusCode } from '@opentelemetry/api';
import { realpathSync } from 'node:fs';
import { resolve } from 'node:path';
import { ENTRY_HEADER_BYTES } from '../content/segment.js';
import { WarmStoreError, invalid, ioError } from '../errors.js';
import type { Keyspace } from '../records/keyspace.js';
import { DEFAULT_SPACE } from '../records/spaces.js';
import { CHUNK_MASK, CHUNK_SLOTS } from '../records/table.js';
import type {
  BackupOptions,
  BackupResult,
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
  ScrubOptions,
  ScrubReport,
  ScrubStatus,
  SpaceInfo,
  SpaceOptions,
  StorageStatus,
  StoredMemory,
  VerifyOptions,
  VerifyReport,
  WarmStoreEvents,
  WarmStoreOptions,
} from '../types.js';
import {
  assemble,
  assembleReadOnly,
  closeFiles,
  lockStore,
  startTimers,
  type Assembled,
  type Parts,
  type ReadOnlyFallback,
  type ReadParts,
} from './assemble.js';
import { refuseIncompleteBackup } from './backup.js';
import { indexOffStatus } from '../ann/ann-index.js';
import { StoreEvents } from './events.js';
import { compileFilter, type CompiledFilter } from './filter.js';
import { resolveOptions, scrubRate, type ResolvedOptions } from './options.js';
import { scrubOffStatus } from './scrub.js';
import { startSpan, traced } from './tracing.js';
import { checkId, checkSpace, normalizeRecord, spaceOption, validateEmbedding } from './validate.js';
import { verifyStore } from './verify.js';
import { Recaller } from './recaller.js';
import type { Reader, StoredMemoryBytes } from './reader.js';
import { cosineOf, type Hit } from './recall.js';
import { withMovedMemories } from './recall-moves.js';

/** How `get` reads a memory: its embedding as a Float32Array. */
const readArray = (r: Reader, slot: number, id: string): StoredMemory | Promise<StoredMemory> =>
  r.readNow(slot, id);
/** How `getBytes` reads a memory: its embedding as its checked bytes. */
const readBytes = (r: Reader, slot: number, id: string): StoredMemoryBytes | Promise<StoredMemoryBytes> =>
  r.readBytesNow(slot, id);

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
  readonly #recaller: Recaller;

  private constructor(dir: string, opts: ResolvedOptions) {
    this.dir = dir;
    this.#opts = opts;
    this.#events = new StoreEvents(opts.logger);
    this.#recaller = new Recaller(opts.annMinMemories, opts.logger);
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
    const ctx = { dir: this.dir, opts: o, events: this.#events, isOpen: () => this.#state === 'open' };
    if (o.readOnly) {
      // No lock: taking it is a write, and a writer may be running (a backup of a live store).
      this.#readOnly = 'opened with readOnly';
      await refuseIncompleteBackup(o.fileSystem, this.dir);
      this.#adopt(await assembleReadOnly(ctx));
      this.#state = 'open';
      return;
    }
    try {
      await o.fileSystem.mkdir(this.dir);
    } catch (err) {
      throw ioError('mkdir', this.dir, err);
    }
    await refuseIncompleteBackup(o.fileSystem, this.dir);
    let key = this.dir;
    try {
      key = realpathSync(this.dir);
    } catch {
      // fall back to the resolved path
    }
    const lock = await lockStore(o.fileSystem, this.dir, key);
    if (typeof lock !== 'function') {
      this.#fallBackToReadOnly(lock);
      this.#adopt(await assembleReadOnly(ctx));
      this.#state = 'open';
      return;
    }
    this.#releaseLock = lock;
    try {
      this.#adopt(await assemble(ctx));
      this.#state = 'open';
    } catch (err) {
      await this.#unlock();
      throw err;
    }
    if (this.#readOnly !== undefined) return;
    this.#timers = startTimers(this.#parts as Parts, o, ctx.isOpen);
    try {
      await this.#parts!.maintenance!.startupCheck();
    } catch (err) {
      // A failed blocking startup compaction fails the open: release everything it held.
      await this.close();
      throw err;
    }
  }

  #adopt(a: Assembled): void {
    this.#parts = a.parts;
    this.#dim = a.dim;
    if (a.fallback) this.#fallBackToReadOnly(a.fallback);
  }

  /** Open could not write on a full disk: the store serves reads only, and says so. */
  #fallBackToReadOnly(f: ReadOnlyFallback): void {
    this.#readOnly = f.reason;
    this.#fullAtOpen = f.reason;
    this.#opts.logger?.warn(
      { dir: this.dir, reason: f.reason, err: f.err },
      'store opened read-only: reads work, every write is refused until a reopen with free space',
    );
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

  /**
   * Records that failed their checks at open or in a scrub pass (also reported by `verify`): a
   * read of one raises CORRUPTION_DETECTED until a put or delete of its id replaces it.
   */
  get corruptRecords(): CorruptRecord[] {
    return this.#parts?.keyspace.corruptSlots() ?? [];
  }

  /** The recall index: whether recall uses it yet, how much it holds, how far a rebuild got. */
  get indexStatus(): IndexStatus {
    return this.#parts?.ann?.status ?? indexOffStatus();
  }

  /**
   * The scrub: whether background passes run, the progress of the pass in progress, when the last
   * one ended and what passes found since open. O(1), no I/O; also after close (the last values).
   */
  scrubStatus(): ScrubStatus {
    return this.#parts?.scrubber.status() ?? scrubOffStatus();
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
  get(id: string, options: GetOptions = {}): Promise<StoredMemory | undefined> {
    // Not an async function: a read that completes synchronously (the usual page-cached case)
    // settles without the four promise hops an async wrapper and an awaited span would add.
    try {
      const m = this.#get(id, options, readArray);
      return m instanceof Promise ? m : Promise.resolve(m);
    } catch (err) {
      return Promise.reject(err as Error);
    }
  }

  /**
   * `get`, with the embedding as the bytes vectors.dat holds (float32 in the machine's byte order,
   * checked against their CRC32C) in place of a Float32Array, and without a promise when the read
   * completes synchronously (a page-cached read without `touch`). An error found synchronously (an
   * invalid id or space, a closed store, a checksum mismatch) is thrown, one found later rejects.
   * For a caller that writes the bytes out as they are, such as the server's base64 answers: it
   * skips the array's allocation and copy and the promise hops. The bytes are the caller's, cut
   * from a larger buffer that they keep alive while held. Counted and traced as a `get`.
   */
  getBytes(
    id: string,
    options: GetOptions = {},
  ): StoredMemoryBytes | undefined | Promise<StoredMemoryBytes | undefined> {
    return this.#get(id, options, readBytes);
  }

  #get<M extends { content: string | null }>(
    id: string,
    options: GetOptions,
    read: (reader: Reader, slot: number, id: string) => M | Promise<M>,
  ): M | undefined | Promise<M | undefined> {
    const t0 = performance.now();
    const span = startSpan('warmstore.get', { 'warmstore.id': String(id) });
    const done = (m: M | undefined): M | undefined => {
      if (m && span.isRecording()) span.setAttribute('warmstore.content_bytes', m.content?.length ?? 0);
      span.end();
      this.#events.emit('op', 'get', performance.now() - t0);
      return m;
    };
    const failed = (err: unknown): never => {
      span.recordException(err as Error);
      span.setStatus({ code: SpanStatusCode.ERROR, message: (err as Error).message });
      span.end();
      this.#events.emit('op', 'get', performance.now() - t0);
      throw err;
    };
    try {
      const p = this.#p();
      checkId(id);
      const space = spaceOption(options);
      if (options.touch === true) {
        return this.#w()
          .writer.touch(space, id, Date.now())
          .then(() => {
            const slot = this.#slotOf(p, space, id);
            return slot === undefined ? undefined : read(p.reader, slot, id);
          })
          .then(done, failed);
      }
      const slot = this.#slotOf(p, space, id);
      if (slot === undefined) return done(undefined);
      const m = read(p.reader, slot, id);
      return m instanceof Promise ? m.then(done, failed) : done(m);
    } catch (err) {
      return failed(err);
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
      const query = { q, k, minScore, space: sid, filter, exact: options.exact === true };
      const movesAtStart = ks.moveCount;
      let hits: Hit[] | undefined;
      // Slot moves during the scan are merged in (recall-moves.ts); a scan that outlived the
      // keyspace's memory of moves is run again.
      for (let attempt = 0; hits === undefined; attempt++) {
        const since = ks.moveCount;
        const found = await this.#recaller.topK(ks, p.ann, query);
        hits = attempt < 3 ? withMovedMemories(ks, since, found, query) : found;
      }
      const results: RecallResult[] = [];
      let rescored = false;
      for (const h of hits) {
        // The scan yielded: skip a hit whose slot was deleted or reused meanwhile, and follow one
        // that moved (relocated, or updated into another slot: scored again there).
        const at = this.#follow(ks, h, query, movesAtStart, qn);
        if (at === 'gone') continue;
        if (options.touch === true) {
          await this.#w().writer.touch(space, h.id, Date.now());
          const again = this.#follow(ks, h, query, movesAtStart, qn);
          if (again === 'gone') continue;
          rescored ||= again === 'moved';
        }
        rescored ||= at === 'moved';
        results.push({ memory: await p.reader.readBulk(h.slot), score: h.score });
      }
      if (rescored) results.sort((a, b) => b.score - a.score || (a.memory.id < b.memory.id ? -1 : 1));
      return results;
    });
    this.#events.emit('op', 'recall', performance.now() - t0);
    return out;
  }

  /**
   * Whether the hit's memory is still there: 'same' in its slot; 'moved' when slots moved since
   * the recall began and its id is now in another slot, to which the hit is re-pointed and where
   * it is scored and filtered again (an update may have changed it); else 'gone'.
   */
  #follow(
    ks: Keyspace,
    h: Hit,
    r: { q: Float32Array; minScore: number; space: number; filter: CompiledFilter | undefined },
    movesAtStart: number,
    qnSquared: number,
  ): 'same' | 'moved' | 'gone' {
    if (ks.holds(r.space, h.id, h.slot)) return 'same';
    if (ks.moveCount === movesAtStart) return 'gone';
    const now = ks.indexed(r.space, h.id);
    if (now === undefined) return 'gone';
    if (r.filter && !r.filter.matches(ks.table.chunk(now), now & CHUNK_MASK)) return 'gone';
    const score = cosineOf(ks.table, now, r.q, Math.sqrt(qnSquared));
    if (score < r.minScore) return 'gone';
    h.slot = now;
    h.score = score;
    return 'moved';
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

  /**
   * One scrub pass now: every memory's embedding and content read back and checked against its
   * CRC32C, at a bounded rate, while reads and writes go on. Resolves with what the pass found
   * (each also logged, emitted as `scrubCorruption` and listed in `corruptRecords`); rejects with
   * STORE_CLOSED if the store closes first. A background pass in progress gives way to it. Also
   * works on a read-only store (nothing is written either way).
   */
  scrub(options: ScrubOptions = {}): Promise<ScrubReport> {
    let p: ReadParts;
    try {
      p = this.#p();
      if (typeof options !== 'object' || options === null) throw invalid('options', 'must be an object');
    } catch (err) {
      return Promise.reject(err);
    }
    let rate: number | undefined;
    if (options.bytesPerSecond !== undefined) {
      try {
        rate = scrubRate(options.bytesPerSecond, 'bytesPerSecond', 0);
      } catch (err) {
        return Promise.reject(err);
      }
    }
    return traced('warmstore.scrub', {}, () => p.scrubber.scrub(rate));
  }

  /**
   * Online backup into `dir` (absent or empty, outside the store): a copy as of one LSN, taken
   * while reads and writes go on, openable as a store. Every write acknowledged before the call
   * is in it. Sealed segments are hard-linked (see `BackupOptions.link`), the rest copied. Until it
   * resolves, `dir` holds BACKUP-INCOMPLETE and `open` refuses it. See docs/operations.md.
   */
  async backup(dir: string, options: BackupOptions = {}): Promise<BackupResult> {
    const p = this.#p();
    if (typeof dir !== 'string' || dir.length === 0) throw invalid('dir', 'must be a non-empty path');
    if (typeof options !== 'object' || options === null) throw invalid('options', 'must be an object');
    if (options.link !== undefined && typeof options.link !== 'boolean')
      throw invalid('link', 'must be a boolean');
    if (options.onProgress !== undefined && typeof options.onProgress !== 'function') {
      throw invalid('onProgress', 'must be a function');
    }
    const backup = p.backup;
    if (backup === undefined) {
      throw new WarmStoreError(
        'READ_ONLY',
        `store ${this.dir} was opened read-only: back up its directory as it is`,
        {
          file: this.dir,
        },
      );
    }
    const target = resolve(dir);
    return traced('warmstore.backup', { 'warmstore.backup_dir': target }, () => backup.run(target, options));
  }

  // ------------------------------------------------------------------ close

  /** Finishes queued writes, stops compaction safely, checkpoints and releases the lock. */
  async close(): Promise<void> {
    if (this.#state === 'closed' || this.#state === 'closing') return;
    this.#state = 'closing';
    for (const t of this.#timers) clearInterval(t);
    this.#timers = [];
    const p = this.#parts;
    // Between two steps: a close waits for one run's read at most, never for a whole pass.
    await p?.scrubber.stop();
    // A backup still copying holds pins that the next owner of the directory would not see.
    await p?.backup?.settled();
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
    await this.#recaller.close();
    p?.space?.close();
    try {
      if (p) await closeFiles(p);
    } finally {
      this.#state = 'closed';
      await this.#unlock();
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
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
