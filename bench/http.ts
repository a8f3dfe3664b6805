/**
 * HTTP benchmark of the warmstore server on loopback.
 *
 * The server runs in a child process (this file with --serve) so that the load generator
 * (autocannon, in this process) and the server each have a core of their own. The server listens
 * on 127.0.0.1 with a random port and a temporary data directory, is preloaded with 10K memories,
 * then autocannon runs, bounded in time: GET /healthz (the framework's ceiling), GET memory,
 * POST recall, POST memory (10 s each).
 *
 *   node --import tsx http.ts [--preload 10000] [--duration 10] [--connections 10]
 *        [--only health,get,recall,post] [--durability sync|relaxed] [--cpu-prof]
 *
 * --cpu-prof writes a V8 CPU profile of the server process to bench/.data/prof/.
 */
import { fork, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Durability } from '../src/index.js';
import { type Autocannon, type AutocannonRequest, type AutocannonResult, loadPeer } from './engines/peers.ts';
import { Dataset, rng } from './lib/data.ts';
import { Lat, fmtNum, fmtUs, mdTable, table } from './lib/measure.ts';
import { num, opt } from './lib/options.ts';
import { writeResultsFile } from './lib/results.ts';

/** The server entry point, typed by its source; the code that runs is the build. */
type ServerModule = typeof import('../src/server/index.js');

const PRELOAD = num('preload', 10_000);
const DURATION = Math.min(num('duration', 10), 60); // bounded: never more than 60 s a test
const CONNECTIONS = num('connections', 10);
const ONLY = opt('only', 'health,get,recall,post').split(',');
const DURABILITY = ((d: string): Durability => {
  if (d !== 'sync' && d !== 'relaxed') throw new Error(`--durability: sync or relaxed, got '${d}'`);
  return d;
})(opt('durability', 'sync'));
const DIM = 768;

// ---------------------------------------------------------------- server (child)

async function serve(): Promise<void> {
  const dir = opt('dir', '');
  const { startServer } = (await import(
    new URL('../dist/server/index.js', import.meta.url).href
  )) as ServerModule;
  const server = await startServer({
    dataDir: dir,
    host: '127.0.0.1',
    port: 0,
    logger: false,
    docs: false,
    storeOptions: { durability: DURABILITY, maintenanceIntervalMs: false },
  });
  const ds = new Dataset(PRELOAD, DIM);
  const t0 = performance.now();
  for (let i = 0; i < ds.n; i += 1000) {
    await Promise.all(ds.records.slice(i, i + 1000).map((r) => server.store.put(r)));
  }
  const preloadMs = performance.now() - t0;
  process.send!({ url: server.url, preloadMs, size: server.store.size });
  process.on('message', async (m: { cmd: string }) => {
    if (m.cmd === 'stats') {
      process.send!({ size: server.store.size, rss: process.memoryUsage.rss() });
    } else if (m.cmd === 'stop') {
      const t = performance.now();
      await server.close();
      process.send!({ stopped: true, closeMs: performance.now() - t });
      process.exit(0);
    }
  });
}

// ---------------------------------------------------------------- load generator (parent)

interface RunResult {
  name: string;
  reqPerSec: number;
  p50us: number;
  p99us: number;
  maxUs: number;
  ac: { p50ms: number; p99ms: number; non2xx: number; errors: number; timeouts: number; total: number };
  throughputMBps: number;
}

function request(child: ChildProcess, msg: object): Promise<Record<string, unknown>> {
  return new Promise((resolve) => {
    child.once('message', (m) => resolve(m as Record<string, unknown>));
    child.send(msg);
  });
}

async function load(
  name: string,
  url: string,
  requests: AutocannonRequest[],
  duration = DURATION,
): Promise<RunResult> {
  const autocannon = loadPeer<Autocannon>('autocannon');
  const lat = new Lat();
  const result = await new Promise<AutocannonResult>((resolve, reject) => {
    const inst = autocannon(
      { url, connections: CONNECTIONS, pipelining: 1, duration, requests, timeout: 10 },
      (err, res) => (err ? reject(err) : resolve(res)),
    );
    // autocannon's own histogram has 1 ms resolution; keep a microsecond one beside it.
    inst.on('response', (_c, status, _b, ms) => {
      if (status >= 200 && status < 300) lat.ms(ms);
    });
  });
  const s = lat.summary();
  return {
    name,
    reqPerSec: result.requests.average,
    p50us: s.p50us,
    p99us: s.p99us,
    maxUs: s.maxUs,
    ac: {
      p50ms: result.latency.p50,
      p99ms: result.latency.p99,
      non2xx: result.non2xx,
      errors: result.errors,
      timeouts: result.timeouts,
      total: result.requests.total,
    },
    throughputMBps: result.throughput.average / 1e6,
  };
}

