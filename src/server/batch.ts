/**
 * The batch routes: put, get and delete many memories in one request, with a result per item.
 */
import type { FastifyRequest } from 'fastify';
// Brings the route option `swaggerTransform` into the Fastify types.
import type {} from '@fastify/swagger';
import { WarmStoreError } from '../errors.js';
import { checkId } from '../engine/validate.js';
import type { MemoryRecord } from '../types.js';
import {
  ALL_FIELDS,
  memoryJsonText,
  recordFromJson,
  type EmbeddingEncoding,
  type MemoryInputJson,
  type MemoryResponseJson,
} from './codec.js';
import { HttpError, ajvMessage, fieldFromAjv } from './errors.js';
import type { BatchLimits } from './schemas.js';
import { READ_SPACE, WRITE_SPACE } from './auth.js';
import type { RouteContext } from './memory-routes.js';
import { DEFAULT_SPACE, checkDimension, checkSpace, sendJsonText, viewOf } from './wire.js';

/** The route of a batch put (its body is parsed item by item: batch-body.ts). */
export const BATCH_PUT_URL = '/api/v1/memories/batch';

/** What the batch routes need from the server. */
export interface BatchRouteContext extends RouteContext {
  /** Schema of one memory in a request, applied to each item of a batch put on its own. */
  itemSchema: object;
  limits: BatchLimits;
}

/** The error of one refused item of a batch put. */
export interface BatchItemError {
  code: string;
  message: string;
  field?: string;
}

/** One result of `POST /api/v1/memories/batch`, at the index of its item. */
export type BatchPutResult =
  | { index: number; id: string; ok: true; created: boolean }
  | { index: number; id?: string; ok: false; error: BatchItemError };

/** One result of `POST /api/v1/memories/batch/get`, in the order of the ids. */
export type BatchGetResult =
  { id: string; found: true; memory: MemoryResponseJson } | { id: string; found: false };

/** One result of `POST /api/v1/memories/batch/delete`, in the order of the ids. */
export interface BatchDeleteResult {
  id: string;
  deleted: boolean;
}

