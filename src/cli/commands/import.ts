import { createReadStream, statSync } from 'node:fs';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import type { WarmStore } from '../../index.js';
import { WarmStoreError, invalid } from '../../errors.js';
import { METADATA_FIELDS, type MemoryRecord } from '../../types.js';
import { recordFromJson, type MemoryInputJson } from '../../server/codec.js';
import {
  CliError,
  EXIT_INTERRUPTED,
  formatBytes,
  formatCount,
  isNewStoreDir,
  onInterrupt,
  openCliClient,
  openCliStore,
  printJson,
  progressBar,
  type RemoteCliOptions,
} from '../common.js';

/** Where the records go: a store opened here, or a server (`--url`). */
interface ImportSink {
  putMany(records: MemoryRecord[]): Promise<void>;
  close(): Promise<void>;
  /** What became of a batch in which a record was refused, when the error does not say. */
  readonly onRefusal: string | undefined;
}

export interface ImportOptions extends RemoteCliOptions {
  data: string;
  json?: boolean;
  dimension?: number;
  batch: number;
  /** Put every record in this memory space, whatever its own `space` field says. */
  space?: string;
}

const KNOWN_FIELDS = new Set<string>(['id', 'space', 'embedding', 'content', ...METADATA_FIELDS]);

/**
 * Checks the JSON shape of one line; value checks (dimension, ranges, id length) are the store's.
 * Unknown fields are refused, as over HTTP: a misspelt `decay_rate` must not import as the default.
 */
