import { WarmStoreError, type WarmStoreErrorCode } from '../errors.js';

/**
 * HTTP status of every `WarmStoreError` code, in one place. `satisfies` makes a new engine code a
 * compile error here instead of a silent 500.
 */
export const STATUS_BY_CODE = {
  INVALID_INPUT: 400,
  COMPACTION_IN_PROGRESS: 409,
  // The store is open in another process: the resource exists but is locked (RFC 4918).
  STORE_LOCKED: 423,
  COMPACTION_FAILED: 500,
  CORRUPTION_DETECTED: 500,
  IO_ERROR: 500,
  UNSUPPORTED_VERSION: 500,
  STORE_CLOSED: 503,
  // Opened read-only (an inspection tool) or fell back to it: no method that writes is allowed.
  READ_ONLY: 405,
  INSUFFICIENT_RESOURCES: 507,
  // The store's disk is full: new content cannot be stored until space returns (RFC 4918).
  DISK_FULL: 507,
} as const satisfies Record<WarmStoreErrorCode, number>;

/** Codes the server adds for failures that do not come from the store. */
export type HttpOnlyErrorCode =
  | 'NOT_FOUND'
  | 'PAYLOAD_TOO_LARGE'
  | 'UNSUPPORTED_MEDIA_TYPE'
  | 'BAD_REQUEST'
  | 'UNAUTHORIZED'
  | 'FORBIDDEN'
  | 'SHUTTING_DOWN'
  | 'INTERNAL_ERROR';

export type ServerErrorCode = WarmStoreErrorCode | HttpOnlyErrorCode;

/** Body of every error response. */
export interface ErrorBody {
  error: {
    code: ServerErrorCode;
    message: string;
    /** The request field that was refused, for 400 responses: `embedding`, `embedding[3]`, `id`. */
    field?: string;
  };
}

/** An error raised by a route for a condition that is not a store error (missing memory, shutdown). */
export class HttpError extends Error {
  override readonly name = 'HttpError';
  /** Response headers that go with the error (`WWW-Authenticate` on 401). */
  headers: Record<string, string> | undefined;
  constructor(
    readonly status: number,
    readonly code: ServerErrorCode,
    message: string,
    readonly field?: string,
  ) {
    super(message);
  }
}

/** The subset of an Ajv error that names a location. */
interface AjvErrorLike {
  instancePath?: string;
  keyword?: string;
  message?: string;
  params?: Record<string, unknown>;
}

interface FastifyErrorLike {
  code?: string;
  statusCode?: number;
  message: string;
  validation?: AjvErrorLike[];
  validationContext?: string;
}

/**
 * Turns an Ajv location into the field name clients see: `/embedding/3` → `embedding[3]`,
 * `/a/b` → `a.b`; a missing or unexpected property is named itself rather than its parent.
 */
export function fieldFromAjv(e: AjvErrorLike, context: string | undefined): string {
  const segments = (e.instancePath ?? '')
    .split('/')
    .slice(1)
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
  const extra =
    e.keyword === 'required'
      ? e.params?.['missingProperty']
      : e.keyword === 'additionalProperties'
        ? e.params?.['additionalProperty']
        : undefined;
  if (typeof extra === 'string') segments.push(extra);
  let field = '';
  for (const s of segments) field += /^\d+$/.test(s) ? `[${s}]` : field === '' ? s : `.${s}`;
  return field === '' ? (context ?? 'body') : field;
}

export function ajvMessage(e: AjvErrorLike): string {
  if (e.keyword === 'required') return 'is required';
  if (e.keyword === 'additionalProperties') return 'is not a known field';
  return e.message ?? 'is invalid';
}

function isAbort(err: unknown): boolean {
  return (
    err instanceof Error && (err.name === 'AbortError' || (err as { code?: unknown }).code === 'ABORT_ERR')
  );
}

/** One mapping from any thrown value to a status and an error body, used by the error handler. */
export function toErrorResponse(err: unknown, shuttingDown: boolean): { status: number; body: ErrorBody } {
  if (err instanceof HttpError) {
    return { status: err.status, body: errorBody(err.code, err.message, err.field) };
  }
  if (err instanceof WarmStoreError) {
    const field = err.code === 'INVALID_INPUT' ? err.details.field : undefined;
    return { status: STATUS_BY_CODE[err.code], body: errorBody(err.code, err.message, field) };
  }
  // A compaction aborted because the server is stopping is not a failure of the request's making.
  if (shuttingDown && isAbort(err)) {
    return {
      status: 503,
      body: errorBody('SHUTTING_DOWN', 'the server is shutting down; the operation was aborted'),
    };
  }
  const fe = (typeof err === 'object' && err !== null ? err : { message: String(err) }) as FastifyErrorLike;
  if (Array.isArray(fe.validation) && fe.validation.length > 0) {
    const first = fe.validation[0] ?? {};
    const field = fieldFromAjv(first, fe.validationContext);
    return { status: 400, body: errorBody('INVALID_INPUT', `invalid ${field}: ${ajvMessage(first)}`, field) };
  }
  switch (fe.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return { status: 413, body: errorBody('PAYLOAD_TOO_LARGE', fe.message) };
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return { status: 415, body: errorBody('UNSUPPORTED_MEDIA_TYPE', fe.message) };
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return { status: 400, body: errorBody('INVALID_INPUT', `invalid body: ${fe.message}`, 'body') };
  }
  // Fastify's JSON parser reports malformed JSON as a SyntaxError carrying statusCode 400.
  if (err instanceof SyntaxError && fe.statusCode === 400) {
    return { status: 400, body: errorBody('INVALID_INPUT', `invalid body: ${fe.message}`, 'body') };
  }
  if (typeof fe.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500) {
    return { status: fe.statusCode, body: errorBody('BAD_REQUEST', fe.message) };
  }
  return { status: 500, body: errorBody('INTERNAL_ERROR', fe.message || 'internal error') };
}

export function errorBody(code: ServerErrorCode, message: string, field?: string): ErrorBody {
  return { error: field === undefined ? { code, message } : { code, message, field } };
}
