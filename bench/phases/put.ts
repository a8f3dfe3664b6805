/** Store: every record, in durable batches. */
import type { Engine } from '../engines/engine.ts';
import type { Dataset } from '../lib/data.ts';
import { diskUsage, fmtNum, gc, now } from '../lib/measure.ts';
import type { StoreResult } from '../lib/results.ts';
import { type PhaseContext, log, profiled } from './context.ts';

export async function storeAll(eng: Engine, ds: Dataset, batch: number): Promise<StoreResult> {
  const t0 = now();
  for (let i = 0; i < ds.n; i += batch) await eng.putBatch(ds.records.slice(i, i + batch));
  const seconds = (now() - t0) / 1000;
  return { recPerSec: ds.n / seconds, seconds };
}

export async function putPhase(ctx: PhaseContext, eng: Engine): Promise<void> {
  const { ds, rep, res } = ctx;
  gc();
  const put = await profiled(ctx, 'put', () => storeAll(eng, ds, ctx.cfg.batch));
  res.put.push(put);
  log(`  ${ctx.spec.row} rep ${rep + 1}: store ${fmtNum(put.recPerSec)} rec/s (${put.seconds.toFixed(2)} s)`);
  if (rep === 0) {
    res.diskAfterStore = diskUsage(ctx.dir);
    if (ctx.spec.kind === 'warmstore') {
      const stats = eng.stats?.();
      if (stats) res.storeStats = stats;
    }
  }
}
