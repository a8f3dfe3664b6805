/**
 * Compaction with half the records dead: a random half is deleted (durable batches), then the
 * engine compacts while a reader loop keeps reading survivors. Every survivor is then checked and
 * every deleted id must be gone.
 */
import * as os from 'node:os';
import { PerformanceObserver } from 'node:perf_hooks';
import type { Engine } from '../engines/engine.ts';
import { type BenchMemory, checkRecord, rng, shuffled } from '../lib/data.ts';
import {
  Lat,
  RssSampler,
  diskUsage,
  eldMonitor,
  fmtBytes,
  fmtUs,
  gc,
  now,
  procIo,
  sleep,
  yieldLoop,
} from '../lib/measure.ts';
import type { CompactRun } from '../lib/results.ts';
import { type PhaseContext, log, profiled } from './context.ts';

async function compactionRun(ctx: PhaseContext, eng: Engine, bandwidth: number): Promise<CompactRun> {
  const { ds, rep, cfg } = ctx;
  // Delete a random half, in durable batches.
  const perm = shuffled(ds.n, rng(1000 + rep));
  const half = ds.n >> 1;
  const deleted: string[] = [];
  for (let i = 0; i < half; i++) deleted.push(ds.records[perm[i]!]!.id);
  const live: BenchMemory[] = [];
  for (let i = half; i < ds.n; i++) live.push(ds.records[perm[i]!]!);
  let liveContentBytes = 0;
  let liveLogicalBytes = 0;
  for (const r of live) {
    const len = r.content?.length ?? 0;
    liveContentBytes += len;
    liveLogicalBytes += Buffer.byteLength(r.id) + ds.dim * 4 + len + 48;
  }
  const td = now();
  for (let i = 0; i < deleted.length; i += cfg.batch) await eng.deleteBatch(deleted.slice(i, i + cfg.batch));
  const deleteRecPerSec = deleted.length / ((now() - td) / 1000);
  await eng.settle?.();
  const statsBefore = eng.stats?.();
  const diskBefore = diskUsage(eng.dir).allocated;

  // Readers: one loop, one read at a time (getSync, then async get where the engine has one),
  // yielding to the event loop after each iteration. 500 ms of warm-up give the baseline
  // (latency, event-loop delay, RSS) under the same read load, then compaction starts.
  const rSync = { warm: new Lat(), comp: new Lat() };
  const rAsync = { warm: new Lat(), comp: new Lat() };
  const st: { phase: 'warm' | 'comp' | 'done' } = { phase: 'warm' };
  let readErrors = 0;
  let stop = false;
  gc();
  await sleep(50);
  const sampler = new RssSampler();
  await sampler.start(5);
  let eld = eldMonitor();
  const reader = (async () => {
    if (!cfg.readers) return;
    const r = rng(77 + rep);
    while (!stop) {
      const rec = live[Math.floor(r() * live.length)]!;
      let s = now();
      if (eng.blocked) await eng.blocked;
      const v = eng.getSync(rec.id);
      const d = now() - s;
      if (st.phase !== 'done') (st.phase === 'warm' ? rSync.warm : rSync.comp).ms(d);
      if (!checkRecord(v, rec)) readErrors++;
      if (eng.get) {
        s = now();
        if (eng.blocked) await eng.blocked;
        const v2 = await eng.get(rec.id);
        const d2 = now() - s;
        if (st.phase !== 'done') (st.phase === 'warm' ? rAsync.warm : rAsync.comp).ms(d2);
        if (!checkRecord(v2, rec)) readErrors++;
      }
      await yieldLoop();
    }
  })();
  await sleep(500);
  const eldWarm = eld.stop();
  const rssBaseline = sampler.peak;
  st.phase = 'comp';
  sampler.resetPeak();
  eld = eldMonitor();
  // GC pauses during compaction (a long event-loop stall may be a GC, not the engine).
  const gcs: number[] = [];
  const gcObs = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) gcs.push(e.duration);
  });
  gcObs.observe({ entryTypes: ['gc'] });
  const ru0 = process.resourceUsage();
  const io0 = procIo();
  const load0 = os.loadavg()[0]!;
  const t0 = now();
  let res;
  try {
    res = await eng.compact();
  } finally {
    st.phase = 'done';
  }
  const seconds = (now() - t0) / 1000;
  const ru1 = process.resourceUsage();
  const io1 = procIo();
  gcObs.disconnect();
  const eldC = eld.stop();
  sampler.sample();
  const rssPeak = sampler.peak;
  stop = true;
  await reader;
  await sampler.stop();
  const statsAfter = eng.stats?.();
  const diskAfter = diskUsage(eng.dir).allocated;

  // Verify: every survivor reads back byte-identical, every deleted id is absent.
  let verifyErrors = 0;
  for (const rec of live) if (!checkRecord(eng.getSync(rec.id), rec)) verifyErrors++;
  for (let i = 0; i < deleted.length; i += 50) if (eng.getSync(deleted[i]!) !== undefined) verifyErrors++;

  const contentBps = liveContentBytes / seconds;
  return {
    seconds,
    deleteRecPerSec,
    liveContentBytes,
    contentMBps: contentBps / 1e6,
    fractionOfBandwidth: contentBps / bandwidth,
    diskBefore,
    diskAfter,
    liveLogicalBytes,
    readsSync: rSync.comp.summary(),
    ...(eng.get ? { readsAsync: rAsync.comp.summary(), readsAsyncWarm: rAsync.warm.summary() } : {}),
    readsSyncWarm: rSync.warm.summary(),
    eldMaxMs: eldC.maxMs,
    eldP99Ms: eldC.p99Ms,
    eldWarmMaxMs: eldWarm.maxMs,
    rssBaseline,
    rssPeak,
    extraRss: Math.max(0, rssPeak - rssBaseline),
    ...(res.pauseMs !== undefined ? { pauseMs: res.pauseMs } : {}),
    details: res.details,
    ...(statsBefore ? { statsBefore } : {}),
    ...(statsAfter ? { statsAfter } : {}),
    verifyErrors,
    readErrors,
    // CPU contention evidence: this process's CPU time vs wall time, and involuntary context
    // switches (the kernel took the CPU away) while compaction ran.
    cpu: {
      userMs: (ru1.userCPUTime - ru0.userCPUTime) / 1000,
      systemMs: (ru1.systemCPUTime - ru0.systemCPUTime) / 1000,
      involuntaryCtxSwitches: ru1.involuntaryContextSwitches - ru0.involuntaryContextSwitches,
      loadavg1: [load0, os.loadavg()[0]!],
    },
    io: {
      wchar: io1.wchar - io0.wchar,
      writeBytes: io1.writeBytes - io0.writeBytes,
      rchar: io1.rchar - io0.rchar,
    },
    gc: {
      count: gcs.length,
      maxMs: gcs.length ? Math.max(...gcs) : 0,
      totalMs: gcs.reduce((a, b) => a + b, 0),
    },
  };
}

