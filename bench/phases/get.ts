/** Point reads: random ids, one at a time, synchronous and (where the engine has one) async. */
import type { Engine } from '../engines/engine.ts';
import { type BenchMemory, type Dataset, randomIndices } from '../lib/data.ts';
import { Lat, fmtNum, fmtUs, now } from '../lib/measure.ts';
import type { GetResult } from '../lib/results.ts';
import { type PhaseContext, log, profiled } from './context.ts';

type Reader =
  | { kind: 'sync'; read: (id: string) => BenchMemory | undefined }
  | { kind: 'async'; read: (id: string) => Promise<BenchMemory | undefined> };

/**
 * `ops` reads of random ids, one at a time. A synchronous reader is never awaited (that would add
 * a microtask to every getSync latency): with one, the whole pass runs before this returns.
 */
async function getPass(reader: Reader, ds: Dataset, ops: number, seed: number): Promise<GetResult> {
  const idx = randomIndices(ds.n, ops, seed);
  const lat = new Lat();
  let errors = 0;
  const t0 = now();
  for (let i = 0; i < ops; i++) {
    const rec = ds.records[idx[i]!]!;
    const s = now();
    const v = reader.kind === 'sync' ? reader.read(rec.id) : await reader.read(rec.id);
    lat.ms(now() - s);
    if (v === undefined || v.content?.length !== rec.content?.length) errors++;
  }
  return { opsPerSec: ops / ((now() - t0) / 1000), lat: lat.summary(), errors };
}

/** Warm-up, then one pass per repetition (the table shows the median over repetitions). */
export async function getPhase(ctx: PhaseContext, eng: Engine): Promise<void> {
  const { ds, rep, res, cfg } = ctx;
  const sync: Reader = { kind: 'sync', read: (id) => eng.getSync(id) };
  await getPass(sync, ds, 2000, 99);
  const g = await profiled(ctx, 'get', () => getPass(sync, ds, cfg.getOps, 100 + rep));
  res.getSync.push(g);
  let line = `    getSync ${fmtNum(g.opsPerSec)} ops/s p50 ${fmtUs(g.lat.p50us)} p99 ${fmtUs(g.lat.p99us)}`;
  let errors = g.errors;
  if (eng.get) {
    const async: Reader = { kind: 'async', read: eng.get.bind(eng) };
    await getPass(async, ds, 1000, 98);
    const ga = await getPass(async, ds, cfg.asyncGetOps, 200 + rep);
    res.getAsync.push(ga);
    line += ` | get ${fmtNum(ga.opsPerSec)} ops/s p50 ${fmtUs(ga.lat.p50us)} p99 ${fmtUs(ga.lat.p99us)}`;
    errors += ga.errors;
  }
  if (errors) line += ` ERRORS ${errors}`;
  log(line);
}
