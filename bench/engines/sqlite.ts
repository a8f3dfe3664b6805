/** better-sqlite3 under the bench: a table of columns, WAL with synchronous=FULL. */
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { type BenchMemory, bufferToEmb, embBuffer } from '../lib/data.ts';
import type { CompactResult, Engine } from './engine.ts';
import {
  type SqliteDatabase,
  type SqliteModule,
  type SqliteStatement,
  loadPeer,
  resolvePeer,
} from './peers.ts';

interface Row {
  id: string;
  embedding: Buffer;
  content: string | null;
  confidence: number;
  activation: number;
  decay_rate: number;
  created_at: number;
  last_access: number;
  access_count: number;
}

interface Open {
  db: SqliteDatabase;
  sel: SqliteStatement<Row>;
  insertTx: (recs: BenchMemory[]) => void;
  deleteTx: (ids: string[]) => void;
}

function fromRow(r: Row): BenchMemory {
  return {
    id: r.id,
    space: 'default',
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

export class SqliteEngine implements Engine {
  readonly name = 'sqlite';
  private conn: Open | undefined;
  private readonly file: string;
  constructor(
    readonly dir: string,
    _dim: number,
  ) {
    this.file = path.join(dir, 'memories.sqlite');
  }
  private get c(): Open {
    if (!this.conn) throw new Error('sqlite: not open');
    return this.conn;
  }
  async open(): Promise<void> {
    const Database = loadPeer<SqliteModule>('better-sqlite3');
    const db = new Database(this.file);
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.pragma('busy_timeout = 60000');
    db.exec(`CREATE TABLE IF NOT EXISTS memories (
      id TEXT PRIMARY KEY,
      embedding BLOB NOT NULL,
      content TEXT,
      confidence REAL NOT NULL,
      activation REAL NOT NULL,
      decay_rate REAL NOT NULL,
      created_at INTEGER NOT NULL,
      last_access INTEGER NOT NULL,
      access_count INTEGER NOT NULL)`);
    const ins = db.prepare('INSERT OR REPLACE INTO memories VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)');
    const del = db.prepare('DELETE FROM memories WHERE id = ?');
    this.conn = {
      db,
      sel: db.prepare<Row>('SELECT * FROM memories WHERE id = ?'),
      insertTx: db.transaction((recs: BenchMemory[]) => {
        for (const r of recs)
          ins.run(
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
      }),
      deleteTx: db.transaction((ids: string[]) => {
        for (const id of ids) del.run(id);
      }),
    };
  }
  async putBatch(recs: BenchMemory[]): Promise<void> {
    this.c.insertTx(recs); // one transaction, WAL + synchronous=FULL: fsync at commit
  }
  async deleteBatch(ids: string[]): Promise<void> {
    this.c.deleteTx(ids);
  }
  getSync(id: string): BenchMemory | undefined {
    const r = this.c.sel.get(id);
    return r === undefined ? undefined : fromRow(r);
  }
  async iterate(): Promise<number> {
    let n = 0;
    for (const r of this.c.db.prepare<Row>('SELECT * FROM memories').iterate()) {
      fromRow(r);
      n++;
    }
    return n;
  }
  async settle(): Promise<void> {
    this.c.db.pragma('wal_checkpoint(TRUNCATE)');
  }
  async compact(): Promise<CompactResult> {
    // VACUUM on a second connection in a worker thread (better-sqlite3 is synchronous), so the
    // main thread's connection keeps reading (WAL), then a TRUNCATE checkpoint to give space back.
    const worker = new Worker(new URL('./sqlite-vacuum.mjs', import.meta.url), {
      workerData: { file: this.file, module: resolvePeer('better-sqlite3') },
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
    if (this.conn) this.conn.db.close();
    this.conn = undefined;
  }
}
