import { formatBytes, formatCount, openCliStore, printJson, withStore } from '../common.js';

export interface StatsOptions {
  data: string;
  json?: boolean;
}

export async function stats(opts: StatsOptions): Promise<void> {
  const store = await openCliStore(opts.data, { mustExist: true });
  await withStore(store, async () => {
    const s = store.contentStorageStats();
    const interrupted = store.interruptedCompaction;
    if (opts.json) {
      printJson({
        dir: store.dir,
        dimension: store.dimension,
        size: store.size,
        ...s,
        ...(interrupted ? { interruptedCompaction: interrupted } : {}),
      });
      return;
    }
    const lines: Array<[string, string]> = [
      ['store', store.dir],
      ['dimension', String(store.dimension)],
      ['memories', formatCount(store.size)],
      ['segments', formatCount(s.segments)],
      [
        'content',
        `${formatBytes(s.totalBytes)} total, ${formatBytes(s.liveBytes)} live, ${formatBytes(s.deadBytes)} dead`,
      ],
      ['fragmentation', `${(s.fragmentationRatio * 100).toFixed(1)} %`],
    ];
    if (interrupted) {
      lines.push([
        'interrupted',
        `compaction run ${interrupted.runId}: ${interrupted.victimsRemaining.length} segments left, ` +
          `resumes at the next compaction`,
      ]);
    }
    const width = Math.max(...lines.map(([k]) => k.length));
    for (const [k, v] of lines) process.stdout.write(`${k.padEnd(width)}  ${v}\n`);
  });
}
