/**
 * API keys: `Authorization: Bearer KEY`, each key with an access level and the spaces it covers.
 *
 * Keys are compared by their SHA-256 digests with `timingSafeEqual`, against every configured key
 * without stopping at a match, so the time of a check tells nothing about how much of a guess was
 * right or which key it matched. The keys themselves never reach a log or an error message.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { isIPv4, isIPv6 } from 'node:net';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { invalid } from '../errors.js';
import { HttpError } from './errors.js';
import { DEFAULT_SPACE } from './wire.js';

/** `read` allows reads and recall; `write` also allows puts and deletes (write implies read). */
export type ApiKeyAccess = 'read' | 'write';

/** One API key and what it may do. */
export interface ApiKey {
  /** The secret a client sends as `Authorization: Bearer KEY`. */
  key: string;
  /** Spaces the key covers: names, or `'*'` for every space (and the store-wide routes). */
  spaces: readonly string[];
  /** What the key may do in its spaces. */
  access: ApiKeyAccess;
}

/** What a route requires; set as `config.auth` on every route the server registers. */
export interface RouteAuth {
  /** `open` needs no key (health check, API document). */
  access: 'open' | ApiKeyAccess;
  /**
   * `space`: the key must cover the spaces the request names (`space` in the body, the query or
   * the path, `space` of each batch item; `'default'` when none is named). `store`: the route acts
   * on the whole store (maintenance, metrics), so the key must cover every space (`'*'`).
   * `covered`: like `space` when the request names a space; when it names none, the route acts
   * on the spaces the key covers (listing spaces, exporting), asking `covers` for each.
   */
  scope: 'space' | 'store' | 'covered';
}

declare module 'fastify' {
  interface FastifyContextConfig {
    auth?: RouteAuth;
  }
}

export const OPEN: RouteAuth = { access: 'open', scope: 'space' };
export const READ_SPACE: RouteAuth = { access: 'read', scope: 'space' };
export const WRITE_SPACE: RouteAuth = { access: 'write', scope: 'space' };
export const READ_COVERED: RouteAuth = { access: 'read', scope: 'covered' };
export const READ_STORE: RouteAuth = { access: 'read', scope: 'store' };
export const WRITE_STORE: RouteAuth = { access: 'write', scope: 'store' };

/** Shortest key accepted: a key is a secret, not a password to remember. */
export const MIN_KEY_LENGTH = 16;

const KEY_CHARS = /^[\x21-\x7e]+$/;

/**
 * Checks the JSON of an API key file: `[{ "key", "spaces": ["*" or names], "access": "read" |
 * "write" }]`. Errors name the entry and field (`[2].access`) and never quote a key.
 */
export function parseApiKeys(value: unknown): ApiKey[] {
  if (!Array.isArray(value)) throw invalid('apiKeys', 'must be a JSON array of { key, spaces, access }');
  const seen = new Set<string>();
  return value.map((entry: unknown, i): ApiKey => {
    const at = `apiKeys[${i}]`;
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) {
      throw invalid(at, 'must be an object { key, spaces, access }');
    }
    const e = entry as Record<string, unknown>;
    for (const k of Object.keys(e)) {
      if (k !== 'key' && k !== 'spaces' && k !== 'access')
        throw invalid(`${at}.${k}`, 'is not a known field');
    }
    const { key, spaces, access } = e;
    if (typeof key !== 'string') throw invalid(`${at}.key`, 'must be a string');
    // A header value cannot carry spaces or control characters, so such a key could never match.
    if (!KEY_CHARS.test(key)) throw invalid(`${at}.key`, 'must be printable ASCII without spaces');
    if (key.length < MIN_KEY_LENGTH)
      throw invalid(`${at}.key`, `must be at least ${MIN_KEY_LENGTH} characters`);
    if (seen.has(key)) throw invalid(`${at}.key`, 'repeats an earlier key');
    seen.add(key);
    if (!Array.isArray(spaces) || spaces.length === 0) {
      throw invalid(`${at}.spaces`, 'must be a non-empty array of space names or "*"');
    }
    spaces.forEach((s: unknown, j) => {
      if (typeof s !== 'string' || s.length === 0 || Buffer.byteLength(s) > 64) {
        throw invalid(`${at}.spaces[${j}]`, 'must be "*" or a space name of 1..64 bytes');
      }
    });
    if (access !== 'read' && access !== 'write') throw invalid(`${at}.access`, 'must be "read" or "write"');
    return { key, spaces: spaces as string[], access };
  });
}

/** Reads and checks an API key file (see `parseApiKeys`). */
export async function loadApiKeys(file: string): Promise<ApiKey[]> {
  const text = await readFile(file, 'utf8');
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw invalid('apiKeys', `${file} is not valid JSON (${(err as Error).message})`);
  }
  return parseApiKeys(json);
}

const digest = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();

interface StoredKey {
  digest: Buffer;
  access: ApiKeyAccess;
  allSpaces: boolean;
  spaces: ReadonlySet<string>;
}

/** The configured keys, held as digests. */
export class KeyRing {
  readonly #keys: StoredKey[];

  constructor(keys: readonly ApiKey[]) {
    this.#keys = keys.map((k) => ({
      digest: digest(k.key),
      access: k.access,
      allSpaces: k.spaces.includes('*'),
      spaces: new Set(k.spaces),
    }));
  }

  get size(): number {
    return this.#keys.length;
  }

  /** The key matching `presented`, checked against every key in constant time per key. */
  find(presented: string): StoredKey | undefined {
    const d = digest(presented);
    let found: StoredKey | undefined;
    for (const k of this.#keys) {
      if (timingSafeEqual(d, k.digest) && found === undefined) found = k;
    }
    return found;
  }
}