/** `bandwidth`: the machine's sequential write bandwidth, bytes/s, that compaction is held to. */
export async function compactPhase(ctx: PhaseContext, eng: Engine, bandwidth: number): Promise<void> {
  const c = await profiled(ctx, 'compact', () => compactionRun(ctx, eng, bandwidth));
  ctx.res.compaction.push(c);
  const lat = (l: { p50us: number; p99us: number; maxUs: number }): string =>
    `${fmtUs(l.p50us)}/${fmtUs(l.p99us)}/${fmtUs(l.maxUs)}`;
  log(
    `    compaction ${c.seconds.toFixed(3)} s (${(100 * c.fractionOfBandwidth).toFixed(1)}% of seq bw), ` +
      `reads p50/p99/max ${lat(c.readsSync)}` +
      (c.readsAsync ? ` async ${lat(c.readsAsync)}` : '') +
      `, ELD max ${c.eldMaxMs.toFixed(1)} ms (warm ${c.eldWarmMaxMs.toFixed(1)}), extra RSS ${fmtBytes(c.extraRss)}, ` +
      `disk ${fmtBytes(c.diskBefore)} -> ${fmtBytes(c.diskAfter)}` +
      (c.pauseMs !== undefined ? `, reopen pause ${c.pauseMs.toFixed(1)} ms` : '') +
      `; wrote ${fmtBytes(c.io.wchar)} (${(c.io.wchar / c.liveContentBytes).toFixed(2)}x live content)` +
      `; GC max ${c.gc.maxMs.toFixed(1)} ms; cpu ${(c.cpu.userMs + c.cpu.systemMs).toFixed(0)} ms, ` +
      `${c.cpu.involuntaryCtxSwitches} preemptions, load ${c.cpu.loadavg1[0]!.toFixed(1)}` +
      (c.verifyErrors || c.readErrors ? ` ERRORS verify=${c.verifyErrors} reads=${c.readErrors}` : ''),
  );
  if (ctx.spec.kind === 'warmstore') log(`      stats ${JSON.stringify(c.details)}`);
}
