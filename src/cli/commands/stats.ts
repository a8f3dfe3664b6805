import type { ContentStorageStats, SpaceInfo } from '../../types.js';
import { formatSpaces } from './spaces.js';
import {
  formatBytes,
  formatCount,
  openCliClient,
  openCliStore,
  printJson,
  withStore,
  type RemoteCliOptions,
} from '../common.js';

export interface StatsOptions extends RemoteCliOptions {
  data: string;
  json?: boolean;
}

export async function stats(opts: StatsOptions): Promise<void> {
  if (opts.url !== undefined) {
    await remoteStats({ ...opts, url: opts.url });
    return;
  }
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
        spaces: store.spaces(),
        ...(interrupted ? { interruptedCompaction: interrupted } : {}),
      });
      return;
    }
    const lines: Array<[string, string]> = [
      ['store', store.dir],
      ['dimension', String(store.dimension)],
      ['memories', formatCount(store.size)],
      ...contentLines(s),
    ];
    if (interrupted) {
      lines.push([
        'interrupted',
        `compaction run ${interrupted.runId}: ${interrupted.victimsRemaining.length} segments left, ` +
          `resumes at the next compaction`,
      ]);
    }
    printTable(lines);
    printSpaces(store.spaces());
  });
}

/** The same figures from a running server (`GET /api/v1/metrics/storage`). */
async function remoteStats(opts: StatsOptions & { url: string }): Promise<void> {
  const client = openCliClient(opts);
  const s = await client.contentStorageStats();
  if (opts.json) {
    printJson({ url: client.url, ...s });
    return;
  }
  printTable([
    ['server', client.url],
    ['memories', formatCount(s.size)],
    ...contentLines(s),
    ['compacting', s.isCompacting ? 'yes' : 'no'],
  ]);
  printSpaces(s.spaces);
}

/** The spaces under the table, one per line with its number of memories. */
function printSpaces(list: readonly SpaceInfo[]): void {
  process.stdout.write(`spaces (${list.length})\n${formatSpaces(list, '  ')}`);
}

function contentLines(s: ContentStorageStats): Array<[string, string]> {
  return [
    ['segments', formatCount(s.segments)],
    [
      'content',
      `${formatBytes(s.totalBytes)} total, ${formatBytes(s.liveBytes)} live, ${formatBytes(s.deadBytes)} dead`,
    ],
    ['fragmentation', `${(s.fragmentationRatio * 100).toFixed(1)} %`],
  ];
}

function printTable(lines: Array<[string, string]>): void {
  const width = Math.max(...lines.map(([k]) => k.length));
  for (const [k, v] of lines) process.stdout.write(`${k.padEnd(width)}  ${v}\n`);
}
