/**
 * Soak: 10 writers, 10 readers, recall, deletes, backups and the maintenance loop over HTTP
 * against a real `warmstore serve` child on 127.0.0.1, which is killed with SIGKILL and restarted
 * at random moments. At the end the server is killed once more and the store opened in-process:
 * every acknowledged write must be there (the acknowledged-write model of the crash tests),
 * `verify()` must be clean, the newest backup too, disk must have stayed bounded, and no request
 * may have failed except with a connection error or a 503 overlapping an outage.
 *
 * Writes the figures to `<out>/soak.md` and a plot to `<out>/soak.svg`.
 *
 *   npm run soak -- --duration 10m          (default 10m; 1h for the long run)
 *   options: --duration 90s|10m|1h  --out docs  --data DIR  --seed N  --dimension 64
 *            --writers 10  --readers 10  --ids 300 (per writer)  --kill-every 45 (mean seconds)
 *            --segment-bytes 1048576 (small, so segments seal and compaction has work)
 *
 * Needs `npm run build` first (`npm run soak` does it): the server is dist/cli/main.js.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { WarmStore } from '../../src/index.js';
import { decodeEmbedding, encodeEmbeddingBase64 } from '../../src/server/codec.js';
import type { StoredMemory } from '../../src/types.js';
import { AckModel } from '../helpers/ack-model.js';
import { expectSameRecord } from '../helpers/assert.js';
import { Rng, embeddingFor, recordFor } from '../helpers/random.js';
import { REPO_ROOT } from '../helpers/spawn.js';
import { renderSvg, type Panel } from './plot.js';

// ------------------------------------------------------------------ options

function parseDuration(s: string): number {
  const m = /^(\d+(?:\.\d+)?)(s|m|h)?$/.exec(s);
  if (!m) throw new Error(`--duration must look like 90s, 10m or 1h, not ${s}`);
  return Number(m[1]) * (m[2] === 'h' ? 3600 : m[2] === 'm' ? 60 : 1);
}

const { values: args } = parseArgs({
  options: {
    duration: { type: 'string', default: '10m' },
    out: { type: 'string', default: 'docs' },
    data: { type: 'string' },
    seed: { type: 'string', default: '1' },
    dimension: { type: 'string', default: '64' },
    writers: { type: 'string', default: '10' },
    readers: { type: 'string', default: '10' },
    ids: { type: 'string', default: '300' },
    'segment-bytes': { type: 'string', default: String(2 ** 20) },
    'kill-every': { type: 'string', default: '45' },
    'ann-min-memories': { type: 'string', default: '500' },
    'self-recall': { type: 'string', default: '0.1' },
  },
});
const DURATION_S = parseDuration(args.duration);
const DIM = Number(args.dimension);
const WRITERS = Number(args.writers);
const READERS = Number(args.readers);
const IDS = Number(args.ids);
const KILL_EVERY_S = Number(args['kill-every']);
const SEED = Number(args.seed);
const SEGMENT_BYTES = Number(args['segment-bytes']);
/**
 * The server's `--ann-min-memories`: low enough that recall goes through the index (built, caught
 * up after each SIGKILL, merged under churn) for most of the run.
 */
const ANN_MIN_MEMORIES = Number(args['ann-min-memories']);
/** Share of acknowledged puts followed by a recall of their own embedding, which must find them. */
const SELF_RECALL = Number(args['self-recall']);
/** Self-recalls that may miss (an approximate index may leave a rare memory unreachable). */
const SELF_RECALL_MIN = 0.99;
/** The store's WAL is checkpointed past this size (the store default). */
const WAL_CHECKPOINT_BYTES = 16 * 2 ** 20;
/**
 * Below this much content the maintenance loop does not compact (`maintenance.minTotalBytes`, the
 * store default): only the soak's forced compactions, about every 33 s, reclaim it.
 */
const COMPACT_MIN_TOTAL_BYTES = 100 * 2 ** 20;
const OUT = resolve(args.out);
const API_KEY = 'soak-key-0123456789abcdef';
const CLI = join(REPO_ROOT, 'dist', 'cli', 'main.js');
const REQUEST_TIMEOUT_MS = 30_000;

