/**
 * Request and response helpers shared by the routes: the space a request names, what a memory
 * in a response carries, and JSON text sent as it is.
 */
import type { FastifyReply } from 'fastify';
import { parseFields, type EmbeddingEncoding, type MemoryField, type MemoryView } from './codec.js';
import { invalid } from '../errors.js';
import { checkSpace as checkSpaceName } from '../engine/validate.js';

/** The space of requests that name none. */
export const DEFAULT_SPACE = 'default';

/**
 * The space a request names, checked before anything is read or written (1..64 bytes of UTF-8;
 * the route schema counts characters, not bytes), or `'default'` when it names none.
 */
export function checkSpace(space: string | undefined, field = 'space'): string {
  return checkSpaceName(space, field);
}

/** Arrays are checked by the route schemas; base64 strings only here, once decoded. */
export function checkDimension(embedding: Float32Array, dimension: number): void {
  if (embedding.length !== dimension) {
    throw invalid('embedding', `must have ${dimension} values (got ${embedding.length})`);
  }
}

/** The views of requests that name no `fields`, made once per set of defaults and encoding. */
const defaultViews = new WeakMap<ReadonlySet<MemoryField>, Record<EmbeddingEncoding, MemoryView>>();

/** What a memory in a response carries; the route schema has checked `encoding` already. */
export function viewOf(
  fields: string | readonly string[] | undefined,
  encoding: EmbeddingEncoding | undefined,
  defaults: ReadonlySet<MemoryField>,
): MemoryView {
  if (fields === undefined) {
    let views = defaultViews.get(defaults);
    if (views === undefined) {
      views = {
        array: { fields: defaults, encoding: 'array' },
        base64: { fields: defaults, encoding: 'base64' },
      };
      defaultViews.set(defaults, views);
    }
    return views[encoding ?? 'array'];
  }
  return { fields: parseFields(fields, defaults), encoding: encoding ?? 'array' };
}

/** A number as `JSON.stringify` writes it. */
export const jsonNumber = (v: number): string => (Number.isFinite(v) ? String(v) : 'null');

/**
 * Sends JSON text built by hand (see `memoryJsonText`). Fastify sends a string as it is, so the
 * route's response schema documents the shape without a second serialization.
 */
export function sendJsonText(reply: FastifyReply, text: string): FastifyReply {
  return reply.type('application/json; charset=utf-8').send(text);
}
