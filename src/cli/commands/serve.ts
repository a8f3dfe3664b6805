import { resolve } from 'node:path';
import { pino } from 'pino';
import { startServer } from '../../server/index.js';
import type { WarmStoreOptions } from '../../types.js';
import { EXIT_ERROR, EXIT_INTERRUPTED } from '../common.js';

export interface ServeOptions {
  data: string;
  port: number;
  host: string;
  dimension?: number;
  logLevel: string;
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
  const server = await startServer({
    dataDir: resolve(opts.data),
    host: opts.host,
    port: opts.port,
    logger,
    storeOptions,
  });

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
