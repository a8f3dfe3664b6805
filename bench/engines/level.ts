/** classic-level (LevelDB) under the bench: one binary value per record, synced batches. */
import { type BenchMemory, decodeValue, encodeValue } from '../lib/data.ts';
import type { CompactResult, Engine } from './engine.ts';
import { type ClassicLevelDatabase, type ClassicLevelModule, loadPeer } from './peers.ts';

export class LevelEngine implements Engine {
  readonly name = 'level';
  private db: ClassicLevelDatabase | undefined;
  constructor(
    readonly dir: string,
    private readonly dim: number,
  ) {}
  private get d(): ClassicLevelDatabase {
    if (!this.db) throw new Error('level: not open');
    return this.db;
  }
  async open(): Promise<void> {
    const { ClassicLevel } = loadPeer<ClassicLevelModule>('classic-level');
    this.db = new ClassicLevel(this.dir, { keyEncoding: 'utf8', valueEncoding: 'buffer' });
    await this.db.open();
  }
  async putBatch(recs: BenchMemory[]): Promise<void> {
    await this.d.batch(
      recs.map((r) => ({ type: 'put', key: r.id, value: encodeValue(r) })),
      { sync: true },
    );
  }
  async deleteBatch(ids: string[]): Promise<void> {
    await this.d.batch(
      ids.map((id) => ({ type: 'del', key: id })),
      { sync: true },
    );
  }
  getSync(id: string): BenchMemory | undefined {
    const v = this.d.getSync(id);
    return v === undefined ? undefined : decodeValue(id, v, this.dim);
  }
  async get(id: string): Promise<BenchMemory | undefined> {
    const v = await this.d.get(id);
    return v === undefined ? undefined : decodeValue(id, v, this.dim);
  }
  async iterate(): Promise<number> {
    let n = 0;
    for await (const [k, v] of this.d.iterator()) {
      decodeValue(k, v, this.dim);
      n++;
    }
    return n;
  }
  async compact(): Promise<CompactResult> {
    await this.d.compactRange('mem-', 'mem-~'); // every key starts with 'mem-'
    return { details: {} };
  }
  async close(): Promise<void> {
    if (this.db) await this.db.close();
    this.db = undefined;
  }
}
