/**
 * How many turns of the event loop a compaction waits for: fills a fresh store with N memories as
 * compact-readers.ts does (768 dimensions, half deleted), then compacts it while a stand-in for
 * busy readers holds every turn of the loop for B ms (a setImmediate that spins, re-armed each
 * turn). Each I/O the compaction awaits then costs a whole turn, so its time is about turns x B,
 * and the count of turns, per phase, says where a loaded compaction's time goes without the noise
 * of real readers on a shared machine. DIST picks the build (default ../dist).
 *   node --import tsx tools/compact-turns.ts [N=20000] [B=5] [DIST]
 */
import * as fs from 'node:fs';
import type { CompactionPhase } from '../../src/index.js';
import { loadWarmstore } from '../engines/warmstore.ts';
import { halfDeletedScratch } from '../lib/fill.ts';

const n = Number(process.argv[2] ?? 20_000);
const busyMs = Number(process.argv[3] ?? 5);
const dist = process.argv[4];
const dim = 768;
const { WarmStore } = await loadWarmstore(dist);

const { dir, store } = await halfDeletedScratch((d, o) => WarmStore.open(d, o), 'compact-turns-', n, dim);
try {
  let turns = 0;
  let stop = false;
  // The longest a turn took besides the stand-in's own spin: what the compaction (and the I/O
  // callbacks it triggered) held the loop in one turn, per phase.
  let lastSpin = 0;
  const longest = new Map<CompactionPhase, number>();
  const spin = (): void => {
    const now = performance.now();
    if (lastSpin > 0) {
      const other = now - lastSpin - busyMs;
      if (other > (longest.get(phase) ?? 0)) longest.set(phase, other);
    }
    lastSpin = now;
    turns++;
    const until = performance.now() + busyMs;
    while (performance.now() < until);
    if (!stop) setImmediate(spin);
  };
  const perPhase = new Map<CompactionPhase, number>();
  let phase: CompactionPhase = 'plan';
  let phaseStart = 0;
  const enter = (next: CompactionPhase): void => {
    perPhase.set(phase, (perPhase.get(phase) ?? 0) + turns - phaseStart);
    phase = next;
    phaseStart = turns;
  };
  setImmediate(spin);
  const t0 = performance.now();
  await store.compact({ force: true, onProgress: (p) => enter(p.phase) });
  const seconds = (performance.now() - t0) / 1000;
  enter('done');
  stop = true;
  const phases = [...perPhase]
    .map(([p, t]) => `${p} ${t} (longest ${(longest.get(p) ?? 0).toFixed(1)} ms)`)
    .join(', ');
  console.log(
    `N=${n}, ${busyMs} ms per turn: compaction ${seconds.toFixed(2)} s, ${turns} turns (${phases})`,
  );
} finally {
  await store.close();
  fs.rmSync(dir, { recursive: true, force: true });
}
