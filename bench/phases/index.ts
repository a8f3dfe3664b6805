/** One row, one repetition: a fresh store, filled, then each phase the run asks for, in order. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { type EngineSpec, makeEngine, runsEveryPhase } from '../engines/engine.ts';
import type { Phase, RunConfig } from '../lib/config.ts';
import type { Dataset } from '../lib/data.ts';
import type { EngineResult } from '../lib/results.ts';
import { compactPhase } from './compact.ts';
import { type PhaseContext, log } from './context.ts';
import { getPhase } from './get.ts';
import { iterPhase } from './iter.ts';
import { openPhase } from './open.ts';
import { putPhase } from './put.ts';
import { recallPhase } from './recall.ts';
import { recoverPhase } from './recover.ts';

export async function benchRow(
  cfg: RunConfig,
  spec: EngineSpec,
  ds: Dataset,
  rep: number,
  bandwidth: number,
  res: EngineResult,
): Promise<void> {
  const dir = path.join(cfg.root, `${spec.row}-${rep}`);
  const ctx: PhaseContext = { cfg, spec, ds, rep, res, dir };
  const has = (p: Phase): boolean => cfg.phases.has(p);
  const full = runsEveryPhase(spec);
  fs.rmSync(dir, { recursive: true, force: true });
  let eng = await makeEngine(spec, dir, ds.dim);
  try {
    await eng.open();
    await putPhase(ctx, eng); // always: every other phase needs the records
    if (has('get')) await getPhase(ctx, eng);
    if (full && has('iter')) await iterPhase(ctx, eng);
    if (full && has('open')) eng = await openPhase(ctx, eng);
    if (full && has('recover') && rep === 0) await recoverPhase(ctx);
    if (full && has('recall') && rep === 0 && eng.recall) await recallPhase(ctx, eng.recall.bind(eng));
    if (full && has('compact')) await compactPhase(ctx, eng, bandwidth);
  } catch (e) {
    res.error = String((e as Error)?.stack ?? e);
    log(`  ${spec.row} rep ${rep + 1} FAILED: ${res.error}`);
  } finally {
    try {
      await eng.close();
    } catch (e) {
      log(`  ${spec.row} close failed: ${String(e)}`);
    }
    if (!cfg.keep) fs.rmSync(dir, { recursive: true, force: true });
  }
}
