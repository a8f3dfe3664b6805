/**
 * LanceDB, the embedded vector store agent-memory frameworks use for this job, on the same
 * vectors: a table, its IVF_PQ index (cosine, default partitions and sub-vectors), searches with
 * and without a refine step, and flat search (no index) on a few queries.
 *
 * Its native threads follow LANCE_CPU_THREADS (the parent sets 2 on this 2-core machine unless
 * given); RUST_LOG=error keeps its warnings out of the log.
 */
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { readRows } from './data.ts';
import {
  type LanceResult,
  type RecallJob,
  type SearchRun,
  cpuSeconds,
  dirBytes,
  pct,
  rssAnon,
  twoInFlight,
} from './figures.ts';

const log = (line: string): void => console.log(`  [lancedb] ${line}`);

// LanceDB and Arrow live in bench/node_modules, which only a benchmark run installs: the root
// install (and so `npm run lint` in a fresh clone) lacks them. So they are loaded by a name the
// compiler does not resolve and typed by what this file calls (see engines/peers.ts).

/** An Arrow data type, field, schema, data or batch: opaque here, handed back to Arrow. */
type ArrowObject = object;
interface ArrowModule {
  FixedSizeList: new (size: number, child: ArrowObject) => ArrowObject;
  Field: new (name: string, type: ArrowObject, nullable: boolean) => ArrowObject;
  Float32: new () => ArrowObject;
  Int32: new () => ArrowObject;
  Schema: new (fields: ArrowObject[]) => ArrowObject & { fields: ArrowObject[] };
  Struct: new (fields: ArrowObject[]) => ArrowObject;
  RecordBatch: new (schema: ArrowObject, data: ArrowObject) => ArrowObject;
  Table: new (batches: ArrowObject[]) => ArrowObject;
  makeData(props: Record<string, unknown>): ArrowObject;
}

interface VectorQuery {
  distanceType(d: 'cosine'): VectorQuery;
  select(cols: string[]): VectorQuery;
  limit(k: number): VectorQuery;
  nprobes(n: number): VectorQuery;
  refineFactor(r: number): VectorQuery;
  bypassVectorIndex(): VectorQuery;
  toArray(): Promise<Array<{ id: number }>>;
}

interface LanceTable {
  createIndex(column: string, options: { config: unknown; replace: boolean }): Promise<void>;
  vectorSearch(q: number[]): VectorQuery;
  close(): void;
}

interface LanceModule {
  connect(dir: string): Promise<{
    createTable(name: string, data: ArrowObject, options: { mode: 'overwrite' }): Promise<LanceTable>;
    openTable(name: string): Promise<LanceTable>;
    close(): void;
  }>;
  Index: { ivfPq(options: { distanceType: 'cosine' }): unknown };
}

const require = createRequire(import.meta.url);
const LANCEDB = '@lancedb/lancedb';
const ARROW = 'apache-arrow';
const lancedb = require(LANCEDB) as LanceModule;
const arrow = require(ARROW) as ArrowModule;

/** Rows per record batch handed to createTable. */
const CHUNK = 20_000;

function tableOf(base: Float32Array, n: number, dim: number): ArrowObject {
  const vecType = new arrow.FixedSizeList(dim, new arrow.Field('item', new arrow.Float32(), true));
  const schema = new arrow.Schema([
    new arrow.Field('id', new arrow.Int32(), false),
    new arrow.Field('vector', vecType, false),
  ]);
  const batches: ArrowObject[] = [];
  for (let i = 0; i < n; i += CHUNK) {
    const m = Math.min(CHUNK, n - i);
    const ids = Int32Array.from({ length: m }, (_, j) => i + j);
    const child = arrow.makeData({
      type: new arrow.Float32(),
      length: m * dim,
      data: base.subarray(i * dim, (i + m) * dim),
    });
    const vec = arrow.makeData({ type: vecType, length: m, nullCount: 0, child });
    const id = arrow.makeData({ type: new arrow.Int32(), length: m, data: ids });
    const struct = arrow.makeData({
      type: new arrow.Struct(schema.fields),
      length: m,
      nullCount: 0,
      children: [id, vec],
    });
    batches.push(new arrow.RecordBatch(schema, struct));
  }
  return new arrow.Table(batches);
}

