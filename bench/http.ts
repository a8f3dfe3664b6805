/**
 * HTTP benchmark of the warmstore server on loopback, against the goals of serving:
 *   1. `GET /api/v1/memories/:id?encoding=base64` req/s >= 50% of `GET /healthz` req/s (the plain
 *      JSON-array GET is measured beside them for comparison);
 *   2. batch put (`POST /api/v1/memories/batch`) records/s >= 5x single put records/s;
 *   3. `POST /api/v1/recall` p50 <= 1.5 x (the library's `store.recall` p50 on the same store and
 *      queries + the `/healthz` p50).
 * Throughput comes from autocannon, latency from one keep-alive connection sending one request at
 * a time. The server (`startServer` on 127.0.0.1, random port, fresh data directory, the dataset
 * preloaded) runs in a child process so that it and the load generator each have a core.
 * Each repetition runs every phase once, in an order that turns by one each repetition; before each
 * phase the server checkpoints what earlier phases wrote, so that one phase's background work is
 * not charged to the next. The table shows medians over the repetitions. Options: docs/benchmarks.md, "How to run".
 *
 *   node --import tsx http.ts [--preload 10000] [--duration 3] [--connections 10] [--reps 5]
 *        [--batch 100,1000] [--batch-connections 2] [--recalls 100] [--k 10] [--only get,put,recall]
 *        [--durability sync|relaxed] [--cpu-prof]
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { AutocannonRequest } from './engines/peers.ts';
import { Dataset, rng } from './lib/data.ts';
import { type LoadResult, SequentialClient, autocannonRun } from './lib/http-load.ts';
import { BenchServer, decodeBase64Embedding, encodeBase64Embedding } from './lib/http-server.ts';
import { Lat, type LatSummary, fmtNum, fmtUs, mdTable, median, table } from './lib/measure.ts';
import { flag, list, num, opt } from './lib/options.ts';
import { writeResultsFile } from './lib/results.ts';

const PRELOAD = num('preload', 10_000);
const DURATION = Math.min(num('duration', 3), 60); // bounded: never more than 60 s a phase
const CONNECTIONS = num('connections', 10);
// An importer sends a few batches at a time; ten batches of 1000 in flight would leave most of a
// short phase's records unfinished when it ends, and uncounted.
const BATCH_CONNECTIONS = num('batch-connections', 2);
const REPS = Math.max(1, num('reps', 5));
const BATCHES = list('batch', '100,1000').map(Number);
const RECALLS = num('recalls', 100);
const K = num('k', 10);
const ONLY = new Set(list('only', 'get,put,recall'));
const DURABILITY = opt('durability', 'sync');
const DIM = 768;
if (DURABILITY !== 'sync' && DURABILITY !== 'relaxed')
  throw new Error(`--durability: sync or relaxed, got '${DURABILITY}'`);
for (const b of BATCHES)
  if (!Number.isInteger(b) || b < 1 || b > 1000 || b > PRELOAD)
    throw new Error(`--batch: sizes of 1..1000 (the server's default limit) and at most --preload, got ${b}`);

const loadavg = (): string =>
  os
    .loadavg()
    .map((x) => x.toFixed(2))
    .join(' ');
const log = (s: string): void => console.log(`[${new Date().toISOString().slice(11, 19)}] ${s}`);

/** A throughput phase: what autocannon sends, and how many records one request carries. */
interface Phase {
  key: string;
  label: string;
  records: number;
  connections: number;
  requests: AutocannonRequest[];
}

/** One repetition of a throughput phase. */
interface PhaseRun extends LoadResult {
  recPerSec: number;
  /**
   * CPU time of the server process over the phase's wall time (1 = one core busy), and of the load
   * generator: on a shared machine, a server below 1 was waiting for a core or for the client.
   */
  serverCpu: number;
  clientCpu: number;
}

/** One repetition of the sequential latency loop. */
interface LatencyRun {
  healthz: LatSummary;
  http: LatSummary;
  library: LatSummary;
  /** Queries whose top-k ids differed between the HTTP answer and the library call. */
  mismatches: number;
}

/** Cycles through `items`, one per request. */
function cycling(items: readonly string[], start: number): () => string {
  let i = start;
  return () => items[i++ % items.length]!;
}

