import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { parseBatchBody } from '../../../src/server/batch-body.js';

const parse = (text: string): unknown => JSON.parse(text);

/** Parses `text` item by item; the answer must be JSON.parse's, or undefined (parsed whole). */
function agrees(text: string): unknown {
  const split = parseBatchBody(Buffer.from(text), parse);
  let whole: unknown;
  try {
    whole = JSON.parse(text);
  } catch {
    assert.equal(split, undefined, `split a body JSON.parse refuses: ${text}`);
    return undefined;
  }
  if (split !== undefined) assert.deepEqual(split, whole, text);
  return split;
}

const space = fc.constantFrom('', ' ', '\n', '\t ', '\r\n  ');
const item = fc.dictionary(
  fc.oneof(fc.constantFrom('id', 'embedding', 'content', '"q"', 'a\\b', 'memories'), fc.string()),
  fc.jsonValue(),
);

describe('batch put body, item by item', () => {
  it('splits what JSON.stringify writes, whitespace between tokens included, into what JSON.parse gives', () => {
    fc.assert(
      fc.property(fc.array(item, { maxLength: 6 }), space, space, space, (items, a, b, c) => {
        const text = `${a}{${b}"memories"${c}:${a}[${b}${items.map((x) => JSON.stringify(x)).join(`${c},${a}`)}${b}]${c}}${a}`;
        assert.notEqual(agrees(text), undefined, text);
      }),
      { numRuns: 500 },
    );
  });

  it('keeps the other members and their order of keys', () => {
    const text = '{"space":"s","memories":[{"id":"a"},{"id":"b","x":[1,{"y":"]}"}]}],"fields":["id"]}';
    assert.deepEqual(agrees(text), JSON.parse(text));
  });

  it('leaves to the whole-body parse what it does not expect, and never disagrees with it', () => {
    for (const text of [
      '{"memories":[{"id":"a"}{"id":"b"}]}', // no comma
      '{"memories":[{"id":"a"}],"memories":[]}', // twice
      '{"memories":[1,{"id":"a"}]}', // an item that is not an object
      '{"memories":{"id":"a"}}', // not an array
      '{"memories":[{"id":"a"}]', // cut short
      '{"memories":[{"id":"a\\"}]}', // an escaped quote runs to the end
      '\ufeff{"memories":[]}', // byte order mark
      '{"memories":[{"id":"a"}]} x', // trailing junk
      '{"mem\\u006fries":[{"id":"a"}]}', // the key spelled with an escape
      '[]',
      '{}',
      '',
    ]) {
      assert.equal(parseBatchBody(Buffer.from(text), parse), undefined, text);
      agrees(text);
    }
  });

  it('agrees with JSON.parse on mangled bodies', () => {
    const body = fc
      .tuple(
        fc.array(item, { maxLength: 4 }),
        fc.nat(),
        fc.constantFrom('', ',', '"', '{', '}', ']', '\\', ':'),
      )
      .map(([items, at, junk]) => {
        const s = JSON.stringify({ memories: items });
        const k = at % (s.length + 1);
        return s.slice(0, k) + junk + s.slice(k);
      });
    fc.assert(
      fc.property(body, (text) => {
        agrees(text);
      }),
      { numRuns: 2000 },
    );
  });

  it('refuses prototype poisoning inside an item through the parser it is given', () => {
    const strict = (text: string): unknown =>
      JSON.parse(text, (k, v: unknown) => {
        if (k === '__proto__') throw new Error('poisoned');
        return v;
      });
    const text = '{"memories":[{"id":"a"},{"__proto__":{"x":1}}]}';
    assert.equal(parseBatchBody(Buffer.from(text), strict), undefined);
  });
});