const CHALLENGE = 'Bearer realm="warmstore"';

function unauthorized(message: string, invalidToken: boolean): HttpError {
  const err = new HttpError(401, 'UNAUTHORIZED', message);
  err.headers = {
    'www-authenticate': invalidToken ? `${CHALLENGE}, error="invalid_token"` : CHALLENGE,
  };
  return err;
}

/** The token of an `Authorization: Bearer TOKEN` header; the scheme is case-insensitive. */
function bearerToken(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  const m = /^Bearer +(\S+) *$/i.exec(header);
  return m?.[1];
}

/**
 * The spaces a request names: `space` in the query, the path (`/spaces/:space`) or the body, and
 * of each batch item, where an item without one names `'default'`. Empty when it names none.
 */
export function namedSpaces(request: FastifyRequest): string[] {
  const out = new Set<string>();
  const add = (s: unknown): void => {
    out.add(typeof s === 'string' ? s : DEFAULT_SPACE);
  };
  const query = request.query as Record<string, unknown> | undefined;
  const params = request.params as Record<string, unknown> | undefined;
  const body = request.body as Record<string, unknown> | undefined;
  if (typeof query?.['space'] === 'string') add(query['space']);
  if (typeof params?.['space'] === 'string') add(params['space']);
  if (typeof body === 'object' && body !== null && !Array.isArray(body)) {
    if (typeof body['space'] === 'string') add(body['space']);
    const memories = body['memories'];
    if (Array.isArray(memories)) {
      for (const m of memories)
        add(typeof m === 'object' && m !== null ? (m as { space?: unknown }).space : undefined);
    }
  }
  return [...out];
}

/** The spaces a request acts on: those it names, or `'default'` when it names none. */
export function spacesOf(request: FastifyRequest): string[] {
  const named = namedSpaces(request);
  return named.length === 0 ? [DEFAULT_SPACE] : named;
}

/** The key each authenticated request presented; absent on a server without keys. */
const keyOf = new WeakMap<FastifyRequest, StoredKey>();

/**
 * Whether the request may see `space`: always on a server without keys, else when its key covers
 * the space. Routes of scope `covered` use it to leave out the spaces a key does not cover.
 */
export function covers(request: FastifyRequest, space: string): boolean {
  const key = keyOf.get(request);
  return key === undefined || key.allSpaces || key.spaces.has(space);
}

/** Whether the request may see every space, present and future. */
export function coversAll(request: FastifyRequest): boolean {
  const key = keyOf.get(request);
  return key === undefined || key.allSpaces;
}

/**
 * Installs the checks: authentication and the access level before the body is read (an
 * unauthenticated client cannot make the server parse a large body), the spaces once the body is
 * parsed and validated. Routes of the API document are open; a route without `config.auth`
 * (an unknown URL) needs a valid key before it learns that it does not exist.
 */
export function installAuth(app: FastifyInstance, ring: KeyRing): void {
  app.addHook('onRequest', async (request) => {
    const policy = policyOf(request);
    if (policy.access === 'open') return;
    const token = bearerToken(request.headers.authorization);
    if (token === undefined) {
      throw unauthorized('an API key is required: send "Authorization: Bearer KEY"', false);
    }
    const key = ring.find(token);
    if (key === undefined) throw unauthorized('the API key is not valid', true);
    if (policy.access === 'write' && key.access !== 'write') {
      throw new HttpError(403, 'FORBIDDEN', 'this API key may only read');
    }
    if (policy.scope === 'store' && !key.allSpaces) {
      throw new HttpError(
        403,
        'FORBIDDEN',
        'this route acts on the whole store; the API key must cover every space ("*")',
      );
    }
    keyOf.set(request, key);
  });

  app.addHook('preHandler', async (request) => {
    const key = keyOf.get(request);
    if (key === undefined || key.allSpaces) return;
    const { scope } = policyOf(request);
    if (scope === 'store') return;
    const spaces = scope === 'covered' ? namedSpaces(request) : spacesOf(request);
    for (const space of spaces) {
      if (!key.spaces.has(space)) {
        throw new HttpError(
          403,
          'FORBIDDEN',
          `this API key does not cover the space ${JSON.stringify(space)}`,
        );
      }
    }
  });
}

const AUTHENTICATED: RouteAuth = { access: 'read', scope: 'space' };

function policyOf(request: FastifyRequest): RouteAuth {
  // An unknown URL has no route options beyond the defaults.
  const configured = (request.routeOptions.config as { auth?: RouteAuth } | undefined)?.auth;
  if (configured !== undefined) return configured;
  // The OpenAPI document and Swagger UI describe the API and hold no data; the UI could not load
  // itself if it needed a key.
  const url = request.routeOptions.url;
  if (url !== undefined && (url === '/docs' || url.startsWith('/docs/'))) return OPEN;
  return AUTHENTICATED;
}

/** True for addresses that only this machine can reach. */
export function isLoopback(host: string): boolean {
  const h = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  if (h === 'localhost') return true;
  if (isIPv4(h)) return h.startsWith('127.');
  if (isIPv6(h)) return h === '::1' || /^::ffff:127\./i.test(h);
  return false;
}