/** The request JSON of every record, with its embedding as base64 (what the typed client sends). */
function putBodies(ds: Dataset): string[] {
  return ds.records.map((m) =>
    JSON.stringify({
      id: m.id,
      embedding: encodeBase64Embedding(m.embedding),
      content: m.content,
      confidence: m.confidence,
      activation: m.activation,
    }),
  );
}

/** Checks, before any figure is taken, that each route answers what the benchmark assumes. */
async function checkRoutes(client: SequentialClient, ds: Dataset, items: readonly string[]): Promise<void> {
  const want = ds.records[1]!;
  const at = `/api/v1/memories/${encodeURIComponent(want.id)}`;
  const b64 = JSON.parse((await client.ok('GET', `${at}?encoding=base64`)).body.toString('utf8')) as {
    embedding: unknown;
  };
  if (typeof b64.embedding !== 'string')
    throw new Error('?encoding=base64 did not answer a base64 embedding');
  const got = decodeBase64Embedding(b64.embedding);
  if (got.length !== DIM || got.some((v, i) => v !== want.embedding[i]))
    throw new Error('the base64 embedding is not the stored one (little-endian float32)');
  const arr = JSON.parse((await client.ok('GET', at)).body.toString('utf8')) as { embedding: unknown };
  if (!Array.isArray(arr.embedding) || arr.embedding.length !== DIM || arr.embedding[5] !== want.embedding[5])
    throw new Error('the plain GET did not answer the embedding as a number array');
  const n = Math.min(10, items.length);
  const batch = JSON.parse(
    (
      await client.ok('POST', '/api/v1/memories/batch', `{"memories":[${items.slice(0, n).join(',')}]}`)
    ).body.toString('utf8'),
  ) as { results: Array<{ ok: boolean }> };
  if (batch.results.length !== n || !batch.results.every((r) => r.ok))
    throw new Error(`batch put refused an item: ${JSON.stringify(batch.results).slice(0, 300)}`);
}

function throughputPhases(ds: Dataset, items: readonly string[]): Phase[] {
  const r = rng(31337);
  const randomPath = (suffix: string): AutocannonRequest => ({
    method: 'GET',
    setupRequest: (req) => {
      req.path = `/api/v1/memories/${encodeURIComponent(ds.records[Math.floor(r() * ds.n)]!.id)}${suffix}`;
      return req;
    },
  });
  const phases: Phase[] = [];
  if (ONLY.has('get'))
    phases.push(
      {
        key: 'healthz',
        label: 'GET /healthz',
        records: 1,
        connections: CONNECTIONS,
        requests: [{ method: 'GET', path: '/healthz' }],
      },
      {
        key: 'getBase64',
        label: 'GET /api/v1/memories/:id?encoding=base64',
        records: 1,
        connections: CONNECTIONS,
        requests: [randomPath('?encoding=base64')],
      },
      {
        key: 'getArray',
        label: 'GET /api/v1/memories/:id (number array)',
        records: 1,
        connections: CONNECTIONS,
        requests: [randomPath('')],
      },
    );
  if (ONLY.has('put')) {
    // Every put overwrites a preloaded memory with the same record: the store keeps its size, so
    // that later phases and repetitions read and scan the same amount.
    const next = cycling(items, 0);
    phases.push({
      key: 'putSingle',
      label: `POST /api/v1/memories (${DURABILITY})`,
      records: 1,
      connections: CONNECTIONS,
      requests: [
        {
          method: 'POST',
          path: '/api/v1/memories',
          headers: { 'content-type': 'application/json' },
          setupRequest: (req) => {
            req.body = next();
            return req;
          },
        },
      ],
    });
    for (const size of BATCHES) {
      const bodies: string[] = [];
      for (let i = 0; i + size <= items.length; i += size)
        bodies.push(`{"memories":[${items.slice(i, i + size).join(',')}]}`);
      const nextBody = cycling(bodies, 0);
      phases.push({
        key: `putBatch${size}`,
        label: `POST /api/v1/memories/batch (${size} a request, ${DURABILITY})`,
        records: size,
        connections: BATCH_CONNECTIONS,
        requests: [
          {
            method: 'POST',
            path: '/api/v1/memories/batch',
            headers: { 'content-type': 'application/json' },
            setupRequest: (req) => {
              req.body = nextBody();
              return req;
            },
          },
        ],
      });
    }
  }
  return phases;
}

