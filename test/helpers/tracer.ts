import {
  context,
  trace,
  type Span,
  type SpanContext,
  type Tracer,
  type TracerProvider,
} from '@opentelemetry/api';

/** One span as a recording tracer saw it. */
export interface RecordedSpan {
  name: string;
  /** The span id of the active span when it started, if any. */
  parent: string | undefined;
  ended: boolean;
  error: boolean;
}

/**
 * A minimal tracing SDK for tests: spans that record (their ids count up from 1, as 16 hex digits)
 * and note whether they were ended and whether an exception was recorded on them. Register it with
 * `trace.setGlobalTracerProvider(provider)`; the registration is global to the process, so a test
 * file that does so should hold only tests that want it.
 */
export function recordingTracer(): { provider: TracerProvider; recorded: RecordedSpan[] } {
  const recorded: RecordedSpan[] = [];
  let next = 1;
  const tracer: Tracer = {
    startSpan(name, _options, ctx): Span {
      const id = (next++).toString(16).padStart(16, '0');
      const spanContext: SpanContext = { traceId: 'a'.repeat(32), spanId: id, traceFlags: 1 };
      const rec: RecordedSpan = {
        name,
        parent: trace.getSpan(ctx ?? context.active())?.spanContext().spanId,
        ended: false,
        error: false,
      };
      recorded.push(rec);
      const span = trace.wrapSpanContext(spanContext);
      return Object.assign(Object.create(span) as Span, {
        end: () => void (rec.ended = true),
        recordException: () => void (rec.error = true),
        setStatus: () => span,
        setAttribute: () => span,
        isRecording: () => true,
      });
    },
    startActiveSpan: (() => {
      throw new Error('not used');
    }) as Tracer['startActiveSpan'],
  };
  return { provider: { getTracer: () => tracer }, recorded };
}
