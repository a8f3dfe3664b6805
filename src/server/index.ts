import { DEFAULTS } from '../engine/options.js';
import { createRequire } from 'node:module';
import { resolve } from 'node:path';
import Fastify, { LogController, type FastifyInstance, type FastifyRequest } from 'fastify';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import { pino, type Logger } from 'pino';
import type { Attributes, Span } from '@opentelemetry/api';
import { WarmStore } from '../index.js';
import { invalid } from '../errors.js';
import type { StorageStatus, WarmStoreOptions } from '../types.js';
import { WarmStoreMetrics, type MetricsOptions } from '../metrics/index.js';
import { registerBackupRoute } from './backup-route.js';
import { BATCH_PUT_URL, registerBatchRoutes } from './batch.js';
import { parseBatchBody } from './batch-body.js';
import { registerMemoryRoutes } from './memory-routes.js';
import { registerSpaceRoutes } from './space-routes.js';
import { HttpError, toErrorResponse } from './errors.js';
import { registerExportRoute } from './export-route.js';
import { attachStoreLogging } from './logging.js';
import { memoryInputSchema, routeSchemas, sharedSchemas, type BatchLimits } from './schemas.js';
import type { StoreApi } from './store-api.js';
import { traced, tracedNow } from './tracing.js';
import {
  KeyRing,
  OPEN,
  READ_STORE,
  WRITE_STORE,
  installAuth,
  isLoopback,
  parseApiKeys,
  type ApiKey,
} from './auth.js';

export {
  STATUS_BY_CODE,
  HttpError,
  toErrorResponse,
  type ErrorBody,
  type ServerErrorCode,
} from './errors.js';
export {
  decodeEmbedding,
  encodeEmbeddingBase64,
  memoryJsonText,
  memoryToJson,
  recordFromJson,
  EMBEDDING_ENCODINGS,
  MEMORY_FIELDS,
} from './codec.js';
export type { EmbeddingEncoding, MemoryField, MemoryJson, MemoryInputJson, MemoryView } from './codec.js';
export type { StoreApi } from './store-api.js';
export { DEFAULT_SPACE, checkSpace } from './wire.js';
export {
  KeyRing,
  MIN_KEY_LENGTH,
  isLoopback,
  loadApiKeys,
  parseApiKeys,
  type ApiKey,
  type ApiKeyAccess,
  type RouteAuth,
} from './auth.js';
// The package exports no `warmstore/metrics` entry; applications that embed the store without the
// server get its metrics and compaction logging from here.
export {
  createMetrics,
  WarmStoreMetrics,
  type MetricsOptions,
  type MetricsSource,
} from '../metrics/index.js';
export { attachStoreLogging, type StoreLoggingOptions } from './logging.js';

/** Default TCP port of `warmstore serve`. */
export const DEFAULT_PORT = 7432;
/** Default interface: loopback, the one place an API without keys may listen. */
export const DEFAULT_HOST = '127.0.0.1';

/** Default most items of one batch request. */
export const DEFAULT_MAX_BATCH_ITEMS = 1000;

/** Log paths that could carry a credential. */
const REDACTED_PATHS = [
  'req.headers.authorization',
  'request.headers.authorization',
  'headers.authorization',
  'authorization',
];

const MiB = 1024 * 1024;

