/**
 * One adapter per engine, so that every engine stores the same records with the same
 * durability, in batches of 1000, and is read, iterated and compacted the same way.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { createRequire } from 'node:module';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { type BenchMemory, decodeValue, encodeValue, embBuffer, bufferToEmb } from './data.ts';

const require = createRequire(import.meta.url);

export interface CompactResult {
  /** Engine-reported details (warmstore: CompactionStats). */
  details: Record<string, unknown>;
  /** Time readers could not read at all (lmdb: close/rename/reopen), ms. */
  pauseMs?: number;
}

export interface Engine {
  readonly name: string;
  readonly dir: string;
  open(): Promise<void>;
  putBatch(recs: BenchMemory[]): Promise<void>;
  deleteBatch(ids: string[]): Promise<void>;
  getSync(id: string): BenchMemory | undefined;
  get?(id: string): Promise<BenchMemory | undefined>;
  /** Visits every record (decoded); returns the count. */
  iterate(): Promise<number>;
  compact(): Promise<CompactResult>;
  /** Flushes pending background work (checkpoints) so that compaction measures compaction. */
  settle?(): Promise<void>;
  /** Set while reads cannot proceed (a close/reopen swap); readers await it. */
  blocked?: Promise<void> | undefined;
  close(): Promise<void>;
  stats?(): Record<string, unknown>;
}

export type EngineName = 'warmstore-sync' | 'warmstore-relaxed' | 'lmdb' | 'level' | 'sqlite';

export const PEERS: Record<string, EngineName> = { lmdb: 'lmdb', level: 'level', sqlite: 'sqlite' };

export async function makeEngine(name: EngineName, dir: string, dim: number): Promise<Engine> {
  fs.mkdirSync(dir, { recursive: true });
  switch (name) {
    case 'warmstore-sync':
      return new WarmstoreEngine(name, dir, 'sync', dim);
    case 'warmstore-relaxed':
      return new WarmstoreEngine(name, dir, 'relaxed', dim);
    case 'lmdb':
      return new LmdbEngine(dir, dim);
    case 'level':
      return new LevelEngine(dir, dim);
    case 'sqlite':
      return new SqliteEngine(dir, dim);
  }
}

// ---------------------------------------------------------------- warmstore

/* eslint-disable @typescript-eslint/no-explicit-any */
let wsModule: any;
export async function loadWarmstore(): Promise<any> {
  if (!wsModule) wsModule = await import(new URL('../../dist/index.js', import.meta.url).href);
  return wsModule;
}

class WarmstoreEngine implements Engine {
  store: any;
  constructor(
    readonly name: string,
    readonly dir: string,
    readonly durability: 'sync' | 'relaxed',
    readonly dim: number,
  ) {}
  async open(): Promise<void> {
    const { WarmStore } = await loadWarmstore();
    this.store = await WarmStore.open(this.dir, {
      dimension: this.dim,
      durability: this.durability,
      maintenanceIntervalMs: false,
      maintenance: { startupCompaction: 'off' },
    });
  }
  async putBatch(recs: BenchMemory[]): Promise<void> {
    // 1000 concurrent puts, then await all: group commit.
    await Promise.all(recs.map((r) => this.store.put(r)));
  }
  async putMany(recs: BenchMemory[]): Promise<void> {
    await this.store.putMany(recs);
  }
  async deleteBatch(ids: string[]): Promise<void> {
    await Promise.all(ids.map((id) => this.store.delete(id)));
  }
  getSync(id: string): BenchMemory | undefined {
    return this.store.getSync(id);
  }
  get(id: string): Promise<BenchMemory | undefined> {
    return this.store.get(id);
  }
  async iterate(): Promise<number> {
    let n = 0;
    let bytes = 0;
    for await (const m of this.store.entries()) {
      n++;
      bytes += m.content === null ? 0 : m.content.length;
    }
    if (bytes < 0) throw new Error('unreachable');
    return n;
  }
  async settle(): Promise<void> {
    await this.store.checkpoint();
  }
  async compact(): Promise<CompactResult> {
    // Time spent in each phase reported through onProgress (plan, copy, commit, checkpoint, ...).
    const phaseMs: Record<string, number> = {};
    // Longest synchronous step per phase, from the engine's own 'compactionPause' events.
    const maxPauseByPhase: Record<string, number> = {};
    let phase = 'start';
    let since = performance.now();
    const onPause = (ms: number): void => {
      maxPauseByPhase[phase] = Math.max(maxPauseByPhase[phase] ?? 0, Math.round(ms * 10) / 10);
    };
    this.store.on('compactionPause', onPause);
    // Event-loop stall per phase, measured from outside the engine.
    const eldByPhase: Record<string, number> = {};
    const eld = monitorEventLoopDelay({ resolution: 1 });
    eld.enable();
    const closePhase = (): void => {
      eldByPhase[phase] = Math.max(eldByPhase[phase] ?? 0, Math.round(eld.max / 1e5) / 10);
      eld.reset();
    };
    const stats = await this.store.compact({
      force: true,
      onProgress: (p: { phase: string }) => {
        if (p.phase === phase) return;
        const t = performance.now();
        closePhase();
        phaseMs[phase] = (phaseMs[phase] ?? 0) + (t - since);
        phase = p.phase;
        since = t;
      },
    });
    phaseMs[phase] = (phaseMs[phase] ?? 0) + (performance.now() - since);
    closePhase();
    eld.disable();
    this.store.off('compactionPause', onPause);
    for (const k of Object.keys(phaseMs)) phaseMs[k] = Math.round(phaseMs[k]!);
    return { details: { ...stats, phaseMs, maxPauseByPhase, eldMaxMsByPhase: eldByPhase } };
  }
  async close(): Promise<void> {
    if (this.store && !this.store.closed) await this.store.close();
  }
  stats(): Record<string, unknown> {
    return { ...this.store.contentStorageStats() };
  }
}
/* eslint-enable @typescript-eslint/no-explicit-any */

