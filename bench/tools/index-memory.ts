/**
 * Resident memory of a store and of its recall index. Builds a store of N clustered memories x 768
 * in DIR (once; reused later) with the build in dist/ (`npm run build` first), then opens it in
 * fresh child processes, once read-only (no index: recall scans exactly) and once with its index, and reports RssAnon and RssFile from
 * /proc/self/status after open and after 200 recalls, the index's share (the difference), recall
 * latency and how often a memory's own vector finds it through the index.
 *   node --import tsx tools/index-memory.ts N DIR
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { loadWarmstore } from '../engines/warmstore.ts';
import { rng } from '../lib/data.ts';

const [n = 100_000, dir, mode] = [Number(process.argv[2] ?? 100_000), process.argv[3], process.argv[4]];
if (!dir) throw new Error('usage: index-memory.ts N DIR');
const DIM = 768;
const LATENT = 48;
const { WarmStore } = await loadWarmstore();

/** Clustered vectors: a 48-dimensional Gaussian mixture projected to 768, plus noise, normalized. */
function generator(seed: number): () => Float32Array {
  const r = rng(seed);
  const gauss = (): number => Math.sqrt(-2 * Math.log(r() || 1e-12)) * Math.cos(2 * Math.PI * r());
  const proj = new Float32Array(LATENT * DIM).map(() => gauss());
  const centers = Array.from({ length: 200 }, () => new Float32Array(LATENT).map(() => gauss() * 2));
  return () => {
    const c = centers[Math.floor(r() * centers.length)]!;
    const z = c.map((x) => x + gauss());
    const out = new Float32Array(DIM);
    let norm = 0;
    for (let d = 0; d < DIM; d++) {
      let s = gauss() * 0.3;
      for (let j = 0; j < LATENT; j++) s += z[j]! * proj[j * DIM + d]!;
      out[d] = s;
      norm += s * s;
    }
    norm = Math.sqrt(norm);
    for (let d = 0; d < DIM; d++) out[d]! /= norm;
    return out;
  };
}

function status(): { anon: number; file: number } {
  const s = fs.readFileSync('/proc/self/status', 'utf8');
  const kb = (k: string): number => Number(new RegExp(`${k}:\\s+(\\d+)`).exec(s)?.[1] ?? 0) * 1024;
  return { anon: kb('RssAnon'), file: kb('RssFile') };
}

const mib = (b: number): string => `${(b / 2 ** 20).toFixed(0)} MiB`;

if (mode === undefined) {
  if (!fs.existsSync(dir)) {
    const next = generator(7);
    const t0 = performance.now();
    const store = await WarmStore.open(dir, { dimension: DIM, maintenanceIntervalMs: false });
    for (let i = 0; i < n; i += 1000) {
      const batch = [];
      for (let j = i; j < Math.min(n, i + 1000); j++)
        batch.push({ id: `m${j}`, embedding: next(), content: null });
      await store.putMany(batch);
    }
    const filled = performance.now();
    for (;;) {
      const s = store.indexStatus;
      if (s.state === 'ready' && s.tail === 0) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    const ready = performance.now();
    console.log(
      `built n=${n}: filled in ${((filled - t0) / 1000).toFixed(1)} s, index caught up ` +
        `${((ready - filled) / 1000).toFixed(1)} s later (${store.indexStatus.merges} merges)`,
    );
    await store.close();
  }
  const self = fileURLToPath(import.meta.url);
  for (const m of ['plain', 'index']) {
    process.stdout.write(
      execFileSync(process.execPath, ['--import', 'tsx', self, String(n), dir, m], { encoding: 'utf8' }),
    );
  }
} else {
  const withIndex = mode === 'index';
  const t0 = performance.now();
  const store = await WarmStore.open(dir, {
    dimension: DIM,
    maintenanceIntervalMs: false,
    readOnly: !withIndex,
  });
  const openMs = performance.now() - t0;
  while (withIndex && store.indexStatus.state !== 'ready') await new Promise((r) => setTimeout(r, 20));
  const readyMs = performance.now() - t0;
  const afterOpen = status();
  const next = generator(7);
  // Queries near stored memories: the first 200 vectors the build wrote, regenerated.
  const ms: number[] = [];
  let self = 0;
  for (let i = 0; i < 200; i++) {
    const q = next();
    const t = performance.now();
    const hits = await store.recall(q, { k: 10, exact: !withIndex });
    ms.push(performance.now() - t);
    if (hits[0]?.memory.id === `m${i}`) self++;
  }
  const afterRecall = status();
  ms.sort((a, b) => a - b);
  const st = store.indexStatus;
  console.log(
    `${mode.padEnd(5)} n=${n}: open ${openMs.toFixed(0)} ms, ready ${readyMs.toFixed(0)} ms; ` +
      `RssAnon ${mib(afterOpen.anon)} (${(afterOpen.anon / n).toFixed(0)} B/memory) -> ${mib(afterRecall.anon)} after 200 recalls ` +
      `(${(afterRecall.anon / n).toFixed(0)} B/memory); RssFile ${mib(afterRecall.file)}; ` +
      `recall p50 ${ms[100]!.toFixed(2)} ms p99 ${ms[197]!.toFixed(2)} ms; self found ${self}/200; ` +
      `index ${st.state} indexed ${st.indexed} resident ${st.resident}`,
  );
  await store.close();
}
