import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ERROR_CODES, WarmStoreError } from '../../../src/errors.js';
import { STATUS_BY_CODE, HttpError, fieldFromAjv, toErrorResponse } from '../../../src/server/errors.js';
import fc from 'fast-check';
import {
  decodeBase64,
  decodeBase64Loop,
  decodeEmbedding,
  encodeEmbeddingBase64,
  jsonString,
  memoryJsonText,
  memoryToJson,
  parseFields,
  recordFromJson,
  ALL_FIELDS,
  RECALL_FIELDS,
} from '../../../src/server/codec.js';
import { parseRecordLine } from '../../../src/cli/commands/import.js';

describe('error mapping', () => {
  it('maps every WarmStoreError code to its HTTP status', () => {
    for (const code of ERROR_CODES) assert.equal(typeof STATUS_BY_CODE[code], 'number', code);
    assert.equal(STATUS_BY_CODE.INVALID_INPUT, 400);
    assert.equal(STATUS_BY_CODE.COMPACTION_IN_PROGRESS, 409);
    assert.equal(STATUS_BY_CODE.INSUFFICIENT_RESOURCES, 507);
    assert.equal(STATUS_BY_CODE.COMPACTION_FAILED, 500);
    assert.equal(STATUS_BY_CODE.CORRUPTION_DETECTED, 500);
    assert.equal(STATUS_BY_CODE.STORE_CLOSED, 503);
    assert.equal(STATUS_BY_CODE.STORE_LOCKED, 423);
    assert.equal(STATUS_BY_CODE.IO_ERROR, 500);
  });

  it('carries details.field of INVALID_INPUT, and only there', () => {
    const r = toErrorResponse(new WarmStoreError('INVALID_INPUT', 'bad', { field: 'content' }), false);
    assert.deepEqual(r, {
      status: 400,
      body: { error: { code: 'INVALID_INPUT', message: 'bad', field: 'content' } },
    });
    const c = toErrorResponse(
      new WarmStoreError('CORRUPTION_DETECTED', 'crc', { field: 'x', file: 'f' }),
      false,
    );
    assert.equal(c.body.error.field, undefined);
  });

  it('names the field of Fastify validation errors', () => {
    const err = Object.assign(new Error('body/embedding/3 must be number'), {
      validation: [{ instancePath: '/embedding/3', keyword: 'type', message: 'must be number', params: {} }],
      validationContext: 'body',
    });
    const r = toErrorResponse(err, false);
    assert.equal(r.status, 400);
    assert.equal(r.body.error.field, 'embedding[3]');
    assert.equal(r.body.error.message, 'invalid embedding[3]: must be number');
  });

  it('builds field paths from Ajv locations', () => {
    assert.equal(
      fieldFromAjv({ instancePath: '', keyword: 'required', params: { missingProperty: 'id' } }, 'body'),
      'id',
    );
    assert.equal(
      fieldFromAjv(
        { instancePath: '/a/b', keyword: 'additionalProperties', params: { additionalProperty: 'c' } },
        'body',
      ),
      'a.b.c',
    );
    assert.equal(fieldFromAjv({ instancePath: '/x~1y/0', keyword: 'type' }, 'body'), 'x/y[0]');
    assert.equal(fieldFromAjv({ instancePath: '', keyword: 'type' }, 'querystring'), 'querystring');
  });

  it('maps body-size, media-type and unknown errors', () => {
    assert.equal(
      toErrorResponse({ code: 'FST_ERR_CTP_BODY_TOO_LARGE', statusCode: 413, message: 'x' }, false).status,
      413,
    );
    assert.equal(
      toErrorResponse({ code: 'FST_ERR_CTP_INVALID_MEDIA_TYPE', statusCode: 415, message: 'x' }, false)
        .status,
      415,
    );
    const internal = toErrorResponse(new Error('oops'), false);
    assert.equal(internal.status, 500);
    assert.equal(internal.body.error.code, 'INTERNAL_ERROR');
    assert.equal(toErrorResponse(new HttpError(404, 'NOT_FOUND', 'no'), false).status, 404);
  });

  it('answers an abort during shutdown with 503', () => {
    const abort = new DOMException('stop', 'AbortError');
    assert.equal(toErrorResponse(abort, true).status, 503);
    assert.equal(toErrorResponse(abort, false).status, 500);
  });
});

