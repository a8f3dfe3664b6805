/**
 * warmstore side-by-side benchmark (brief §7): warmstore (durability 'sync' and 'relaxed')
 * against lmdb-js, classic-level and better-sqlite3 storing the same records with equal
 * durability, in durable batches of 1000.
 *
 *   node --import tsx run.ts [--count 100000] [--only put,get,iter,open,recall,compact]
 *        [--peers lmdb,level,sqlite] [--ws sync,relaxed] [--reps 3] [--dir /tmp/x]
 *        [--get-ops 100000] [--async-get-ops 30000] [--bw-mib 512] [--no-readers] [--keep]
 *        [--profile put,get,iter,open,compact]  (V8 CPU profile of warmstore-sync, first repetition)
 *
 * Every option also reads from the environment: BENCH_COUNT, BENCH_ONLY, BENCH_PEERS, BENCH_WS,
 * BENCH_REPS, BENCH_DIR, ...  (upper case, dashes as underscores).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFileSync, fork } from 'node:child_process';
import { PerformanceObserver } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { Session } from 'node:inspector/promises';
import { Dataset, rng, shuffled, type BenchMemory } from './lib/data.ts';
import { makeEngine, loadWarmstore, type Engine, type EngineName } from './lib/engines.ts';
import {
  Lat,
  type LatSummary,
  RssSampler,
  diskUsage,
  eldMonitor,
  fmtBytes,
  fmtNum,
  fmtUs,
  gc,
  measureFdatasync,
  measureWriteBandwidth,
  procIo,
  median,
  mdTable,
  now,
  sleep,
  table,
  yieldLoop,
} from './lib/measure.ts';

// ---------------------------------------------------------------- options

function opt(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  if (i >= 0) {
    const v = process.argv[i + 1];
    return v === undefined || v.startsWith('--') ? 'true' : v;
  }
  const e = process.env[`BENCH_${name.toUpperCase().replace(/-/g, '_')}`];
  return e ?? def;
}
const flag = (name: string): boolean => process.argv.includes(`--${name}`) || opt(name, '') === '1';

const ALL_PHASES = ['put', 'get', 'iter', 'open', 'recover', 'recall', 'compact'] as const;
type Phase = (typeof ALL_PHASES)[number];

const COUNT = Number(opt('count', '100000'));
const ONLY = new Set(
  opt('only', ALL_PHASES.join(','))
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean),
) as Set<Phase>;
for (const p of ONLY)
  if (!ALL_PHASES.includes(p)) throw new Error(`unknown phase ${p}; phases: ${ALL_PHASES}`);
const PEERS = opt('peers', 'lmdb,level,sqlite')
  .split(',')
  .map((s) => s.trim())
  .filter((s) => s && s !== 'none');
for (const p of PEERS) if (!['lmdb', 'level', 'sqlite'].includes(p)) throw new Error(`unknown peer ${p}`);
const WS = opt('ws', 'sync,relaxed')
  .split(',')
  .map((s) => s.trim())
  .filter((s) => s && s !== 'none');
const REPS = Number(opt('reps', '3'));
const DIM = Number(opt('dim', '768'));
const BATCH = Number(opt('batch', '1000'));
const GET_OPS = Number(opt('get-ops', String(Math.min(100_000, Math.max(20_000, COUNT)))));
const ASYNC_GET_OPS = Number(opt('async-get-ops', '30000'));
const BW_MIB = Number(opt('bw-mib', '512'));
const READERS = !flag('no-readers');
const KEEP = flag('keep');
// Data lives under bench/.data (gitignored), not /tmp: other sessions clean /tmp by pattern.
const ROOT = opt('dir', fileURLToPath(new URL(`./.data/run-${process.pid}`, import.meta.url)));
const has = (p: Phase): boolean => ONLY.has(p);

// ---------------------------------------------------------------- results

interface GetResult {
  opsPerSec: number;
  lat: LatSummary;
  errors: number;
}
interface CompactRun {
  seconds: number;
  deleteRecPerSec: number;
  liveContentBytes: number;
  contentMBps: number;
  fractionOfBandwidth: number;
  diskBefore: number;
  diskAfter: number;
  liveLogicalBytes: number;
  readsSync: LatSummary;
  readsAsync?: LatSummary;
  readsSyncWarm: LatSummary;
  readsAsyncWarm?: LatSummary;
  eldMaxMs: number;
  eldP99Ms: number;
  eldWarmMaxMs: number;
  rssBaseline: number;
  rssPeak: number;
  extraRss: number;
  pauseMs?: number;
  details: Record<string, unknown>;
  statsBefore?: Record<string, unknown>;
  statsAfter?: Record<string, unknown>;
  verifyErrors: number;
  readErrors: number;
  cpu: { userMs: number; systemMs: number; involuntaryCtxSwitches: number; loadavg1: number[] };
  gc: { count: number; maxMs: number; totalMs: number };
  /** Bytes written (write syscalls) / read by the whole process during compaction. */
  io: { wchar: number; writeBytes: number; rchar: number };
}
interface EngineResult {
  put: { recPerSec: number; seconds: number }[];
  putMany?: { recPerSec: number; seconds: number }[];
  diskAfterStore?: { allocated: number; apparent: number; files: number };
  diskAfterClose?: { allocated: number; apparent: number; files: number };
  getSync: GetResult[];
  getAsync: GetResult[];
  iterate: number[];
  iterateCount?: number;
  openMs: number[];
  /** Open after kill -9 of a process that had just stored every record (durable). */
  recover?: { openMs: number; sampleErrors: number; size?: number };
  recall?: { ms: number[]; jsBaselineMs: number[]; top10Agreement: number };
  compaction: CompactRun[];
  storeStats?: Record<string, unknown>;
  error?: string;
}

