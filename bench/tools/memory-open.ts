/**
 * Memory and open time of an open store, warmstore against lmdb-js and better-sqlite3 holding the
 * same N records x 768 (content 50..2000 B). Each engine's store is built in a child process of its
 * own (warmstore: 'sync' durability, its recall index built before the clean close), then, each in
 * a fresh child:
 * - three opens after the clean close: open time, then RssAnon and RssFile (/proc/self/status)
 *   before the open, right after it, after 10,000 gets of random records (each checked against
 *   what was written) and, warmstore only, after 20 recalls (k = 10, the default recall path);
 * - three crashes: a writer child writes a burst of new records (batches of 500, each durable
 *   before the next) and is killed with SIGKILL once half of them are acknowledged; a fresh child
 *   then times the open (warmstore: `WarmStore.open`, which replays the log) and checks that every
 *   acknowledged record is there.
 * The table shows the medians of the three. The files are just written, so the opens read them
 * from the page cache. The measuring children collect garbage before each reading and keep V8's
 * young generation small, so that the figures are what each engine holds, not V8's slack. Needs the root's `npm run build` (warmstore runs from dist/).
 *   node --import tsx tools/memory-open.ts [N=100000] [--burst 20000] [--dir DIR] [--keep]
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { WarmStore, WarmStoreOptions } from '../../src/index.js';
import type { Engine } from '../engines/engine.ts';
import { LmdbEngine } from '../engines/lmdb.ts';
import { loadPeer } from '../engines/peers.ts';
import { SqliteEngine } from '../engines/sqlite.ts';
import { loadWarmstore } from '../engines/warmstore.ts';
import { type BenchMemory, checkRecord, randomIndices, rng } from '../lib/data.ts';
import { diskUsage, median } from '../lib/measure.ts';
import { flag, num, opt } from '../lib/options.ts';

const DIM = 768;
const GETS = 10_000;
const RECALLS = 20;
const BUILD_BATCH = 1000;
const BURST_BATCH = 500;
const RUNS = 3;
const ENGINES = ['warmstore', 'lmdb', 'sqlite'] as const;
type EngineName = (typeof ENGINES)[number];

// ------------------------------------------------------------------ records

/** Word-like ASCII text the contents are cut from, the same in every process. */
const POOL = ((): string => {
  const r = rng(0x7e47);
  const words = Array.from({ length: 4000 }, () => {
    let w = '';
    for (let j = 2 + Math.floor(r() * 9); j > 0; j--) w += String.fromCharCode(97 + Math.floor(r() * 26));
    return w;
  });
  const parts: string[] = [];
  for (let size = 0; size < 1 << 20;) {
    // Zipf-ish: a few words far more frequent, like natural text.
    const w = words[Math.floor(Math.pow(r(), 2.5) * words.length)]!;
    parts.push(w, ' ');
    size += w.length + 1;
  }
  return parts.join('');
})();

/**
 * Record i, computed from i alone: no process holds the data set (3 GB of embeddings at 1M), and a
 * reader checks what it gets against the record recomputed.
 */
function recordOf(i: number): BenchMemory {
  const r = rng(0x9e3779b9 ^ Math.imul(i + 1, 0x85ebca6b));
  const embedding = new Float32Array(DIM);
  for (let d = 0; d < DIM; d++) embedding[d] = r() * 2 - 1;
  const len = 50 + Math.floor(r() * 1951);
  const off = Math.floor(r() * (POOL.length - len));
  const createdAt = Date.UTC(2026, 0, 1) - Math.floor(r() * 86_400_000 * 365);
  return {
    id: `mem-${i.toString(36).padStart(6, '0')}`,
    space: 'default',
    embedding,
    content: POOL.slice(off, off + len),
    confidence: Math.round(r() * 1000) / 1000,
    activation: r() * 10 - 5,
    decayRate: r() * 0.1,
    createdAt,
    lastAccess: createdAt + Math.floor(r() * 86_400_000),
    accessCount: Math.floor(r() * 100),
  };
}

// ------------------------------------------------------------------ one engine, in a child

