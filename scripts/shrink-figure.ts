/**
 * Disk over live logical bytes after deleting 60% of the memories and compacting: the figure for
 * record files that shrink. Builds a store of N memories like the benchmark's (768-dim random
 * embeddings, 50..2000 bytes of ASCII content, six metadata numbers), deletes a random 60% in
 * durable batches, runs `compact({ force: true })`, closes, and sums every file of the store.
 * Live logical bytes: id + embedding + content + 48 bytes of metadata per memory left.
 *
 * The recall index is kept off (`annMinMemories` above N): its file is derived data, rebuilt when
 * missing, and its size is an index setting, not storage overhead; the RESERVE file (the disk-full
 * headroom, `diskReserveBytes`) is shown on its own line and counted in the total.
 *
 * Run: node --import tsx scripts/shrink-figure.ts 20000 100000
 */
import { lstatSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WarmStore, type MemoryRecord } from '../src/index.js';

const DIM = 768;
const META_BYTES = 6 * 8;

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function files(dir: string): { name: string; apparent: number; allocated: number }[] {
  return readdirSync(dir)
    .map((name) => {
      const st = lstatSync(join(dir, name));
      return { name, apparent: st.size, allocated: st.blocks * 512 };
    })
    .sort((a, b) => (a.name < b.name ? -1 : 1));
}

function group(name: string): string {
  if (name.startsWith('seg-')) return 'segments';
  if (name.startsWith('wal-')) return 'wal';
  return name;
}

const MB = 1e6;

async function figure(n: number): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'warmstore-shrink-figure-'));
  const r = rng(n);
  const store = await WarmStore.open(dir, {
    dimension: DIM,
    maintenanceIntervalMs: false,
    annMinMemories: n + 1,
    maintenance: { startupCompaction: 'off' },
  });
  const logicalOf = new Map<string, number>();
  const ids: string[] = [];
  const text = 'lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor '.repeat(30);
  for (let i = 0; i < n; i += 1000) {
    const batch: MemoryRecord[] = [];
    for (let j = i; j < Math.min(n, i + 1000); j++) {
      const id = `mem-${j.toString(16).padStart(8, '0')}`;
      const embedding = new Float32Array(DIM);
      for (let d = 0; d < DIM; d++) embedding[d] = r() * 2 - 1;
      const len = 50 + Math.floor(r() * 1951);
      const content = text.slice(0, len);
      batch.push({ id, embedding, content, confidence: r(), createdAt: Date.UTC(2026, 0, 1) });
      logicalOf.set(id, Buffer.byteLength(id) + DIM * 4 + len + META_BYTES);
      ids.push(id);
    }
    await store.putMany(batch);
  }
  await store.checkpoint();
  const before = files(dir).reduce((s, f) => s + f.allocated, 0);
  // A random 60%, deleted in durable batches of 1000.
  const doomed = ids.filter(() => r() < 0.6);
  for (let i = 0; i < doomed.length; i += 1000) {
    const part = doomed.slice(i, i + 1000);
    await Promise.all(part.map((id) => store.delete(id)));
    for (const id of part) logicalOf.delete(id);
  }
  const t0 = performance.now();
  const stats = await store.compact({ force: true });
  const ms = performance.now() - t0;
  await store.close();
  const live = [...logicalOf.values()].reduce((s, b) => s + b, 0);
  const byGroup = new Map<string, { apparent: number; allocated: number }>();
  for (const f of files(dir)) {
    const g = byGroup.get(group(f.name)) ?? { apparent: 0, allocated: 0 };
    g.apparent += f.apparent;
    g.allocated += f.allocated;
    byGroup.set(group(f.name), g);
  }
  const total = [...byGroup.values()].reduce((s, g) => s + g.allocated, 0);
  const reserve = byGroup.get('RESERVE')?.allocated ?? 0;
  console.log(
    `\n${n} memories, ${doomed.length} deleted (${((100 * doomed.length) / n).toFixed(1)}%), ${logicalOf.size} left`,
  );
  console.log(`  before deleting: ${(before / MB).toFixed(1)} MB on disk`);
  console.log(
    `  compact: ${ms.toFixed(0)} ms, ${stats.segmentsCompacted} segments, ${stats.recordsMoved} records moved, ` +
      `${stats.slotsMoved} slots moved, record files ${(stats.recordBytesReclaimed / MB).toFixed(1)} MB smaller, ` +
      `longest pause ${stats.maxPauseMs.toFixed(1)} ms`,
  );
  for (const [g, b] of byGroup)
    console.log(`  ${g.padEnd(12)} ${(b.allocated / MB).toFixed(2).padStart(8)} MB`);
  console.log(`  live logical ${(live / MB).toFixed(2).padStart(8)} MB`);
  console.log(
    `  disk / live logical: ${(total / live).toFixed(3)}x (all files), ${((total - reserve) / live).toFixed(3)}x without RESERVE`,
  );
  rmSync(dir, { recursive: true, force: true });
}

const sizes = process.argv.slice(2).map(Number);
for (const n of sizes.length > 0 ? sizes : [20_000]) await figure(n);
