import { readdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { createRequire } from 'node:module';
import { InvalidArgumentError } from 'commander';
import cliProgress from 'cli-progress';
import { WarmStore } from '../index.js';
import { WarmStoreError } from '../errors.js';
import { WarmStoreClient, WarmStoreClientError } from '../client/index.js';
import type { WarmStoreOptions } from '../types.js';

export const DEFAULT_DATA_DIR = './warmstore-data';

/** Exit codes: 1 is reserved for "ran fine and found problems" (verify), 2 for errors. */
export const EXIT_PROBLEMS = 1;
export const EXIT_ERROR = 2;
export const EXIT_INTERRUPTED = 130;

/** An error of the CLI itself (no store at the path, bad input file), printed like store errors. */
export class CliError extends Error {
  override readonly name = 'CliError';
  constructor(
    readonly code: string,
    message: string,
    readonly exitCode = EXIT_ERROR,
  ) {
    super(message);
  }
}

/** `error CODE: message` for any thrown value; the one format scripts can grep. */
export function formatError(err: unknown): string {
  if (err instanceof WarmStoreError || err instanceof CliError || err instanceof WarmStoreClientError) {
    return `error ${err.code}: ${err.message}`;
  }
  const errno = (err as NodeJS.ErrnoException | undefined)?.code;
  if (typeof errno === 'string' && /^E[A-Z]+$/.test(errno)) {
    return `error IO_ERROR: ${(err as Error).message}`;
  }
  if (err instanceof Error && err.name === 'AbortError') return `error ABORTED: ${err.message}`;
  return `error INTERNAL_ERROR: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`;
}

export function parseIntOption(min: number, max = Number.MAX_SAFE_INTEGER) {
  return (value: string): number => {
    const n = Number(value);
    if (!/^\s*-?\d+\s*$/.test(value) || !Number.isSafeInteger(n) || n < min || n > max) {
      throw new InvalidArgumentError(`must be an integer in [${min}, ${max}]`);
    }
    return n;
  };
}

export function parseNumberOption(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n)) throw new InvalidArgumentError('must be a finite number');
  return n;
}

/** True when `dir` holds nothing (or does not exist), i.e. opening it would create a new store. */
export function isNewStoreDir(dir: string): boolean {
  try {
    return readdirSync(dir).length === 0;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return true;
    throw err;
  }
}

export interface OpenCliStoreOptions {
  /** Refuse a directory that holds no store instead of creating one (stats, verify, export, compact). */
  mustExist: boolean;
  dimension?: number | undefined;
}

/**
 * Opens a store for a one-shot command. The maintenance loop and startup compaction are off: a
 * `stats` or `verify` must not start rewriting segments behind the user's back, and `compact`
 * runs its own compaction with a progress bar.
 */
export async function openCliStore(dataDir: string, options: OpenCliStoreOptions): Promise<WarmStore> {
  const dir = resolve(dataDir);
  if (options.mustExist && isNewStoreDir(dir)) {
    throw new CliError('NOT_FOUND', `no store at ${dir} (set --data or WARMSTORE_DATA)`);
  }
  const storeOptions: WarmStoreOptions = {
    maintenanceIntervalMs: false,
    maintenance: { startupCompaction: 'off' },
  };
  if (options.dimension !== undefined) storeOptions.dimension = options.dimension;
  return WarmStore.open(dir, storeOptions);
}

/** Options of a command that can work through a running server (`--url`) instead of a directory. */
export interface RemoteCliOptions {
  /** Base URL of a `warmstore serve`; the command then goes through the HTTP API. */
  url?: string;
  /** Bearer key for the server (`--api-key` or WARMSTORE_API_KEY). */
  apiKey?: string;
}

/**
 * The client of a one-shot command. The client's retries cover a server that is restarting; the
 * per-request timeout stays, except for compaction, which waits as long as it takes.
 */
export function openCliClient(opts: RemoteCliOptions & { url: string }): WarmStoreClient {
  try {
    return new WarmStoreClient({
      url: opts.url,
      ...(opts.apiKey === undefined ? {} : { apiKey: opts.apiKey }),
    });
  } catch (err) {
    if (WarmStoreError.is(err, 'INVALID_INPUT')) {
      throw new CliError(
        'INVALID_INPUT',
        `--${err.details.field === 'apiKey' ? 'api-key' : 'url'}: ${err.message}`,
      );
    }
    throw err;
  }
}

/** Runs `fn` with the store and closes it whatever happens; a close error surfaces only if `fn` succeeded. */
export async function withStore<T>(store: WarmStore, fn: (store: WarmStore) => Promise<T>): Promise<T> {
  let result: T;
  try {
    result = await fn(store);
  } catch (err) {
    await store.close().catch(() => undefined);
    throw err;
  }
  await store.close();
  return result;
}

/** A progress bar on stderr, or a no-op when disabled (`--json`) or when stderr is not a terminal. */
export interface Progress {
  start(total: number, payload?: Record<string, unknown>): void;
  update(value: number, payload?: Record<string, unknown>): void;
  setTotal(total: number): void;
  stop(): void;
}

const noProgress: Progress = { start() {}, update() {}, setTotal() {}, stop() {} };

export function progressBar(enabled: boolean, format: string): Progress {
  if (!enabled || !process.stderr.isTTY) return noProgress;
  const bar = new cliProgress.SingleBar(
    { stream: process.stderr, format, hideCursor: true, clearOnComplete: true, etaBuffer: 50, fps: 10 },
    cliProgress.Presets.shades_classic,
  );
  let started = false;
  return {
    start(total, payload) {
      started = true;
      bar.start(total, 0, payload);
    },
    update(value, payload) {
      if (started) bar.update(value, payload);
    },
    setTotal(total) {
      if (started) bar.setTotal(total);
    },
    stop() {
      if (started) bar.stop();
      started = false;
    },
  };
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (Math.abs(v) >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${v} B` : `${v.toFixed(1)} ${units[u]}`;
}

export function formatCount(n: number): string {
  return n.toLocaleString('en-US');
}

/** Prints one JSON object on stdout: the whole contract of `--json`. */
export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value)}\n`);
}

export function packageVersion(): string {
  try {
    const pkg = createRequire(import.meta.url)('../../package.json') as { version?: unknown };
    return typeof pkg.version === 'string' ? pkg.version : '0.0.0';
  } catch {
    return '0.0.0';
  }
}

/**
 * Installs SIGINT/SIGTERM handlers for a long command: the first signal calls `onFirst` (abort
 * politely), a second exits at once with 130. The store is crash-safe, so exiting mid-write loses
 * nothing acknowledged. Returns a function that removes the handlers.
 */
export function onInterrupt(onFirst: (signal: NodeJS.Signals) => void): () => void {
  let count = 0;
  const handler = (signal: NodeJS.Signals): void => {
    count++;
    if (count > 1) {
      process.stderr.write(`\nreceived ${signal} again, exiting now\n`);
      process.exit(EXIT_INTERRUPTED);
    }
    onFirst(signal);
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  return () => {
    process.off('SIGINT', handler);
    process.off('SIGTERM', handler);
  };
}
