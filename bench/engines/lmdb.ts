/** lmdb-js under the bench: one binary value per record, durable once `flushed` resolves. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { type BenchMemory, decodeValue, encodeValue } from '../lib/data.ts';
import type { CompactResult, Engine } from './engine.ts';
import { type LmdbDatabase, type LmdbModule, loadPeer } from './peers.ts';

export class LmdbEngine implements Engine {
  readonly name = 'lmdb';
  private db: LmdbDatabase | undefined;
  blocked: Promise<void> | undefined;
  private readonly file: string;
  constructor(
    readonly dir: string,
    private readonly dim: number,
  ) {
    this.file = path.join(dir, 'data.mdb');
  }
  private get d(): LmdbDatabase {
    if (!this.db) throw new Error('lmdb: not open');
    return this.db;
  }
  private openDb(): void {
    // Defaults (overlappingSync on Linux: commits are durable once `flushed` resolves).
    this.db = loadPeer<LmdbModule>('lmdb').open({ path: this.file, encoding: 'binary', compression: false });
  }
  async open(): Promise<void> {
    this.openDb();
  }
  async putBatch(recs: BenchMemory[]): Promise<void> {
    const db = this.d;
    await db.transaction(() => {
      for (const r of recs) void db.put(r.id, encodeValue(r));
    });
    await db.flushed; // durable, like warmstore 'sync'
  }
  async deleteBatch(ids: string[]): Promise<void> {
    const db = this.d;
    await db.transaction(() => {
      for (const id of ids) void db.remove(id);
    });
    await db.flushed;
  }
  getSync(id: string): BenchMemory | undefined {
    const v = this.d.get(id);
    return v === undefined ? undefined : decodeValue(id, v, this.dim);
  }
  async iterate(): Promise<number> {
    let n = 0;
    for (const { key, value } of this.d.getRange()) {
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
    await this.d.backup(tmp, true);
    const t0 = performance.now();
    let release!: () => void;
    this.blocked = new Promise((r) => (release = r));
    await this.d.close();
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