// ------------------------------------------------------------------ measurements

type OpKind = 'put' | 'get' | 'delete' | 'recall' | 'maintenance' | 'backup';
const OP_KINDS: OpKind[] = ['put', 'get', 'delete', 'recall', 'maintenance', 'backup'];
/** Latency samples kept per one-second bucket and kind (a uniform reservoir). */
const RESERVOIR = 512;

interface Bucket {
  ops: Record<OpKind, number>;
  lat: Record<OpKind, number[]>;
  seen: Record<OpKind, number>;
}

const t0 = performance.now();
const now = (): number => (performance.now() - t0) / 1000;
const buckets: Bucket[] = [];
const rng = new Rng(SEED);

function bucket(t: number): Bucket {
  const i = Math.floor(t);
  while (buckets.length <= i) {
    const zero = (): Record<OpKind, number> => ({
      put: 0,
      get: 0,
      delete: 0,
      recall: 0,
      maintenance: 0,
      backup: 0,
    });
    buckets.push({
      ops: zero(),
      seen: zero(),
      lat: { put: [], get: [], delete: [], recall: [], maintenance: [], backup: [] },
    });
  }
  return buckets[i]!;
}

function record(kind: OpKind, startS: number, endS: number): void {
  const b = bucket(endS);
  b.ops[kind]++;
  b.seen[kind]++;
  const ms = (endS - startS) * 1000;
  const lat = b.lat[kind];
  if (lat.length < RESERVOIR) lat.push(ms);
  else {
    const j = rng.int(b.seen[kind]);
    if (j < RESERVOIR) lat[j] = ms;
  }
}

const disk: Array<[number, number]> = [];
const outages: Array<{ killAt: number; upAt: number | undefined }> = [];
const expected = { connection: 0, unavailable503: 0, conflict409: 0 };
const unexpected: string[] = [];
const counts = {
  acked: 0,
  deletesAcked: 0,
  readsChecked: 0,
  readMismatches: 0,
  recalls: 0,
  backups: 0,
  retries: 0,
  selfRecalls: 0,
  selfFound: 0,
};
/** The recall index as the storage route last showed it, and the most searches it had made. */
const index = { state: 'unknown', indexed: 0, maxSearches: 0, readySamples: 0, samples: 0 };

/** Whether a request that ran over [start, end] overlapped an outage (so may fail by design). */
function overlapsOutage(start: number, end: number): boolean {
  return outages.some((o) => start <= (o.upAt ?? Infinity) && end >= o.killAt);
}

function noteUnexpected(what: string): void {
  if (unexpected.length < 200) unexpected.push(`${now().toFixed(1)}s ${what}`);
  else if (unexpected.length === 200) unexpected.push('... more omitted');
}

// ------------------------------------------------------------------ the server process

let baseUrl = '';
let server: ChildProcess | undefined;
let serverExit: Promise<void> = Promise.resolve();

async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => (typeof a === 'object' && a !== null ? res(a.port) : rej(new Error('no port'))));
    });
  });
}

async function startServer(
  dataDir: string,
  backupDir: string,
  port: number,
  log: NodeJS.WritableStream,
): Promise<void> {
  const child = spawn(
    process.execPath,
    [
      CLI,
      'serve',
      '--data',
      dataDir,
      '--port',
      String(port),
      '--host',
      '127.0.0.1',
      '--dimension',
      String(DIM),
      '--log-level',
      'warn',
      '--backup-dir',
      backupDir,
      '--ann-min-memories',
      String(ANN_MIN_MEMORIES),
      '--segment-bytes',
      String(SEGMENT_BYTES),
    ],
    { env: { ...process.env, WARMSTORE_API_KEY: API_KEY }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  child.stdout?.pipe(log, { end: false });
  child.stderr?.pipe(log, { end: false });
  server = child;
  serverExit = new Promise((res) =>
    child.once('exit', (code, signal) => {
      // Any exit the killer did not cause (a crash, or a signal from outside the soak) is noted:
      // the requests that fail until the next restart are then explained by it.
      if (child !== killing) unplannedExits.push(`${now().toFixed(1)}s: code ${code}, signal ${signal}`);
      res();
    }),
  );
  baseUrl = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 120_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null)
      throw new Error(`warmstore serve exited with ${child.exitCode} at start (see the server log)`);
    try {
      const r = await fetch(`${baseUrl}/healthz`, { signal: AbortSignal.timeout(2000) });
      if (r.status === 200) return;
    } catch {
      // not listening yet
    }
    await sleep(50);
  }
  throw new Error('warmstore serve did not become healthy within 120 s');
}

