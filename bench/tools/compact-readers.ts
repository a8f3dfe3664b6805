/**
 * Compaction under many concurrent readers: fills a fresh store with N memories (768 dimensions,
 * 50-2050 bytes of content, recall index off), deletes every other one, and compacts it twice over
 * fresh fills: once idle, once while R readers each read random live memories with `get`, yielding
 * to the event loop (setImmediate) after every 20 reads. Prints both compactions' times, their
 * ratio (the goal: within 3x), the event loop's worst delay during each (the goal: under 50 ms),
 * and the readers' reads per second and worst read. DIST picks the build (default ../dist).
 *   node --import tsx tools/compact-readers.ts [N=20000] [R=100] [DIST]
 */
import * as fs from 'node:fs';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { loadWarmstore } from '../engines/warmstore.ts';
import { halfDeletedScratch } from '../lib/fill.ts';
import { busyReaders } from '../lib/readers.ts';

const n = Number(process.argv[2] ?? 20_000);
const readers = Number(process.argv[3] ?? 100);
const dist = process.argv[4];
const dim = 768;
const { WarmStore } = await loadWarmstore(dist);

interface Run {
  seconds: number;
  loopMaxMs: number;
  reads: number;
  readMaxMs: number;
}

async function run(withReaders: number): Promise<Run> {
  const { dir, store, live } = await halfDeletedScratch(
    (d, o) => WarmStore.open(d, o),
    'compact-readers-',
    n,
    dim,
  );
  try {
    const readers = busyReaders(store, live, withReaders);
    await new Promise((res) => setTimeout(res, 200));
    readers.reset();
    const eld = monitorEventLoopDelay({ resolution: 1 });
    eld.enable();
    const t0 = performance.now();
    await store.compact({ force: true });
    const seconds = (performance.now() - t0) / 1000;
    eld.disable();
    await readers.stop();
    return {
      seconds,
      loopMaxMs: eld.max / 1e6,
      reads: readers.reads / seconds,
      readMaxMs: readers.readMaxMs,
    };
  } finally {
    await store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const idle = await run(0);
const loaded = await run(readers);
console.log(
  `N=${n}: compaction idle ${idle.seconds.toFixed(2)} s (event loop max ${idle.loopMaxMs.toFixed(1)} ms); ` +
    `with ${readers} readers ${loaded.seconds.toFixed(2)} s (event loop max ${loaded.loopMaxMs.toFixed(1)} ms, ` +
    `${Math.round(loaded.reads)} reads/s, read max ${loaded.readMaxMs.toFixed(1)} ms); ratio ` +
    `${(loaded.seconds / idle.seconds).toFixed(2)}x (goal <= 3x, event loop < 50 ms)`,
);
