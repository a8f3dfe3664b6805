/** What every phase of one row's repetition gets: the run's options, the row, the data. */
import * as fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { EngineSpec } from '../engines/engine.ts';
import type { RunConfig, Phase } from '../lib/config.ts';
import type { Dataset } from '../lib/data.ts';
import { withCpuProfile } from '../lib/measure.ts';
import type { EngineResult } from '../lib/results.ts';

export interface PhaseContext {
  readonly cfg: RunConfig;
  readonly spec: EngineSpec;
  readonly ds: Dataset;
  /** Repetition, from 0. */
  readonly rep: number;
  /** The row's figures; each phase appends its own. */
  readonly res: EngineResult;
  /** The row's store directory in this repetition. */
  readonly dir: string;
}

export const log = (line: string): void => console.log(line);

/**
 * Runs `fn`, under a V8 CPU profile when `--profile` names the phase: first repetition, warmstore
 * 'sync' rows only, written to bench/.data/prof/ (summarize with tools/cpuprofile-top.mjs).
 */
export async function profiled<T>(ctx: PhaseContext, phase: Phase, fn: () => Promise<T>): Promise<T> {
  const { spec } = ctx;
  const wanted = ctx.cfg.profile.has(phase) && ctx.rep === 0;
  if (!wanted || spec.kind !== 'warmstore' || spec.durability !== 'sync') return fn();
  const dir = fileURLToPath(new URL('../.data/prof/', import.meta.url));
  fs.mkdirSync(dir, { recursive: true });
  const file = `${dir}${spec.row}-${phase}-${process.pid}.cpuprofile`;
  try {
    return await withCpuProfile(file, fn, 200);
  } finally {
    log(`    profile of ${phase}: ${file}`);
  }
}
