/** Open after a clean close, up to the first read. */
import { type Engine, makeEngine } from '../engines/engine.ts';
import { checkRecord } from '../lib/data.ts';
import { diskUsage, gc, now } from '../lib/measure.ts';
import { type PhaseContext, log, profiled } from './context.ts';

/** Closes `eng`, opens the store again and returns the engine now open on it. */
export async function openPhase(ctx: PhaseContext, eng: Engine): Promise<Engine> {
  const { ds, rep, res } = ctx;
  await eng.close();
  if (rep === 0) res.diskAfterClose = diskUsage(ctx.dir);
  gc();
  const again = await makeEngine(ctx.spec, ctx.dir, ds.dim);
  const first = ds.records[0]!;
  let v, ms;
  try {
    ({ v, ms } = await profiled(ctx, 'open', async () => {
      const t0 = now();
      await again.open();
      const v = again.getSync(first.id);
      return { v, ms: now() - t0 };
    }));
  } catch (e) {
    await again.close().catch(() => undefined);
    throw e;
  }
  res.openMs.push(ms);
  log(`    open ${ms.toFixed(1)} ms${checkRecord(v, first) ? '' : ' FIRST READ WRONG'}`);
  return again;
}
