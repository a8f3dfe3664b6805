/**
 * The routes of single memories: put, get and delete by id, and recall; each in one memory space.
 */
import type { FastifyInstance } from 'fastify';
import type { Attributes, Span } from '@opentelemetry/api';
import { READ_SPACE, WRITE_SPACE } from './auth.js';
import {
  ALL_FIELDS,
  RECALL_FIELDS,
  decodeEmbedding,
  memoryJsonText,
  recordFromJson,
  type EmbeddingEncoding,
  type MemoryInputJson,
} from './codec.js';
import { HttpError } from './errors.js';
import type { GetOptions, MetadataFilter, StoredMemory } from '../types.js';
import type { StoredMemoryBytes } from '../engine/reader.js';
import type { routeSchemas } from './schemas.js';
import type { StoreApi } from './store-api.js';
import { checkDimension, checkSpace, jsonNumber, sendJsonText, viewOf } from './wire.js';

/** What the routes need from the server. */
export interface RouteContext {
  app: FastifyInstance;
  store: StoreApi;
  /** Runs a store call traced and tracked for graceful shutdown. */
  op: <T>(name: string, attributes: Attributes, fn: (span: Span) => Promise<T>) => Promise<T>;
  schemas: ReturnType<typeof routeSchemas>;
}

/** What the memory routes need besides: reads by id that may complete synchronously. */
export interface MemoryRouteContext extends RouteContext {
  /**
   * `op` for a store call that may complete synchronously: a value comes back as is (traced, and
   * with nothing left in flight for shutdown to wait for), a promise is tracked as by `op`.
   */
  opNow: <T>(name: string, attributes: Attributes, fn: (span: Span) => T | Promise<T>) => T | Promise<T>;
}

type Found = StoredMemory | StoredMemoryBytes | undefined;

export function registerMemoryRoutes(ctx: MemoryRouteContext): void {
  const { app, store, op, opNow, schemas } = ctx;
  // The embedding's bytes as they are read, when the store offers them: a base64 answer is then
  // their base64 with no Float32Array allocated and filled in between, and a page-cached read
  // answers without a promise hop.
  const read: (id: string, options: GetOptions) => Found | Promise<Found> =
    store.getBytes === undefined ? (id, options) => store.get(id, options) : store.getBytes.bind(store);
  const counted = (span: Span, m: Found): Found => {
    // The byte count scans the content: only worth it when a tracer records the span.
    if (m !== undefined && span.isRecording()) {
      span.setAttribute('warmstore.content_bytes', m.content === null ? 0 : Buffer.byteLength(m.content));
    }
    return m;
  };

  app.post<{ Body: MemoryInputJson }>(
    '/api/v1/memories',
    { schema: schemas.putMemory, config: { auth: WRITE_SPACE } },
    async (request, reply) => {
      const space = checkSpace(request.body.space);
      const record = recordFromJson(request.body);
      checkDimension(record.embedding, store.dimension);
      const contentBytes = typeof record.content === 'string' ? Buffer.byteLength(record.content, 'utf8') : 0;
      const created = await op(
        'warmstore.put',
        { 'warmstore.id': record.id, 'warmstore.content_bytes': contentBytes },
        async () => {
          // Racy against a concurrent put of the same id, which only mislabels 200 vs 201.
          const existed = store.has(record.id, { space });
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
  }>(
    '/api/v1/memories/:id',
    { schema: schemas.getMemory, config: { auth: READ_SPACE } },
    async (request, reply) => {
      const { id } = request.params;
      const space = checkSpace(request.query.space);
      const view = viewOf(request.query.fields, request.query.encoding, ALL_FIELDS);
      const touch = request.query.touch === 'true' || request.query.touch === '1';
      const found = opNow(
        'warmstore.get',
        { 'warmstore.id': id, 'warmstore.space': space, 'warmstore.touch': touch },
        (span) => {
          const m = read(id, touch ? { space, touch: true } : { space });
          return m instanceof Promise ? m.then((x) => counted(span, x)) : counted(span, m);
        },
      );
      const memory = found instanceof Promise ? await found : found;
      if (memory === undefined)
        throw new HttpError(404, 'NOT_FOUND', `no memory with id ${JSON.stringify(id)}`);
      return sendJsonText(reply, memoryJsonText(memory, view));
    },
  );

  app.delete<{ Params: { id: string }; Querystring: { space?: string } }>(
    '/api/v1/memories/:id',
    { schema: schemas.deleteMemory, config: { auth: WRITE_SPACE } },
    async (request) => {
      const { id } = request.params;
      const space = checkSpace(request.query.space);
      const deleted = await op('warmstore.delete', { 'warmstore.id': id, 'warmstore.space': space }, () =>
        store.delete(id, { space }),
      );
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
      filter?: MetadataFilter;
      exact?: boolean;
      fields?: string[];
      encoding?: EmbeddingEncoding;
    };
  }>('/api/v1/recall', { schema: schemas.recall, config: { auth: READ_SPACE } }, async (request, reply) => {
    const { k, minScore, touch, filter, exact } = request.body;
    const space = checkSpace(request.body.space);
    const view = viewOf(request.body.fields, request.body.encoding, RECALL_FIELDS);
    const embedding = decodeEmbedding(request.body.embedding);
    checkDimension(embedding, store.dimension);
    const attributes = { 'warmstore.space': space, ...(k === undefined ? {} : { 'warmstore.k': k }) };
    // The store checks the filter and names the refused field (`filter.confidence.gte`).
    const results = await op('warmstore.recall', attributes, () =>
      store.recall(embedding, {
        space,
        ...(k === undefined ? {} : { k }),
        ...(minScore === undefined ? {} : { minScore }),
        ...(touch === undefined ? {} : { touch }),
        ...(filter === undefined ? {} : { filter }),
        ...(exact === undefined ? {} : { exact }),
      }),
    );
    const hits = results.map(
      (r) =>
        `{"id":${JSON.stringify(r.memory.id)},"score":${jsonNumber(r.score)},` +
        `"memory":${memoryJsonText(r.memory, view)}}`,
    );
    return sendJsonText(reply, `{"results":[${hits.join(',')}]}`);
  });
}
