import { WarmStoreError } from '../errors.js';
import { WarmStoreClientError, errorFromResponse } from './errors.js';

/** What the transport needs from the client's options, every default filled in. */
export interface TransportConfig {
  baseUrl: URL;
  apiKey: string | undefined;
  timeoutMs: number | false;
  retries: number;
  backoffMs: number;
  maxBackoffMs: number;
  fetch: typeof globalThis.fetch;
}

/** Options every client call accepts. */
export interface CallOptions {
  /** Aborts the call (and any wait between retries); the promise rejects with the signal's reason. */
  signal?: AbortSignal;
  /** Overrides the client's `timeoutMs` for this call; `false` waits as long as it takes. */
  timeoutMs?: number | false;
}

/**
 * Error codes of a connection that failed before the request could have taken effect, or that
 * broke while the response was arriving. The second kind is ambiguous (the server may have done
 * the work), which is why only idempotent operations go through this transport.
 */
const RETRYABLE_CODES = new Set(['ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ECONNABORTED', 'UND_ERR_SOCKET']);

/** The errno-style code of a network failure, looking through fetch's `cause` and AggregateError. */
export function networkErrorCode(err: unknown): string | undefined {
  const seen = new Set<unknown>();
  const queue: unknown[] = [err];
  let first: string | undefined;
  while (queue.length > 0) {
    const e = queue.shift();
    if (typeof e !== 'object' || e === null || seen.has(e)) continue;
    seen.add(e);
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string') {
      if (RETRYABLE_CODES.has(code)) return code;
      first ??= code;
    }
    queue.push((e as { cause?: unknown }).cause);
    if (e instanceof AggregateError) queue.push(...(e.errors as unknown[]));
  }
  return first;
}

function isRetryableNetworkError(err: unknown): boolean {
  const code = networkErrorCode(err);
  return code !== undefined && RETRYABLE_CODES.has(code);
}

/** Retry-After in milliseconds when it holds a number of seconds (the form servers use with 503). */
function retryAfterMs(header: string | null): number | undefined {
  if (header === null || !/^\s*\d+\s*$/.test(header)) return undefined;
  return Number(header) * 1000;
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason as Error);
      return;
    }
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal?.reason as Error);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * HTTP with retries: 503 and connection resets or refusals are retried with exponential backoff
 * and jitter, up to `retries` times; nothing else is. Every operation of the API is idempotent (a
 * put replaces, a delete of a deleted id is a no-op), so a retry after a request that did reach the
 * server changes nothing but the answer of a delete.
 */
export class HttpTransport {
  readonly #config: TransportConfig;

  constructor(config: TransportConfig) {
    this.#config = config;
  }

  get baseUrl(): URL {
    return this.#config.baseUrl;
  }

