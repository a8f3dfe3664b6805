import { ERROR_CODES, WarmStoreError, type WarmStoreErrorCode } from '../errors.js';

/**
 * Codes of `WarmStoreClientError`: what the server answers for failures that are not the store's
 * (a missing route, authentication, a body over the size limit, shutdown), and what the client
 * itself detects (a timeout, a server it cannot reach, a response it cannot read).
 */
export type ClientErrorCode =
  | 'NOT_FOUND'
  | 'UNAUTHORIZED'
  | 'FORBIDDEN'
  | 'PAYLOAD_TOO_LARGE'
  | 'UNSUPPORTED_MEDIA_TYPE'
  | 'BAD_REQUEST'
  | 'SHUTTING_DOWN'
  | 'INTERNAL_ERROR'
  /** No answer within `timeoutMs`; the request may or may not have taken effect. */
  | 'TIMEOUT'
  /** The connection failed (refused, reset) on every attempt. */
  | 'CONNECTION_FAILED'
  /** The server answered something that is not the warmstore API (not JSON, wrong shape). */
  | 'BAD_RESPONSE';

/** Details of a `WarmStoreClientError`. */
export interface ClientErrorDetails {
  /** The request field the server refused, when it named one. */
  field?: string;
  /** The HTTP method and path of the request. */
  request?: string;
  /** Attempts made, retries included. */
  attempts?: number;
  [key: string]: unknown;
}

/**
 * A failure of the conversation with the server rather than of the store: authentication, a
 * missing route, a timeout, an unreachable server. Errors the store itself raises (`INVALID_INPUT`,
 * `COMPACTION_IN_PROGRESS`, ...) arrive as `WarmStoreError` with the same code as in the embedded
 * library and the HTTP status in `details.status`, so code written against the library keeps
 * working against a server.
 */
export class WarmStoreClientError extends Error {
  override readonly name = 'WarmStoreClientError';

  constructor(
    /** Stable code; the server's own when it sent one. Unknown server codes pass through as-is. */
    readonly code: ClientErrorCode | (string & {}),
    message: string,
    /** HTTP status of the response, or undefined when none arrived (timeout, connection failure). */
    readonly status: number | undefined,
    readonly details: ClientErrorDetails = {},
    cause?: unknown,
  ) {
    super(message, cause === undefined ? undefined : { cause });
  }

  static is(err: unknown, code?: ClientErrorCode): err is WarmStoreClientError {
    return err instanceof WarmStoreClientError && (code === undefined || err.code === code);
  }
}

const STORE_CODES = new Set<string>(ERROR_CODES);

/** The body of every error response of the server. */
interface ErrorResponseBody {
  error: { code: string; message: string; field?: string; [key: string]: unknown };
}

function isErrorBody(value: unknown): value is ErrorResponseBody {
  if (typeof value !== 'object' || value === null) return false;
  const e = (value as { error?: unknown }).error;
  return (
    typeof e === 'object' &&
    e !== null &&
    typeof (e as { code?: unknown }).code === 'string' &&
    typeof (e as { message?: unknown }).message === 'string'
  );
}

/**
 * The error to throw for a non-2xx response: a `WarmStoreError` for the store's codes, a
 * `WarmStoreClientError` for the rest. `text` is the raw body; a body that is not the API's error
 * shape (a proxy's HTML page) still yields an error naming the status.
 */
export function errorFromResponse(
  status: number,
  text: string,
  request: string,
  attempts: number,
): WarmStoreError | WarmStoreClientError {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  if (!isErrorBody(parsed)) {
    const snippet = text.length > 200 ? `${text.slice(0, 200)}...` : text;
    return new WarmStoreClientError(
      status === 401 ? 'UNAUTHORIZED' : status === 403 ? 'FORBIDDEN' : 'BAD_RESPONSE',
      `${request} answered HTTP ${status}: ${snippet || '(empty body)'}`,
      status,
      { request, attempts },
    );
  }
  const { code, message, field, ...rest } = parsed.error;
  if (STORE_CODES.has(code)) {
    return new WarmStoreError(code as WarmStoreErrorCode, message, {
      ...rest,
      ...(field === undefined ? {} : { field }),
      status,
    });
  }
  return new WarmStoreClientError(code, message, status, {
    ...rest,
    ...(field === undefined ? {} : { field }),
    request,
    attempts,
  });
}
