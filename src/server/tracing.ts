import { SpanStatusCode, trace, type Attributes, type Span } from '@opentelemetry/api';
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
      if (err instanceof Error) span.recordException(err);
      if (err instanceof WarmStoreError) span.setAttribute('warmstore.error_code', err.code);
      span.setStatus({
        code: SpanStatusCode.ERROR,
        message: err instanceof Error ? err.message : String(err),
      });
      throw err;
    } finally {
      span.end();
    }
  });
}