  /**
   * Sends a JSON request and returns the parsed JSON body of a 2xx answer (undefined when empty).
   * Statuses in `pass` are returned too (404 for a missing memory); any other status throws.
   */
  async json(
    method: string,
    path: string,
    body: unknown,
    call: CallOptions,
    pass: readonly number[] = [],
  ): Promise<{ status: number; body: unknown }> {
    const label = `${method} ${path}`;
    return this.#run(method, path, body, call, false, async (res, attempts) => {
      const text = await res.text();
      if (!res.ok && !pass.includes(res.status)) throw errorFromResponse(res.status, text, label, attempts);
      if (text === '') return { status: res.status, body: undefined };
      try {
        return { status: res.status, body: JSON.parse(text) as unknown };
      } catch {
        throw new WarmStoreClientError(
          'BAD_RESPONSE',
          `${label} answered HTTP ${res.status} with a body that is not JSON`,
          res.status,
          { request: label, attempts },
        );
      }
    });
  }

  /**
   * Sends a request and returns the response of a 2xx answer with its body unread, for streams.
   * Retries and the timeout cover the wait for the response headers only: once the body flows, a
   * broken connection surfaces to the reader and the user's signal still aborts it.
   */
  async stream(method: string, path: string, call: CallOptions): Promise<Response> {
    const label = `${method} ${path}`;
    return this.#run(method, path, undefined, call, true, async (res, attempts) => {
      if (!res.ok) throw errorFromResponse(res.status, await res.text(), label, attempts);
      return res;
    });
  }

  async #run<T>(
    method: string,
    path: string,
    body: unknown,
    call: CallOptions,
    streaming: boolean,
    read: (res: Response, attempts: number) => Promise<T>,
  ): Promise<T> {
    const cfg = this.#config;
    const url = new URL(path, cfg.baseUrl);
    const label = `${method} ${url.pathname}`;
    const headers: Record<string, string> = { accept: 'application/json' };
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (cfg.apiKey !== undefined) headers['authorization'] = `Bearer ${cfg.apiKey}`;
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const timeoutMs = call.timeoutMs ?? cfg.timeoutMs;
    const attemptsAllowed = 1 + cfg.retries;

    for (let attempt = 1; ; attempt++) {
      call.signal?.throwIfAborted();
      const controller = new AbortController();
      let timedOut = false;
      const timer =
        timeoutMs === false
          ? undefined
          : setTimeout(() => {
              timedOut = true;
              controller.abort(new DOMException(`no answer within ${timeoutMs} ms`, 'TimeoutError'));
            }, timeoutMs);
      const onAbort = (): void => controller.abort(call.signal?.reason);
      call.signal?.addEventListener('abort', onAbort, { once: true });
      let keepSignal = false;
      let waitMs: number | undefined;
      try {
        const init: RequestInit = { method, headers, signal: controller.signal };
        if (payload !== undefined) init.body = payload;
        const res = await cfg.fetch(url, init);
        if (res.status === 503 && attempt < attemptsAllowed) {
          waitMs = retryAfterMs(res.headers.get('retry-after'));
          await res.arrayBuffer().catch(() => undefined);
        } else {
          if (streaming) clearTimeout(timer);
          const result = await read(res, attempt);
          keepSignal = streaming;
          return result;
        }
      } catch (err) {
        if (call.signal?.aborted) throw call.signal.reason;
        if (err instanceof WarmStoreError || err instanceof WarmStoreClientError) throw err;
        if (timedOut) {
          throw new WarmStoreClientError(
            'TIMEOUT',
            `${label}: no answer within ${String(timeoutMs)} ms (the request may still take effect)`,
            undefined,
            { request: label, attempts: attempt },
            err,
          );
        }
        if (!isRetryableNetworkError(err) || attempt >= attemptsAllowed) {
          const code = networkErrorCode(err);
          throw new WarmStoreClientError(
            'CONNECTION_FAILED',
            `${label} to ${cfg.baseUrl.origin} failed${code === undefined ? '' : ` (${code})`} after ` +
              `${attempt} attempt(s): ${(err as Error).message}`,
            undefined,
            { request: label, attempts: attempt, ...(code === undefined ? {} : { errno: code }) },
            err,
          );
        }
      } finally {
        clearTimeout(timer);
        if (!keepSignal) call.signal?.removeEventListener('abort', onAbort);
      }
      await sleep(this.#backoff(attempt, waitMs), call.signal);
    }
  }

  /**
   * Exponential backoff with equal jitter: half the step is fixed, half random, so that clients
   * that failed together do not retry together, and no retry comes back at once. A Retry-After
   * longer than the step is honoured up to `maxBackoffMs`.
   */
  #backoff(attempt: number, retryAfter: number | undefined): number {
    const { backoffMs, maxBackoffMs } = this.#config;
    const step = Math.min(maxBackoffMs, backoffMs * 2 ** (attempt - 1));
    const jittered = step / 2 + Math.random() * (step / 2);
    return retryAfter === undefined ? jittered : Math.min(maxBackoffMs, Math.max(jittered, retryAfter));
  }
}