const results: Record<string, EngineResult> = {};
const log = (...a: unknown[]): void => console.log(...a);

// ---------------------------------------------------------------- profiling

/**
 * `--profile put,open,compact,...`: a V8 CPU profile of that phase, first repetition, warmstore
 * 'sync' only, written to bench/.data/prof/ (summarize with tools/cpuprofile-top.mjs).
 */
const PROFILE = new Set(
  opt('profile', '')
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean),
);
let inspector: Session | undefined;
async function profiled<T>(engine: string, rep: number, phase: string, fn: () => Promise<T>): Promise<T> {
  if (!PROFILE.has(phase) || engine !== 'warmstore-sync' || rep !== 0) return fn();
  if (!inspector) {
    inspector = new Session();
    inspector.connect();
    await inspector.post('Profiler.enable');
    await inspector.post('Profiler.setSamplingInterval', { interval: 200 });
  }
  await inspector.post('Profiler.start');
  try {
    return await fn();
  } finally {
    const { profile } = await inspector.post('Profiler.stop');
    const dir = fileURLToPath(new URL('./.data/prof/', import.meta.url));
    fs.mkdirSync(dir, { recursive: true });
    const file = path.join(dir, `${engine}-${phase}-${process.pid}.cpuprofile`);
    fs.writeFileSync(file, JSON.stringify(profile));
    log(`    profile of ${phase}: ${file}`);
  }
}

// ---------------------------------------------------------------- phases

async function storeAll(
  eng: Engine,
  ds: Dataset,
  useMany = false,
): Promise<{ recPerSec: number; seconds: number }> {
  const t0 = now();
  for (let i = 0; i < ds.n; i += BATCH) {
    const batch = ds.records.slice(i, i + BATCH);
    if (useMany) await (eng as unknown as { putMany(r: BenchMemory[]): Promise<void> }).putMany(batch);
    else await eng.putBatch(batch);
  }
  const seconds = (now() - t0) / 1000;
  return { recPerSec: ds.n / seconds, seconds };
}

function randomIndices(n: number, count: number, seed: number): Uint32Array {
  const r = rng(seed);
  const a = new Uint32Array(count);
  for (let i = 0; i < count; i++) a[i] = Math.floor(r() * n);
  return a;
}

function checkRecord(v: BenchMemory | undefined, want: BenchMemory): boolean {
  return (
    v !== undefined &&
    v.content === want.content &&
    v.embedding.length === want.embedding.length &&
    v.embedding[7] === want.embedding[7] &&
    v.accessCount === want.accessCount
  );
}

function getSyncPass(eng: Engine, ds: Dataset, ops: number, seed: number): GetResult {
  const idx = randomIndices(ds.n, ops, seed);
  const lat = new Lat();
  let errors = 0;
  const t0 = now();
  for (let i = 0; i < ops; i++) {
    const rec = ds.records[idx[i]!]!;
    const s = now();
    const v = eng.getSync(rec.id);
    lat.ms(now() - s);
    if (v === undefined || v.content!.length !== rec.content!.length) errors++;
  }
  const total = (now() - t0) / 1000;
  return { opsPerSec: ops / total, lat: lat.summary(), errors };
}

async function getAsyncPass(eng: Engine, ds: Dataset, ops: number, seed: number): Promise<GetResult> {
  const idx = randomIndices(ds.n, ops, seed);
  const lat = new Lat();
  let errors = 0;
  const t0 = now();
  for (let i = 0; i < ops; i++) {
    const rec = ds.records[idx[i]!]!;
    const s = now();
    const v = await eng.get!(rec.id);
    lat.ms(now() - s);
    if (v === undefined || v.content!.length !== rec.content!.length) errors++;
  }
  const total = (now() - t0) / 1000;
  return { opsPerSec: ops / total, lat: lat.summary(), errors };
}

/** Exact cosine top-k in a plain JS loop over the dataset (the brief's "plain JS loop" figure). */
function jsExactTopK(ds: Dataset, q: Float32Array, k: number): string[] {
  const dim = ds.dim;
  const e = ds.embeddings;
  let qn = 0;
  for (let j = 0; j < dim; j++) qn += q[j]! * q[j]!;
  qn = Math.sqrt(qn);
  const topS: number[] = [];
  const topI: number[] = [];
  for (let i = 0; i < ds.n; i++) {
    let dot = 0;
    let nn = 0;
    const o = i * dim;
    for (let j = 0; j < dim; j++) {
      const x = e[o + j]!;
      dot += x * q[j]!;
      nn += x * x;
    }
    const s = dot / (Math.sqrt(nn) * qn);
    if (topS.length < k || s > topS[topS.length - 1]!) {
      let p = topS.length < k ? topS.length : k - 1;
      while (p > 0 && topS[p - 1]! < s) {
        if (p < k) {
          topS[p] = topS[p - 1]!;
          topI[p] = topI[p - 1]!;
        }
        p--;
      }
      topS[p] = s;
      topI[p] = i;
      if (topS.length > k) {
        topS.length = k;
        topI.length = k;
      }
    }
  }
  return topI.map((i) => ds.records[i]!.id);
}

/**
 * Recovery: a child process stores every record (durably), reports, and is killed with SIGKILL
 * before it can close or checkpoint; then the store is opened here and timed.
 */
