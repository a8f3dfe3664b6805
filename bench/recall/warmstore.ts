/**
 * warmstore's recall, end to end: durable batches into a fresh store, the index catching up, then
 * recalls through the public API (approximate, exact, filtered); then, in a fresh process, the
 * store opened again with its saved index.
 */
import type { MemoryRecord, MetadataFilter, WarmStore } from '../../src/index.js';
import { loadWarmstore } from '../engines/warmstore.ts';
import { sleep } from '../lib/measure.ts';
import { SELECTIVITIES, activations, idRow, readRows, rowId } from './data.ts';
import {
  type RecallJob,
  type SearchRun,
  type WarmstoreReopen,
  type WarmstoreResult,
  cpuSeconds,
  dirBytes,
  rssAnon,
  twoInFlight,
} from './figures.ts';

const log = (line: string): void => console.log(`  [warmstore] ${line}`);

async function openStore(dir: string, dim: number): Promise<WarmStore> {
  const { WarmStore } = await loadWarmstore();
  return WarmStore.open(dir, {
    dimension: dim,
    durability: 'sync',
    maintenanceIntervalMs: false,
    maintenance: { startupCompaction: 'off' },
  });
}

/** Resolves once the index is ready and has acknowledged every write; throws if it fails or times out. */
async function untilReady(store: WarmStore, timeoutS: number): Promise<void> {
  const t0 = performance.now();
  let lastLog = t0;
  for (;;) {
    const s = store.indexStatus;
    if (s.state === 'ready' && s.tail === 0) return;
    if (s.state === 'failed' || s.state === 'off') throw new Error(`index ${s.state}: ${s.error ?? ''}`);
    const t = performance.now();
    if (t - t0 > timeoutS * 1000)
      throw new Error(`index not ready after ${timeoutS} s: ${JSON.stringify(s)}`);
    if (t - lastLog > 30_000) {
      lastLog = t;
      log(`waiting for the index (${((t - t0) / 1000).toFixed(0)} s): ${JSON.stringify(s)}`);
    }
    await sleep(50);
  }
}

/** Single queries one after the other: rows found and latency per query. */
async function sequential(
  label: string,
  queries: Float32Array,
  job: RecallJob,
  n: number,
  recall: (q: Float32Array) => Promise<{ memory: { id: string } }[]>,
): Promise<SearchRun> {
  const dim = job.files.dim;
  const q = (i: number): Float32Array => queries.subarray(i * dim, (i + 1) * dim);
  const found: number[][] = [];
  const ms: number[] = [];
  const c0 = cpuSeconds();
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    const r = await recall(q(i));
    ms.push(performance.now() - t0);
    found.push(r.map((x) => idRow(x.memory.id)));
  }
  return { label, found, ms, cpuMsPerQuery: ((cpuSeconds() - c0) * 1000) / n };
}

