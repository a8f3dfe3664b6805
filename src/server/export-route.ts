import { Readable } from 'node:stream';
import { finished } from 'node:stream/promises';
import type { FastifyInstance } from 'fastify';
import type { StoredMemory } from '../types.js';
import { EMBEDDING_ENCODINGS, memoryJsonText, type EmbeddingEncoding, type MemoryField } from './codec.js';
import { READ_COVERED, covers, coversAll } from './auth.js';
import { HttpError } from './errors.js';
import type { StoreApi } from './store-api.js';
import { checkSpace } from './wire.js';

/**
 * Every part of each memory, its space included, so that an export over HTTP is the same file as
 * `warmstore export` writes and `warmstore import` reads back into the same spaces.
 */
const EXPORT_FIELDS: ReadonlySet<MemoryField> = new Set(['id', 'space', 'content', 'embedding', 'metadata']);

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
        description:
          'Only this memory space. Without it, every space the API key covers (every space on a ' +
          'server without keys).',
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
    { schema: exportSchema, config: { auth: READ_COVERED } },
    async (request, reply) => {
      const named = request.query.space === undefined ? undefined : checkSpace(request.query.space);
      // Checked here so that a closed store gets its 503 before the 200 headers go out.
      if (store.closed) throw new HttpError(503, 'STORE_CLOSED', 'the store is closed');
      const view = { fields: EXPORT_FIELDS, encoding: request.query.encoding ?? 'array' } as const;
      // A key that covers every space reads the store in one pass; a narrower key reads only its
      // own spaces, one after the other, and never the content of another tenant's memories.
      const all = coversAll(request);
      async function* memories(): AsyncGenerator<StoredMemory> {
        if (named !== undefined) yield* store.entries({ space: named });
        else if (all) yield* store.entries();
        else {
          for (const { name } of store.spaces()) {
            if (covers(request, name)) yield* store.entries({ space: name });
          }
        }
      }
      async function* chunks(): AsyncGenerator<string> {
        let chunk = '';
        for await (const m of memories()) {
          chunk += `${memoryJsonText(m, view)}\n`;
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
