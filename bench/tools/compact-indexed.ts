/**
 * Compaction of a store whose recall index is ready: copies DIR (a store kept by the recall
 * benchmark with `--keep`, e.g. 1M x 768) to a scratch directory, opens the copy, deletes every
 * other memory (by sorted id), waits for the index, then compacts (content, then relocation of the
 * survivors from the top slots into the holes) and reports: the compaction's time, slots moved and
 * longest synchronous step (with every step over 20 ms and its phase), the index's tail right after
 * (slots it must take in again before recall can use it: recall scans exactly while the tail is over
 * 10% of the store), how long it took to catch up, recall latency before, right after and once
 * caught up (50 queries from QUERIES.f32, one at a time), and RssAnon. DIST picks the build
 * (default ../dist), so two builds can be compared on the same store.
 *   node --expose-gc --import tsx tools/compact-indexed.ts DIR QUERIES.f32 [DIST]
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadWarmstore } from '../engines/warmstore.ts';

const [src, file, dist] = process.argv.slice(2);
if (!src || !file) throw new Error('usage: compact-indexed.ts DIR QUERIES.f32 [DIST]');
const dim = 768;
const dir = path.join(path.dirname(path.resolve(src)), `compact-indexed-${process.pid}`);
execFileSync('cp', ['-r', src, dir]);
const raw = fs.readFileSync(file);
const queries = new Float32Array(raw.buffer, raw.byteOffset, raw.length / 4);
const query = (i: number): Float32Array => queries.subarray(i * dim, (i + 1) * dim);
const log = (...a: unknown[]): void => console.log(new Date().toISOString().slice(11, 19), ...a);
const rss = (): string =>
  `${/RssAnon:\s+(\d+)/.exec(fs.readFileSync('/proc/self/status', 'utf8'))?.[1] ?? '?'} kB`;
const gc = (globalThis as { gc?: () => void }).gc;

const { WarmStore } = await loadWarmstore(dist);
const store = await WarmStore.open(dir, { dimension: dim, maintenanceIntervalMs: false, scrub: false });
try {
  const settle = async (): Promise<string> => {
    const t = performance.now();
    while (store.indexStatus.state !== 'ready' || store.indexStatus.tail > 0)
      await new Promise((r) => setTimeout(r, 50));
    return `${((performance.now() - t) / 1000).toFixed(1)} s`;
  };
  const latency = async (n = 50): Promise<string> => {
    const ms: number[] = [];
    for (let i = 0; i < n; i++) {
      const t = performance.now();
      await store.recall(query(i), { k: 10 });
      ms.push(performance.now() - t);
    }
    ms.sort((a, b) => a - b);
    return `p50 ${ms[n >> 1]!.toFixed(2)} ms, p90 ${ms[Math.floor(n * 0.9)]!.toFixed(2)} ms`;
  };
  log(`opened ${store.size} memories; index settled in ${await settle()}`);
  const ids: string[] = [];
  for await (const m of store.entries()) ids.push(m.id);
  ids.sort();
  const t0 = performance.now();
  for (let i = 0; i < ids.length; i += 2000)
    await Promise.all(
      ids
        .slice(i, i + 2000)
        .filter((_, j) => j % 2 === 0)
        .map((id) => store.delete(id)),
    );
  log(
    `deleted half in ${((performance.now() - t0) / 1000).toFixed(1)} s; index settled in ${await settle()}`,
  );
  gc?.();
  log(`RssAnon ${rss()}; recall before compaction ${await latency()}`);
  let phase = '?';
  const steps: string[] = [];
  store.on('compactionPause', (ms: number) => {
    if (ms > 20) steps.push(`${phase} ${ms.toFixed(0)} ms`);
  });
  const st = await store.compact({
    force: true,
    onProgress: (p) => {
      phase = p.phase;
    },
  });
  log(
    `compaction ${(st.durationMs / 1000).toFixed(1)} s, slots moved ${st.slotsMoved}, longest step ` +
      `${st.maxPauseMs.toFixed(1)} ms (over 20 ms: ${steps.join(', ') || 'none'}); index tail ${store.indexStatus.tail}`,
  );
  log(`recall right after ${await latency()}`);
  log(`index caught up in ${await settle()}; recall then ${await latency()}`);
  gc?.();
  log(`RssAnon ${rss()}; index ${JSON.stringify(store.indexStatus)}`);
} finally {
  await store.close();
  fs.rmSync(dir, { recursive: true, force: true });
}