async function main(): Promise<void> {
  const base = fileURLToPath(new URL('./.data/', import.meta.url));
  fs.mkdirSync(base, { recursive: true });
  const dir = fs.mkdtempSync(path.join(base, 'http-'));
  const self = fileURLToPath(import.meta.url);
  const child = fork(
    self,
    ['--serve', '--dir', dir, '--preload', String(PRELOAD), '--durability', DURABILITY],
    {
      execArgv: [
        '--import',
        'tsx',
        ...(process.argv.includes('--cpu-prof')
          ? ['--cpu-prof', '--cpu-prof-dir', fileURLToPath(new URL('./.data/prof', import.meta.url))]
          : []),
      ],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    },
  );
  const results: RunResult[] = [];
  try {
    const ready = await new Promise<{ url: string; preloadMs: number; size: number }>((resolve, reject) => {
      child.once('message', (m) => resolve(m as { url: string; preloadMs: number; size: number }));
      child.once('exit', (code) => reject(new Error(`server exited with ${code}`)));
    });
    const { url } = ready;
    if (!/^http:\/\/127\.0\.0\.1:\d+$/.test(url)) throw new Error(`refusing non-loopback url ${url}`);
    console.log(
      `server ${url}, durability ${DURABILITY}, preloaded ${ready.size} memories in ${(ready.preloadMs / 1000).toFixed(1)} s; ` +
        `autocannon ${CONNECTIONS} connections, ${DURATION} s per test, node ${process.version}, ${os.cpus().length} cores, ` +
        `load average ${os
          .loadavg()
          .map((x) => x.toFixed(2))
          .join(' ')}`,
    );

    const ds = new Dataset(PRELOAD, DIM); // same seed: same ids as the server's preload
    const r = rng(31337);
    const b64 = (e: Float32Array): string =>
      Buffer.from(e.buffer, e.byteOffset, e.byteLength).toString('base64');
    const getReq = {
      method: 'GET',
      setupRequest: (req: Record<string, unknown>) => {
        req.path = `/api/v1/memories/${encodeURIComponent(ds.records[Math.floor(r() * ds.n)]!.id)}`;
        return req;
      },
    };
    const queries: string[] = [];
    for (let i = 0; i < 64; i++) {
      const q = new Float32Array(DIM);
      for (let j = 0; j < DIM; j++) q[j] = r() * 2 - 1;
      queries.push(b64(q));
    }
    let qi = 0;
    const recallReq = {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      setupRequest: (req: Record<string, unknown>) => {
        req.body = `{"embedding":"${queries[qi++ % queries.length]}","k":10}`;
        return req;
      },
    };
    let pi = 0;
    const postReq = {
      method: 'POST',
      path: '/api/v1/memories',
      headers: { 'content-type': 'application/json' },
      setupRequest: (req: Record<string, unknown>) => {
        const src = ds.records[pi % ds.n]!;
        req.body = JSON.stringify({
          id: `http-${process.pid}-${pi++}`,
          embedding: b64(src.embedding),
          content: src.content,
          confidence: src.confidence,
          activation: src.activation,
        });
        return req;
      },
    };

    // Warm-up (JIT, page cache), not reported.
    await load('warm-up', url, [{ ...getReq, path: '/' }], 2);
    if (ONLY.includes('health'))
      results.push(
        await load('GET /healthz (framework baseline)', url, [{ method: 'GET', path: '/healthz' }]),
      );
    if (ONLY.includes('get'))
      results.push(await load('GET /api/v1/memories/:id', url, [{ ...getReq, path: '/' }]));
    if (ONLY.includes('recall'))
      results.push(await load('POST /api/v1/recall (k=10)', url, [{ ...recallReq, path: '/api/v1/recall' }]));
    if (ONLY.includes('post'))
      results.push(await load(`POST /api/v1/memories (${DURABILITY})`, url, [postReq]));
    const after = await request(child, { cmd: 'stats' });
    console.log(
      `store size after: ${after.size}; server RSS ${((after.rss as number) / 2 ** 20).toFixed(0)} MiB`,
    );

    const rows = [
      ['endpoint', 'req/s', 'p50', 'p99', 'max', 'MB/s', 'non-2xx', 'errors'],
      ...results.map((x) => [
        x.name,
        fmtNum(x.reqPerSec),
        fmtUs(x.p50us),
        fmtUs(x.p99us),
        fmtUs(x.maxUs),
        x.throughputMBps.toFixed(1),
        String(x.ac.non2xx),
        String(x.ac.errors + x.ac.timeouts),
      ]),
    ];
    console.log('');
    console.log(table(rows));
    console.log('');
    console.log(mdTable(rows));
    const file = writeResultsFile('http-', new Date(), {
      preload: PRELOAD,
      duration: DURATION,
      connections: CONNECTIONS,
      durability: DURABILITY,
      results,
    });
    console.log(`results written to ${file}`);
  } finally {
    if (child.exitCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      const t = performance.now();
      const stopped = await Promise.race([
        request(child, { cmd: 'stop' }),
        new Promise((r) => setTimeout(r, 30000)),
      ]);
      console.log(
        `server close: ${stopped ? `${(performance.now() - t).toFixed(0)} ms` : 'timed out (30 s)'}`,
      );
      await Promise.race([exited, new Promise((r) => setTimeout(r, 30000))]);
      if (child.exitCode === null && child.signalCode === null) {
        console.error('server did not exit within 30 s; killing it');
        child.kill('SIGKILL');
      }
    }
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv.includes('--serve')) {
  serve().catch((e) => {
    console.error(e);
    process.exit(1);
  });
} else {
  main().catch((e) => {
    console.error(e);
    process.exitCode = 1;
  });
}
