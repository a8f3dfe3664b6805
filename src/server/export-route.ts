import { Readable } from 'node:stream';
import { finished } from 'node:stream/promises';
import type { FastifyInstance } from 'fastify';
import { EMBEDDING_ENCODINGS, memoryJsonText, type EmbeddingEncoding, type MemoryField } from './codec.js';
import { READ_SPACE } from './auth.js';
import { HttpError } from './errors.js';
import type { StoreApi } from './store-api.js';
import { checkSpace } from './wire.js';

/**
 * Lines carry everything but the space, so that an export over HTTP is the same file as
 * `warmstore export` writes and `warmstore import` reads.
 */
const EXPORT_FIELDS: ReadonlySet<MemoryField> = new Set(['id', 'content', 'embedding', 'metadata']);

/** Lines are sent in chunks of about this many bytes: one write per line would cost a syscall each. */
const CHUNK_BYTES = 64 * 1024;

export const exportSchema = {
  tags: ['memories'],
  summary: 'Every memory as JSON Lines (application/x-ndjson), streamed',
  description:
    'One memory per line, in the format of `warmstore export`. A memory written during the export may ' +
    'or may not appear. A response cut short by an error ends without its final chunk, so a reader ' +
    'can tell an interrupted export from a complete one.',
  querystring: {
    type: 'object',
    additionalProperties: false,
    properties: {
      encoding: {
        type: 'string',
        enum: EMBEDDING_ENCODINGS,
        description: 'Embeddings as number arrays (default) or base64 of little-endian float32.',
      },
      space: {
        type: 'string',
        minLength: 1,
        maxLength: 64,
        description: "Only 'default' exists in this version.",
      },
    },
  },
} as const;

/** What the export route needs from the server. */
export interface ExportRouteContext {
  store: StoreApi;
  /** Tracks the stream like any store call, so that a graceful shutdown waits for it. */
  track: <T>(name: string, fn: () => Promise<T>) => Promise<T>;
}

/** `GET /api/v1/export`: the whole store as JSON Lines, with backpressure. */
export function registerExportRoute(app: FastifyInstance, ctx: ExportRouteContext): void {
  const { store, track } = ctx;
  app.get<{ Querystring: { encoding?: EmbeddingEncoding; space?: string } }>(
    '/api/v1/export',
    { schema: exportSchema, config: { auth: READ_SPACE } },
    async (request, reply) => {
      const space = checkSpace(request.query.space, 'space');
      // Checked here so that a closed store gets its 503 before the 200 headers go out.
      if (store.closed) throw new HttpError(503, 'STORE_CLOSED', 'the store is closed');
      const view = { fields: EXPORT_FIELDS, encoding: request.query.encoding ?? 'array' } as const;
      async function* chunks(): AsyncGenerator<string> {
        let chunk = '';
        for await (const m of store.entries()) {
          chunk += `${memoryJsonText(m, view, space)}\n`;
          if (chunk.length >= CHUNK_BYTES) {
            yield chunk;
            chunk = '';
          }
        }
        if (chunk !== '') yield chunk;
      }
      const stream = Readable.from(chunks(), { objectMode: false });
      void track('warmstore.export', () => finished(stream).catch(() => undefined));
      return reply.type('application/x-ndjson; charset=utf-8').send(stream);
    },
  );
}