/** Options of `createServer` and `startServer`. */
export interface ServerOptions {
  /**
   * Directory of the store, opened (and created if missing) with `storeOptions`. Required unless
   * `store` is given.
   * @default undefined
   */
  dataDir?: string;
  /**
   * A store the caller already opened, served instead of opening `dataDir`. Whoever opens a store
   * closes it: `close()` then leaves this one open.
   * @default undefined
   */
  store?: StoreApi;
  /**
   * Interface to listen on. Without `apiKeys` the server refuses any host but loopback unless
   * `insecure` is set.
   * @default '127.0.0.1'
   */
  host?: string;
  /**
   * API keys: requests then need `Authorization: Bearer KEY` (401 without a valid key, 403 when
   * the key's access or spaces do not cover the request). `/healthz` and the API document stay
   * open. Empty or absent: no authentication.
   * @default []
   */
  apiKeys?: readonly ApiKey[];
  /**
   * Listen beyond loopback without API keys, leaving the API open to anyone who can reach it.
   * @default false
   */
  insecure?: boolean;
  /**
   * Serve HTTPS with this certificate and private key (PEM). The keys of `apiKeys` cross the
   * network in the clear without it.
   * @default undefined (plain HTTP)
   */
  tls?: { cert: string | Buffer; key: string | Buffer };
  /** TCP port to listen on; 0 picks a free one (see `url` of the started server). @default 7432 */
  port?: number;
  /**
   * Largest request body in bytes; a larger one gets 413. The default leaves room for a content of
   * `maxContentBytes` plus JSON escaping and the embedding.
   * @default 2 * storeOptions.maxContentBytes + 1 MiB (33 MiB with the store defaults)
   */
  bodyLimit?: number;
  /**
   * Most items (memories or ids) one batch request may hold; more answer 413.
   * @default 1000
   */
  maxBatchItems?: number;
  /**
   * Largest body of a batch request in bytes; a larger one gets 413.
   * @default the larger of `bodyLimit` and 64 MiB
   */
  batchBodyLimit?: number;
  /**
   * Options of `WarmStore.open` when `dataDir` is used. The server's logger is passed as
   * `logger` unless one is set here.
   * @default {}
   */
  storeOptions?: WarmStoreOptions;
  /**
   * A pino logger for requests, compaction progress and the store, or `false` for silence.
   * @default pino at level 'info' on stdout
   */
  logger?: Logger | false;
  /**
   * Directory under which `POST /api/v1/maintenance/backup` writes backups, one subdirectory per
   * request (named by the request). Absent: the route answers 400.
   * @default undefined
   */
  backupDir?: string;
  /** Serve the OpenAPI document at `/docs/json` and Swagger UI at `/docs`. @default true */
  docs?: boolean;
  /** Options of the Prometheus metrics (registry, default process metrics, labels). @default {} */
  metrics?: MetricsOptions;
  /**
   * How long `close()` lets in-flight requests finish before destroying their connections. The
   * store is crash-safe, so cutting a request short loses nothing acknowledged.
   * @default 10000
   */
  shutdownTimeoutMs?: number;
}

/** A server built by `createServer`: the Fastify app, the store it serves, and its metrics. */
export interface WarmStoreServer {
  readonly app: FastifyInstance;
  readonly store: StoreApi;
  readonly metrics: WarmStoreMetrics;
  readonly logger: Logger;
  /** True from the first call of `close()`: new requests then get 503 SHUTTING_DOWN. */
  readonly closing: boolean;
  /** Listens on `host`:`port` from the options and resolves to the base URL, e.g. `http://127.0.0.1:7432`. */
  listen(): Promise<string>;
  /**
   * Graceful shutdown: refuses new requests, aborts a compaction started through the API, waits
   * for in-flight requests, then closes the store if the server opened it. Idempotent.
   */
  close(): Promise<void>;
}

/**
 * Builds the HTTP server of a store without listening (use `listen()` or `startServer`). Tests
 * can drive it with `app.inject`.
 */
export async function createServer(options: ServerOptions): Promise<WarmStoreServer> {
  const apiKeys = options.apiKeys === undefined ? [] : parseApiKeys(options.apiKeys);
  const host = options.host ?? DEFAULT_HOST;
  if (apiKeys.length === 0 && options.insecure !== true && !isLoopback(host)) {
    throw invalid(
      'host',
      `refusing to listen on ${host} without API keys: anyone who can reach it could read and ` +
        'delete every memory. Configure keys (WARMSTORE_API_KEY or --api-keys FILE), listen on ' +
        '127.0.0.1, or pass --insecure to accept an open API.',
    );
  }
  const base =
    options.logger === false ? pino({ enabled: false }) : (options.logger ?? pino({ level: 'info' }));
  // Whatever logger the caller gave, credentials never reach it.
  const logger = base.child({}, { redact: { paths: REDACTED_PATHS, censor: '[redacted]' } });
  let store: StoreApi;
  const ownsStore = options.store === undefined;
  if (options.store !== undefined) {
    store = options.store;
  } else {
    if (options.dataDir === undefined) throw new TypeError('createServer needs `dataDir` or `store`');
    const storeOptions: WarmStoreOptions = { ...options.storeOptions };
    if (storeOptions.logger === undefined) storeOptions.logger = logger.child({ component: 'store' });
    store = await WarmStore.open(options.dataDir, storeOptions);
  }

  const metrics = new WarmStoreMetrics(store, options.metrics);
  const detachLogging = attachStoreLogging(store, logger.child({ component: 'compaction' }));
  try {
    return await buildServer({ apiKeys, store, ownsStore, metrics, detachLogging, logger, options });
  } catch (err) {
    metrics.detach();
    detachLogging();
    if (ownsStore) await store.close().catch(() => undefined);
    throw err;
  }
}