export function parseRecordLine(line: string): MemoryRecord {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch (err) {
    throw invalid('line', `not valid JSON (${(err as Error).message})`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw invalid('line', 'must be a JSON object');
  const o = value as Record<string, unknown>;
  for (const k of Object.keys(o)) if (!KNOWN_FIELDS.has(k)) throw invalid(k, 'is not a known field');
  if (typeof o['id'] !== 'string') throw invalid('id', 'must be a string');
  if (o['space'] !== undefined && typeof o['space'] !== 'string') throw invalid('space', 'must be a string');
  if (!Array.isArray(o['embedding']) && typeof o['embedding'] !== 'string') {
    throw invalid('embedding', 'must be an array of numbers or a base64 string');
  }
  if (o['content'] !== undefined && o['content'] !== null && typeof o['content'] !== 'string') {
    throw invalid('content', 'must be a string or null');
  }
  for (const f of METADATA_FIELDS) {
    if (o[f] !== undefined && typeof o[f] !== 'number') throw invalid(f, 'must be a number');
  }
  return recordFromJson(o as unknown as MemoryInputJson);
}

/**
 * Streams JSON Lines into the store in batches of `--batch` (one group commit each). Each record
 * goes to the space its line names (`'default'` when none), or to `--space` when given. Memory stays
 * bounded by one batch whatever the file size. A bad line stops the import with its line number;
 * the batches before it are already durable, and re-running the import is idempotent (puts replace).
 */
export async function importJsonl(file: string, opts: ImportOptions): Promise<void> {
  if (opts.url !== undefined && opts.dimension !== undefined) {
    throw new CliError('INVALID_INPUT', '--dimension cannot be used with --url: the server has its own');
  }
  const started = performance.now();
  let totalBytes = 0;
  if (file !== '-') {
    try {
      const st = statSync(file);
      if (st.isFile()) totalBytes = st.size;
    } catch (err) {
      throw new CliError('IO_ERROR', `cannot read ${file}: ${(err as Error).message}`);
    }
  }
  const input: Readable = file === '-' ? process.stdin : createReadStream(file);
  // Progress counts the bytes of the lines consumed; a 'data' listener on the input would also
  // work but would put the stream in flowing mode behind readline's back.
  let bytesRead = 0;
  const inputError = new Promise<never>((_resolve, reject) => {
    input.once('error', (err) => reject(new CliError('IO_ERROR', `cannot read ${file}: ${err.message}`)));
  });
  inputError.catch(() => undefined);

  const bar = progressBar(!opts.json, 'importing [{bar}] {percentage}% | {records} records | {read}');
  const interrupted = { value: false };
  const removeHandlers = onInterrupt(() => {
    interrupted.value = true;
  });

  const newStore = opts.url === undefined && isNewStoreDir(opts.data);
  let sink: ImportSink | undefined;
  let batch: MemoryRecord[] = [];
  // The line of each record of the batch: blank lines make the two counts drift apart.
  let batchLines: number[] = [];
  let lineNo = 0;
  let imported = 0;

  const openSink = async (first: MemoryRecord | undefined): Promise<ImportSink> => {
    if (opts.url !== undefined) {
      const client = openCliClient({ ...opts, url: opts.url });
      return {
        putMany: (records) => client.putMany(records),
        close: () => client.close(),
        // The client's error says which records were written.
        onRefusal: undefined,
      };
    }
    // A new store takes its dimension from --dimension or else from the first record, so that
    // `warmstore import dump.jsonl` works on an empty directory without knowing the model.
    const dimension = opts.dimension ?? (newStore ? first?.embedding.length : undefined);
    const store: WarmStore = await openCliStore(opts.data, { mustExist: false, dimension });
    return {
      putMany: (records) => store.putMany(records),
      close: () => store.close(),
      onRefusal: 'nothing from this batch was written',
    };
  };

  const flush = async (): Promise<void> => {
    if (batch.length === 0) return;
    sink ??= await openSink(batch[0]);
    try {
      await sink.putMany(batch);
    } catch (err) {
      if (WarmStoreError.is(err, 'INVALID_INPUT')) {
        const index = refusedIndex(err, batch);
        const where = index !== undefined ? `line ${batchLines[index]}` : `lines ${batchLines[0]}-${lineNo}`;
        const why = sink.onRefusal === undefined ? '' : ` (${sink.onRefusal})`;
        throw new WarmStoreError('INVALID_INPUT', `${where}: ${err.message}${why}`, err.details);
      }
      throw err;
    }
    imported += batch.length;
    batch = [];
    batchLines = [];
    bar.update(totalBytes > 0 ? Math.min(bytesRead, totalBytes) : imported, {
      records: formatCount(imported),
      read: formatBytes(bytesRead),
    });
  };

  bar.start(totalBytes > 0 ? totalBytes : 1, { records: '0', read: '0 B' });
  let failed = false;
  try {
    const lines = createInterface({ input, crlfDelay: Infinity });
    const consume = async (): Promise<void> => {
      for await (const line of lines) {
        lineNo++;
        bytesRead += Buffer.byteLength(line) + 1;
        if (interrupted.value) break;
        if (line.trim() === '') continue;
        let record: MemoryRecord;
        try {
          record = parseRecordLine(line);
        } catch (err) {
          if (err instanceof WarmStoreError) {
            throw new WarmStoreError('INVALID_INPUT', `line ${lineNo}: ${err.message}`, err.details);
          }
          throw err;
        }
        if (opts.space !== undefined) record.space = opts.space;
        batch.push(record);
        batchLines.push(lineNo);
        if (batch.length >= opts.batch) await flush();
      }
      if (!interrupted.value) await flush();
    };
    await Promise.race([consume(), inputError]);
  } catch (err) {
    failed = true;
    throw err;
  } finally {
    bar.stop();
    removeHandlers();
    input.destroy();
    const opened = sink as ImportSink | undefined;
    // The first error is the one worth reporting; a close failure after it would hide it.
    if (failed) await opened?.close().catch(() => undefined);
    else await opened?.close();
  }
  if (interrupted.value) {
    throw new CliError(
      'ABORTED',
      `import interrupted after ${imported} records (all of them durable)`,
      EXIT_INTERRUPTED,
    );
  }

  const durationMs = performance.now() - started;
  const summary = {
    imported,
    lines: lineNo,
    durationMs: Math.round(durationMs),
    recordsPerSecond: Math.round(imported / Math.max(durationMs / 1000, 1e-9)),
  };
  if (opts.json) printJson(summary);
  else {
    process.stdout.write(
      `imported ${formatCount(imported)} records from ${formatCount(lineNo)} lines in ${summary.durationMs} ms ` +
        `(${formatCount(summary.recordsPerSecond)} records/s)\n`,
    );
  }
}

/**
 * The position in the batch of the record an INVALID_INPUT names: `details.index` from the client
 * (it says `records[i]`), else the record with `details.id` from the store.
 */
function refusedIndex(err: WarmStoreError, batch: MemoryRecord[]): number | undefined {
  const index = err.details['index'];
  if (typeof index === 'number' && index >= 0 && index < batch.length) return index;
  const id = err.details.id;
  if (id === undefined) return undefined;
  const found = batch.findIndex((r) => r.id === id);
  return found === -1 ? undefined : found;
}
