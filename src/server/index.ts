import { createRequire } from 'node:module';
import Fastify, { LogController, type FastifyInstance } from 'fastify';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import { pino, type Logger } from 'pino';
import type { Attributes, Span } from '@opentelemetry/api';
import { WarmStore } from '../index.js';
import { invalid } from '../errors.js';
import type { WarmStoreOptions } from '../types.js';
import { WarmStoreMetrics, type MetricsOptions } from '../metrics/index.js';
import {
  ALL_FIELDS,
  RECALL_FIELDS,
  decodeEmbedding,
  memoryJsonText,
  recordFromJson,
  type EmbeddingEncoding,
  type MemoryInputJson,
} from './codec.js';
import { registerBatchRoutes } from './batch.js';
import { checkSpace, jsonNumber, sendJsonText, viewOf } from './wire.js';
import { HttpError, toErrorResponse } from './errors.js';
import { registerExportRoute } from './export-route.js';
import { attachStoreLogging } from './logging.js';
import { memoryInputSchema, routeSchemas, sharedSchemas, type BatchLimits } from './schemas.js';
import type { StoreApi } from './store-api.js';
import { traced } from './tracing.js';

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
/** Default interface: loopback, because the API has no authentication. */
export const DEFAULT_HOST = '127.0.0.1';

/** Default most items of one batch request. */
export const DEFAULT_MAX_BATCH_ITEMS = 1000;

const DEFAULT_MAX_CONTENT_BYTES = 16 * 1024 * 1024;
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
   * Interface to listen on. Loopback by default because the API has no authentication; bind
   * elsewhere only behind something that authenticates.
   * @default '127.0.0.1'
   */
  host?: string;
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
  const logger =
    options.logger === false ? pino({ enabled: false }) : (options.logger ?? pino({ level: 'info' }));
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
    return await buildServer({ store, ownsStore, metrics, detachLogging, logger, options });
  } catch (err) {
    metrics.detach();
    detachLogging();
    if (ownsStore) await store.close().catch(() => undefined);
    throw err;
  }
}

interface BuildContext {
  store: StoreApi;
  ownsStore: boolean;
  metrics: WarmStoreMetrics;
  detachLogging: () => void;
  logger: Logger;
  options: ServerOptions;
}

