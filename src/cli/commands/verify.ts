import { WarmStoreError } from '../../errors.js';
import type { VerifyProblem, VerifyReport } from '../../types.js';
import {
  EXIT_PROBLEMS,
  formatBytes,
  formatCount,
  openCliClient,
  openCliStore,
  printJson,
  progressBar,
  withStore,
  type RemoteCliOptions,
} from '../common.js';

export interface VerifyCliOptions extends RemoteCliOptions {
  data: string;
  json?: boolean;
}

type Report = VerifyReport;
type Problem = VerifyProblem;

/** fsck: exit 0 when clean, 1 naming each problem, 2 when verification itself could not run. */
export async function verify(opts: VerifyCliOptions): Promise<void> {
  let report: Report;
  if (opts.url !== undefined) {
    // A running server verifies its own store; HTTP carries no progress.
    report = await openCliClient({ ...opts, url: opts.url }).verify();
  } else {
    report = await verifyLocal(opts);
  }
  print(report, opts.json === true);
}

async function verifyLocal(opts: VerifyCliOptions): Promise<Report> {
  let report: Report;
  try {
    const store = await openCliStore(opts.data, { mustExist: true });
    report = await withStore(store, async () => {
      const bar = progressBar(!opts.json, 'verifying [{bar}] {percentage}% | {value}/{total} records');
      let started = false;
      try {
        return await store.verify({
          onProgress: (done, total) => {
            if (!started) {
              started = true;
              bar.start(Math.max(total, 1));
            }
            bar.setTotal(Math.max(total, 1));
            bar.update(done);
          },
        });
      } finally {
        bar.stop();
      }
    });
  } catch (err) {
    // A store too damaged to open is the strongest finding verify can make, not a failure to run.
    if (!WarmStoreError.is(err, 'CORRUPTION_DETECTED')) throw err;
    const problem: Problem = { kind: 'open', message: err.message };
    if (err.details.file !== undefined) problem.file = err.details.file;
    if (err.details.id !== undefined) problem.id = err.details.id;
    report = { ok: false, records: 0, segments: 0, bytesChecked: 0, problems: [problem] };
  }
  return report;
}

function print(report: Report, json: boolean): void {
  if (json) {
    printJson(report);
  } else {
    for (const p of report.problems) {
      const where = [p.id !== undefined ? `id ${JSON.stringify(p.id)}` : '', p.file ?? '']
        .filter(Boolean)
        .join(' in ');
      process.stdout.write(`problem ${p.kind}${where ? ` (${where})` : ''}: ${p.message}\n`);
    }
    process.stdout.write(
      `${report.ok ? 'ok' : `${formatCount(report.problems.length)} problem(s) found`}: ` +
        `${formatCount(report.records)} records, ${formatCount(report.segments)} segments, ` +
        `${formatBytes(report.bytesChecked)} of content checked\n`,
    );
  }
  if (!report.ok) process.exitCode = EXIT_PROBLEMS;
}