interface BuildContext {
  apiKeys: readonly ApiKey[];
  store: StoreApi;
  ownsStore: boolean;
  metrics: WarmStoreMetrics;
  detachLogging: () => void;
  logger: Logger;
  options: ServerOptions;
}

async function buildServer(ctx: BuildContext): Promise<WarmStoreServer> {
  const { apiKeys, store, ownsStore, metrics, detachLogging, logger, options } = ctx;
  const host = options.host ?? DEFAULT_HOST;
  const maxContent = options.storeOptions?.maxContentBytes ?? DEFAULTS.maxContentBytes;
  const bodyLimit = options.bodyLimit ?? 2 * maxContent + MiB;
  const batchLimits: BatchLimits = {
    maxItems: options.maxBatchItems ?? DEFAULT_MAX_BATCH_ITEMS,
    bodyLimit: options.batchBodyLimit ?? Math.max(bodyLimit, 64 * MiB),
  };
  const app = Fastify({
    ...(options.tls === undefined ? {} : { https: { cert: options.tls.cert, key: options.tls.key } }),
    loggerInstance: logger,
    // One line per request at info drowns the compaction log on a busy store; errors are logged
    // by the error handler instead.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit,
    // Fastify's own 503 body has another shape; the onRequest hook below answers instead.
    return503OnClosing: false,
    // A percent-encoded 255-byte id is up to 765 characters; Fastify's default limit is 100.
    routerOptions: { maxParamLength: 1024 },
    ajv: {
      customOptions: {
        // Strict bodies: "5" is not a number and unknown fields are refused (a typo such as
        // `decay_rate` must not be silently dropped).
        coerceTypes: false,
        removeAdditional: false,
        allowUnionTypes: true,
      },
    },
  }) as unknown as FastifyInstance;

  const state = {
    closing: false,
    closePromise: undefined as Promise<void> | undefined,
    pending: new Set<Promise<unknown>>(),
    compactions: new Set<AbortController>(),
  };

  // Every store call goes through here: traced, and tracked so that close() can wait for calls
  // whose client already hung up before it closes the store under them.
  const track = <T>(p: Promise<T>): Promise<T> => {
    state.pending.add(p);
    const done = (): void => {
      state.pending.delete(p);
    };
    p.then(done, done);
    return p;
  };
  const op = <T>(name: string, attributes: Attributes, fn: (span: Span) => Promise<T>): Promise<T> =>
    track(traced(name, attributes, fn));
  // A call that completed synchronously left nothing in flight.
  const opNow = <T>(
    name: string,
    attributes: Attributes,
    fn: (span: Span) => T | Promise<T>,
  ): T | Promise<T> => {
    const r = tracedNow(name, attributes, fn);
    return r instanceof Promise ? track(r) : r;
  };

  app.setErrorHandler((err, request, reply) => {
    const { status, body } = toErrorResponse(err, state.closing);
    if (status >= 500) request.log.error({ err, code: body.error.code }, 'request failed');
    else request.log.debug({ code: body.error.code, field: body.error.field }, body.error.message);
    if (err instanceof HttpError && err.headers !== undefined) reply.headers(err.headers);
    return reply.code(status).send(body);
  });
  app.setNotFoundHandler((request, reply) =>
    reply
      .code(404)
      .send({ error: { code: 'NOT_FOUND', message: `no route ${request.method} ${request.url}` } }),
  );

  // An empty JSON body is a missing body, not a parse error: `curl -X POST -H 'content-type:
  // application/json' .../compact` must work. Non-empty bodies keep the default parser and its
  // prototype-poisoning protection.
  const defaultJson = app.getDefaultJsonParser('error', 'error');
  // Fastify's parser calls back at once; this takes its result (or throws its error).
  const parseJson = (request: FastifyRequest, text: string): unknown => {
    let out: { err: Error | null; value: unknown } | undefined;
    defaultJson(request, text, (err, value) => (out = { err, value }));
    if (out === undefined) throw new Error('the JSON parser did not answer synchronously');
    if (out.err !== null) throw out.err;
    return out.value;
  };
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (request, body, done) => {
    const bytes = body as Buffer;
    if (bytes.length === 0) {
      done(null, undefined);
      return;
    }
    // A batch put's body is parsed item by item (batch-body.ts); any other body, or one that
    // does not split cleanly, as one text.
    if (request.routeOptions.url === BATCH_PUT_URL) {
      const parsed = parseBatchBody(bytes, (text) => parseJson(request, text));
      if (parsed !== undefined) {
        done(null, parsed);
        return;
      }
    }
    defaultJson(request, bytes.toString('utf8'), done);
  });

  app.addHook('onRequest', async () => {
    if (state.closing) throw new HttpError(503, 'SHUTTING_DOWN', 'the server is shutting down');
  });
  app.addHook('onSend', async (_request, reply) => {
    // Keep-alive connections would otherwise hold server.close() open until the client drops them.
    if (state.closing) reply.header('connection', 'close');
  });

  if (apiKeys.length > 0) installAuth(app, new KeyRing(apiKeys));

  for (const schema of sharedSchemas) app.addSchema(schema);

  if (options.docs ?? true) {
    await app.register(swagger, {
      openapi: {
        openapi: '3.1.0',
        info: {
          title: 'warmstore',
          description: 'Warm-tier memory store: memories, recall, compaction and metrics.',
          version: packageVersion(),
        },
        tags: [
          { name: 'memories', description: 'Create, read, delete and recall memories' },
          { name: 'spaces', description: 'List and delete memory spaces' },
          { name: 'maintenance', description: 'Compaction and the maintenance loop' },
          { name: 'metrics', description: 'Storage statistics and Prometheus metrics' },
          { name: 'health', description: 'Health check' },
        ],
        components: {
          securitySchemes: {
            apiKey: {
              type: 'http',
              scheme: 'bearer',
              description:
                'An API key as `Authorization: Bearer KEY`, needed when the server was started with keys.',
            },
          },
        },
        security: [{ apiKey: [] }],
      },
      refResolver: {
        // Name shared schemas by their $id in the document instead of def-0, def-1...
        buildLocalReference: (json, _baseUri, _fragment, i) =>
          typeof json['$id'] === 'string' ? json['$id'] : `def-${i}`,
      },
    });
    await app.register(swaggerUi, { routePrefix: '/docs' });
  }

  const schemas = routeSchemas(store.dimension, batchLimits);

  registerMemoryRoutes({ app, store, op, opNow, schemas });
  registerSpaceRoutes({ app, store, op, schemas });
  registerBatchRoutes({
    app,
    store,
    op,
    schemas,
    itemSchema: memoryInputSchema(store.dimension),
    limits: batchLimits,
  });

  // A POST without a body is a request with default options.
  const emptyBodyIsEmptyObject = async (request: { body: unknown }): Promise<void> => {
    request.body ??= {};
  };

  app.post<{ Body: { force?: boolean } }>(
    '/api/v1/maintenance/compact',
    { schema: schemas.compact, preValidation: emptyBodyIsEmptyObject, config: { auth: WRITE_STORE } },
    async (request) => {
      const force = request.body.force === true;
      const controller = new AbortController();
      state.compactions.add(controller);
      try {
        return await op('warmstore.compact', { 'warmstore.force': force }, () =>
          store.compact({ signal: controller.signal, force }),
        );
      } catch (err) {
        if (controller.signal.aborted && state.closing) {
          throw new HttpError(503, 'SHUTTING_DOWN', 'compaction aborted: the server is shutting down');
        }
        throw err;
      } finally {
        state.compactions.delete(controller);
      }
    },
  );

  app.post(
    '/api/v1/maintenance/run',
    {
      schema: schemas.runMaintenance,
      preValidation: emptyBodyIsEmptyObject,
      config: { auth: WRITE_STORE },
    },
    async () => op('warmstore.maintenance', {}, () => store.runMaintenance()),
  );

  app.post(
    '/api/v1/maintenance/verify',
    {
      schema: schemas.verify,
      preValidation: emptyBodyIsEmptyObject,
      config: { auth: WRITE_STORE },
    },
    async () => op('warmstore.verify', {}, () => store.verify()),
  );

  registerBackupRoute({
    app,
    store,
    op,
    backupDir: options.backupDir === undefined ? undefined : resolve(options.backupDir),
  });
  registerExportRoute(app, { store, track: (name, fn) => op(name, {}, fn) });

  app.get(
    '/api/v1/metrics/storage',
    { schema: schemas.storageStats, config: { auth: READ_STORE } },
    async () => {
      const status = storageStatusOf(store);
      return {
        ...store.contentStorageStats(),
        size: store.size,
        isCompacting: store.isCompacting,
        diskFull: status.diskFull,
        readOnly: status.readOnly,
        spaces: store.spaces(),
        index: store.indexStatus,
        ...(store.scrubStatus !== undefined && { scrub: store.scrubStatus() }),
      };
    },
  );

  app.get(
    '/metrics',
    { schema: schemas.prometheus, config: { auth: READ_STORE } },
    async (_request, reply) => {
      const text = await metrics.metrics();
      return reply.header('content-type', metrics.contentType).send(text);
    },
  );

  app.get('/healthz', { schema: schemas.health, config: { auth: OPEN } }, async () => {
    if (store.closed) throw new HttpError(503, 'STORE_CLOSED', 'the store is closed');
    // Still 200: the store serves reads, so a load balancer must keep sending them; the body says
    // which writes are refused and why, for the operator and for alerting.
    const reasons = degradedReasons(storageStatusOf(store));
    return reasons.length === 0 ? { status: 'ok' } : { status: 'degraded', reasons };
  });

  await app.ready();

  const shutdownTimeoutMs = options.shutdownTimeoutMs ?? 10_000;
  const close = async (): Promise<void> => {
    state.closing = true;
    // Abort first: waiting for the in-flight compact request to finish on its own could take
    // minutes. The store is crash-safe, so an aborted compaction loses nothing.
    for (const c of state.compactions) c.abort(new DOMException('the server is shutting down', 'AbortError'));
    const force = setTimeout(() => app.server.closeAllConnections(), shutdownTimeoutMs);
    force.unref();
    try {
      await app.close();
      await Promise.allSettled([...state.pending]);
    } finally {
      clearTimeout(force);
      metrics.detach();
      detachLogging();
    }
    if (ownsStore) await store.close();
    logger.info({}, 'server closed');
  };

  return {
    app,
    store,
    metrics,
    logger,
    get closing() {
      return state.closing;
    },
    async listen() {
      const url = await app.listen({ host, port: options.port ?? DEFAULT_PORT });
      if (apiKeys.length > 0 && options.tls === undefined && !isLoopback(host)) {
        logger.warn({ host }, 'API keys travel in the clear: serve over TLS (--tls-cert, --tls-key)');
      }
      if (apiKeys.length === 0 && !isLoopback(host)) {
        logger.warn({ host }, 'listening beyond loopback without API keys (--insecure): the API is open');
      }
      return url;
    },
    close() {
      state.closePromise ??= close();
      return state.closePromise;
    },
  };
}