async function buildServer(ctx: BuildContext): Promise<WarmStoreServer> {
  const { store, ownsStore, metrics, detachLogging, logger, options } = ctx;
  const maxContent = options.storeOptions?.maxContentBytes ?? DEFAULT_MAX_CONTENT_BYTES;
  const bodyLimit = options.bodyLimit ?? 2 * maxContent + MiB;
  const batchLimits: BatchLimits = {
    maxItems: options.maxBatchItems ?? DEFAULT_MAX_BATCH_ITEMS,
    bodyLimit: options.batchBodyLimit ?? Math.max(bodyLimit, 64 * MiB),
  };
  const app = Fastify({
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
  const op = <T>(name: string, attributes: Attributes, fn: (span: Span) => Promise<T>): Promise<T> => {
    const p = traced(name, attributes, fn);
    state.pending.add(p);
    const done = (): void => {
      state.pending.delete(p);
    };
    p.then(done, done);
    return p;
  };

  app.setErrorHandler((err, request, reply) => {
    const { status, body } = toErrorResponse(err, state.closing);
    if (status >= 500) request.log.error({ err, code: body.error.code }, 'request failed');
    else request.log.debug({ code: body.error.code, field: body.error.field }, body.error.message);
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
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    if (body === '') {
      done(null, undefined);
      return;
    }
    defaultJson(request, body as string, done);
  });

  app.addHook('onRequest', async () => {
    if (state.closing) throw new HttpError(503, 'SHUTTING_DOWN', 'the server is shutting down');
  });
  app.addHook('onSend', async (_request, reply) => {
    // Keep-alive connections would otherwise hold server.close() open until the client drops them.
    if (state.closing) reply.header('connection', 'close');
  });

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
          { name: 'maintenance', description: 'Compaction and the maintenance loop' },
          { name: 'metrics', description: 'Storage statistics and Prometheus metrics' },
          { name: 'health', description: 'Health check' },
        ],
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

  const checkDimension = (embedding: Float32Array): void => {
    // Arrays are checked by the schema; base64 strings only here, once decoded.
    if (embedding.length !== store.dimension) {
      throw invalid('embedding', `must have ${store.dimension} values (got ${embedding.length})`);
    }
  };

  app.post<{ Body: MemoryInputJson & { space?: string } }>(
    '/api/v1/memories',
    { schema: schemas.putMemory },
    async (request, reply) => {
      checkSpace(request.body.space, 'space');
      const record = recordFromJson(request.body);
      checkDimension(record.embedding);
      const contentBytes = typeof record.content === 'string' ? Buffer.byteLength(record.content, 'utf8') : 0;
      const created = await op(
        'warmstore.put',
        { 'warmstore.id': record.id, 'warmstore.content_bytes': contentBytes },
        async () => {
          // Racy against a concurrent put of the same id, which only mislabels 200 vs 201.
          const existed = store.has(record.id);
          await store.put(record);
          return !existed;
        },
      );
      return reply.code(created ? 201 : 200).send({ id: record.id, created });
    },
  );

  app.get<{
    Params: { id: string };
    Querystring: { touch?: string; space?: string; fields?: string; encoding?: EmbeddingEncoding };
  }>('/api/v1/memories/:id', { schema: schemas.getMemory }, async (request, reply) => {
    const { id } = request.params;
    const space = checkSpace(request.query.space, 'space');
    const view = viewOf(request.query.fields, request.query.encoding, ALL_FIELDS);
    const touch = request.query.touch === 'true' || request.query.touch === '1';
    const memory = await op(
      'warmstore.get',
      { 'warmstore.id': id, 'warmstore.touch': touch },
      async (span) => {
        const m = await store.get(id, touch ? { touch: true } : {});
        if (m !== undefined) {
          span.setAttribute('warmstore.content_bytes', m.content === null ? 0 : Buffer.byteLength(m.content));
        }
        return m;
      },
    );
    if (memory === undefined)
      throw new HttpError(404, 'NOT_FOUND', `no memory with id ${JSON.stringify(id)}`);
    return sendJsonText(reply, memoryJsonText(memory, view, space));
  });

  app.delete<{ Params: { id: string }; Querystring: { space?: string } }>(
    '/api/v1/memories/:id',
    { schema: schemas.deleteMemory },
    async (request) => {
      const { id } = request.params;
      checkSpace(request.query.space, 'space');
      const deleted = await op('warmstore.delete', { 'warmstore.id': id }, () => store.delete(id));
      if (!deleted) throw new HttpError(404, 'NOT_FOUND', `no memory with id ${JSON.stringify(id)}`);
      return { deleted: true };
    },
  );

  app.post<{
    Body: {
      embedding: number[] | string;
      k?: number;
      minScore?: number;
      touch?: boolean;
      space?: string;
      fields?: string[];
      encoding?: EmbeddingEncoding;
    };
  }>('/api/v1/recall', { schema: schemas.recall }, async (request, reply) => {
    const { k, minScore, touch } = request.body;
    const space = checkSpace(request.body.space, 'space');
    const view = viewOf(request.body.fields, request.body.encoding, RECALL_FIELDS);
    const embedding = decodeEmbedding(request.body.embedding);
    checkDimension(embedding);
    const results = await op('warmstore.recall', k === undefined ? {} : { 'warmstore.k': k }, () =>
      store.recall(embedding, {
        ...(k === undefined ? {} : { k }),
        ...(minScore === undefined ? {} : { minScore }),
        ...(touch === undefined ? {} : { touch }),
      }),
    );
    const hits = results.map(
      (r) =>
        `{"id":${JSON.stringify(r.memory.id)},"score":${jsonNumber(r.score)},` +
        `"memory":${memoryJsonText(r.memory, view, space)}}`,
    );
    return sendJsonText(reply, `{"results":[${hits.join(',')}]}`);
  });

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
    { schema: schemas.compact, preValidation: emptyBodyIsEmptyObject },
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
    { schema: schemas.runMaintenance, preValidation: emptyBodyIsEmptyObject },
    async () => op('warmstore.maintenance', {}, () => store.runMaintenance()),
  );

  registerExportRoute(app, { store, track: (name, fn) => op(name, {}, fn) });

  app.get('/api/v1/metrics/storage', { schema: schemas.storageStats }, async () => ({
    ...store.contentStorageStats(),
    size: store.size,
    isCompacting: store.isCompacting,
  }));

  app.get('/metrics', { schema: schemas.prometheus }, async (_request, reply) => {
    const text = await metrics.metrics();
    return reply.header('content-type', metrics.contentType).send(text);
  });

  app.get('/healthz', { schema: schemas.health }, async () => {
    if (store.closed) throw new HttpError(503, 'STORE_CLOSED', 'the store is closed');
    return { status: 'ok' };
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
      const url = await app.listen({
        host: options.host ?? DEFAULT_HOST,
        port: options.port ?? DEFAULT_PORT,
      });
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
