import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { pino } from 'pino';
import {
  MIN_KEY_LENGTH,
  loadApiKeys,
  startServer,
  type ApiKey,
  type ServerOptions,
} from '../../server/index.js';
import type { WarmStoreOptions } from '../../types.js';
import { CliError, EXIT_ERROR, EXIT_INTERRUPTED } from '../common.js';

export interface ServeOptions {
  data: string;
  port: number;
  host: string;
  dimension?: number;
  logLevel: string;
  /** JSON file of scoped API keys. */
  apiKeys?: string;
  /** Listen beyond loopback without API keys. */
  insecure?: boolean;
  /** PEM certificate and private key files for HTTPS; both or neither. */
  tlsCert?: string;
  tlsKey?: string;
  maxBatchItems?: number;
  batchBodyLimit?: number;
  /** Target size of a content segment (`segmentBytes` of the store). */
  segmentBytes?: number;
  /** Directory for backups made through `POST /api/v1/maintenance/backup`. */
  backupDir?: string;
  /** `annMinMemories` of the store. */
  annMinMemories?: number;
}

/** The environment variable holding one API key allowed everything. */
export const API_KEY_ENV = 'WARMSTORE_API_KEY';

/**
 * The keys of the server: `WARMSTORE_API_KEY` (one key, every space, write) and the entries of
 * `--api-keys FILE`. The key is read from the environment rather than a flag so that it does not
 * show in the process list.
 */
async function apiKeysOf(opts: ServeOptions): Promise<ApiKey[]> {
  const keys: ApiKey[] = [];
  const envKey = process.env[API_KEY_ENV];
  if (envKey !== undefined && envKey !== '') {
    if (envKey.length < MIN_KEY_LENGTH || !/^[\x21-\x7e]+$/.test(envKey)) {
      throw new CliError(
        'INVALID_INPUT',
        `${API_KEY_ENV} must be at least ${MIN_KEY_LENGTH} printable ASCII characters without spaces`,
      );
    }
    keys.push({ key: envKey, spaces: ['*'], access: 'write' });
  }
  if (opts.apiKeys !== undefined) keys.push(...(await loadApiKeys(resolve(opts.apiKeys))));
  return keys;
}

async function tlsOf(opts: ServeOptions): Promise<ServerOptions['tls']> {
  if (opts.tlsCert === undefined && opts.tlsKey === undefined) return undefined;
  if (opts.tlsCert === undefined || opts.tlsKey === undefined) {
    throw new CliError('INVALID_INPUT', '--tls-cert and --tls-key go together');
  }
  const [cert, key] = await Promise.all([readFile(resolve(opts.tlsCert)), readFile(resolve(opts.tlsKey))]);
  return { cert, key };
}

/**
 * Runs the HTTP server until SIGTERM or SIGINT. The first signal shuts down gracefully (stop
 * accepting, abort a running compaction, let in-flight requests finish, close the store); a second
 * one exits at once with 130, which is safe because every acknowledged write is already durable.
 */
export async function serve(opts: ServeOptions): Promise<void> {
  const logger = pino({ level: opts.logLevel, base: { pid: process.pid } });
  const storeOptions: WarmStoreOptions = {};
  if (opts.dimension !== undefined) storeOptions.dimension = opts.dimension;
  if (opts.segmentBytes !== undefined) storeOptions.segmentBytes = opts.segmentBytes;
  if (opts.annMinMemories !== undefined) storeOptions.annMinMemories = opts.annMinMemories;
  const apiKeys = await apiKeysOf(opts);
  const tls = await tlsOf(opts);
  const server = await startServer({
    dataDir: resolve(opts.data),
    host: opts.host,
    port: opts.port,
    logger,
    storeOptions,
    apiKeys,
    insecure: opts.insecure === true,
    ...(tls === undefined ? {} : { tls }),
    ...(opts.maxBatchItems === undefined ? {} : { maxBatchItems: opts.maxBatchItems }),
    ...(opts.batchBodyLimit === undefined ? {} : { batchBodyLimit: opts.batchBodyLimit }),
    ...(opts.backupDir === undefined ? {} : { backupDir: resolve(opts.backupDir) }),
  });
  logger.info({ apiKeys: apiKeys.length, tls: tls !== undefined }, 'authentication configured');

  let signals = 0;
  const onSignal = (signal: NodeJS.Signals): void => {
    signals++;
    if (signals > 1) {
      logger.warn({ signal }, 'second signal: exiting immediately');
      logger.flush();
      process.exit(EXIT_INTERRUPTED);
    }
    logger.info({ signal }, 'shutting down');
    server.close().then(
      () => {
        logger.info({}, 'shutdown complete');
        finish(0);
      },
      (err: unknown) => {
        logger.error({ err }, 'shutdown failed');
        finish(EXIT_ERROR);
      },
    );
  };
  const finish = (code: number): void => {
    process.exitCode = code;
    // Exit on our own terms even if a stray handle (a client's half-open socket) lingers.
    logger.flush(() => setTimeout(() => process.exit(code), 100).unref());
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}
