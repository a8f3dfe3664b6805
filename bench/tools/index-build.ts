/**
 * The recall index's build from nothing, as after a lost index: fills a store once with the first
 * N rows of a float32 data file (kept in `.data/index-build-N`, recall index off while filling),
 * then for each build in DISTS (comma-separated, default ../dist) deletes the index files, opens the
 * store and waits for the index to be ready, while a reader reads a random memory every
 * millisecond. Prints per build: wall and process CPU time of the build, its event-loop delay
 * (p50 / p99 / max), the reader's slowest read, and the quality of the result: how many of 1000
 * sampled memories recall finds by their own vector, and recall@10 of 100 perturbed rows against
 * exact search. Builds alternate over REPS rounds (default 1).
 *   node --import tsx tools/index-build.ts N ROWS.f32 [DISTS] [REPS]
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { loadWarmstore } from '../engines/warmstore.ts';

const [nArg, rowsFile, distsArg, repsArg] = process.argv.slice(2);
if (!nArg || !rowsFile) throw new Error('usage: index-build.ts N ROWS.f32 [DISTS] [REPS]');
const n = Number(nArg);
const dim = 768;
const dists = (distsArg ?? '../dist').split(',');
const reps = Number(repsArg ?? 1);
const fill = process.env.MODE === 'fill';
const dir = path.resolve('.data', `index-build-${n}`);
const cpu = (): number => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};

/** The first n rows as memories `r0, r1, ...`, in durable batches of 1000. */
async function putRows(store: {
  putMany(ms: { id: string; embedding: Float32Array; content: string }[]): Promise<unknown>;
}): Promise<void> {
  const fd = fs.openSync(rowsFile!, 'r');
  const rows = new Float32Array(1000 * dim);
  for (let i = 0; i < n; i += 1000) {
    const count = Math.min(1000, n - i);
    fs.readSync(fd, new Uint8Array(rows.buffer), 0, count * dim * 4, i * dim * 4);
    const batch = [];
    for (let j = 0; j < count; j++)
      batch.push({ id: `r${i + j}`, embedding: rows.slice(j * dim, (j + 1) * dim), content: `row ${i + j}` });
    await store.putMany(batch);
  }
  fs.closeSync(fd);
}

if (!fs.existsSync(path.join(dir, 'filled'))) {
  fs.rmSync(dir, { recursive: true, force: true });
  const { WarmStore } = await loadWarmstore(dists[0]);
  const store = await WarmStore.open(dir, {
    dimension: dim,
    maintenanceIntervalMs: false,
    annMinMemories: 2 ** 31,
  });
  await putRows(store);
  await store.close();
  fs.writeFileSync(path.join(dir, 'filled'), '');
  console.log(`filled ${n} rows into ${dir}`);
}

const rssAnonMiB = (): number => {
  const m = /RssAnon:\s+(\d+) kB/.exec(fs.readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) / 1024 : 0;
};

for (let rep = 0; rep < reps; rep++) {
  for (const dist of dists) {
    const { WarmStore } = await loadWarmstore(dist);
    let storeDir = dir;
    let fillS = 0;
    if (fill) {
      // A fresh store filled with the index on: the index follows the fill and catches up after it.
      storeDir = `${dir}-fill`;
      fs.rmSync(storeDir, { recursive: true, force: true });
    } else {
      for (const name of fs.readdirSync(dir)) if (name.startsWith('ann-')) fs.rmSync(path.join(dir, name));
    }
    const store = await WarmStore.open(storeDir, { dimension: dim, maintenanceIntervalMs: false });
    let rssMax = rssAnonMiB();
    const rssTimer = setInterval(() => (rssMax = Math.max(rssMax, rssAnonMiB())), 500);
    if (fill) {
      const t = performance.now();
      await putRows(store);
      fillS = (performance.now() - t) / 1000;
    }
    const eld = monitorEventLoopDelay({ resolution: 1 });
    eld.enable();
    let worstRead = 0;
    let reads = 0;
    // `get`, as a server reads: after a read slower than 20 ms it reads through the pool for a
    // while, where `getSync` would hold the event loop for every read the disk makes wait.
    let reading = false;
    const timer = setInterval(() => {
      if (reading) return;
      reading = true;
      const t = performance.now();
      void store.get(`r${Math.floor(Math.random() * n)}`).then(() => {
        worstRead = Math.max(worstRead, performance.now() - t);
        reads++;
        reading = false;
      });
    }, 1);
    const t0 = performance.now();
    const c0 = cpu();
    while (store.indexStatus.state !== 'ready' || store.indexStatus.tail > 0)
      await new Promise((r) => setTimeout(r, 50));
    const s = (performance.now() - t0) / 1000;
    const c = cpu() - c0;
    clearInterval(timer);
    eld.disable();
    // Quality of what was built: every sampled memory found by its own vector (an unreachable node
    // is not), and recall@10 of perturbed rows against exact search.
    const fd = fs.openSync(rowsFile, 'r');
    const row = (i: number): Float32Array => {
      const v = new Float32Array(dim);
      fs.readSync(fd, new Uint8Array(v.buffer), 0, dim * 4, i * dim * 4);
      return v;
    };
    let self = 0;
    const SELF = 1000;
    for (let j = 0; j < SELF; j++) {
      const i = Math.floor((j * n) / SELF);
      const [hit] = await store.recall(row(i), { k: 1 });
      if (hit?.memory.id === `r${i}`) self++;
    }
    let hits = 0;
    const Q = 100;
    for (let j = 0; j < Q; j++) {
      const v = row(Math.floor(Math.random() * n));
      for (let d = 0; d < dim; d++) v[d]! += (Math.random() - 0.5) * 0.02;
      const truth = new Set((await store.recall(v, { k: 10, exact: true })).map((h) => h.memory.id));
      for (const h of await store.recall(v, { k: 10 })) if (truth.has(h.memory.id)) hits++;
    }
    fs.closeSync(fd);
    clearInterval(rssTimer);
    const merges = store.indexStatus.merges;
    await store.close();
    if (fill) fs.rmSync(storeDir, { recursive: true, force: true });
    const ms = (x: number): string => (x / 1e6).toFixed(1);
    console.log(
      `${dist}: ${fill ? `fill ${fillS.toFixed(1)} s, catch-up` : 'build'} ${s.toFixed(1)} s, merges ${merges}, ` +
        `RssAnon max ${rssMax.toFixed(0)} MiB, CPU ${c.toFixed(1)} s, event loop p50 ${ms(eld.percentile(50))} ` +
        `p99 ${ms(eld.percentile(99))} max ${ms(eld.max)} ms, reads ${reads} (slowest ${worstRead.toFixed(2)} ms), ` +
        `self-recall ${self}/${SELF}, recall@10 ${(hits / (Q * 10)).toFixed(4)}, ` +
        `load ${(await import('node:os')).loadavg()[0]!.toFixed(1)}`,
    );
  }
}