const WARMSTORE_OPTIONS: WarmStoreOptions = {
  dimension: DIM,
  durability: 'sync',
  maintenanceIntervalMs: false,
  maintenance: { startupCompaction: 'off' },
};

/** The calls this tool makes, over warmstore itself (for its index) or a bench adapter. */
interface Handle {
  put(recs: BenchMemory[]): Promise<void>;
  get(id: string): Promise<BenchMemory | undefined>;
  recall?(q: Float32Array): Promise<string[]>;
  /** Resolves once background work the store does after a bulk load is done (warmstore: index). */
  settle(): Promise<string>;
  close(): Promise<void>;
}

/** Loads the engine's module, so that its share of memory is in the reading taken before open. */
async function preload(name: EngineName): Promise<void> {
  if (name === 'warmstore') await loadWarmstore();
  else loadPeer(name === 'lmdb' ? 'lmdb' : 'better-sqlite3');
}

async function openEngine(name: EngineName, dir: string): Promise<Handle> {
  if (name === 'warmstore') {
    const { WarmStore } = await loadWarmstore();
    const store: WarmStore = await WarmStore.open(dir, WARMSTORE_OPTIONS);
    return {
      put: async (recs) => {
        await Promise.all(recs.map((r) => store.put(r)));
      },
      get: (id) => store.get(id),
      recall: async (q) => (await store.recall(q, { k: 10 })).map((h) => h.memory.id),
      settle: async () => {
        const t0 = performance.now();
        for (;;) {
          const s = store.indexStatus;
          if (s.state === 'off' || s.state === 'failed' || (s.state === 'ready' && s.tail === 0)) {
            return `index ${s.state} after ${((performance.now() - t0) / 1000).toFixed(1)} s`;
          }
          await new Promise((resolve) => setTimeout(resolve, 200));
        }
      },
      close: () => store.close(),
    };
  }
  fs.mkdirSync(dir, { recursive: true });
  const engine: Engine = name === 'lmdb' ? new LmdbEngine(dir, DIM) : new SqliteEngine(dir, DIM);
  await engine.open();
  return {
    put: (recs) => engine.putBatch(recs),
    get: async (id) => engine.getSync(id),
    settle: async () => {
      await engine.settle?.();
      return 'settled';
    },
    close: () => engine.close(),
  };
}

/** RssAnon and RssFile, after a full collection (the child runs with --expose-gc). */
function memory(): { anon: number; file: number } {
  // Garbage is not what the store keeps: collected first, V8 gives its free pages back.
  (globalThis as { gc?: () => void }).gc?.();
  const s = fs.readFileSync('/proc/self/status', 'utf8');
  const kb = (k: string): number => Number(new RegExp(`${k}:\\s+(\\d+)`).exec(s)?.[1] ?? NaN) * 1024;
  return { anon: kb('RssAnon'), file: kb('RssFile') };
}

/** Synchronous, so that a line printed before a SIGKILL is in the pipe. */
function say(line: string): void {
  fs.writeSync(1, `${line}\n`);
}

async function putRange(h: Handle, from: number, to: number, batch: number, acked?: (n: number) => void) {
  for (let i = from; i < to; i += batch) {
    const recs: BenchMemory[] = [];
    for (let j = i; j < Math.min(to, i + batch); j++) recs.push(recordOf(j));
    await h.put(recs);
    acked?.(Math.min(to, i + batch) - from);
  }
}

/** `build`: records 0..n-1, then a clean close. */
async function build(name: EngineName, dir: string, n: number): Promise<void> {
  const t0 = performance.now();
  const h = await openEngine(name, dir);
  await putRange(h, 0, n, BUILD_BATCH);
  const written = performance.now() - t0;
  const settled = await h.settle();
  await h.close();
  say(JSON.stringify({ writtenMs: written, settled }));
}