async function recoverRun(
  name: EngineName,
  ds: Dataset,
): Promise<{ openMs: number; sampleErrors: number; size?: number }> {
  const dir = path.join(ROOT, `${name}-crash`);
  fs.rmSync(dir, { recursive: true, force: true });
  const child = fork(
    fileURLToPath(import.meta.url),
    ['--crash-child', name, dir, '--count', String(ds.n), '--dim', String(ds.dim)],
    {
      execArgv: ['--import', 'tsx'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    },
  );
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  await new Promise<void>((resolve, reject) => {
    child.once('message', () => resolve());
    child.once('exit', (code) => reject(new Error(`crash child exited early (${code})`)));
  });
  child.kill('SIGKILL');
  await exited;
  gc();
  const eng = await makeEngine(name, dir, ds.dim);
  try {
    const t0 = now();
    await eng.open();
    eng.getSync(ds.records[0]!.id);
    const openMs = now() - t0;
    let sampleErrors = 0;
    for (let i = 0; i < ds.n; i += Math.max(1, Math.floor(ds.n / 1000))) {
      if (!checkRecord(eng.getSync(ds.records[i]!.id), ds.records[i]!)) sampleErrors++;
    }
    const size = (eng as unknown as { store?: { size: number } }).store?.size;
    return { openMs, sampleErrors, ...(size !== undefined ? { size } : {}) };
  } finally {
    await eng.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function crashChild(): Promise<void> {
  const i = process.argv.indexOf('--crash-child');
  const name = process.argv[i + 1] as EngineName;
  const dir = process.argv[i + 2]!;
  const ds = new Dataset(COUNT, DIM);
  const eng = await makeEngine(name, dir, ds.dim);
  await eng.open();
  await storeAll(eng, ds);
  process.send!('stored');
  setInterval(() => undefined, 1000); // wait for SIGKILL
}

async function compactionRun(eng: Engine, ds: Dataset, rep: number, bandwidth: number): Promise<CompactRun> {
  // Delete a random half, in durable batches of BATCH.
  const perm = shuffled(ds.n, rng(1000 + rep));
  const half = ds.n >> 1;
  const deleted: string[] = [];
  for (let i = 0; i < half; i++) deleted.push(ds.records[perm[i]!]!.id);
  const live: BenchMemory[] = [];
  for (let i = half; i < ds.n; i++) live.push(ds.records[perm[i]!]!);
  let liveContentBytes = 0;
  let liveLogicalBytes = 0;
  for (const r of live) {
    liveContentBytes += r.content!.length;
    liveLogicalBytes += Buffer.byteLength(r.id) + ds.dim * 4 + r.content!.length + 48;
  }
  const td = now();
  for (let i = 0; i < deleted.length; i += BATCH) await eng.deleteBatch(deleted.slice(i, i + BATCH));
  const deleteRecPerSec = deleted.length / ((now() - td) / 1000);
  await eng.settle?.();
  const statsBefore = eng.stats?.();
  const diskBefore = diskUsage(eng.dir).allocated;

  // Readers: one loop, one read at a time (getSync, then async get where the engine has one),
  // yielding to the event loop after each iteration. 500 ms of warm-up give the baseline
  // (latency, event-loop delay, RSS) under the same read load, then compaction starts.
  const rSync = { warm: new Lat(), comp: new Lat() };
  const rAsync = { warm: new Lat(), comp: new Lat() };
  const st: { phase: 'warm' | 'comp' | 'done' } = { phase: 'warm' };
  let readErrors = 0;
  let stop = false;
  gc();
  await sleep(50);
  const sampler = new RssSampler();
  await sampler.start(5);
  let eld = eldMonitor();
  const reader = (async () => {
    if (!READERS) return;
    const r = rng(77 + rep);
    while (!stop) {
      const rec = live[Math.floor(r() * live.length)]!;
      let s = now();
      if (eng.blocked) await eng.blocked;
      const v = eng.getSync(rec.id);
      const d = now() - s;
      if (st.phase !== 'done') (st.phase === 'warm' ? rSync.warm : rSync.comp).ms(d);
      if (!checkRecord(v, rec)) readErrors++;
      if (eng.get) {
        s = now();
        if (eng.blocked) await eng.blocked;
        const v2 = await eng.get(rec.id);
        const d2 = now() - s;
        if (st.phase !== 'done') (st.phase === 'warm' ? rAsync.warm : rAsync.comp).ms(d2);
        if (!checkRecord(v2, rec)) readErrors++;
      }
      await yieldLoop();
    }
  })();
  await sleep(500);
  const eldWarm = eld.stop();
  const rssBaseline = sampler.peak;
  st.phase = 'comp';
  sampler.resetPeak();
  eld = eldMonitor();
  // GC pauses during compaction (a long event-loop stall may be a GC, not the engine).
  const gcs: number[] = [];
  const gcObs = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) gcs.push(e.duration);
  });
  gcObs.observe({ entryTypes: ['gc'] });
  const ru0 = process.resourceUsage();
  const io0 = procIo();
  const load0 = os.loadavg()[0]!;
  const t0 = now();
  let res;
  try {
    res = await eng.compact();
  } finally {
    st.phase = 'done';
  }
  const seconds = (now() - t0) / 1000;
  const ru1 = process.resourceUsage();
  const io1 = procIo();
  gcObs.disconnect();
  const eldC = eld.stop();
  sampler.sample();
  const rssPeak = sampler.peak;
  stop = true;
  await reader;
  await sampler.stop();
  const statsAfter = eng.stats?.();
  const diskAfter = diskUsage(eng.dir).allocated;

  // Verify: every survivor reads back byte-identical, every deleted id is absent.
  let verifyErrors = 0;
  for (const rec of live) if (!checkRecord(eng.getSync(rec.id), rec)) verifyErrors++;
  for (let i = 0; i < deleted.length; i += 50) if (eng.getSync(deleted[i]!) !== undefined) verifyErrors++;

  const contentBps = liveContentBytes / seconds;
  return {
    seconds,
    deleteRecPerSec,
    liveContentBytes,
    contentMBps: contentBps / 1e6,
    fractionOfBandwidth: contentBps / bandwidth,
    diskBefore,
    diskAfter,
    liveLogicalBytes,
    readsSync: rSync.comp.summary(),
    ...(eng.get ? { readsAsync: rAsync.comp.summary(), readsAsyncWarm: rAsync.warm.summary() } : {}),
    readsSyncWarm: rSync.warm.summary(),
    eldMaxMs: eldC.maxMs,
    eldP99Ms: eldC.p99Ms,
    eldWarmMaxMs: eldWarm.maxMs,
    rssBaseline,
    rssPeak,
    extraRss: Math.max(0, rssPeak - rssBaseline),
    ...(res.pauseMs !== undefined ? { pauseMs: res.pauseMs } : {}),
    details: res.details,
    ...(statsBefore ? { statsBefore } : {}),
    ...(statsAfter ? { statsAfter } : {}),
    verifyErrors,
    readErrors,
    // CPU contention evidence: this process's CPU time vs wall time, and involuntary context
    // switches (the kernel took the CPU away) while compaction ran.
    cpu: {
      userMs: (ru1.userCPUTime - ru0.userCPUTime) / 1000,
      systemMs: (ru1.systemCPUTime - ru0.systemCPUTime) / 1000,
      involuntaryCtxSwitches: ru1.involuntaryContextSwitches - ru0.involuntaryContextSwitches,
      loadavg1: [load0, os.loadavg()[0]!],
    },
    io: {
      wchar: io1.wchar - io0.wchar,
      writeBytes: io1.writeBytes - io0.writeBytes,
      rchar: io1.rchar - io0.rchar,
    },
    gc: {
      count: gcs.length,
      maxMs: gcs.length ? Math.max(...gcs) : 0,
      totalMs: gcs.reduce((a, b) => a + b, 0),
    },
  };
}