export function registerBatchRoutes(ctx: BatchRouteContext): void {
  const { app, store, op, schemas, itemSchema, limits } = ctx;

  const checkCount = (n: number, field: string): void => {
    if (n > limits.maxItems) {
      throw new HttpError(
        413,
        'PAYLOAD_TOO_LARGE',
        `a batch holds at most ${limits.maxItems} items (got ${n})`,
        field,
      );
    }
  };

  // Ids are checked before anything is read or deleted, so a refused request changes nothing.
  const checkIds = (ids: readonly string[]): void => {
    checkCount(ids.length, 'ids');
    ids.forEach((id, i) => checkId(id, `ids[${i}]`));
  };

  /** Checks one item fully; returns its record or the error that refused it. */
  const parseItem = (
    request: FastifyRequest,
    item: unknown,
    index: number,
  ): { record: MemoryRecord } | { error: BatchItemError } => {
    const validate = request.compileValidationSchema(itemSchema);
    if (!validate(item)) {
      const first = validate.errors?.[0] ?? {};
      // An empty context names the item itself ('') rather than 'body'.
      const field = fieldFromAjv(first, '');
      const prefixed = field === '' ? `memories[${index}]` : `memories[${index}].${field}`;
      return {
        error: {
          code: 'INVALID_INPUT',
          message: `invalid ${prefixed}: ${ajvMessage(first)}`,
          field: prefixed,
        },
      };
    }
    const body = item as MemoryInputJson;
    try {
      checkSpace(body.space);
      checkId(body.id);
      const record = recordFromJson(body);
      checkDimension(record.embedding, store.dimension);
      return { record };
    } catch (err) {
      return { error: itemError(err, index) };
    }
  };

  // The document shows the full item schema that the handler applies to each item.
  const batchPutDoc = {
    ...schemas.batchPut,
    body: {
      ...schemas.batchPut.body,
      properties: { memories: { ...schemas.batchPut.body.properties.memories, items: itemSchema } },
    },
  };

  app.post<{ Body: { memories: unknown[] } }>(
    BATCH_PUT_URL,
    {
      schema: schemas.batchPut,
      bodyLimit: limits.bodyLimit,
      config: { auth: WRITE_SPACE, swaggerTransform: ({ url }) => ({ schema: batchPutDoc, url }) },
    },
    async (request, reply) => {
      const { memories } = request.body;
      checkCount(memories.length, 'memories');
      const results: BatchPutResult[] = new Array(memories.length);
      const valid: Array<{ index: number; record: MemoryRecord }> = [];
      const seen = new Set<string>();
      memories.forEach((item, index) => {
        const parsed = parseItem(request, item, index);
        if ('error' in parsed) {
          const id = (item as { id?: unknown }).id;
          results[index] = {
            index,
            ...(typeof id === 'string' ? { id } : {}),
            ok: false,
            error: parsed.error,
          };
          return;
        }
        const { id } = parsed.record;
        const space = parsed.record.space ?? DEFAULT_SPACE;
        // The same id in two spaces is two memories.
        const key = JSON.stringify([space, id]);
        // Racy against a concurrent put of the same id, which only mislabels `created`.
        results[index] = { index, id, ok: true, created: !seen.has(key) && !store.has(id, { space }) };
        seen.add(key);
        valid.push({ index, record: parsed.record });
      });

      await op('warmstore.put_batch', { 'warmstore.batch_size': valid.length }, async () => {
        if (valid.length === 0) return;
        try {
          // putMany checks every record before it writes any, and shares one commit.
          await store.putMany(valid.map((v) => v.record));
          return;
        } catch (err) {
          if (!WarmStoreError.is(err, 'INVALID_INPUT')) throw err;
        }
        // The store refused an item for a rule only it knows (content over maxContentBytes):
        // nothing was written, so put the items one by one to learn which. The puts still share
        // commits, since the store groups concurrent writes.
        const settled = await Promise.allSettled(valid.map((v) => store.put(v.record)));
        let failure: unknown;
        settled.forEach((s, k) => {
          if (s.status === 'fulfilled') return;
          const { index, record } = valid[k]!;
          if (!WarmStoreError.is(s.reason, 'INVALID_INPUT')) {
            failure ??= s.reason;
            return;
          }
          results[index] = { index, id: record.id, ok: false, error: itemError(s.reason, index) };
        });
        if (failure !== undefined) throw failure;
      });
      return reply.code(200).send({ results });
    },
  );

  app.post<{ Body: { ids: string[]; space?: string; fields?: string[]; encoding?: EmbeddingEncoding } }>(
    '/api/v1/memories/batch/get',
    { schema: schemas.batchGet, bodyLimit: limits.bodyLimit, config: { auth: READ_SPACE } },
    async (request, reply) => {
      const { ids } = request.body;
      checkIds(ids);
      const space = checkSpace(request.body.space);
      const view = viewOf(request.body.fields, request.body.encoding, ALL_FIELDS);
      const memories = await op(
        'warmstore.get_batch',
        { 'warmstore.batch_size': ids.length, 'warmstore.space': space },
        () => Promise.all(ids.map((id) => store.get(id, { space }))),
      );
      const parts = memories.map((m, i) =>
        m === undefined
          ? `{"id":${JSON.stringify(ids[i])},"found":false}`
          : `{"id":${JSON.stringify(m.id)},"found":true,"memory":${memoryJsonText(m, view)}}`,
      );
      return sendJsonText(reply, `{"results":[${parts.join(',')}]}`);
    },
  );

  app.post<{ Body: { ids: string[]; space?: string } }>(
    '/api/v1/memories/batch/delete',
    { schema: schemas.batchDelete, bodyLimit: limits.bodyLimit, config: { auth: WRITE_SPACE } },
    async (request) => {
      const { ids } = request.body;
      checkIds(ids);
      const space = checkSpace(request.body.space);
      // The store queues the deletes in order, so a repeated id answers true once, then false.
      const deleted = await op(
        'warmstore.delete_batch',
        { 'warmstore.batch_size': ids.length, 'warmstore.space': space },
        () => Promise.all(ids.map((id) => store.delete(id, { space }))),
      );
      const results: BatchDeleteResult[] = ids.map((id, i) => ({ id, deleted: deleted[i] === true }));
      return { results };
    },
  );
}

/**
 * The error of item `index`: an input error names the field inside the batch
 * (`memories[3].content`); any other error keeps its code and message.
 */
function itemError(err: unknown, index: number): BatchItemError {
  if (err instanceof HttpError) {
    const field = err.field === undefined ? `memories[${index}]` : `memories[${index}].${err.field}`;
    return { code: err.code, message: err.message, field };
  }
  if (WarmStoreError.is(err, 'INVALID_INPUT')) {
    const inner = err.details.field;
    if (inner === undefined) return { code: err.code, message: err.message, field: `memories[${index}]` };
    const field = `memories[${index}].${inner}`;
    const prefix = `invalid ${inner}: `;
    const message = err.message.startsWith(prefix)
      ? `invalid ${field}: ${err.message.slice(prefix.length)}`
      : err.message;
    return { code: err.code, message, field };
  }
  if (err instanceof WarmStoreError) return { code: err.code, message: err.message };
  return { code: 'INTERNAL_ERROR', message: err instanceof Error ? err.message : String(err) };
}