/** `burst`: records from..from+count-1, saying how many are durable after each batch. */
async function burst(name: EngineName, dir: string, from: number, count: number): Promise<void> {
  const h = await openEngine(name, dir);
  await putRange(h, from, from + count, BURST_BATCH, (acked) => say(`acked ${acked}`));
  say('done');
  // Stays open until the parent's SIGKILL: a clean close would checkpoint.
  setInterval(() => undefined, 1000);
}

/** `open`: times an open, then reads; after a crash, checks the acknowledged burst records. */
async function measure(
  name: EngineName,
  dir: string,
  n: number,
  seed: number,
  ackedFrom: number,
  acked: number,
) {
  await preload(name);
  const before = memory();
  const t0 = performance.now();
  const h = await openEngine(name, dir);
  const openMs = performance.now() - t0;
  const opened = memory();
  let bad = 0;
  for (const i of randomIndices(n, GETS, seed))
    if (!checkRecord(await h.get(recordOf(i).id), recordOf(i))) bad++;
  const afterGets = memory();
  let afterRecalls: { anon: number; file: number } | undefined;
  if (h.recall) {
    for (const i of randomIndices(n, RECALLS, seed + 1)) {
      const ids = await h.recall(recordOf(i).embedding);
      if (ids.length !== 10) bad++;
    }
    afterRecalls = memory();
  }
  let lost = 0;
  for (let i = ackedFrom; i < ackedFrom + acked; i++)
    if (!checkRecord(await h.get(recordOf(i).id), recordOf(i))) lost++;
  await h.close();
  say(JSON.stringify({ openMs, before, opened, afterGets, afterRecalls, bad, lost }));
}

// ------------------------------------------------------------------ the parent

interface Measured {
  openMs: number;
  before: { anon: number; file: number };
  opened: { anon: number; file: number };
  afterGets: { anon: number; file: number };
  afterRecalls?: { anon: number; file: number };
  bad: number;
  lost: number;
}

const SELF = fileURLToPath(import.meta.url);

/**
 * Runs this file in a child with `args`; resolves with its stdout once it exits. `onLine` sees each
 * line as it arrives and may return true to have the child killed with SIGKILL.
 */
function child(
  args: string[],
  onLine?: (line: string) => boolean,
): Promise<{ out: string[]; killed: boolean }> {
  // The young generation grows to its ceiling (16 MiB a semi-space) under the read loops whatever
  // the engine holds; kept small in the measuring children, the figures are the engines' own.
  const flags = args[0] === 'open' ? ['--expose-gc', '--max-semi-space-size=1'] : [];
  const proc = spawn(process.execPath, [...flags, '--import', 'tsx', SELF, ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const out: string[] = [];
  let partial = '';
  let killed = false;
  proc.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    const lines = (partial + chunk).split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) {
      out.push(line);
      if (!killed && onLine?.(line) === true) {
        killed = true;
        proc.kill('SIGKILL');
      }
    }
  });
  return new Promise((resolve, reject) => {
    proc.on('error', reject);
    proc.on('close', (code, signal) => {
      if (killed ? signal === 'SIGKILL' : code === 0) resolve({ out, killed });
      else reject(new Error(`child ${args.join(' ')} ended with ${code ?? signal}`));
    });
  });
}

function lastJson<T>(out: string[]): T {
  return JSON.parse(out.filter((l) => l.startsWith('{')).pop() ?? 'null') as T;
}

async function runEngine(name: EngineName, dir: string, n: number, burstSize: number) {
  const built = lastJson<{ writtenMs: number; settled: string }>(
    (await child(['build', name, dir, String(n)])).out,
  );
  const bytes = diskUsage(dir).apparent;
  const clean: Measured[] = [];
  for (let run = 0; run < RUNS; run++) {
    clean.push(
      lastJson<Measured>((await child(['open', name, dir, String(n), String(run + 1), '0', '0'])).out),
    );
  }
  const crashed: Measured[] = [];
  for (let run = 0; run < RUNS; run++) {
    const from = n + run * burstSize;
    let acked = 0;
    const w = await child(['burst', name, dir, String(from), String(burstSize)], (line) => {
      if (line.startsWith('acked ')) acked = Number(line.slice(6));
      return acked >= burstSize / 2;
    });
    if (!w.killed) throw new Error(`${name}: the burst writer ended before it was killed`);
    crashed.push(
      lastJson<Measured>(
        (await child(['open', name, dir, String(n), String(run + 11), String(from), String(acked)])).out,
      ),
    );
  }
  for (const m of [...clean, ...crashed]) {
    if (m.bad > 0) throw new Error(`${name}: ${m.bad} reads did not return what was written`);
    if (m.lost > 0) throw new Error(`${name}: ${m.lost} acknowledged records lost by the crash`);
  }
  return { name, built, bytes, clean, crashed };
}