// ---------------------------------------------------------------- lmdb-js

class LmdbEngine implements Engine {
  readonly name = 'lmdb';
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  db: any;
  blocked: Promise<void> | undefined;
  readonly file: string;
  constructor(
    readonly dir: string,
    readonly dim: number,
  ) {
    this.file = path.join(dir, 'data.mdb');
  }
  private openDb(): void {
    const { open } = require('lmdb');
    // Defaults (overlappingSync on Linux: commits are durable once `flushed` resolves).
    this.db = open({ path: this.file, encoding: 'binary', compression: false });
  }
  async open(): Promise<void> {
    this.openDb();
  }
  async putBatch(recs: BenchMemory[]): Promise<void> {
    await this.db.transaction(() => {
      for (const r of recs) this.db.put(r.id, encodeValue(r));
    });
    await this.db.flushed; // durable, like warmstore 'sync'
  }
  async deleteBatch(ids: string[]): Promise<void> {
    await this.db.transaction(() => {
      for (const id of ids) this.db.remove(id);
    });
    await this.db.flushed;
  }
  getSync(id: string): BenchMemory | undefined {
    const v = this.db.get(id);
    return v === undefined ? undefined : decodeValue(id, v, this.dim);
  }
  async iterate(): Promise<number> {
    let n = 0;
    for (const { key, value } of this.db.getRange()) {
      decodeValue(key, value, this.dim);
      n++;
    }
    return n;
  }
  async compact(): Promise<CompactResult> {
    // lmdb-js: copy with compaction (mdb_env_copy2 MDB_CP_COMPACT, in a native thread) while
    // readers use the live file, then close, swap the file in, reopen.
    const tmp = this.file + '.compact';
    fs.rmSync(tmp, { force: true });
    await this.db.backup(tmp, true);
    const t0 = performance.now();
    let release!: () => void;
    this.blocked = new Promise((r) => (release = r));
    await this.db.close();
    fs.renameSync(tmp, this.file);
    this.openDb();
    this.blocked = undefined;
    release();
    return { details: {}, pauseMs: performance.now() - t0 };
  }
  async close(): Promise<void> {
    if (this.db) await this.db.close();
    this.db = undefined;
  }
}

// ---------------------------------------------------------------- classic-level