describe('embedding codec', () => {
  it('round-trips float32 through base64, bit for bit', () => {
    const e = Float32Array.from([0.1, -0, 3.4028234663852886e38, 1.401298464324817e-45, -7.25]);
    const back = decodeEmbedding(encodeEmbeddingBase64(e));
    assert.deepEqual(new Uint8Array(back.buffer), new Uint8Array(e.buffer));
  });

  it('accepts unpadded and url-safe base64', () => {
    const e = Float32Array.from([1.5, -2, 1e-30]);
    const b64 = encodeEmbeddingBase64(e);
    assert.deepEqual(decodeEmbedding(b64.replace(/=+$/, '')), e);
    assert.deepEqual(decodeEmbedding(Buffer.from(e.buffer).toString('base64url')), e);
  });

  it('reads a base64 string at an unaligned pool offset', () => {
    // Small Buffers come from a shared pool at arbitrary offsets; the decoder must copy.
    for (let n = 1; n < 8; n++) {
      const e = Float32Array.from({ length: n }, (_, i) => i + 0.5);
      assert.deepEqual(decodeEmbedding(encodeEmbeddingBase64(e)), e);
    }
  });

  it('refuses invalid base64 and lengths that are not whole float32 values', () => {
    assert.throws(
      () => decodeEmbedding('AAAA$AAA'),
      (e: unknown) => WarmStoreError.is(e, 'INVALID_INPUT'),
    );
    assert.throws(
      () => decodeEmbedding('AAAAAAA='),
      (e: unknown) => WarmStoreError.is(e, 'INVALID_INPUT') && e.details.field === 'embedding',
    );
  });

  it('decodes base64 and base64url as Buffer does, and refuses what the grammar refuses', () => {
    // The grammar as regular expressions: the reference the one-pass decoder must agree with.
    const standard = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{2,3})?$/;
    const url = /^[A-Za-z0-9_-]*$/;
    const check = (s: string): void => {
      const kind = standard.test(s) ? 'base64' : url.test(s) ? 'base64url' : undefined;
      for (const decode of [decodeBase64, decodeBase64Loop]) {
        const got = decode(s);
        if (kind === undefined) assert.equal(got, undefined, `${decode.name} ${JSON.stringify(s)}`);
        else
          assert.deepEqual(
            got && Buffer.from(got),
            Buffer.from(s, kind),
            `${decode.name} ${JSON.stringify(s)}`,
          );
      }
    };
    const chars = fc.constantFrom(...'AZaz09+/-_=$ \né\u0141'.split(''));
    fc.assert(
      fc.property(fc.array(chars, { maxLength: 14 }), fc.uint8Array({ maxLength: 20 }), (cs, bytes) => {
        check(cs.join(''));
        check(Buffer.from(bytes).toString('base64'));
        check(Buffer.from(bytes).toString('base64').replace(/=+$/, ''));
        check(Buffer.from(bytes).toString('base64url'));
      }),
      { numRuns: 3000 },
    );
    for (const s of [
      'AA==',
      'AA=',
      'AAA==',
      'AA===',
      'A-_A',
      'A-/A',
      'A-==',
      'AAAAA',
      '=',
      'AAAA\u0141AAA',
      'AA=A',
      'AA\nA',
      '',
    ])
      check(s);
  });

  it('names the element that is not a number', () => {
    assert.throws(
      () => decodeEmbedding([1, 'x', 3]),
      (e: unknown) => WarmStoreError.is(e, 'INVALID_INPUT') && e.details.field === 'embedding[1]',
    );
  });

  it('passes only present fields to the record, and back', () => {
    const r = recordFromJson({ id: 'a', embedding: [1, 2], content: null, accessCount: 2 });
    assert.deepEqual(Object.keys(r).sort(), ['accessCount', 'content', 'embedding', 'id']);
    const json = memoryToJson({
      id: 'a',
      space: 'default',
      embedding: Float32Array.from([0.1]),
      content: null,
      confidence: 1,
      activation: 0,
      decayRate: 0,
      createdAt: 1,
      lastAccess: 1,
      accessCount: 0,
    });
    assert.equal(json.embedding[0], Math.fround(0.1));
  });
});