async function benchEngine(name: EngineName, ds: Dataset, rep: number, bandwidth: number): Promise<void> {
  const res = (results[name] ??= {
    put: [],
    getSync: [],
    getAsync: [],
    iterate: [],
    openMs: [],
    compaction: [],
  });
  const dir = path.join(ROOT, `${name}-${rep}`);
  fs.rmSync(dir, { recursive: true, force: true });
  let eng = await makeEngine(name, dir, ds.dim);
  const isWs = name.startsWith('warmstore');
  const full = name !== 'warmstore-relaxed'; // relaxed: store and get only
  try {
    await eng.open();
    gc();
    const put = await profiled(name, rep, 'put', () => storeAll(eng, ds));
    res.put.push(put);
    log(`  ${name} rep ${rep + 1}: store ${fmtNum(put.recPerSec)} rec/s (${put.seconds.toFixed(2)} s)`);

    if (rep === 0) {
      res.diskAfterStore = diskUsage(dir);
      if (isWs) res.storeStats = eng.stats?.();
    }
    if (has('get') && (rep === 0 || REPS > 1)) {
      // Warm-up, then one pass per repetition (median over repetitions).
      getSyncPass(eng, ds, 2000, 99);
      const g = await profiled(name, rep, 'get', async () => getSyncPass(eng, ds, GET_OPS, 100 + rep));
      res.getSync.push(g);
      let line = `    getSync ${fmtNum(g.opsPerSec)} ops/s p50 ${fmtUs(g.lat.p50us)} p99 ${fmtUs(g.lat.p99us)}`;
      if (eng.get) {
        await getAsyncPass(eng, ds, 1000, 98);
        const ga = await getAsyncPass(eng, ds, ASYNC_GET_OPS, 200 + rep);
        res.getAsync.push(ga);
        line += ` | get ${fmtNum(ga.opsPerSec)} ops/s p50 ${fmtUs(ga.lat.p50us)} p99 ${fmtUs(ga.lat.p99us)}`;
      }
      if (g.errors) line += ` ERRORS ${g.errors}`;
      log(line);
    }
    if (full && has('iter') && (rep === 0 || REPS > 1)) {
      const t0 = now();
      const n = await profiled(name, rep, 'iter', () => eng.iterate());
      const s = (now() - t0) / 1000;
      res.iterate.push(s);
      res.iterateCount = n;
      log(`    iterate ${n} in ${s.toFixed(3)} s${n !== ds.n ? ` COUNT MISMATCH (want ${ds.n})` : ''}`);
    }
    if (full && has('open') && (rep === 0 || REPS > 1)) {
      await eng.close();
      if (rep === 0) res.diskAfterClose = diskUsage(dir);
      gc();
      eng = await makeEngine(name, dir, ds.dim);
      const e2 = eng;
      const { v, ms } = await profiled(name, rep, 'open', async () => {
        const t0 = now();
        await e2.open();
        const v = e2.getSync(ds.records[0]!.id);
        return { v, ms: now() - t0 };
      });
      res.openMs.push(ms);
      log(`    open ${ms.toFixed(1)} ms${checkRecord(v, ds.records[0]!) ? '' : ' FIRST READ WRONG'}`);
    }
    if (full && has('recover') && rep === 0) {
      const rr = await recoverRun(name as EngineName, ds);
      res.recover = rr;
      log(
        `    open after kill -9: ${rr.openMs.toFixed(1)} ms` +
          (rr.size !== undefined ? `, size ${rr.size}` : '') +
          (rr.sampleErrors || (rr.size !== undefined && rr.size !== ds.n)
            ? ` RECOVERY ERRORS ${rr.sampleErrors}`
            : ''),
      );
    }
    if (isWs && full && has('recall') && rep === 0) {
      const ws = eng as unknown as {
        store: { recall(q: Float32Array, o: object): Promise<{ memory: BenchMemory; score: number }[]> };
      };
      const r = rng(4242);
      const ms: number[] = [];
      const jsMs: number[] = [];
      let agree = 0;
      let total = 0;
      for (let qi = 0; qi < 6; qi++) {
        const q = new Float32Array(ds.dim);
        for (let j = 0; j < ds.dim; j++) q[j] = r() * 2 - 1;
        let t0 = now();
        const out = await ws.store.recall(q, { k: 10 });
        const dt = now() - t0;
        t0 = now();
        const want = jsExactTopK(ds, q, 10);
        const djs = now() - t0;
        if (qi === 0) continue; // warm-up
        ms.push(dt);
        jsMs.push(djs);
        const got = new Set(out.map((o) => o.memory.id));
        for (const id of want) if (got.has(id)) agree++;
        total += want.length;
      }
      res.recall = { ms, jsBaselineMs: jsMs, top10Agreement: agree / total };
      log(
        `    recall top-10: ${median(ms).toFixed(1)} ms (plain JS loop ${median(jsMs).toFixed(1)} ms), ` +
          `agreement with exact ${(100 * (agree / total)).toFixed(1)}%`,
      );
    }
    if (full && has('compact')) {
      const e3 = eng;
      const c = await profiled(name, rep, 'compact', () => compactionRun(e3, ds, rep, bandwidth));
      res.compaction.push(c);
      log(
        `    compaction ${c.seconds.toFixed(3)} s (${(100 * c.fractionOfBandwidth).toFixed(1)}% of seq bw), ` +
          `reads p50/p99/max ${fmtUs(c.readsSync.p50us)}/${fmtUs(c.readsSync.p99us)}/${fmtUs(c.readsSync.maxUs)}` +
          (c.readsAsync
            ? ` async ${fmtUs(c.readsAsync.p50us)}/${fmtUs(c.readsAsync.p99us)}/${fmtUs(c.readsAsync.maxUs)}`
            : '') +
          `, ELD max ${c.eldMaxMs.toFixed(1)} ms (warm ${c.eldWarmMaxMs.toFixed(1)}), extra RSS ${fmtBytes(c.extraRss)}, ` +
          `disk ${fmtBytes(c.diskBefore)} -> ${fmtBytes(c.diskAfter)}` +
          (c.pauseMs !== undefined ? `, reopen pause ${c.pauseMs.toFixed(1)} ms` : '') +
          `; wrote ${fmtBytes(c.io.wchar)} (${(c.io.wchar / c.liveContentBytes).toFixed(2)}x live content)` +
          `; GC max ${c.gc.maxMs.toFixed(1)} ms; cpu ${(c.cpu.userMs + c.cpu.systemMs).toFixed(0)} ms, ${c.cpu.involuntaryCtxSwitches} preemptions, load ${c.cpu.loadavg1[0]!.toFixed(1)}` +
          (c.verifyErrors || c.readErrors ? ` ERRORS verify=${c.verifyErrors} reads=${c.readErrors}` : ''),
      );
      if (isWs) log(`      stats ${JSON.stringify(c.details)}`);
    }
  } catch (e) {
    res.error = String((e as Error)?.stack ?? e);
    log(`  ${name} rep ${rep + 1} FAILED: ${res.error}`);
  } finally {
    try {
      await eng.close();
    } catch (e) {
      log(`  ${name} close failed: ${String(e)}`);
    }
    if (!KEEP) fs.rmSync(dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------- summary

function med<T>(xs: T[], f: (x: T) => number | undefined): number {
  return median(xs.map(f).filter((x): x is number => x !== undefined && Number.isFinite(x)));
}

function summarize(
  ds: Dataset,
  bw: { bytesPerSec: number },
  fsyncLat: { p50us: number },
): {
  text: string;
  md: string;
  goals: string[];
  summary: Record<string, Record<string, number>>;
} {
  const names = Object.keys(results);
  const S: Record<string, Record<string, number>> = {};
  for (const n of names) {
    const r = results[n]!;
    const comp = r.compaction;
    S[n] = {
      putRecPerSec: med(r.put, (x) => x.recPerSec),
      getSyncOps: med(r.getSync, (x) => x.opsPerSec),
      getSyncP50: med(r.getSync, (x) => x.lat.p50us),
      getSyncP99: med(r.getSync, (x) => x.lat.p99us),
      getAsyncOps: med(r.getAsync, (x) => x.opsPerSec),
      getAsyncP50: med(r.getAsync, (x) => x.lat.p50us),
      getAsyncP99: med(r.getAsync, (x) => x.lat.p99us),
      diskRatio: (r.diskAfterStore?.allocated ?? NaN) / ds.logicalBytes,
      diskRatioClosed: (r.diskAfterClose?.allocated ?? NaN) / ds.logicalBytes,
      iterateS: median(r.iterate),
      openMs: median(r.openMs),
      recoverMs: r.recover?.openMs ?? NaN,
      recallMs: r.recall ? median(r.recall.ms) : NaN,
      recallJsMs: r.recall ? median(r.recall.jsBaselineMs) : NaN,
      deleteRecPerSec: med(comp, (c) => c.deleteRecPerSec),
      compactS: med(comp, (c) => c.seconds),
      compactFraction: med(comp, (c) => c.fractionOfBandwidth),
      compactReadP50: med(comp, (c) => c.readsSync.p50us),
      compactReadP99: med(comp, (c) => c.readsSync.p99us),
      compactReadMax: med(comp, (c) => c.readsSync.maxUs),
      warmReadP50: med(comp, (c) => c.readsSyncWarm.p50us),
      warmReadP99: med(comp, (c) => c.readsSyncWarm.p99us),
      warmReadMax: med(comp, (c) => c.readsSyncWarm.maxUs),
      compactReadMaxWorst: Math.max(...comp.map((c) => c.readsSync.maxUs)),
      compactAsyncP99: med(comp, (c) => c.readsAsync?.p99us),
      compactAsyncMax: med(comp, (c) => c.readsAsync?.maxUs),
      eldMaxMs: med(comp, (c) => c.eldMaxMs),
      eldMaxWorstMs: Math.max(...comp.map((c) => c.eldMaxMs)),
      eldWarmMaxMs: med(comp, (c) => c.eldWarmMaxMs),
      extraRss: med(comp, (c) => c.extraRss),
      diskAfterCompactRatio: med(comp, (c) => c.diskAfter / c.liveLogicalBytes),
      pauseMs: med(comp, (c) => c.pauseMs),
      compactWriteAmp: med(comp, (c) => c.io.wchar / c.liveContentBytes),
      gcMaxMs: med(comp, (c) => c.gc.maxMs),
    };
  }
  const peers = names.filter((n) => !n.startsWith('warmstore'));
  const v = (n: string, k: string): number => S[n]?.[k] ?? NaN;
  const fx = (x: number): string => (Number.isFinite(x) ? `${x.toFixed(2)}x` : '-');
  const pct = (x: number): string => (Number.isFinite(x) ? `${(100 * x).toFixed(1)}%` : '-');
  const ws = 'warmstore-sync';
  const ratio = (k: string, inverse = false): string => {
    const a = v(ws, k);
    const b = v('lmdb', k);
    const x = inverse ? b / a : a / b;
    return Number.isFinite(x) ? `${x.toFixed(2)}x` : '-';
  };
  type Row = [string, (n: string) => string, string, string];
  const rows: Row[] = [
    [
      'store rec/s (durable batches of 1000)',
      (n) => fmtNum(v(n, 'putRecPerSec')),
      ratio('putRecPerSec'),
      '>= 1.5x',
    ],
    ['getSync ops/s', (n) => fmtNum(v(n, 'getSyncOps')), ratio('getSyncOps'), '>= 1.0x'],
    ['getSync p50 / p99', (n) => `${fmtUs(v(n, 'getSyncP50'))} / ${fmtUs(v(n, 'getSyncP99'))}`, '', ''],
    ['get (async) ops/s', (n) => fmtNum(v(n, 'getAsyncOps')), '', ''],
    ['get (async) p50 / p99', (n) => `${fmtUs(v(n, 'getAsyncP50'))} / ${fmtUs(v(n, 'getAsyncP99'))}`, '', ''],
    ['disk after store / logical', (n) => fx(v(n, 'diskRatio')), '', '<= 1.1x'],
    ['disk after close / logical', (n) => fx(v(n, 'diskRatioClosed')), '', ''],
    ['iterate all (s)', (n) => fmtNum(v(n, 'iterateS'), 3), ratio('iterateS', true), '< 1 s / 100K'],
    ['open (ms)', (n) => fmtNum(v(n, 'openMs'), 1), '', '1M < 3 s'],
    ['open after kill -9 (ms)', (n) => fmtNum(v(n, 'recoverMs'), 1), '', '1M < 3 s'],
    ['recall top-10 exact (ms)', (n) => fmtNum(v(n, 'recallMs'), 1), '', ''],
    ['delete half: rec/s', (n) => fmtNum(v(n, 'deleteRecPerSec')), ratio('deleteRecPerSec'), ''],
    [
      'compaction, half dead (s)',
      (n) => fmtNum(v(n, 'compactS'), 3),
      ratio('compactS', true),
      '>= 10x fastest peer',
    ],
    ['  live content / s, % of seq write bw', (n) => pct(v(n, 'compactFraction')), '', '>= 50%'],
    [
      '  reads during: p50 / p99 / max (sync)',
      (n) =>
        `${fmtUs(v(n, 'compactReadP50'))} / ${fmtUs(v(n, 'compactReadP99'))} / ${fmtUs(v(n, 'compactReadMax'))}`,
      '',
      'p99 <= 100 us, max <= 5 ms',
    ],
    [
      '  same loop, 500 ms before: p50 / p99 / max (sync)',
      (n) => `${fmtUs(v(n, 'warmReadP50'))} / ${fmtUs(v(n, 'warmReadP99'))} / ${fmtUs(v(n, 'warmReadMax'))}`,
      '',
      '',
    ],
    [
      '  reads during: p99 / max (async get)',
      (n) => `${fmtUs(v(n, 'compactAsyncP99'))} / ${fmtUs(v(n, 'compactAsyncMax'))}`,
      '',
      '',
    ],
    [
      '  worst event-loop stall (ms), median [worst]',
      (n) =>
        Number.isFinite(v(n, 'eldMaxMs'))
          ? `${fmtNum(v(n, 'eldMaxMs'), 1)} [${fmtNum(v(n, 'eldMaxWorstMs'), 1)}]`
          : '-',
      '',
      '<= 10 ms',
    ],
    ['  same, 500 ms before compaction (ms)', (n) => fmtNum(v(n, 'eldWarmMaxMs'), 1), '', ''],
    ['  longest GC pause during compaction (ms)', (n) => fmtNum(v(n, 'gcMaxMs'), 1), '', ''],
    ['  bytes written / live content bytes', (n) => fx(v(n, 'compactWriteAmp')), '', ''],
    ['  extra RSS', (n) => fmtBytes(v(n, 'extraRss')), '', '<= 80 MiB'],
    ['  reopen pause (ms)', (n) => fmtNum(v(n, 'pauseMs'), 1), '', ''],
    ['  disk after / live logical', (n) => fx(v(n, 'diskAfterCompactRatio')), '', ''],
  ];
  const header = ['metric', ...names, 'ws-sync / lmdb', 'goal'];
  const body = rows.map(([label, f, r, g]) => [label, ...names.map(f), r, g]);
  const text = table([header, ...body]);
  const md = mdTable([header, ...body]);

  // Goals (brief §7), as ratios in this run.
  const goals: string[] = [];
  const check = (ok: boolean, s: string): void => {
    goals.push(`${Number.isNaN(ok as unknown as number) ? '?' : ok ? 'PASS' : 'FAIL'}  ${s}`);
  };
  if (S[ws] && S.lmdb) {
    const pr = v(ws, 'putRecPerSec') / v('lmdb', 'putRecPerSec');
    if (Number.isFinite(pr)) check(pr >= 1.5, `put >= 1.5x lmdb-js: ${pr.toFixed(2)}x`);
    const gr = v(ws, 'getSyncOps') / v('lmdb', 'getSyncOps');
    if (Number.isFinite(gr)) check(gr >= 1.0, `get (getSync) >= 1.0x lmdb-js: ${gr.toFixed(2)}x`);
  }
  if (S[ws]) {
    const d = v(ws, 'diskRatio');
    if (Number.isFinite(d)) check(d <= 1.1, `disk <= 1.1x logical: ${d.toFixed(2)}x`);
    const peerTimes = peers.map((p) => v(p, 'compactS')).filter(Number.isFinite);
    const c = v(ws, 'compactS');
    if (peerTimes.length && Number.isFinite(c)) {
      const fastest = Math.min(...peerTimes);
      check(fastest / c >= 10, `compaction >= 10x faster than fastest peer: ${(fastest / c).toFixed(1)}x`);
    }
    const f = v(ws, 'compactFraction');
    if (Number.isFinite(f))
      check(
        f >= 0.5,
        `compaction >= 50% of seq write bandwidth: ${(100 * f).toFixed(1)}% of ${fmtBytes(bw.bytesPerSec)}/s`,
      );
    const p99 = v(ws, 'compactReadP99');
    const mx = v(ws, 'compactReadMaxWorst');
    if (Number.isFinite(p99)) check(p99 <= 100, `reads during compaction p99 <= 100 us: ${fmtUs(p99)}`);
    if (Number.isFinite(mx))
      check(mx <= 5000, `reads during compaction max <= 5 ms (worst rep): ${fmtUs(mx)}`);
    const e = v(ws, 'eldMaxWorstMs');
    if (Number.isFinite(e)) check(e <= 10, `worst event-loop stall <= 10 ms (worst rep): ${e.toFixed(1)} ms`);
    const x = v(ws, 'extraRss');
    if (Number.isFinite(x))
      check(x <= 80 * 2 ** 20, `extra RSS during compaction <= 64+16 MiB: ${fmtBytes(x)}`);
    const it = v(ws, 'iterateS');
    if (Number.isFinite(it))
      check(
        it * (100_000 / ds.n) < 1,
        `iterate 100K < 1 s: ${((it * 100_000) / ds.n).toFixed(3)} s per 100K`,
      );
    const o = v(ws, 'openMs');
    if (Number.isFinite(o))
      check(
        (o * 1_000_000) / ds.n < 3000,
        `open of 1M < 3 s (linear extrapolation of ${ds.n}): ${((o * 1_000_000) / ds.n / 1000).toFixed(2)} s`,
      );
    const ro = v(ws, 'recoverMs');
    if (Number.isFinite(ro))
      check(
        (ro * 1_000_000) / ds.n < 3000,
        `recovery (open after kill -9) of 1M < 3 s (linear extrapolation): ${((ro * 1_000_000) / ds.n / 1000).toFixed(2)} s`,
      );
    const rc = v(ws, 'recallMs');
    if (Number.isFinite(rc))
      goals.push(
        `info  recall exact top-10 over ${ds.n}: ${rc.toFixed(1)} ms; plain JS loop ${v(ws, 'recallJsMs').toFixed(1)} ms ` +
          `(usearch SIMD not in this run; brief quotes 28 ms for 100K)`,
      );
  }
  goals.push(
    `info  seq write ${fmtBytes(bw.bytesPerSec)}/s (best of start/end, ${BW_MIB} MiB + fdatasync), ` +
      `fdatasync 4 KiB p50 ${fmtUs(fsyncLat.p50us)}`,
  );
  return { text, md, goals, summary: S };
}

// ---------------------------------------------------------------- main

/** The engine's commit, and whether src/ had uncommitted changes when dist/ was built. */
function gitInfo(): { commit: string; dirtySrc: boolean } | undefined {
  try {
    const root = fileURLToPath(new URL('..', import.meta.url));
    const commit = execFileSync('git', ['-C', root, 'rev-parse', '--short', 'HEAD'], {
      encoding: 'utf8',
    }).trim();
    const dirty = execFileSync('git', ['-C', root, 'status', '--porcelain', 'src'], {
      encoding: 'utf8',
    }).trim();
    return { commit, dirtySrc: dirty.length > 0 };
  } catch {
    return undefined;
  }
}

async function main(): Promise<void> {
  fs.mkdirSync(ROOT, { recursive: true });
  const engines: EngineName[] = [];
  if (WS.length) {
    try {
      await loadWarmstore();
      for (const w of WS) engines.push(w === 'relaxed' ? 'warmstore-relaxed' : 'warmstore-sync');
    } catch (e) {
      log(`warmstore not available (${String(e)}); run \`npm run build\` at the root. Peers only.`);
    }
  }
  for (const p of PEERS) engines.push(p as EngineName);

  const started = new Date();
  log(
    `warmstore bench: ${COUNT} records x ${DIM} dims, batches of ${BATCH}, ${REPS} reps; engines ${engines.join(', ')}; ` +
      `phases ${[...ONLY].join(',')}`,
  );
  const git = gitInfo();
  if (git) log(`engine: commit ${git.commit}${git.dirtySrc ? ' + uncommitted changes in src/' : ''}`);
  log(
    `node ${process.version}, ${os.cpus().length} x ${os.cpus()[0]?.model}, ${fmtBytes(os.totalmem())} RAM, dir ${ROOT}`,
  );
  log(
    `load average at start: ${os.loadavg().map((x) => x.toFixed(2))} (other work on the machine adds noise)`,
  );

  const tg = now();
  const ds = new Dataset(COUNT, DIM);
  log(
    `dataset: ${fmtBytes(ds.logicalBytes)} logical (${(ds.logicalBytes / ds.n).toFixed(0)} B/record), ` +
      `content ${fmtBytes(ds.contentBytes)}, generated in ${((now() - tg) / 1000).toFixed(1)} s`,
  );

  // Sequential write bandwidth: measured now and again at the end; the higher figure is used
  // (this VM's disk varies several-fold from one minute to the next).
  const bwRuns: number[] = [];
  const bw = { bytesPerSec: NaN };
  let fsyncLat = { p50us: NaN, p99us: NaN };
  const measureBw = (when: string): void => {
    if (BW_MIB <= 0) return;
    measureWriteBandwidth(ROOT, 64 * 2 ** 20); // warm-up
    const m = measureWriteBandwidth(ROOT, BW_MIB * 2 ** 20);
    bwRuns.push(m.bytesPerSec);
    bw.bytesPerSec = Math.max(...bwRuns);
    log(`sequential write (${when}): ${fmtBytes(m.bytesPerSec)}/s (${BW_MIB} MiB, fdatasync at end)`);
  };
  measureBw('start');
  if (BW_MIB > 0) {
    fsyncLat = measureFdatasync(ROOT);
    log(`fdatasync of a 4 KiB overwrite: p50 ${fmtUs(fsyncLat.p50us)} p99 ${fmtUs(fsyncLat.p99us)}`);
  }

  for (let rep = 0; rep < REPS; rep++) {
    log(`-- repetition ${rep + 1}/${REPS}`);
    for (const name of engines) await benchEngine(name, ds, rep, bw.bytesPerSec);
  }

  measureBw('end');
  const { text, md, goals, summary } = summarize(ds, bw, fsyncLat);
  log('');
  log(`Results (median of ${REPS}; ${COUNT} records of ~${(ds.logicalBytes / ds.n / 1024).toFixed(1)} KiB):`);
  log(text);
  log('');
  log('Goals of brief §7 (ratios in this run):');
  for (const g of goals) log('  ' + g);
  log(`load average at end: ${os.loadavg().map((x) => x.toFixed(2))}`);

  const outDir = new URL('./results/', import.meta.url);
  fs.mkdirSync(outDir, { recursive: true });
  const file = new URL(`${started.toISOString().replace(/[:.]/g, '-')}.json`, outDir);
  fs.writeFileSync(
    file,
    JSON.stringify(
      {
        startedAt: started.toISOString(),
        finishedAt: new Date().toISOString(),
        argv: process.argv.slice(2),
        config: {
          count: COUNT,
          dim: DIM,
          batch: BATCH,
          reps: REPS,
          phases: [...ONLY],
          engines,
          readers: READERS,
        },
        engine: git,
        machine: {
          node: process.version,
          cpus: os.cpus().length,
          cpu: os.cpus()[0]?.model,
          totalmem: os.totalmem(),
          loadavgEnd: os.loadavg(),
        },
        dataset: { n: ds.n, logicalBytes: ds.logicalBytes, contentBytes: ds.contentBytes },
        bandwidth: { used: bw.bytesPerSec, runs: bwRuns },
        fdatasync: fsyncLat,
        summary,
        markdownTable: md,
        goals,
        raw: results,
      },
      null,
      2,
    ),
  );
  log(`results written to ${file.pathname}`);
  if (!KEEP) fs.rmSync(ROOT, { recursive: true, force: true });
}

(process.argv.includes('--crash-child') ? crashChild() : main()).catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