class LevelEngine implements Engine {
  readonly name = 'level';
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  db: any;
  constructor(
    readonly dir: string,
    readonly dim: number,
  ) {}
  async open(): Promise<void> {
    const { ClassicLevel } = require('classic-level');
    this.db = new ClassicLevel(this.dir, { keyEncoding: 'utf8', valueEncoding: 'buffer' });
    await this.db.open();
  }
  async putBatch(recs: BenchMemory[]): Promise<void> {
    await this.db.batch(
      recs.map((r) => ({ type: 'put', key: r.id, value: encodeValue(r) })),
      { sync: true },
    );
  }
  async deleteBatch(ids: string[]): Promise<void> {
    await this.db.batch(
      ids.map((id) => ({ type: 'del', key: id })),
      { sync: true },
    );
  }
  getSync(id: string): BenchMemory | undefined {
    const v = this.db.getSync(id);
    return v === undefined ? undefined : decodeValue(id, v, this.dim);
  }
  async get(id: string): Promise<BenchMemory | undefined> {
    const v = await this.db.get(id);
    return v === undefined ? undefined : decodeValue(id, v, this.dim);
  }
  async iterate(): Promise<number> {
    let n = 0;
    for await (const [k, v] of this.db.iterator()) {
      decodeValue(k, v, this.dim);
      n++;
    }
    return n;
  }
  async compact(): Promise<CompactResult> {
    await this.db.compactRange('mem-', 'mem-~'); // every key starts with 'mem-'
    return { details: {} };
  }
  async close(): Promise<void> {
    if (this.db) await this.db.close();
    this.db = undefined;
  }
}

// ---------------------------------------------------------------- better-sqlite3

class SqliteEngine implements Engine {
  readonly name = 'sqlite';
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  db: any;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  private ins: any;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  private sel: any;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  private del: any;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  private insertTx: any;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  private deleteTx: any;
  readonly file: string;
  constructor(
    readonly dir: string,
    readonly dim: number,
  ) {
    this.file = path.join(dir, 'memories.sqlite');
  }
  async open(): Promise<void> {
    const Database = require('better-sqlite3');
    this.db = new Database(this.file);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = FULL');
    this.db.pragma('busy_timeout = 60000');
    this.db.exec(`CREATE TABLE IF NOT EXISTS memories (
      id TEXT PRIMARY KEY,
      embedding BLOB NOT NULL,
      content TEXT,
      confidence REAL NOT NULL,
      activation REAL NOT NULL,
      decay_rate REAL NOT NULL,
      created_at INTEGER NOT NULL,
      last_access INTEGER NOT NULL,
      access_count INTEGER NOT NULL)`);
    this.ins = this.db.prepare('INSERT OR REPLACE INTO memories VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)');
    this.sel = this.db.prepare('SELECT * FROM memories WHERE id = ?');
    this.del = this.db.prepare('DELETE FROM memories WHERE id = ?');
    this.insertTx = this.db.transaction((recs: BenchMemory[]) => {
      for (const r of recs)
        this.ins.run(
          r.id,
          embBuffer(r.embedding),
          r.content,
          r.confidence,
          r.activation,
          r.decayRate,
          r.createdAt,
          r.lastAccess,
          r.accessCount,
        );
    });
    this.deleteTx = this.db.transaction((ids: string[]) => {
      for (const id of ids) this.del.run(id);
    });
  }
  async putBatch(recs: BenchMemory[]): Promise<void> {
    this.insertTx(recs); // one transaction, WAL + synchronous=FULL: fsync at commit
  }
  async deleteBatch(ids: string[]): Promise<void> {
    this.deleteTx(ids);
  }
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  private row(r: any): BenchMemory {
    return {
      id: r.id,
      embedding: bufferToEmb(r.embedding),
      content: r.content,
      confidence: r.confidence,
      activation: r.activation,
      decayRate: r.decay_rate,
      createdAt: r.created_at,
      lastAccess: r.last_access,
      accessCount: r.access_count,
    };
  }
  getSync(id: string): BenchMemory | undefined {
    const r = this.sel.get(id);
    return r === undefined ? undefined : this.row(r);
  }
  async iterate(): Promise<number> {
    let n = 0;
    for (const r of this.db.prepare('SELECT * FROM memories').iterate()) {
      this.row(r);
      n++;
    }
    return n;
  }
  async settle(): Promise<void> {
    this.db.pragma('wal_checkpoint(TRUNCATE)');
  }
  async compact(): Promise<CompactResult> {
    // VACUUM on a second connection in a worker thread (better-sqlite3 is synchronous), so the
    // main thread's connection keeps reading (WAL), then a TRUNCATE checkpoint to give space back.
    const worker = new Worker(new URL('./sqlite-vacuum.mjs', import.meta.url), {
      workerData: { file: this.file, module: require.resolve('better-sqlite3') },
      execArgv: [],
    });
    const result = await new Promise<Record<string, unknown>>((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
      worker.once('exit', (code) =>
        code !== 0 ? reject(new Error(`vacuum worker exit ${code}`)) : undefined,
      );
    });
    await worker.terminate();
    return { details: result };
  }
  async close(): Promise<void> {
    if (this.db) this.db.close();
    this.db = undefined;
  }
}