const mib = (b: number): string => (Number.isFinite(b) ? (b / 2 ** 20).toFixed(0) : '-');

function table(n: number, rows: Awaited<ReturnType<typeof runEngine>>[]): string {
  const head = [
    'engine',
    'files MiB',
    'open ms',
    'anon before',
    'anon open',
    'file open',
    'anon +10K gets',
    'file +10K gets',
    'anon +20 recalls',
    'file +20 recalls',
    'store anon B/memory',
    'open ms after kill -9',
  ];
  const lines = [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`];
  for (const r of rows) {
    const m = (f: (x: Measured) => number | undefined): number => median(r.clean.map((x) => f(x) ?? NaN));
    const last = (x: Measured): { anon: number; file: number } => x.afterRecalls ?? x.afterGets;
    const storeAnon = m((x) => last(x).anon - x.before.anon);
    lines.push(
      `| ${[
        r.name,
        mib(r.bytes),
        m((x) => x.openMs).toFixed(0),
        mib(m((x) => x.before.anon)),
        mib(m((x) => x.opened.anon)),
        mib(m((x) => x.opened.file)),
        mib(m((x) => x.afterGets.anon)),
        mib(m((x) => x.afterGets.file)),
        mib(m((x) => x.afterRecalls?.anon)),
        mib(m((x) => x.afterRecalls?.file)),
        (storeAnon / n).toFixed(0),
        median(r.crashed.map((x) => x.openMs)).toFixed(0),
      ].join(' | ')} |`,
    );
  }
  return lines.join('\n');
}

async function main(): Promise<void> {
  const [mode, name, dir, a, b, c, d] = process.argv.slice(2);
  const engine = name as EngineName;
  if (mode === 'build') return build(engine, dir!, Number(a));
  if (mode === 'burst') return burst(engine, dir!, Number(a), Number(b));
  if (mode === 'open') return measure(engine, dir!, Number(a), Number(b), Number(c), Number(d));

  const n = mode === undefined || mode.startsWith('--') ? 100_000 : Number(mode);
  if (!Number.isInteger(n) || n < 1) throw new Error(`N must be a positive integer, got ${mode}`);
  const burstSize = num('burst', Math.min(n, 20_000));
  const root =
    opt('dir', '') || fs.mkdtempSync(path.join(process.env.BENCH_DIR ?? os.tmpdir(), 'ws-memory-open-'));
  const keep = flag('keep');
  console.log(
    `memory-open: N=${n} x ${DIM}, bursts of ${burstSize} killed half-way, medians of ${RUNS}; ` +
      `${os.cpus().length} cores, node ${process.version}, ${root}`,
  );
  try {
    const rows = [];
    for (const e of ENGINES) {
      const r = await runEngine(e, path.join(root, e), n, burstSize);
      console.log(`${e}: built in ${(r.built.writtenMs / 1000).toFixed(1)} s (${r.built.settled})`);
      if (!keep) fs.rmSync(path.join(root, e), { recursive: true, force: true });
      rows.push(r);
    }
    console.log(`\n${table(n, rows)}\n`);
    console.log(
      'RssAnon/RssFile in MiB. anon before: the process with the engine loaded, before open. ' +
        'store anon B/memory: (RssAnon after the reads - before open) / N. ' +
        "warmstore's files include its RESERVE (16 MiB of zeros kept against a full disk).",
    );
  } finally {
    if (!keep) fs.rmSync(root, { recursive: true, force: true });
  }
}

await main();
