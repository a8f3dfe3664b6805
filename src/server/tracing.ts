import {
  SpanStatusCode,
  context,
  isSpanContextValid,
  trace,
  type Attributes,
  type Span,
} from '@opentelemetry/api';
import { WarmStoreError } from '../errors.js';

// The API package is a no-op until the application registers an SDK, so spans cost next to
// nothing when nobody collects them.
const tracer = trace.getTracer('warmstore');

/**
 * Runs `fn` inside an active span named `name`. Errors are recorded on the span and rethrown;
 * a `WarmStoreError` also sets `warmstore.error_code` so traces can be filtered by code.
 */
export function traced<T>(name: string, attributes: Attributes, fn: (span: Span) => Promise<T>): Promise<T> {
  return tracer.startActiveSpan(name, { attributes }, async (span) => {
    try {
      return await fn(span);
    } catch (err) {
      fail(span, err);
      throw err;
    } finally {
      span.end();
    }
  });
}

/**
 * `traced` for a call that may complete synchronously: its value comes back as is, the span ended,
 * with no promise to create and await (a page-cached read by id); a promise is traced until it
 * settles, as `traced` does.
 */
export function tracedNow<T>(
  name: string,
  attributes: Attributes,
  fn: (span: Span) => T | Promise<T>,
): T | Promise<T> {
  const span = tracer.startSpan(name, { attributes });
  // A span whose context is not valid (no tracing SDK registered, and no traced parent to inherit
  // one from) names no trace: the spans started inside `fn` find no valid parent whether or not
  // it is made active, so the new context (a copy of the active one) is left out.
  if (!isSpanContextValid(span.spanContext())) return runSpan(span, fn);
  return context.with(trace.setSpan(context.active(), span), () => runSpan(span, fn));
}

function runSpan<T>(span: Span, fn: (span: Span) => T | Promise<T>): T | Promise<T> {
  let result: T | Promise<T>;
  try {
    result = fn(span);
  } catch (err) {
    fail(span, err);
    span.end();
    throw err;
  }
  if (!(result instanceof Promise)) {
    span.end();
    return result;
  }
  return result.then(
    (value) => {
      span.end();
      return value;
    },
    (err: unknown) => {
      fail(span, err);
      span.end();
      throw err;
    },
  );
}

/** Records an error on its span; a `WarmStoreError` also sets `warmstore.error_code`. */
function fail(span: Span, err: unknown): void {
  if (err instanceof Error) span.recordException(err);
  if (err instanceof WarmStoreError) span.setAttribute('warmstore.error_code', err.code);
  span.setStatus({
    code: SpanStatusCode.ERROR,
    message: err instanceof Error ? err.message : String(err),
  });
}
