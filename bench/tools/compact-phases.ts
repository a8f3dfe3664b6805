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
import { fillHalfDeleted } from '../lib/fill.ts';

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
  await fillHalfDeleted(store, n, dim, 300);
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
  /** Monotonic microseconds at each phase's start, the clock of a V8 .cpuprofile. */
  const startsUs: Record<string, number> = {};
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
      startsUs[phase] = Number(process.hrtime.bigint() / 1000n);
    },
  });
  close();
  startsUs['end'] = Number(process.hrtime.bigint() / 1000n);
  console.log(
    `N=${n}: compaction ${(performance.now() - t).toFixed(0)} ms, slots moved ${st.slotsMoved}\n` +
      `  ms by phase ${JSON.stringify(phaseMs)}\n  longest step ${JSON.stringify(maxStep)}\n` +
      `  event loop max ${JSON.stringify(loopMax)}\n  phase starts (monotonic us) ${JSON.stringify(startsUs)}`,
  );
} finally {
  await store.close();
  fs.rmSync(dir, { recursive: true, force: true });
}
