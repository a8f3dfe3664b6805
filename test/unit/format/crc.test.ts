import assert from 'node:assert/strict';
import { test } from 'node:test';
import { crc32c as nativeCrc32c } from '@node-rs/crc32';
import fc from 'fast-check';
import { crc32c, crc32cRange, crc32cTable } from '../../../src/format/crc.js';

const ascii = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'latin1'));

test('crc32c: the standard check value and known vectors, on both paths', () => {
  // CRC-32C's check value (the CRC of "123456789") and RFC 3720's 32 bytes of zeros and of 0xff.
  for (const f of [crc32c, crc32cTable]) {
    assert.equal(f(ascii('123456789')), 0xe3069283);
    assert.equal(f(new Uint8Array(32)), 0x8a9136aa);
    assert.equal(f(new Uint8Array(32).fill(0xff)), 0x62a8ab43);
    assert.equal(f(new Uint8Array(0)), 0);
  }
});

test('crc32c: the table and the native binding agree on any bytes, offset, length and start value', () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ minLength: 0, maxLength: 600 }),
      fc.nat(7),
      fc.integer({ min: 0, max: 0xffffffff }),
      (bytes, skip, initial) => {
        // A view that does not start at its buffer's first byte (the views the engine checksums).
        const view = bytes.subarray(Math.min(skip, bytes.length));
        const want = nativeCrc32c(Buffer.from(view), initial) >>> 0;
        assert.equal(crc32cTable(view, initial), want);
        assert.equal(crc32c(view, initial), want);
        const from = Math.min(skip, bytes.length);
        assert.equal(crc32cRange(bytes, from, bytes.length), nativeCrc32c(Buffer.from(view)) >>> 0);
      },
    ),
    { numRuns: 500 },
  );
});

test('crc32c: a checksum continued over two pieces equals the one over the whole, across the path switch', () => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 0, maxLength: 700 }), fc.nat(700), (bytes, cut) => {
      const at = Math.min(cut, bytes.length);
      const whole = crc32c(bytes);
      assert.equal(crc32c(bytes.subarray(at), crc32c(bytes.subarray(0, at))), whole);
    }),
    { numRuns: 300 },
  );
});