export async function runWarmstore(job: RecallJob): Promise<WarmstoreResult> {
  const { files, k } = job;
  const dim = files.dim;
  const act = activations(files.n);
  const rss: Record<string, number> = { start: rssAnon() };
  const store = await openStore(job.dir, dim);
  let closed = false;
  try {
    // Fill: durable batches, as an application would write them.
    const t0 = performance.now();
    let lastLog = t0;
    for (let from = 0; from < files.n; from += job.batch) {
      const count = Math.min(job.batch, files.n - from);
      const rows = readRows(files.base, dim, from, count);
      const recs: MemoryRecord[] = [];
      for (let j = 0; j < count; j++) {
        const i = from + j;
        recs.push({
          id: rowId(i),
          embedding: rows.subarray(j * dim, (j + 1) * dim),
          content: `memory ${i}`,
          activation: act[i]!,
        });
      }
      await store.putMany(recs);
      if (performance.now() - lastLog > 30_000) {
        lastLog = performance.now();
        log(`filled ${from + count}; index ${JSON.stringify(store.indexStatus)}`);
      }
    }
    const fillS = (performance.now() - t0) / 1000;
    const atFillEnd = { ...store.indexStatus };
    rss.afterFill = rssAnon();
    log(
      `fill ${fillS.toFixed(1)} s (${((files.n / fillS) | 0).toLocaleString('en-US')} rec/s); index ${JSON.stringify(atFillEnd)}`,
    );
    const t1 = performance.now();
    await untilReady(store, job.indexTimeoutS);
    const catchUpS = (performance.now() - t1) / 1000;
    rss.indexReady = rssAnon();
    log(`index ready ${catchUpS.toFixed(1)} s after the fill: ${JSON.stringify(store.indexStatus)}`);

    const queries = readRows(files.queries, dim, 0, job.queries);
    const nq = job.queries;
    const s = store;
    // Warm-up: first recalls pay for page faults and JIT.
    for (let i = 0; i < Math.min(20, nq); i++)
      await s.recall(queries.subarray(i * dim, (i + 1) * dim), { k });
    const searches0 = s.indexStatus.searches;
    const search = await sequential('index', queries, job, nq, (q) => s.recall(q, { k }));
    const indexSearches = s.indexStatus.searches - searches0;
    search.qps = await twoInFlight(nq, (i) => s.recall(queries.subarray(i * dim, (i + 1) * dim), { k }));
    log(`recall: ${indexSearches}/${nq} through the index, ${search.qps.toFixed(0)} q/s with two in flight`);

    const exact = await sequential('exact', queries, job, Math.min(nq, job.exactQueries), (q) =>
      s.recall(q, { k, exact: true }),
    );

    const filters: SearchRun[] = [];
    for (const sel of SELECTIVITIES) {
      const filter: MetadataFilter = { activation: { lt: sel.below } };
      let violations = 0;
      let short = 0;
      let matches = 0;
      for (let i = 0; i < files.n; i++) if (act[i]! < sel.below) matches++;
      const run = await sequential(`filter ${sel.label}`, queries, job, nq, async (q) => {
        const r = await s.recall(q, { k, filter });
        for (const x of r) if (!(x.memory.activation < sel.below)) violations++;
        if (r.length < Math.min(k, matches)) short++;
        return r;
      });
      filters.push({ ...run, violations, short, matches });
    }

    // The checkpoint saves the index, so the next open loads its file instead of rebuilding it.
    await s.checkpoint();
    await s.close();
    closed = true;
    return {
      engine: 'warmstore',
      fillS,
      catchUpS,
      atFillEnd,
      search,
      indexSearches,
      exact,
      filters,
      indexFileBytes: dirBytes(job.dir, (name) => name.startsWith('ann-') && name.endsWith('.usearch')),
      storeBytes: dirBytes(job.dir),
      rssAnon: rss,
    };
  } finally {
    if (!closed) await store.close();
  }
}

/**
 * Opens the store the fill left (closed cleanly, its index saved), in a process of its own so that
 * its memory is the open store's alone: open() time, time until the index is ready, RssAnon at
 * each step, and recall on a sample of queries.
 */
export async function runWarmstoreReopen(job: RecallJob): Promise<WarmstoreReopen> {
  const { files, k } = job;
  const dim = files.dim;
  // Loaded before the clock starts: reading the queries and the module is not part of open.
  await loadWarmstore();
  const queries = readRows(files.queries, dim, 0, job.queries);
  const rss: Record<string, number> = { start: rssAnon() };
  const t0 = performance.now();
  const store = await openStore(job.dir, dim);
  try {
    const openMs = performance.now() - t0;
    rss.opened = rssAnon();
    await untilReady(store, job.indexTimeoutS);
    const readyMs = performance.now() - t0;
    rss.ready = rssAnon();
    log(`reopen: open ${openMs.toFixed(0)} ms, index ready after ${readyMs.toFixed(0)} ms`);
    const recallSample = await sequential('after reopen', queries, job, Math.min(job.queries, 50), (q) =>
      store.recall(q, { k }),
    );
    rss.searched = rssAnon();
    return { engine: 'warmstore-reopen', openMs, readyMs, recallSample, rssAnon: rss };
  } finally {
    await store.close();
  }
}