export async function runLance(job: RecallJob): Promise<LanceResult> {
  const { files, k } = job;
  const { n, dim } = files;
  const rss: Record<string, number> = { start: rssAnon() };
  const db = await lancedb.connect(job.dir);
  let tbl: LanceTable;
  let createTableS: number;
  {
    const base = readRows(files.base, dim, 0, n);
    const t0 = performance.now();
    tbl = await db.createTable('t', tableOf(base, n, dim), { mode: 'overwrite' });
    createTableS = (performance.now() - t0) / 1000;
  }
  log(`createTable ${createTableS.toFixed(1)} s`);
  const t1 = performance.now();
  const c1 = cpuSeconds();
  await tbl.createIndex('vector', { config: lancedb.Index.ivfPq({ distanceType: 'cosine' }), replace: true });
  const buildS = (performance.now() - t1) / 1000;
  const buildCpuS = cpuSeconds() - c1;
  rss.built = rssAnon();
  log(`IVF_PQ build ${buildS.toFixed(1)} s (CPU ${buildCpuS.toFixed(1)} s)`);
  const diskBytes = dirBytes(job.dir);
  const indexBytes = dirBytes(path.join(job.dir, 't.lance', '_indices'));
  tbl.close();

  // Searches on a freshly opened table, as an application would after a restart.
  const t = await db.openTable('t');
  rss.opened = rssAnon();
  const queries = readRows(files.queries, dim, 0, job.queries);
  const q = (i: number): number[] => Array.from(queries.subarray(i * dim, (i + 1) * dim));
  const base = (i: number): VectorQuery =>
    t.vectorSearch(q(i)).distanceType('cosine').select(['id']).limit(k);
  const rowsOf = async (query: VectorQuery): Promise<number[]> => (await query.toArray()).map((r) => r.id);

  const measure = async (
    label: string,
    nq: number,
    mk: (i: number) => VectorQuery,
    withQps: boolean,
    warmUp = 10,
  ): Promise<SearchRun> => {
    for (let i = 0; i < Math.min(warmUp, nq); i++) await rowsOf(mk(i));
    const run: SearchRun = { label, found: [], ms: [] };
    const c0 = cpuSeconds();
    for (let i = 0; i < nq; i++) {
      const t0 = performance.now();
      run.found.push(await rowsOf(mk(i)));
      run.ms.push(performance.now() - t0);
    }
    run.cpuMsPerQuery = ((cpuSeconds() - c0) * 1000) / nq;
    if (withQps) run.qps = await twoInFlight(nq, (i) => rowsOf(mk(i)));
    log(
      `${label}: p50 ${pct(run.ms, 50).toFixed(2)} ms, p99 ${pct(run.ms, 99).toFixed(2)} ms` +
        (run.qps ? `, ${run.qps.toFixed(0)} q/s with two in flight` : ''),
    );
    return run;
  };

  const ivfPq: LanceResult['ivfPq'] = [];
  for (const refine of job.lanceRefine) {
    const label = `IVF_PQ nprobes ${job.lanceNprobes}${refine ? ` refine ${refine}` : ''}`;
    const run = await measure(
      label,
      job.queries,
      (i) => {
        const x = base(i).nprobes(job.lanceNprobes);
        return refine ? x.refineFactor(refine) : x;
      },
      true,
    );
    ivfPq.push({ ...run, nprobes: job.lanceNprobes, refine });
  }
  const flatQueries = Math.min(job.queries, job.flatQueries);
  const flat = await measure('flat', flatQueries, (i) => base(i).bypassVectorIndex(), false, 2);
  rss.searched = rssAnon();
  t.close();
  db.close();
  return {
    engine: 'lancedb',
    createTableS,
    buildS,
    buildCpuS,
    diskBytes,
    indexBytes,
    ivfPq,
    flat,
    rssAnon: rss,
  };
}
