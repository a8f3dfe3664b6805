import { formatBytes, openCliStore, printJson, progressBar, withStore } from '../common.js';

export interface BackupCliOptions {
  data: string;
  /** False with `--no-link`: copy every file, also the sealed segments. */
  link: boolean;
  json?: boolean;
}

/**
 * `warmstore backup <dir>`: a consistent copy of a store that no server holds (a running server's
 * store is backed up through `POST /api/v1/maintenance/backup`). Interrupting it leaves `dir`
 * holding BACKUP-INCOMPLETE, which `open` refuses, and the store as it was.
 */
export async function backup(dir: string, opts: BackupCliOptions): Promise<void> {
  const store = await openCliStore(opts.data, { mustExist: true });
  const bar = progressBar(!opts.json, 'backup [{bar}] {percentage}% | {done}/{total} | ETA {eta_formatted}');
  const result = await withStore(store, async () => {
    let started = false;
    try {
      return await store.backup(dir, {
        link: opts.link,
        onProgress: (done, total) => {
          const payload = { done: formatBytes(done), total: formatBytes(total) };
          if (!started) {
            started = true;
            bar.start(Math.max(1, total), payload);
          }
          bar.setTotal(Math.max(1, total));
          bar.update(done, payload);
        },
      });
    } finally {
      bar.stop();
    }
  });
  if (opts.json) {
    printJson(result);
    return;
  }
  process.stdout.write(
    `backed up ${store.dir} to ${result.dir} as of LSN ${result.lsn}: ${result.files} files, ` +
      `${formatBytes(result.bytesCopied)} copied, ${formatBytes(result.bytesLinked)} hard-linked, ` +
      `in ${result.durationMs.toFixed(0)} ms\n`,
  );
}
