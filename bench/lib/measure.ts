import {
  createHistogram,
  monitorEventLoopDelay,
  performance,
  type RecordableHistogram,
} from 'node:perf_hooks';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import { Worker } from 'node:worker_threads';
import { setImmediate as immediate } from 'node:timers/promises';
import { Session as InspectorSession } from 'node:inspector/promises';

export const now = (): number => performance.now();

export function median(xs: number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Latency histogram in nanoseconds (HDR, 3 significant digits). */
export class Lat {
  readonly h: RecordableHistogram = createHistogram({ lowest: 1, highest: 3_600_000_000_000, figures: 3 });
  /** Records a duration given in milliseconds (performance.now() deltas). */
  ms(d: number): void {
    this.h.record(Math.max(1, Math.round(d * 1e6)));
  }
  get count(): number {
    return this.h.count;
  }
  /** Summary in microseconds. */
  summary(): LatSummary {
    if (this.h.count === 0) return { count: 0, p50us: NaN, p99us: NaN, p999us: NaN, maxUs: NaN, meanUs: NaN };
    return {
      count: this.h.count,
      p50us: this.h.percentile(50) / 1e3,
      p99us: this.h.percentile(99) / 1e3,
      p999us: this.h.percentile(99.9) / 1e3,
      maxUs: this.h.max / 1e3,
      meanUs: this.h.mean / 1e3,
    };
  }
}

export interface LatSummary {
  count: number;
  p50us: number;
  p99us: number;
  p999us: number;
  maxUs: number;
  meanUs: number;
}

/** Disk usage of a file or directory tree: allocated bytes (st_blocks) and apparent size. */
export function diskUsage(p: string): { allocated: number; apparent: number; files: number } {
  let allocated = 0;
  let apparent = 0;
  let files = 0;
  const walk = (q: string): void => {
    let st: fs.Stats;
    try {
      st = fs.lstatSync(q);
    } catch {
      return;
    }
    if (st.isDirectory()) {
      for (const e of fs.readdirSync(q)) walk(path.join(q, e));
    } else {
      files++;
      allocated += st.blocks * 512;
      apparent += st.size;
    }
  };
  walk(p);
  return { allocated, apparent, files };
}

/** Sequential write bandwidth: `bytes` in 8 MiB writes, fdatasync at the end, included in the time. */
export function measureWriteBandwidth(
  dir: string,
  bytes = 512 * 1024 * 1024,
): { bytesPerSec: number; seconds: number } {
  const file = path.join(dir, `bw-${process.pid}.tmp`);
  const chunk = Buffer.allocUnsafe(8 << 20);
  for (let i = 0; i < chunk.length; i += 4) chunk.writeUInt32LE((i * 2654435761) >>> 0, i);
  const fd = fs.openSync(file, 'w');
  try {
    const t0 = now();
    let off = 0;
    while (off < bytes) {
      off += fs.writeSync(fd, chunk, 0, Math.min(chunk.length, bytes - off), off);
    }
    fs.fdatasyncSync(fd);
    const seconds = (now() - t0) / 1000;
    return { bytesPerSec: bytes / seconds, seconds };
  } finally {
    fs.closeSync(fd);
    fs.rmSync(file, { force: true });
  }
}

/** Latency of a 4 KiB overwrite + fdatasync, median and p99 over `n` tries. */
export function measureFdatasync(dir: string, n = 200): { p50us: number; p99us: number } {
  const file = path.join(dir, `fsync-${process.pid}.tmp`);
  const buf = Buffer.alloc(4096, 7);
  const fd = fs.openSync(file, 'w');
  const lat = new Lat();
  try {
    fs.writeSync(fd, buf, 0, buf.length, 0);
    fs.fdatasyncSync(fd);
    for (let i = 0; i < n; i++) {
      const t0 = now();
      fs.writeSync(fd, buf, 0, buf.length, (i % 16) * 4096);
      fs.fdatasyncSync(fd);
      lat.ms(now() - t0);
    }
  } finally {
    fs.closeSync(fd);
    fs.rmSync(file, { force: true });
  }
  const s = lat.summary();
  return { p50us: s.p50us, p99us: s.p99us };
}

/**
 * Samples RSS every `everyMs` in a worker thread (RSS is per process), so that sampling neither
 * costs the main thread time nor stops when the main thread stalls.
 */
export class RssSampler {
  private worker: Worker | undefined;
  /** [0] peak since reset, [1] last sample, [2] samples */
  private readonly shared = new Float64Array(new SharedArrayBuffer(24));
  async start(everyMs = 5): Promise<void> {
    this.shared[0] = 0;
    this.worker = new Worker(
      `const { workerData, parentPort } = require('node:worker_threads');
       const a = new Float64Array(workerData.buf);
       const tick = () => { const r = process.memoryUsage.rss(); a[1] = r; if (r > a[0]) a[0] = r; a[2]++; };
       tick(); setInterval(tick, workerData.everyMs); parentPort.postMessage('up');`,
      { eval: true, workerData: { buf: this.shared.buffer, everyMs } },
    );
    await new Promise((r) => this.worker!.once('message', r));
  }
  get peak(): number {
    return Math.max(this.shared[0]!, this.shared[1]!);
  }
  get samples(): number {
    return this.shared[2]!;
  }
  resetPeak(): void {
    const r = process.memoryUsage.rss();
    this.shared[0] = r;
  }
  sample(): number {
    const r = process.memoryUsage.rss();
    if (r > this.shared[0]!) this.shared[0] = r;
    return r;
  }
  async stop(): Promise<void> {
    await this.worker?.terminate();
    this.worker = undefined;
  }
}

/** Bytes this process wrote (write syscalls, `wchar`) and caused to be written to storage. */
export function procIo(): { wchar: number; writeBytes: number; rchar: number } {
  try {
    const t = fs.readFileSync('/proc/self/io', 'utf8');
    const get = (k: string): number => Number(new RegExp(`^${k}: (\\d+)`, 'm').exec(t)?.[1] ?? NaN);
    return { wchar: get('wchar'), writeBytes: get('write_bytes'), rchar: get('rchar') };
  } catch {
    return { wchar: NaN, writeBytes: NaN, rchar: NaN };
  }
}

/** Event-loop delay monitor; max in ms. */
export function eldMonitor(): { stop(): { maxMs: number; p99Ms: number; meanMs: number } } {
  const h = monitorEventLoopDelay({ resolution: 1 });
  h.enable();
  return {
    stop() {
      h.disable();
      return { maxMs: h.max / 1e6, p99Ms: h.percentile(99) / 1e6, meanMs: h.mean / 1e6 };
    },
  };
}

let gcFn: (() => void) | undefined;
/** Full GC, without needing --expose-gc on the command line. */
export function gc(): void {
  if (!gcFn) {
    v8.setFlagsFromString('--expose-gc');
    gcFn = vm.runInNewContext('gc') as () => void;
  }
  gcFn();
}

export const yieldLoop = (): Promise<void> => immediate();

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export function fmtBytes(b: number): string {
  if (!Number.isFinite(b)) return '-';
  const u = ['B', 'KiB', 'MiB', 'GiB'];
  let i = 0;
  while (Math.abs(b) >= 1024 && i < u.length - 1) {
    b /= 1024;
    i++;
  }
  return `${b.toFixed(b < 10 && i > 0 ? 2 : 1)} ${u[i]}`;
}

export function fmtNum(x: number, digits = 0): string {
  if (x === undefined || x === null || !Number.isFinite(x)) return '-';
  if (Math.abs(x) >= 1e4) return Math.round(x).toLocaleString('en-US');
  return x.toFixed(digits);
}

export function fmtUs(us: number): string {
  if (!Number.isFinite(us)) return '-';
  if (us >= 1e6) return `${(us / 1e6).toFixed(2)} s`;
  if (us >= 1e3) return `${(us / 1e3).toFixed(us >= 1e5 ? 0 : 2)} ms`;
  return `${us.toFixed(us < 10 ? 2 : 1)} us`;
}

/** Renders rows as an aligned text table (first row = header). */
export function table(rows: string[][]): string {
  const widths: number[] = [];
  for (const r of rows) r.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, c.length)));
  const line = (r: string[]): string =>
    r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  const sep = widths.map((w) => '-'.repeat(w)).join('  ');
  return [line(rows[0]!), sep, ...rows.slice(1).map(line)].join('\n');
}

/** Markdown table (first row = header). */
export function mdTable(rows: string[][]): string {
  const [h, ...rest] = rows;
  return [
    `| ${h!.join(' | ')} |`,
    `|${h!.map((_, i) => (i === 0 ? '---' : '---:')).join('|')}|`,
    ...rest.map((r) => `| ${r.join(' | ')} |`),
  ].join('\n');
}

/**
 * Runs `fn`, under a V8 CPU profile written to `out` when `out` is given (sampling every
 * `intervalUs`). Used by the tools in bench/tools to profile one phase of a run.
 */
export async function withCpuProfile<T>(
  out: string | undefined,
  fn: () => Promise<T>,
  intervalUs = 500,
): Promise<T> {
  if (!out) return fn();
  const session = new InspectorSession();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.setSamplingInterval', { interval: intervalUs });
  await session.post('Profiler.start');
  try {
    return await fn();
  } finally {
    const { profile } = await session.post('Profiler.stop');
    fs.writeFileSync(out, JSON.stringify(profile));
    session.disconnect();
  }
}
