/**
 * The engine's spans: with no tracer registered `traced` runs its function as it is (a span that
 * records nothing is neither ended nor needs an async frame); once one is registered, every span
 * is ended, a failure is recorded on it and passed on. (A file of its own: the tracer provider is
 * global to the process.)
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { trace, type Span } from '@opentelemetry/api';
import { traced } from '../../../src/engine/tracing.js';
import { recordingTracer } from '../../helpers/tracer.js';

const { provider, recorded } = recordingTracer();

describe('traced', () => {
  it('without a tracer: the function runs as it is, its result and failure passed on', async () => {
    let seen: Span | undefined;
    const p = Promise.resolve(7);
    const r = traced('warmstore.test', {}, (span) => {
      seen = span;
      return p;
    });
    assert.equal(r, p, 'no wrapper promise around a span that records nothing');
    assert.equal(await r, 7);
    assert.equal(seen?.isRecording(), false);
    await assert.rejects(
      traced('warmstore.test', {}, () => Promise.reject(new Error('boom'))),
      /boom/,
    );
    assert.equal(recorded.length, 0);
  });

  it('with a tracer: each span ended, a failure recorded and passed on', async () => {
    trace.setGlobalTracerProvider(provider);
    let ended: boolean | undefined;
    const r = await traced('warmstore.ok', { 'warmstore.k': 3 }, async () => {
      await new Promise((res) => setImmediate(res));
      ended = recorded[0]?.ended;
      return 'done';
    });
    assert.equal(r, 'done');
    assert.equal(ended, false, 'the span lasts until the function settles');
    await assert.rejects(
      traced('warmstore.fails', {}, () => Promise.reject(new Error('io'))),
      /io/,
    );
    assert.deepEqual(
      recorded.map((x) => [x.name, x.ended, x.error]),
      [
        ['warmstore.ok', true, false],
        ['warmstore.fails', true, true],
      ],
    );
  });
});