/** The child the killer is killing (its exit is expected). */
let killing: ChildProcess | undefined;
/** Exits the killer did not cause: a crash, or a signal from outside the soak. */
const unplannedExits: string[] = [];

async function killServer(): Promise<void> {
  const child = server;
  if (!child || child.exitCode !== null) return;
  killing = child;
  child.kill('SIGKILL');
  await serverExit;
}

// ------------------------------------------------------------------ HTTP

interface Reply {
  status: number;
  body: unknown;
}

/**
 * One request. Returns the reply, or undefined after a failure that an outage explains (the
 * caller retries); anything else is noted as unexpected (and also returns undefined).
 */
async function request(
  kind: OpKind,
  method: string,
  path: string,
  body?: unknown,
): Promise<Reply | undefined> {
  const start = now();
  try {
    const init: RequestInit = {
      method,
      headers: {
        authorization: `Bearer ${API_KEY}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    };
    if (body !== undefined) init.body = JSON.stringify(body);
    const res = await fetch(baseUrl + path, init);
    const text = await res.text();
    const end = now();
    if (res.status === 503 && overlapsOutage(start, end)) {
      expected.unavailable503++;
      return undefined;
    }
    if (
      res.status >= 500 ||
      res.status === 400 ||
      res.status === 401 ||
      res.status === 403 ||
      res.status === 413
    ) {
      noteUnexpected(`${method} ${path} -> ${res.status} ${text.slice(0, 200)}`);
      return undefined;
    }
    record(kind, start, end);
    return { status: res.status, body: text === '' ? undefined : (JSON.parse(text) as unknown) };
  } catch (err) {
    const end = now();
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    const what = `${cause?.code ?? ''} ${cause?.message ?? (err as Error).message}`;
    if (overlapsOutage(start, end) && !/timeout|aborted/i.test(what)) {
      expected.connection++;
      return undefined;
    }
    noteUnexpected(`${method} ${path} -> ${what}`);
    return undefined;
  }
}

// ------------------------------------------------------------------ workers

let stopping = false;
const model = new AckModel(DIM);
/** Every seed ever begun per id, so a reader can tell a real value from a made-up one. */
const begun = new Map<string, Set<number>>();

function putBody(id: string, seed: number): Record<string, unknown> {
  const r = recordFor(id, seed, DIM);
  const body: Record<string, unknown> = {
    id,
    embedding: encodeEmbeddingBase64(r.embedding as Float32Array),
    confidence: r.confidence,
    activation: r.activation,
    decayRate: r.decayRate,
    createdAt: r.createdAt,
    lastAccess: r.lastAccess,
    accessCount: r.accessCount,
  };
  if (r.content !== null && r.content !== undefined) body['content'] = r.content;
  return body;
}

/** Repeats a write until acknowledged: puts of one seed and deletes are idempotent. */
async function untilAcked(kind: OpKind, method: string, path: string, body?: unknown): Promise<Reply> {
  for (;;) {
    const r = await request(kind, method, path, body);
    if (r !== undefined) return r;
    counts.retries++;
    await sleep(50 + rng.int(150));
  }
}

async function writer(w: number): Promise<void> {
  const r = new Rng(SEED * 1000 + w);
  let seq = 0;
  while (!stopping) {
    const id = `w${w}-${r.int(IDS)}`;
    if (r.next() < 0.2) {
      model.begin(id, null);
      const reply = await untilAcked('delete', 'DELETE', `/api/v1/memories/${encodeURIComponent(id)}`);
      if (reply.status !== 200 && reply.status !== 204 && reply.status !== 404)
        noteUnexpected(`delete ${id} -> ${reply.status}`);
      model.ack(id, null);
      counts.deletesAcked++;
    } else {
      const seed = (w + 1) * 100_000_000 + ++seq;
      model.begin(id, seed);
      let seeds = begun.get(id);
      if (!seeds) begun.set(id, (seeds = new Set()));
      seeds.add(seed);
      const reply = await untilAcked('put', 'POST', '/api/v1/memories', putBody(id, seed));
      if (reply.status !== 200 && reply.status !== 201) noteUnexpected(`put ${id} -> ${reply.status}`);
      model.ack(id, seed);
      // This writer alone writes `id`: until its next op, the memory is this put's.
      if (r.next() < SELF_RECALL) await selfRecall(id, putBody(id, seed)['embedding'] as string);
    }
    counts.acked++;
  }
}

/** Recalls `id`'s own embedding (k = 1): an acknowledged memory is found, through the index or not. */
async function selfRecall(id: string, embedding: string): Promise<void> {
  const reply = await request('recall', 'POST', '/api/v1/recall', { embedding, k: 1, fields: ['id'] });
  if (reply?.status !== 200) return;
  counts.recalls++;
  counts.selfRecalls++;
  const hit = (reply.body as { results: Array<{ id: string; score: number }> }).results[0];
  if (hit?.id === id && hit.score > 0.9999) counts.selfFound++;
}

/** Samples the recall index's state from the storage route (its counters restart with the server). */
async function indexMonitor(): Promise<void> {
  while (!stopping) {
    await sleep(2000);
    // Outside `request`: not a client operation, and refused connections are expected.
    const s = await fetch(`${baseUrl}/api/v1/metrics/storage`, {
      headers: { authorization: `Bearer ${API_KEY}` },
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    })
      .then(async (res) =>
        res.ok
          ? ((await res.json()) as { index?: { state: string; indexed: number; searches: number } })
          : {},
      )
      .then((b) => b.index)
      .catch(() => undefined);
    if (!s) continue;
    index.samples++;
    if (s.state === 'ready') index.readySamples++;
    index.state = s.state;
    index.indexed = s.indexed;
    index.maxSearches = Math.max(index.maxSearches, s.searches);
  }
}

interface MemoryWire {
  id: string;
  embedding: string;
  content: string | null;
  confidence: number;
  activation: number;
  decayRate: number;
  createdAt: number;
  lastAccess: number;
  accessCount: number;
}

function toStored(m: MemoryWire): StoredMemory {
  return { ...m, embedding: decodeEmbedding(m.embedding) } as StoredMemory;
}

async function reader(i: number): Promise<void> {
  const r = new Rng(SEED * 7000 + i);
  while (!stopping) {
    if (r.next() < 0.15) {
      const q = embeddingFor(r.int(1_000_000), DIM);
      const reply = await request('recall', 'POST', '/api/v1/recall', {
        embedding: encodeEmbeddingBase64(q),
        k: 10,
        encoding: 'base64',
      });
      if (reply && reply.status === 200) {
        counts.recalls++;
        const hits = (reply.body as { results: unknown[] }).results;
        if (!Array.isArray(hits) || hits.length > 10)
          noteUnexpected(`recall returned ${JSON.stringify(reply.body).slice(0, 200)}`);
      }
      continue;
    }
    const id = `w${r.int(WRITERS)}-${r.int(IDS)}`;
    const reply = await request('get', 'GET', `/api/v1/memories/${encodeURIComponent(id)}?encoding=base64`);
    if (!reply) {
      await sleep(20);
      continue;
    }
    if (reply.status === 404) continue;
    if (reply.status !== 200) {
      noteUnexpected(`get ${id} -> ${reply.status}`);
      continue;
    }
    // A record's content names the seed that wrote it: check the whole record against that put.
    const m = toStored(reply.body as MemoryWire);
    const seed = typeof m.content === 'string' ? Number(/#(\d+):/.exec(m.content)?.[1]) : NaN;
    if (!Number.isFinite(seed)) continue; // empty or absent content: nothing names the seed
    counts.readsChecked++;
    try {
      if (!begun.get(id)?.has(seed)) throw new Error(`seed ${seed} was never written to ${id}`);
      expectSameRecord(m, recordFor(id, seed, DIM));
    } catch (err) {
      counts.readMismatches++;
      noteUnexpected(`get ${id}: ${(err as Error).message.slice(0, 200)}`);
    }
  }
}

async function maintenance(backupDir: string): Promise<void> {
  const r = new Rng(SEED * 31);
  let n = 0;
  let lastBackup: string | undefined;
  while (!stopping) {
    await sleep(3000 + r.int(4000));
    if (stopping) break;
    n++;
    if (n % 5 === 0 && n % 4 !== 0) {
      const reply = await request('maintenance', 'POST', '/api/v1/maintenance/compact', { force: true });
      if (reply?.status === 409) expected.conflict409++;
    } else if (n % 4 === 0) {
      const name = `soak-${n}`;
      const reply = await request('backup', 'POST', '/api/v1/maintenance/backup', { name });
      if (reply?.status === 200) {
        counts.backups++;
        // Keep one backup: disk stays bounded.
        if (lastBackup !== undefined) await rm(join(backupDir, lastBackup), { recursive: true, force: true });
        lastBackup = name;
      }
    } else {
      await request('maintenance', 'POST', '/api/v1/maintenance/run', {});
    }
  }
  // Backups a kill interrupted are incomplete: remove them, keep the last complete one.
  for (const d of await readdir(backupDir))
    if (d !== lastBackup) await rm(join(backupDir, d), { recursive: true, force: true });
  newestBackup = lastBackup === undefined ? undefined : join(backupDir, lastBackup);
}
let newestBackup: string | undefined;

async function diskBytes(dir: string): Promise<number> {
  let total = 0;
  for (const n of await readdir(dir).catch(() => [] as string[])) {
    const s = await stat(join(dir, n)).catch(() => undefined);
    if (s?.isFile()) total += s.blocks * 512;
  }
  return total;
}

// ------------------------------------------------------------------ the run

async function main(): Promise<void> {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run build first (npm run soak does)`);
  const root =
    args.data !== undefined ? resolve(args.data) : await mkdtemp(join(tmpdir(), 'warmstore-soak-'));
  const dataDir = join(root, 'store');
  const backupDir = join(root, 'backups');
  await mkdir(backupDir, { recursive: true });
  const log = createWriteStream(join(root, 'server.log'));
  const port = await freePort();
  process.stderr.write(`soak: ${DURATION_S}s, ${WRITERS} writers, ${READERS} readers, data in ${root}\n`);
  await startServer(dataDir, backupDir, port, log);

  const workers = [
    ...Array.from({ length: WRITERS }, (_, w) => writer(w)),
    ...Array.from({ length: READERS }, (_, i) => reader(i)),
    maintenance(backupDir),
    indexMonitor(),
  ];
  const diskTimer = setInterval(() => {
    void diskBytes(dataDir).then((b) => disk.push([now(), b]));
  }, 1000);
  const progressTimer = setInterval(() => {
    const last = buckets.at(-2);
    const ops = last ? OP_KINDS.reduce((a, k) => a + last.ops[k], 0) : 0;
    process.stderr.write(
      `soak: ${now().toFixed(0)}s/${DURATION_S}s acked ${counts.acked}, ${ops} ops/s, kills ${outages.length}, ` +
        `disk ${((disk.at(-1)?.[1] ?? 0) / 2 ** 20).toFixed(1)} MiB, unexpected ${unexpected.length}\n`,
    );
  }, 10_000);

  // A server that exited on its own (noted as a failure) is started again, so the run goes on.
  let reviving = false;
  const reviveIfGone = async (): Promise<void> => {
    const child = server;
    if (reviving || !child || child === killing || (child.exitCode === null && child.signalCode === null))
      return;
    reviving = true;
    try {
      await startServer(dataDir, backupDir, port, log);
    } finally {
      reviving = false;
    }
  };

  // The killer: SIGKILL at random moments, restart after a random pause.
  while (now() < DURATION_S) {
    const wait = KILL_EVERY_S * (0.3 + 1.4 * rng.next());
    const until = Math.min(DURATION_S, now() + wait);
    while (now() < until) {
      await sleep(Math.min(250, (until - now()) * 1000));
      await reviveIfGone();
    }
    if (now() >= DURATION_S - 5) break;
    const outage = { killAt: now(), upAt: undefined as number | undefined };
    outages.push(outage);
    await killServer();
    await sleep(rng.int(2000));
    await startServer(dataDir, backupDir, port, log);
    outage.upAt = now();
  }
  stopping = true;
  // Writers retry until acknowledged: a server that died on its own must be up for them to end.
  const revive = setInterval(() => void reviveIfGone(), 250);
  await Promise.all(workers);
  clearInterval(revive);
  clearInterval(diskTimer);
  clearInterval(progressTimer);
  const runS = now();

  // The last word: one more SIGKILL, then the store as recovery finds it.
  outages.push({ killAt: now(), upAt: undefined });
  await killServer();
  log.end();
  const store = await WarmStore.open(dataDir, {
    maintenanceIntervalMs: false,
    maintenance: { startupCompaction: 'off' },
  });
  let modelResult;
  let report;
  let finalStats;
  try {
    modelResult = await model.verify(store, 'soak end');
    report = await store.verify();
    finalStats = store.contentStorageStats();
  } finally {
    await store.close();
  }
  let backupReport: { ok: boolean; records: number } | undefined;
  if (newestBackup !== undefined) {
    const b = await WarmStore.open(newestBackup, {
      maintenanceIntervalMs: false,
      maintenance: { startupCompaction: 'off' },
    });
    try {
      backupReport = await b.verify();
    } finally {
      await b.close();
    }
  }
  const finalDisk = await diskBytes(dataDir);

  // Disk bound: the record files; the content the policy lets stand, three times the live bytes
  // (dead bytes waiting for compaction, a compaction's output) or, while the content stays under
  // the maintenance trigger's floor, that floor; eight segments of slack and two full WALs.
  const recordFiles =
    (await stat(join(dataDir, 'records.dat'))).size + (await stat(join(dataDir, 'vectors.dat'))).size;
  const bound =
    recordFiles +
    Math.max(3 * finalStats.liveBytes, COMPACT_MIN_TOTAL_BYTES) +
    8 * SEGMENT_BYTES +
    2 * WAL_CHECKPOINT_BYTES;
  const maxDisk = Math.max(0, ...disk.map((d) => d[1]));

  const failures: string[] = [];
  if (unplannedExits.length > 0)
    failures.push(
      `the server exited ${unplannedExits.length} times on its own: ${unplannedExits.join('; ')}`,
    );
  if (!report.ok) failures.push(`verify: ${JSON.stringify(report.problems).slice(0, 500)}`);
  if (backupReport !== undefined && !backupReport.ok)
    failures.push('the newest backup does not verify clean');
  if (maxDisk > bound) failures.push(`disk reached ${maxDisk} bytes, above the bound ${bound}`);
  if (unexpected.length > 0) failures.push(`${unexpected.length} unexpected responses or errors`);
  if (counts.readMismatches > 0)
    failures.push(`${counts.readMismatches} reads returned a record never written`);
  if (outages.length < 2 && DURATION_S >= 60) failures.push('the server was never killed mid-run');
  if (counts.selfRecalls > 0 && counts.selfFound < SELF_RECALL_MIN * counts.selfRecalls)
    failures.push(
      `recall found ${counts.selfFound} of ${counts.selfRecalls} memories by their own embedding`,
    );
  if (DURATION_S >= 60 && index.maxSearches === 0) failures.push('no recall went through the index');

  await writeReport({
    runS,
    modelResult,
    report,
    backupReport,
    finalDisk,
    maxDisk,
    bound,
    finalStats,
    failures,
  });
  if (args.data === undefined) await rm(root, { recursive: true, force: true });
  for (const u of unexpected.slice(0, 30)) process.stderr.write(`unexpected: ${u}\n`);
  if (failures.length > 0) {
    process.stderr.write(`soak FAILED:\n  ${failures.join('\n  ')}\n`);
    process.exitCode = 1;
  } else {
    process.stderr.write(`soak passed: figures in ${join(OUT, 'soak.md')}\n`);
  }
}

// ------------------------------------------------------------------ report

function pct(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
}

/** Latency percentiles over windows of `w` seconds. */
function latencySeries(kind: OpKind, w: number, p: number): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (let s = 0; s < buckets.length; s += w) {
    const all = buckets
      .slice(s, s + w)
      .flatMap((b) => b.lat[kind])
      .sort((a, b) => a - b);
    if (all.length > 0) out.push([s + w / 2, pct(all, p)]);
  }
  return out;
}

function throughputSeries(kinds: OpKind[], w: number): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (let s = 0; s < buckets.length; s += w) {
    const slice = buckets.slice(s, s + w);
    const n = slice.reduce((a, b) => a + kinds.reduce((x, k) => x + b.ops[k], 0), 0);
    out.push([s + w / 2, n / Math.max(1, slice.length)]);
  }
  return out;
}

