/**
 * Recovery: a child process stores every record (durably), reports, and is killed with SIGKILL
 * before it can close or checkpoint; then the store is opened here and timed.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { makeEngine } from '../engines/engine.ts';
import { checkRecord } from '../lib/data.ts';
import { gc, now } from '../lib/measure.ts';
import type { RecoverResult } from '../lib/results.ts';
import { type PhaseContext, log } from './context.ts';

async function crashAndReopen(ctx: PhaseContext): Promise<RecoverResult> {
  const { ds, spec, cfg } = ctx;
  const dir = path.join(cfg.root, `${spec.row}-crash`);
  fs.rmSync(dir, { recursive: true, force: true });
  const child = fork(
    fileURLToPath(new URL('./crash-child.ts', import.meta.url)),
    [JSON.stringify(spec), dir, String(ds.n), String(ds.dim), String(cfg.batch)],
    { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] },
  );
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  await new Promise<void>((resolve, reject) => {
    child.once('message', () => resolve());
    child.once('exit', (code) => reject(new Error(`crash child exited early (${code})`)));
  });
  child.kill('SIGKILL');
  await exited;
  gc();
  const eng = await makeEngine(spec, dir, ds.dim);
  try {
    const t0 = now();
    await eng.open();
    eng.getSync(ds.records[0]!.id);
    const openMs = now() - t0;
    let sampleErrors = 0;
    for (let i = 0; i < ds.n; i += Math.max(1, Math.floor(ds.n / 1000))) {
      if (!checkRecord(eng.getSync(ds.records[i]!.id), ds.records[i]!)) sampleErrors++;
    }
    const size = eng.recordCount?.();
    return { openMs, sampleErrors, ...(size !== undefined ? { size } : {}) };
  } finally {
    await eng.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

export async function recoverPhase(ctx: PhaseContext): Promise<void> {
  const rr = await crashAndReopen(ctx);
  ctx.res.recover = rr;
  const wrongSize = rr.size !== undefined && rr.size !== ctx.ds.n;
  log(
    `    open after kill -9: ${rr.openMs.toFixed(1)} ms` +
      (rr.size !== undefined ? `, size ${rr.size}` : '') +
      (rr.sampleErrors || wrongSize ? ` RECOVERY ERRORS ${rr.sampleErrors}` : ''),
  );
}
