import { EventEmitter } from 'node:events';
import { indexOffStatus } from '../../../src/ann/ann-index.js';
import { WarmStoreError, invalid } from '../../../src/errors.js';
import type {
  BackupOptions,
  BackupResult,
  VerifyReport,
  IndexStatus,
  CompactOptions,
  CompactionStats,
  ContentStorageStats,
  EntriesOptions,
  GetOptions,
  MaintenanceReport,
  MemoryRecord,
  RecallOptions,
  RecallResult,
  SpaceInfo,
  SpaceOptions,
  StoredMemory,
} from '../../../src/types.js';
import type { StoreApi } from '../../../src/server/store-api.js';
import { compileFilter, matchesMetadata } from '../../../src/engine/filter.js';

export const ZERO_STATS: CompactionStats = {
  durationMs: 1,
  bytesBefore: 0,
  bytesAfter: 0,
  bytesReclaimed: 0,
  recordsMoved: 0,
  segmentsCompacted: 0,
  maxPauseMs: 0,
  resumed: false,
  slotsMoved: 0,
  recordBytesReclaimed: 0,
};

/**
 * A Map-backed stand-in for WarmStore. Server unit tests use it to reach error paths a real store
 * cannot be made to produce on demand (507, corruption, a compaction that waits for its signal).
 */
export class FakeStore extends EventEmitter implements StoreApi {
  readonly dir = '/fake';
  closed = false;
  isCompacting = false;
  /** Memories by space, then by id. */
  readonly bySpace = new Map<string, Map<string, StoredMemory>>([['default', new Map()]]);
  /** Replaces the behaviour of compact(); default: resolves with ZERO_STATS. */
  compactImpl: (options: CompactOptions) => Promise<CompactionStats> = async () => ZERO_STATS;
  /** Thrown by get() when set. */
  getError: Error | undefined;
  lastCompactOptions: CompactOptions | undefined;

  constructor(readonly dimension = 4) {
    super();
  }

  /** The memories of the default space, by id. */
  get records(): Map<string, StoredMemory> {
    return this.#space('default');
  }

