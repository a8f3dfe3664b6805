/**
 * Where a compaction's time goes, by phase: fills a fresh store with N memories (768 dimensions,
 * uniform random vectors, 50-350 bytes of content, segments of 16 MiB, recall index off), deletes
 * every other one, compacts, and prints the time spent in each progress phase ('copy' is the
 * content, 'commit' the content's end and the relocation of slots, 'checkpoint' the final
 * checkpoint), the longest synchronous step and the worst event-loop delay in each. DIST picks the
 * build (default ../dist).
 *   node --import tsx tools/compact-phases.ts [N] [DIST]
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { loadWarmstore } from '../engines/warmstore.ts';

const n = Number(process.argv[2] ?? 200_000);
const dist = process.argv[3];
const dim = 768;
const root = path.resolve('.data');
fs.mkdirSync(root, { recursive: true });
const dir = fs.mkdtempSync(path.join(root, 'compact-phases-'));
const { WarmStore } = await loadWarmstore(dist);
const store = await WarmStore.open(dir, {
  dimension: dim,
  maintenanceIntervalMs: false,
  segmentBytes: 16 << 20,
  annMinMemories: 2 ** 31,
});
try {
  let seed = 1;
  const rnd = (): number => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
  for (let i = 0; i < n; i += 1000) {
    const batch = [];
    for (let j = i; j < Math.min(n, i + 1000); j++) {
      const e = new Float32Array(dim);
      for (let d = 0; d < dim; d++) e[d] = rnd() - 0.5;
      batch.push({ id: `m${j}`, embedding: e, content: 'x'.repeat(50 + (j % 300)) });
    }
    await Promise.all(batch.map((m) => store.put(m)));
  }
  for (let k = 0; k < n; k += 2000)
    await Promise.all(
      Array.from({ length: Math.min(1000, Math.ceil((n - k) / 2)) }, (_, j) => store.delete(`m${k + 2 * j}`)),
    );
  const phaseMs: Record<string, number> = {};
  const maxStep: Record<string, number> = {};
  const loopMax: Record<string, number> = {};
  let phase = 'start';
  let since = performance.now();
  const eld = monitorEventLoopDelay({ resolution: 1 });
  eld.enable();
  store.on('compactionPause', (ms: number) => {
    maxStep[phase] = Math.max(maxStep[phase] ?? 0, +ms.toFixed(1));
  });
  const close = (): void => {
    phaseMs[phase] = Math.round((phaseMs[phase] ?? 0) + performance.now() - since);
    loopMax[phase] = Math.max(loopMax[phase] ?? 0, +(eld.max / 1e6).toFixed(1));
    eld.reset();
  };
  const t = performance.now();
  const st = await store.compact({
    force: true,
    onProgress: (p) => {
      if (p.phase === phase) return;
      close();
      phase = p.phase;
      since = performance.now();
    },
  });
  close();
  console.log(
    `N=${n}: compaction ${(performance.now() - t).toFixed(0)} ms, slots moved ${st.slotsMoved}\n` +
      `  ms by phase ${JSON.stringify(phaseMs)}\n  longest step ${JSON.stringify(maxStep)}\n` +
      `  event loop max ${JSON.stringify(loopMax)}`,
  );
} finally {
  await store.close();
  fs.rmSync(dir, { recursive: true, force: true });
}
