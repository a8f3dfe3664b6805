import { createWriteStream } from 'node:fs';
import { open, rename, unlink } from 'node:fs/promises';
import { finished } from 'node:stream/promises';
import type { Writable } from 'node:stream';
import { resolve } from 'node:path';
import { memoryToJson } from '../../server/codec.js';
import type { SpaceInfo, StoredMemory } from '../../types.js';
import { WarmStoreClientError } from '../../client/index.js';
import {
  formatBytes,
  formatCount,
  openCliClient,
  openCliStore,
  printJson,
  progressBar,
  withStore,
  type RemoteCliOptions,
} from '../common.js';

export interface ExportOptions extends RemoteCliOptions {
  data: string;
  json?: boolean;
  /** Only this memory space; every space when absent (over `--url`, every space the key covers). */
  space?: string;
}

/** Where the memories come from: a store opened here, or a server (`--url`). */
interface ExportSource {
  /** How many memories to expect, for the progress bar. */
  total: number;
  entries: AsyncIterable<StoredMemory>;
}

/**
 * Streams every memory, or those of one space, as one JSON line each, its space included
 * (embedding as a number array, which round-trips float32 exactly). Writes respect backpressure, so memory stays flat whatever the store's size. A file
 * is written under a temporary name, fsynced and renamed at the end: an interrupted export never
 * leaves a truncated file that looks complete.
 */
export async function exportJsonl(file: string | undefined, opts: ExportOptions): Promise<void> {
  const target = file === undefined || file === '-' ? undefined : resolve(file);
  let result: { count: number; bytes: number } | undefined;
  const space = opts.space === undefined ? {} : { space: opts.space };
  const totalOf = (list: SpaceInfo[], all: number): number =>
    opts.space === undefined ? all : (list.find((s) => s.name === opts.space)?.size ?? 0);
  if (opts.url !== undefined) {
    const client = openCliClient({ ...opts, url: opts.url });
    // The total only feeds the progress bar, and storage stats need a key for every space while
    // the export itself needs one for the spaces it reads: a narrower key exports without a total.
    const total = await client.contentStorageStats().then(
      (s) => totalOf(s.spaces, s.size),
      (err: unknown) => {
        if (WarmStoreClientError.is(err, 'FORBIDDEN')) return 0;
        throw err;
      },
    );
    result = await writeExport(target, opts, { total, entries: client.entries(space) });
  } else {
    const store = await openCliStore(opts.data, { mustExist: true });
    result = await withStore(store, () =>
      writeExport(target, opts, {
        total: totalOf(store.spaces(), store.size),
        entries: store.entries(space),
      }),
    );
  }
  if (result === undefined) return;
  const { count, bytes } = result;
  if (opts.json) printJson({ exported: count, file: target, bytes });
  else process.stderr.write(`exported ${formatCount(count)} records (${formatBytes(bytes)}) to ${target}\n`);
}

/** Writes the lines; resolves with the figures, or undefined when the output was stdout. */
async function writeExport(
  target: string | undefined,
  opts: ExportOptions,
  source: ExportSource,
): Promise<{ count: number; bytes: number } | undefined> {
  const tmp = target === undefined ? undefined : `${target}.tmp-${process.pid}`;
  const out: Writable = tmp === undefined ? process.stdout : createWriteStream(tmp);
  let outError: NodeJS.ErrnoException | undefined;
  const onError = (err: NodeJS.ErrnoException): void => {
    outError ??= err;
  };
  // Stays attached: a late EPIPE on stdout must not become an unhandled 'error' event.
  out.on('error', onError);

  let count = 0;
  let bytes = 0;
  const bar = progressBar(
    target !== undefined && !opts.json,
    'exporting [{bar}] {percentage}% | {value}/{total} records',
  );
  try {
    bar.start(Math.max(source.total, 1));
    for await (const m of source.entries) {
      if (outError) break;
      const line = `${JSON.stringify(memoryToJson(m))}\n`;
      bytes += Buffer.byteLength(line);
      count++;
      if (count % 256 === 0) bar.update(count);
      if (!out.write(line) && !outError) await drainOrError(out);
    }
    bar.update(count);
    bar.stop();
    // `warmstore export | head` closing the pipe is the reader being done, not an error.
    if (target === undefined) {
      if (outError !== undefined && outError.code !== 'EPIPE') throw outError;
      return undefined;
    }
    if (outError !== undefined) throw outError;
    out.end();
    await finished(out);
    const fh = await open(tmp as string, 'r+');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp as string, target);
  } catch (err) {
    bar.stop();
    if (tmp !== undefined) {
      out.destroy();
      await unlink(tmp).catch(() => undefined);
    }
    throw err;
  }
  return { count, bytes };
}

/** Resolves on 'drain' or 'error' (the error itself is recorded by the stream's error listener). */
function drainOrError(out: Writable): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      out.off('drain', done);
      out.off('error', done);
      resolve();
    };
    out.on('drain', done);
    out.on('error', done);
  });
}
