import type { CompactionStats, CompactProgress } from '../../types.js';
import {
  CliError,
  EXIT_INTERRUPTED,
  formatBytes,
  formatCount,
  onInterrupt,
  openCliClient,
  openCliStore,
  printJson,
  progressBar,
  withStore,
  type RemoteCliOptions,
} from '../common.js';

export interface CompactCliOptions extends RemoteCliOptions {
  data: string;
  force?: boolean;
  json?: boolean;
}

export async function compact(opts: CompactCliOptions): Promise<void> {
  const stats =
    opts.url === undefined ? await compactLocal(opts) : await compactRemote({ ...opts, url: opts.url });
  if (opts.json) {
    printJson(stats);
    return;
  }
  // A server older than slot relocation sends neither figure.
  const slotsMoved = stats.slotsMoved ?? 0;
  const recordBytes = stats.recordBytesReclaimed ?? 0;
  const records =
    slotsMoved > 0 || recordBytes > 0
      ? `record files: moved ${formatCount(slotsMoved)} memories into free slots, reclaimed ${formatBytes(recordBytes)}\n`
      : '';
  if (stats.segmentsCompacted === 0) {
    process.stdout.write(
      records ||
        `nothing to compact (no sealed segment above the dead-byte threshold${opts.force ? '' : '; try --force'})\n`,
    );
    return;
  }
  process.stdout.write(records);
  process.stdout.write(
    `compacted ${formatCount(stats.segmentsCompacted)} segment(s): moved ${formatCount(stats.recordsMoved)} records, ` +
      `reclaimed ${formatBytes(stats.bytesReclaimed)} (${formatBytes(stats.bytesBefore)} -> ${formatBytes(stats.bytesAfter)}) ` +
      `in ${stats.durationMs.toFixed(0)} ms; longest pause ${stats.maxPauseMs.toFixed(2)} ms` +
      `${stats.resumed ? '; resumed an interrupted run' : ''}\n`,
  );
}

async function compactLocal(opts: CompactCliOptions): Promise<CompactionStats> {
  const store = await openCliStore(opts.data, { mustExist: true });
  const bar = progressBar(
    !opts.json,
    '{phase} [{bar}] {percentage}% | {copied}/{toCopy} | {records} records | ETA {eta_formatted}',
  );
  const controller = new AbortController();
  // Ctrl-C aborts the compaction cleanly (the store discards or keeps its checkpoint); a second
  // Ctrl-C exits at once, which is also safe.
  const removeHandlers = onInterrupt(() =>
    controller.abort(new CliError('ABORTED', 'compaction interrupted', EXIT_INTERRUPTED)),
  );
  try {
    return await withStore(store, async () => {
      let started = false;
      const onProgress = (p: CompactProgress): void => {
        const payload = {
          phase: p.phase.padEnd(10),
          copied: formatBytes(p.bytesCopied),
          toCopy: formatBytes(p.bytesToCopy),
          records: formatCount(p.recordsMoved),
        };
        const total = Math.max(1, p.bytesToCopy);
        if (!started) {
          started = true;
          bar.start(total, payload);
        }
        bar.setTotal(total);
        bar.update(p.phase === 'done' ? total : Math.min(p.bytesCopied, total), payload);
      };
      try {
        return await store.compact({ signal: controller.signal, onProgress, force: opts.force === true });
      } finally {
        bar.stop();
      }
    });
  } catch (err) {
    if (controller.signal.aborted) throw controller.signal.reason;
    throw err;
  } finally {
    removeHandlers();
  }
}

/**
 * Asks the server to compact and waits for its answer; HTTP carries no progress, so there is no
 * bar. Ctrl-C only stops the waiting: the compaction goes on in the server, which is safe.
 */
async function compactRemote(opts: CompactCliOptions & { url: string }): Promise<CompactionStats> {
  const client = openCliClient(opts);
  const controller = new AbortController();
  const removeHandlers = onInterrupt(() =>
    controller.abort(
      new CliError(
        'ABORTED',
        'stopped waiting for the server; the compaction goes on there',
        EXIT_INTERRUPTED,
      ),
    ),
  );
  try {
    return await client.compact({ force: opts.force === true, signal: controller.signal });
  } finally {
    removeHandlers();
  }
}