interface ReportInput {
  runS: number;
  modelResult: { checked: number; present: number; pendingApplied: number; pendingDropped: number };
  report: { ok: boolean; records: number; segments: number; problems: unknown[] };
  backupReport: { ok: boolean; records: number } | undefined;
  finalDisk: number;
  maxDisk: number;
  bound: number;
  finalStats: { totalBytes: number; liveBytes: number; segments: number };
  failures: string[];
}

async function writeReport(r: ReportInput): Promise<void> {
  const w = r.runS > 900 ? 30 : 5;
  const mib = (b: number): string => (b / 2 ** 20).toFixed(1);
  const panels: Panel[] = [
    {
      title: `Throughput, ${w} s averages`,
      unit: 'requests/s',
      series: [
        { name: 'get', color: '#1f77b4', points: throughputSeries(['get'], w) },
        { name: 'put', color: '#2ca02c', points: throughputSeries(['put'], w) },
        { name: 'delete', color: '#9467bd', points: throughputSeries(['delete'], w) },
        { name: 'recall', color: '#ff7f0e', points: throughputSeries(['recall'], w) },
      ],
    },
    {
      title: `Latency over ${w} s windows`,
      unit: 'ms, log scale',
      log: true,
      series: [
        { name: 'put p50', color: '#98df8a', points: latencySeries('put', w, 0.5) },
        { name: 'put p99', color: '#2ca02c', points: latencySeries('put', w, 0.99) },
        { name: 'get p50', color: '#aec7e8', points: latencySeries('get', w, 0.5) },
        { name: 'get p99', color: '#1f77b4', points: latencySeries('get', w, 0.99) },
        { name: 'recall p99', color: '#ff7f0e', points: latencySeries('recall', w, 0.99) },
      ],
    },
    {
      title: 'Store directory on disk',
      unit: 'MiB',
      series: [{ name: 'disk', color: '#444', points: disk.map(([t, b]) => [t, b / 2 ** 20]) }],
    },
  ];
  const kills = outages.slice(0, -1).map((o) => o.killAt);
  const downtimes = outages.filter((o) => o.upAt !== undefined).map((o) => o.upAt! - o.killAt);
  await mkdir(OUT, { recursive: true });
  await writeFile(
    join(OUT, 'soak.svg'),
    renderSvg(
      `warmstore soak: ${(r.runS / 60).toFixed(1)} min, ${WRITERS} writers, ${READERS} readers, ${kills.length} SIGKILLs`,
      Math.ceil(r.runS),
      panels,
      kills,
    ),
  );
  const total = (k: OpKind): number => buckets.reduce((a, b) => a + b.ops[k], 0);
  const allLat = (k: OpKind): number[] => buckets.flatMap((b) => b.lat[k]).sort((a, b) => a - b);
  const row = (k: OpKind): string => {
    const l = allLat(k);
    return `| ${k} | ${total(k)} | ${(total(k) / r.runS).toFixed(0)} | ${pct(l, 0.5).toFixed(2)} | ${pct(l, 0.99).toFixed(1)} | ${(l.at(-1) ?? NaN).toFixed(0)} |`;
  };
  const md = `# Soak run

\`npm run soak -- --duration ${args.duration}\`: ${WRITERS} writers, ${READERS} readers (85% GET, 15%
recall), a maintenance loop (run, forced compaction, backup) over HTTP against a \`warmstore
serve\` child on 127.0.0.1, killed with SIGKILL and restarted at random moments (mean ${KILL_EVERY_S} s
apart). Writers own ${IDS} ids each (${WRITERS * IDS} in all): 80% puts of ${DIM}-dimension records
with content of 0-20 KB, 20% deletes; segments of ${mib(SEGMENT_BYTES)} MiB; a write that failed with the server down is retried until
acknowledged (puts of one value and deletes are idempotent). At the end the server is killed once
more and the store opened in-process.

${r.failures.length === 0 ? '**Result: passed.**' : `**Result: FAILED**\n\n${r.failures.map((f) => `- ${f}`).join('\n')}`}

This run: **${(r.runS / 60).toFixed(1)} minutes** (${new Date().toISOString().slice(0, 10)}, a 2-core
machine shared with other jobs, so absolute rates are low and noisy). \`npm run soak\` runs 10
minutes by default; \`npm run soak -- --duration 1h\` is the hour-long run. It exits 1 when a check
fails, and keeps the store and the server log with \`--data DIR\`.

![throughput, latency and disk over time](soak.svg)

## Checks

| check | result |
|---|---|
| acknowledged writes (model of every id: last acked value, or the op in flight) | ${r.modelResult.checked} ids checked, ${r.modelResult.present} present, all as acknowledged |
| \`verify()\` after the final SIGKILL | ${r.report.ok ? 'clean' : 'PROBLEMS'}: ${r.report.records} records, ${r.report.segments} segments |
| newest backup opened and verified | ${r.backupReport === undefined ? 'no backup completed' : `${r.backupReport.ok ? 'clean' : 'PROBLEMS'}, ${r.backupReport.records} records`} (${counts.backups} backups taken) |
| reads checked against the put that wrote them | ${counts.readsChecked}, ${counts.readMismatches} mismatches |
| SIGKILLs during the run | ${kills.length}; server back in ${downtimes.length > 0 ? `${Math.min(...downtimes).toFixed(1)}-${Math.max(...downtimes).toFixed(1)} s` : '-'} |
| failed requests explained by an outage | ${expected.connection} connection refused/reset, ${expected.unavailable503} 503; ${counts.retries} write retries |
| 409 on a forced compaction while one ran | ${expected.conflict409} (expected) |
| unexpected responses or errors | ${unexpected.length} |
| disk | max ${mib(r.maxDisk)} MiB, final ${mib(r.finalDisk)} MiB; bound ${mib(r.bound)} MiB (record files + the larger of 3 x live content and the ${mib(COMPACT_MIN_TOTAL_BYTES)} MiB under which maintenance does not compact + 8 segments + 2 WALs of ${mib(WAL_CHECKPOINT_BYTES)} MiB) |
| content at the end | ${mib(r.finalStats.totalBytes)} MiB in ${r.finalStats.segments} segments, ${mib(r.finalStats.liveBytes)} MiB live |
| recall of a just-acknowledged put by its own embedding (k = 1; ${SELF_RECALL * 100}% of puts) | ${counts.selfFound} of ${counts.selfRecalls} found first (bar ${SELF_RECALL_MIN * 100}%) |
| recall index (\`--ann-min-memories ${ANN_MIN_MEMORIES}\`), sampled every 2 s | ready in ${index.readySamples} of ${index.samples} samples; last ${index.state} with ${index.indexed} memories; up to ${index.maxSearches} searches between restarts |

## Requests

| kind | count | per second | p50 ms | p99 ms | max ms |
|---|---|---|---|---|---|
${OP_KINDS.map(row).join('\n')}

Latencies are of successful requests, measured by the client (fetch, keep-alive), including
queueing behind the other 20 clients on a shared 2-core machine.
`;
  await writeFile(join(OUT, 'soak.md'), md);
}

await main();
