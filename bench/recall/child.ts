/**
 * One engine of the recall benchmark in a process of its own, so that its memory figures are its
 * own and a crash or a leak cannot touch the other engines:
 *   node --import tsx recall/child.ts '<RecallJob as JSON>'
 * Writes its result (or `{ error }`) as JSON to the job's `out` file.
 */
import * as fs from 'node:fs';
import type { EngineRecallResult, RecallJob } from './figures.ts';
import { runLance } from './lance.ts';
import { runUsearch } from './usearch.ts';
import { runWarmstore, runWarmstoreReopen } from './warmstore.ts';

async function main(): Promise<void> {
  const job = JSON.parse(process.argv[2] ?? '') as RecallJob;
  fs.mkdirSync(job.dir, { recursive: true });
  let result: EngineRecallResult | { error: string };
  try {
    if (job.engine === 'warmstore') result = await runWarmstore(job);
    else if (job.engine === 'warmstore-reopen') result = await runWarmstoreReopen(job);
    else if (job.engine === 'usearch') result = await runUsearch(job);
    else result = await runLance(job);
  } catch (e) {
    console.error(e);
    result = { error: String((e as Error)?.stack ?? e) };
  }
  fs.writeFileSync(job.out, JSON.stringify(result));
}

main().then(
  // Native threads (LanceDB's pool) may outlive their handles: the result is written, so exit.
  () => process.exit(),
  (e) => {
    console.error(e);
    process.exit(1);
  },
);