/** `RECALLS` rounds of /healthz, HTTP recall and library recall, interleaved so that load hits all three alike. */
async function latencyLoop(
  server: BenchServer,
  client: SequentialClient,
  queries: readonly string[],
): Promise<LatencyRun> {
  const healthz = new Lat();
  const httpLat = new Lat();
  const library = new Lat();
  let mismatches = 0;
  for (let i = 0; i < RECALLS; i++) {
    const q = queries[i % queries.length]!;
    healthz.ms((await client.ok('GET', '/healthz')).ms);
    // Embeddings are left out of recall answers by default; the request sends none of `fields`.
    const h = await client.ok('POST', '/api/v1/recall', `{"embedding":"${q}","k":${K}}`);
    httpLat.ms(h.ms);
    const lib = await server.ask<'recall'>({ cmd: 'recall', query: q, k: K });
    library.ms(lib.ms);
    const ids = (JSON.parse(h.body.toString('utf8')) as { results: Array<{ id: string }> }).results.map(
      (x) => x.id,
    );
    if (ids.join('\n') !== lib.ids.join('\n')) mismatches++;
  }
  return { healthz: healthz.summary(), http: httpLat.summary(), library: library.summary(), mismatches };
}

async function main(): Promise<void> {
  const base = fileURLToPath(new URL('./.data/', import.meta.url));
  fs.mkdirSync(base, { recursive: true });
  const dir = fs.mkdtempSync(path.join(base, 'http-'));
  const started = new Date();
  const loadStart = loadavg();
  log(
    `warmstore bench:http: ${PRELOAD} memories x ${DIM} dims preloaded, ${REPS} reps, phases ${[...ONLY].join(',')}, ` +
      `${DURATION} s per throughput phase with ${CONNECTIONS} connections (${BATCH_CONNECTIONS} for batches), ${RECALLS} sequential recalls (k=${K}) per rep, ` +
      `durability ${DURABILITY}; node ${process.version}, ${os.cpus().length} cores; load average ${loadStart}`,
  );
  const server = await BenchServer.start({
    dir,
    preload: PRELOAD,
    dim: DIM,
    durability: DURABILITY,
    cpuProfDir: flag('cpu-prof') ? fileURLToPath(new URL('./.data/prof', import.meta.url)) : undefined,
  });
  const client = new SequentialClient(server.url);
  const runs: Record<string, PhaseRun[]> = {};
  const latency: LatencyRun[] = [];
  let closeMs: number | undefined;
  try {
    log(
      `server ${server.url}: ${server.size} memories preloaded in ${(server.preloadMs / 1000).toFixed(1)} s`,
    );
    const ds = new Dataset(PRELOAD, DIM); // same seed as the server's preload: same ids and records
    const items = putBodies(ds);
    await checkRoutes(client, ds, items);
    const r = rng(4242);
    const queries: string[] = [];
    for (let i = 0; i < Math.min(RECALLS, 256); i++) {
      const q = new Float32Array(DIM);
      for (let j = 0; j < DIM; j++) q[j] = r() * 2 - 1;
      queries.push(encodeBase64Embedding(q));
    }
    const phases = throughputPhases(ds, items);

    // Warm-up (JIT on both sides, page cache, the recall scan workers), not reported.
    for (const p of phases)
      await autocannonRun({ url: server.url, connections: p.connections, duration: 1, requests: p.requests });
    if (ONLY.has('recall'))
      for (const q of queries.slice(0, 5)) {
        await client.ok('POST', '/api/v1/recall', `{"embedding":"${q}","k":${K}}`);
        await server.ask<'recall'>({ cmd: 'recall', query: q, k: K });
      }

    for (let rep = 0; rep < REPS; rep++) {
      log(`-- repetition ${rep + 1}/${REPS}, load average ${loadavg()}`);
      const turn = phases.length ? rep % phases.length : 0;
      for (const p of [...phases.slice(turn), ...phases.slice(0, turn)]) {
        await server.ask<'settle'>({ cmd: 'settle' });
        const before = { server: (await server.ask<'stats'>({ cmd: 'stats' })).cpuUs, client: cpuUs() };
        const t0 = performance.now();
        const res = await autocannonRun({
          url: server.url,
          connections: p.connections,
          duration: DURATION,
          requests: p.requests,
        });
        const wallUs = (performance.now() - t0) * 1000;
        const serverCpu = ((await server.ask<'stats'>({ cmd: 'stats' })).cpuUs - before.server) / wallUs;
        const clientCpu = (cpuUs() - before.client) / wallUs;
        (runs[p.key] ??= []).push({ ...res, recPerSec: res.reqPerSec * p.records, serverCpu, clientCpu });
        log(
          `${p.label}: ${fmtNum(res.reqPerSec)} req/s, ${fmtNum(res.reqPerSec * p.records)} records/s, ` +
            `p50 ${fmtUs(res.lat.p50us)}, CPU server ${serverCpu.toFixed(2)} client ${clientCpu.toFixed(2)}` +
            (res.failed ? `, ${res.failed} FAILED` : ''),
        );
      }
      if (ONLY.has('recall')) {
        const l = await latencyLoop(server, client, queries);
        latency.push(l);
        log(
          `recall p50: HTTP ${fmtUs(l.http.p50us)}, library ${fmtUs(l.library.p50us)}, /healthz ${fmtUs(l.healthz.p50us)}` +
            (l.mismatches ? `, ${l.mismatches} answers differ` : ''),
        );
      }
    }
    const stats = await server.ask<'stats'>({ cmd: 'stats' });
    log(`store size after: ${stats.size}; server RSS ${(stats.rss / 2 ** 20).toFixed(0)} MiB`);
    report(phases, runs, latency, loadStart);
    const file = writeResultsFile('http-', started, {
      started: started.toISOString(),
      options: {
        preload: PRELOAD,
        dim: DIM,
        duration: DURATION,
        connections: CONNECTIONS,
        batchConnections: BATCH_CONNECTIONS,
        reps: REPS,
      },
      batches: BATCHES,
      recalls: RECALLS,
      k: K,
      durability: DURABILITY,
      node: process.version,
      cores: os.cpus().length,
      loadavg: { start: loadStart, end: loadavg() },
      preloadMs: server.preloadMs,
      throughput: runs,
      latency,
      serverAfter: stats,
    });
    log(`results written to ${file}`);
  } finally {
    client.close();
    closeMs = await server.stop();
    log(`server close: ${closeMs === undefined ? 'timed out (30 s)' : `${closeMs.toFixed(0)} ms`}`);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function report(
  phases: readonly Phase[],
  runs: Record<string, PhaseRun[]>,
  latency: readonly LatencyRun[],
  loadStart: string,
): void {
  const med = (key: string, f: (x: PhaseRun) => number): number => median((runs[key] ?? []).map(f));
  const rows: string[][] = [
    [
      'throughput',
      'req/s',
      'records/s',
      'p50',
      'p99',
      'CPU srv/cli',
      'srv CPU/req',
      'per rep (req/s)',
      'failed',
    ],
  ];
  for (const p of phases) {
    const rs = runs[p.key] ?? [];
    rows.push([
      p.label,
      fmtNum(med(p.key, (x) => x.reqPerSec)),
      fmtNum(med(p.key, (x) => x.recPerSec)),
      fmtUs(med(p.key, (x) => x.lat.p50us)),
      fmtUs(med(p.key, (x) => x.lat.p99us)),
      `${med(p.key, (x) => x.serverCpu).toFixed(2)} / ${med(p.key, (x) => x.clientCpu).toFixed(2)}`,
      fmtUs(med(p.key, cpuPerRequestUs)),
      rs.map((x) => fmtNum(x.reqPerSec)).join(' / '),
      String(rs.reduce((s, x) => s + x.failed, 0)),
    ]);
  }
  const lm = (f: (x: LatencyRun) => number): number => median(latency.map(f));
  const latRows: string[][] = [['latency (sequential)', 'p50', 'p99', 'per rep (p50)']];
  const latOf: Array<[string, (x: LatencyRun) => LatSummary]> = [
    ['GET /healthz', (x) => x.healthz],
    [`store.recall (library, k=${K})`, (x) => x.library],
    [`POST /api/v1/recall (k=${K}, no embeddings)`, (x) => x.http],
  ];
  for (const [label, f] of latOf)
    latRows.push([
      label,
      fmtUs(lm((x) => f(x).p50us)),
      fmtUs(lm((x) => f(x).p99us)),
      latency.map((x) => fmtUs(f(x).p50us)).join(' / '),
    ]);

  const goals: string[] = [];
  const check = (x: number, ok: boolean, s: string): void => {
    if (Number.isFinite(x)) goals.push(`${ok ? 'PASS' : 'FAIL'}  ${s}`);
  };
  const health = med('healthz', (x) => x.reqPerSec);
  const b64 = med('getBase64', (x) => x.reqPerSec);
  const arr = med('getArray', (x) => x.reqPerSec);
  check(
    b64 / health,
    b64 / health >= 0.5,
    `GET ?encoding=base64 >= 50% of /healthz req/s: ${pct(b64 / health)}`,
  );
  const cpuHealth = med('healthz', cpuPerRequestUs);
  const cpuB64 = med('getBase64', cpuPerRequestUs);
  if (Number.isFinite(cpuHealth / cpuB64))
    goals.push(
      `info  server CPU per request: base64 GET ${fmtUs(cpuB64)}, /healthz ${fmtUs(cpuHealth)}: ` +
        `${pct(cpuHealth / cpuB64)}, the req/s ratio of a server that never waits for a core`,
    );
  if (Number.isFinite(arr / health))
    goals.push(
      `info  GET as a number array: ${pct(arr / health)} of /healthz; base64 serves ${(b64 / arr).toFixed(2)}x its req/s`,
    );
  const single = med('putSingle', (x) => x.recPerSec);
  for (const size of BATCHES) {
    const x = med(`putBatch${size}`, (y) => y.recPerSec) / single;
    check(x, x >= 5, `batch put (${size} a request) >= 5x single put records/s: ${x.toFixed(2)}x`);
  }
  if (latency.length) {
    const h = lm((x) => x.http.p50us);
    const lib = lm((x) => x.library.p50us);
    const hz = lm((x) => x.healthz.p50us);
    const x = h / (lib + hz);
    check(
      x,
      x <= 1.5,
      `recall over HTTP p50 <= 1.5x (library p50 + /healthz p50): ${x.toFixed(2)}x ` +
        `(${fmtUs(h)} against ${fmtUs(lib)} + ${fmtUs(hz)})`,
    );
    const mismatches = latency.reduce((s, l) => s + l.mismatches, 0);
    check(
      mismatches,
      mismatches === 0,
      `recall over HTTP answers the library's top-${K} ids: ${mismatches} of ${latency.length * RECALLS} differ`,
    );
  }
  const failed = Object.values(runs)
    .flat()
    .reduce((s, x) => s + x.failed, 0);
  check(failed, failed === 0, `no failed requests (non-2xx, errors, timeouts): ${failed}`);

  console.log('');
  console.log(`Results (median of ${REPS}; ${PRELOAD} memories preloaded, durability ${DURABILITY}):`);
  console.log(table(rows));
  if (latency.length) {
    console.log('');
    console.log(table(latRows));
  }
  console.log('');
  console.log('Goals (ratios in this run):');
  for (const g of goals) console.log('  ' + g);
  console.log(
    `load average: at start ${loadStart}, at end ${loadavg()} (other work on the machine adds noise)`,
  );
  console.log('');
  console.log(mdTable(rows));
  if (latency.length) {
    console.log('');
    console.log(mdTable(latRows));
  }
}

const cpuUs = (): number => ((u) => u.user + u.system)(process.cpuUsage());

/**
 * The server's CPU time per request, in microseconds: unlike req/s, it hardly moves with the load
 * of a shared machine (a server waiting for a core serves fewer requests, not cheaper ones).
 */
const cpuPerRequestUs = (x: PhaseRun): number => (x.serverCpu * 1e6) / x.reqPerSec;

const pct = (x: number): string => `${(100 * x).toFixed(1)}%`;

main().catch((e: unknown) => {
  console.error(e);
  process.exitCode = 1;
});