describe('memory JSON text', () => {
  const m = {
    id: 'a "quoted" \u2028 id',
    space: 'default',
    embedding: Float32Array.from([0.1, -0, 3.4028234663852886e38, 1.401298464324817e-45, -7.25]),
    content: 'line\nbreak and "quotes" and 🧠',
    confidence: 0.25,
    activation: -3,
    decayRate: 0.001,
    createdAt: 1_700_000_000_000,
    lastAccess: 1_700_000_000_001,
    accessCount: 7,
  };

  it('writes what JSON.stringify writes, numbers exact to the float32 bit', () => {
    const text = memoryJsonText(m, { fields: ALL_FIELDS, encoding: 'array' });
    assert.deepEqual(JSON.parse(text), memoryToJson(m));
    const back = Float32Array.from((JSON.parse(text) as { embedding: number[] }).embedding);
    assert.deepEqual(new Uint8Array(back.buffer), new Uint8Array(m.embedding.buffer));
  });

  it('writes every string as JSON.stringify does, escaping only what it escapes', () => {
    // Every UTF-16 code unit alone (lone surrogates included), inside text, and as pairs.
    for (let c = 0; c <= 0xffff; c++) {
      const ch = String.fromCharCode(c);
      for (const s of [ch, `plain ${ch} text`]) assert.equal(jsonString(s), JSON.stringify(s), `U+${c}`);
    }
    for (const s of ['', '🧠', 'a🧠b', '\ud83e', 'x\udde0', '\udde0\ud83e', 'tab\there', 'back\\slash'])
      assert.equal(jsonString(s), JSON.stringify(s), s);
  });

  it('writes base64 and absent content, and only the chosen fields', () => {
    const absent = { ...m, content: null };
    const all = JSON.parse(memoryJsonText(absent, { fields: ALL_FIELDS, encoding: 'base64' }));
    assert.equal(all.content, null);
    assert.deepEqual(decodeEmbedding(all.embedding), m.embedding);
    const some = JSON.parse(
      memoryJsonText(
        { ...m, space: 'x' },
        { fields: parseFields('id,space', ALL_FIELDS), encoding: 'array' },
      ),
    );
    assert.deepEqual(some, { id: m.id, space: 'x' });
    const recall = JSON.parse(memoryJsonText(m, { fields: RECALL_FIELDS, encoding: 'array' }));
    assert.equal('embedding' in recall, false);
  });

  it('parses fields from a query string or a list, refusing unknown names', () => {
    assert.equal(parseFields(undefined, RECALL_FIELDS), RECALL_FIELDS);
    assert.deepEqual([...parseFields(' id , metadata', ALL_FIELDS)], ['id', 'metadata']);
    assert.deepEqual([...parseFields(['embedding'], ALL_FIELDS)], ['embedding']);
    for (const bad of ['id,vector', '', ',']) {
      assert.throws(
        () => parseFields(bad, ALL_FIELDS),
        (e: unknown) => WarmStoreError.is(e, 'INVALID_INPUT') && e.details.field === 'fields',
      );
    }
  });

  it('refuses non-finite values naming the element', () => {
    assert.throws(
      () => decodeEmbedding(encodeEmbeddingBase64(Float32Array.from([1, Number.POSITIVE_INFINITY]))),
      (e: unknown) => WarmStoreError.is(e, 'INVALID_INPUT') && e.details.field === 'embedding[1]',
    );
    assert.throws(
      () => decodeEmbedding([0, 0, 1e39]),
      (e: unknown) => WarmStoreError.is(e, 'INVALID_INPUT') && e.details.field === 'embedding[2]',
    );
  });
});

describe('import line parsing', () => {
  it('parses a line and refuses bad shapes naming the field', () => {
    const r = parseRecordLine('{"id":"a","embedding":[1,2],"content":"x","confidence":0.5}');
    assert.equal(r.id, 'a');
    assert.deepEqual(r.embedding, Float32Array.from([1, 2]));
    const field = (line: string): unknown => {
      try {
        parseRecordLine(line);
      } catch (e) {
        return (e as WarmStoreError).details.field;
      }
      return undefined;
    };
    assert.equal(field('{"id":1,"embedding":[1]}'), 'id');
    assert.equal(field('{"id":"a"}'), 'embedding');
    assert.equal(field('{"id":"a","embedding":[1],"content":5}'), 'content');
    assert.equal(field('{"id":"a","embedding":[1],"confidence":"high"}'), 'confidence');
    assert.equal(field('{"id":"a","embedding":[1],"extra":1}'), 'extra');
    assert.equal(field('[1,2]'), 'line');
    assert.equal(field('{nope'), 'line');
  });
});
