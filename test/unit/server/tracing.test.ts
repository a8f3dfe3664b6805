/**
 * `tracedNow` with a tracing SDK registered: spans started inside it are its children, whether
 * the call completes synchronously or not, and errors are recorded. (A file of its own: the
 * tracer provider and context manager it registers are global to the process.)
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  ROOT_CONTEXT,
  context,
  trace,
  type Context,
  type ContextManager,
  type Span,
} from '@opentelemetry/api';
import { tracedNow } from '../../../src/server/tracing.js';
import { recordingTracer } from '../../helpers/tracer.js';

/** A synchronous context manager: enough for code that enters and leaves contexts in order. */
class StackContextManager implements ContextManager {
  #stack: Context[] = [];
  active(): Context {
    return this.#stack[this.#stack.length - 1] ?? ROOT_CONTEXT;
  }
  with<A extends unknown[], F extends (...args: A) => ReturnType<F>>(
    ctx: Context,
    fn: F,
    thisArg?: ThisParameterType<F>,
    ...args: A
  ): ReturnType<F> {
    this.#stack.push(ctx);
    try {
      return fn.call(thisArg, ...args);
    } finally {
      this.#stack.pop();
    }
  }
  bind<T>(_ctx: Context, target: T): T {
    return target;
  }
  enable(): this {
    return this;
  }
  disable(): this {
    return this;
  }
}

const { provider, recorded } = recordingTracer();

context.setGlobalContextManager(new StackContextManager());
trace.setGlobalTracerProvider(provider);
const inner = (): Span => trace.getTracer('test').startSpan('inner');

describe('tracedNow with a tracing SDK', () => {
  it('makes its span the parent of spans started inside, synchronously or not', async () => {
    recorded.length = 0;
    const value = tracedNow('outer', {}, () => {
      inner().end();
      return 42;
    });
    assert.equal(value, 42);
    const [outer, child] = recorded;
    assert.ok(outer && child);
    assert.equal(child.parent, (1).toString(16).padStart(16, '0'));
    assert.equal(outer.ended, true);

    recorded.length = 0;
    const later = tracedNow('outer-async', {}, () => {
      inner().end();
      return Promise.resolve('done');
    });
    assert.ok(later instanceof Promise);
    assert.equal(recorded[0]?.ended, false, 'the span lasts until the promise settles');
    assert.equal(await later, 'done');
    assert.equal(recorded[0]?.ended, true);
    assert.equal(recorded[1]?.parent !== undefined, true);
  });

  it('records a thrown error and a rejection on the span, and passes them on', async () => {
    recorded.length = 0;
    assert.throws(() =>
      tracedNow('fails', {}, () => {
        throw new Error('sync');
      }),
    );
    await assert.rejects(Promise.resolve(tracedNow('rejects', {}, () => Promise.reject(new Error('async')))));
    assert.deepEqual(
      recorded.map((r) => [r.name, r.ended, r.error]),
      [
        ['fails', true, true],
        ['rejects', true, true],
      ],
    );
  });
});