/** A listening server: `url` is its base URL. */
export interface StartedServer extends WarmStoreServer {
  readonly url: string;
}

/** `createServer` followed by `listen()`. The store is closed again if listening fails. */
export async function startServer(options: ServerOptions): Promise<StartedServer> {
  const server = await createServer(options);
  let url: string;
  try {
    url = await server.listen();
  } catch (err) {
    await server.close().catch(() => undefined);
    throw err;
  }
  server.logger.info({ url }, 'warmstore listening');
  return Object.assign(server, { url });
}

function packageVersion(): string {
  try {
    // ../../package.json from both src/server and dist/server.
    const pkg = createRequire(import.meta.url)('../../package.json') as { version?: unknown };
    return typeof pkg.version === 'string' ? pkg.version : '0.0.0';
  } catch {
    return '0.0.0';
  }
}

/** A store without `storageStatus` (a test double) is taken as healthy and writable. */
function storageStatusOf(
  store: StoreApi,
): Pick<StorageStatus, 'diskFull' | 'diskFullReason' | 'readOnly' | 'readOnlyReason'> {
  return store.storageStatus?.() ?? { diskFull: false, readOnly: false };
}

/** Why `/healthz` reports degraded: every condition under which a write is refused. */
export function degradedReasons(
  s: Pick<StorageStatus, 'diskFull' | 'diskFullReason' | 'readOnly' | 'readOnlyReason'>,
): string[] {
  const reasons: string[] = [];
  if (s.diskFull)
    reasons.push(
      `disk full: new content is refused (507) until space returns (${s.diskFullReason ?? 'ENOSPC'})`,
    );
  if (s.readOnly)
    reasons.push(`read-only: every write is refused (405) (${s.readOnlyReason ?? 'read-only'})`);
  return reasons;
}
