/**
 * Scores and prints the results the recall benchmark's child processes left in a run directory
 * (each engine's `<engine>-<kind>.json`), against ground truth computed again from the vector files:
 * the figures of a run that was stopped, or whose parent is still busy with the next engine.
 *   node --import tsx tools/recall-score.ts RUN_DIR KIND N [QUERIES]
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { DATA_KINDS, type DataKind, ensureVectors } from '../recall/data.ts';
import { type DatasetRun, type EngineRecallResult, RECALL_ENGINES } from '../recall/figures.ts';
import { groundTruth } from '../recall/index.ts';
import { printDataset, scoreDataset } from '../recall/report.ts';

const [runDir, kind, nArg, qArg] = process.argv.slice(2);
if (!runDir || !kind || !(DATA_KINDS as readonly string[]).includes(kind) || !nArg)
  throw new Error('usage: recall-score.ts RUN_DIR clustered|uniform N [QUERIES]');
const dataDir = fileURLToPath(new URL('../.data/recall-data', import.meta.url));
const files = ensureVectors(dataDir, kind as DataKind, Number(nArg), Number(qArg ?? 200), 768);
const truths = groundTruth(files, 10);
const run: DatasetRun = {
  kind: kind as DataKind,
  n: files.n,
  dim: files.dim,
  generateS: 0,
  truth: truths.run,
  engines: {},
};
const read = (file: string): EngineRecallResult | { error: string } | undefined =>
  fs.existsSync(file)
    ? (JSON.parse(fs.readFileSync(file, 'utf8')) as EngineRecallResult | { error: string })
    : undefined;
for (const engine of RECALL_ENGINES) {
  const file = path.join(runDir, `${engine}-${kind}.json`);
  const r = read(file);
  if (!r) continue;
  if ('engine' in r && r.engine === 'warmstore') {
    const reopen = read(`${file}.reopen`);
    if (reopen && ('error' in reopen || reopen.engine === 'warmstore-reopen')) r.reopen = reopen;
  }
  run.engines[engine] = r;
}
printDataset(scoreDataset(run, truths.plain, truths.filtered));