  #space(name: string | undefined): Map<string, StoredMemory> {
    const key = name ?? 'default';
    let m = this.bySpace.get(key);
    if (m === undefined) {
      m = new Map();
      this.bySpace.set(key, m);
    }
    return m;
  }

  get size(): number {
    let n = 0;
    for (const m of this.bySpace.values()) n += m.size;
    return n;
  }

  #open(): void {
    if (this.closed) throw new WarmStoreError('STORE_CLOSED', 'the store is closed');
  }

  #check(r: MemoryRecord): void {
    if (r.embedding.length !== this.dimension) throw invalid('embedding', 'wrong dimension');
    if (r.content !== undefined && r.content !== null && r.content.length > 1000) {
      throw invalid('content', 'too long');
    }
  }

  async put(r: MemoryRecord): Promise<void> {
    this.#open();
    this.#check(r);
    const createdAt = r.createdAt ?? Date.now();
    this.#space(r.space).set(r.id, {
      id: r.id,
      space: r.space ?? 'default',
      embedding: Float32Array.from(r.embedding),
      content: r.content ?? null,
      confidence: r.confidence ?? 1,
      activation: r.activation ?? 0,
      decayRate: r.decayRate ?? 0,
      createdAt,
      lastAccess: r.lastAccess ?? createdAt,
      accessCount: r.accessCount ?? 0,
    });
    this.emit('op', 'put', 0.05);
  }

  async putMany(records: MemoryRecord[]): Promise<void> {
    this.#open();
    records.forEach((r, i) => {
      try {
        this.#check(r);
      } catch (err) {
        const e = err as WarmStoreError;
        throw invalid(`records[${i}].${e.details.field ?? 'record'}`, e.message);
      }
    });
    for (const r of records) await this.put(r);
  }

  async get(id: string, options: GetOptions = {}): Promise<StoredMemory | undefined> {
    this.#open();
    if (this.getError) throw this.getError;
    const m = this.bySpace.get(options.space ?? 'default')?.get(id);
    if (m && options.touch) {
      m.accessCount++;
      m.lastAccess = Date.now();
    }
    this.emit('op', 'get', 0.01);
    return m;
  }

  async delete(id: string, options: SpaceOptions = {}): Promise<boolean> {
    this.#open();
    this.emit('op', 'delete', 0.02);
    return this.bySpace.get(options.space ?? 'default')?.delete(id) ?? false;
  }

  has(id: string, options: SpaceOptions = {}): boolean {
    return this.bySpace.get(options.space ?? 'default')?.has(id) ?? false;
  }

  spaces(): SpaceInfo[] {
    return [...this.bySpace]
      .filter(([name, m]) => name === 'default' || m.size > 0)
      .map(([name, m]) => ({ name, size: m.size }))
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  async deleteSpace(space: string): Promise<number> {
    this.#open();
    const n = this.bySpace.get(space)?.size ?? 0;
    if (space === 'default') this.records.clear();
    else this.bySpace.delete(space);
    return n;
  }

  /** Thrown by entries() after this many memories when set (an export cut short). */
  entriesErrorAfter: number | undefined;

  async *entries(options: EntriesOptions = {}): AsyncGenerator<StoredMemory> {
    this.#open();
    let n = 0;
    const spaces =
      options.space === undefined
        ? [...this.bySpace.values()]
        : [this.bySpace.get(options.space) ?? new Map()];
    for (const m of spaces.flatMap((s) => [...s.values()])) {
      if (n++ === this.entriesErrorAfter) throw new WarmStoreError('IO_ERROR', 'read failed');
      yield m;
    }
  }

  /** Every memory of the space that passes the filter, in insertion order, each scoring 0.5. */
  async recall(_embedding: Float32Array | number[], options: RecallOptions = {}): Promise<RecallResult[]> {
    this.#open();
    const filter = compileFilter(options.filter);
    return [...(this.bySpace.get(options.space ?? 'default')?.values() ?? [])]
      .filter((m) => matchesMetadata(filter, m))
      .slice(0, options.k ?? 10)
      .map((memory) => ({ memory, score: 0.5 }));
  }

  contentStorageStats(): ContentStorageStats {
    return { totalBytes: 100, liveBytes: 60, deadBytes: 40, fragmentationRatio: 0.4, segments: 2 };
  }

  async compact(options: CompactOptions = {}): Promise<CompactionStats> {
    this.#open();
    this.lastCompactOptions = options;
    return this.compactImpl(options);
  }

  /** Backups asked for, in order. */
  backups: Array<{ dir: string; options: BackupOptions | undefined }> = [];

  async backup(dir: string, options?: BackupOptions): Promise<BackupResult> {
    this.#open();
    this.backups.push({ dir, options });
    return { dir, lsn: 1, checkpointLsn: 0, files: 1, bytesCopied: 0, bytesLinked: 0, durationMs: 1 };
  }

  async runMaintenance(): Promise<MaintenanceReport> {
    return {
      at: 1,
      stats: this.contentStorageStats(),
      thresholds: { fragmentationThreshold: 0.5, minTotalBytes: 100 },
      decision: 'skipped',
      reason: 'below threshold',
      checkpointed: false,
    };
  }

  /** Set by a test: what the storage route reports of the recall index. */
  indexStatus: IndexStatus = indexOffStatus();

  /** Set by a test: the next verify() reports these problems. */
  verifyProblems: VerifyReport['problems'] = [];

  async verify(): Promise<VerifyReport> {
    this.#open();
    return {
      ok: this.verifyProblems.length === 0,
      records: this.size,
      segments: 1,
      bytesChecked: 0,
      problems: this.verifyProblems,
    };
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}
