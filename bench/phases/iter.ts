/** Iteration: every record, decoded, in the engine's own order. */
import type { Engine } from '../engines/engine.ts';
import { now } from '../lib/measure.ts';
import { type PhaseContext, log, profiled } from './context.ts';

export async function iterPhase(ctx: PhaseContext, eng: Engine): Promise<void> {
  const { ds, res } = ctx;
  const t0 = now();
  const n = await profiled(ctx, 'iter', () => eng.iterate());
  const s = (now() - t0) / 1000;
  res.iterate.push(s);
  res.iterateCount = n;
  log(`    iterate ${n} in ${s.toFixed(3)} s${n !== ds.n ? ` COUNT MISMATCH (want ${ds.n})` : ''}`);
}
