import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { WarmStoreError } from '../../../src/errors.js';
import { crc32c } from '../../../src/format/crc.js';
import {
  FORMAT_VERSION,
  HEADER_BYTES,
  MAGIC,
  decodeHeader,
  encodeHeader,
  findMigration,
  registerMigration,
  type FileKind,
} from '../../../src/format/header.js';

const KINDS: FileKind[] = ['SEGM', 'WALG', 'RECS', 'VECS', 'MANI'];

/** A header with the version field patched and the header CRC recomputed, as a newer writer would. */
function withVersion(h: Buffer, version: number): Buffer {
  const b = Buffer.from(h);
  b.writeUInt32LE(version, 8);
  b.writeUInt32LE(crc32c(b.subarray(0, 28)), 28);
  return b;
}

function code(c: string, label: string, extra?: (e: WarmStoreError) => void) {
  return (err: unknown): boolean => {
    assert.ok(WarmStoreError.is(err), `${label}: not a WarmStoreError: ${String(err)}`);
    assert.equal(err.code, c, `${label}: ${err.message}`);
    extra?.(err);
    return true;
  };
}

describe('crc32c', () => {
  test('matches the standard check values', () => {
    assert.equal(crc32c(Buffer.from('123456789')), 0xe3069283);
    assert.equal(crc32c(Buffer.alloc(0)), 0);
    assert.equal(crc32c(Buffer.alloc(32)), 0x8a9136aa);
    assert.equal(crc32c(Buffer.alloc(32, 0xff)), 0x62a8ab43);
    // A Uint8Array view and an incremental computation give the same value.
    const data = Buffer.from('hello, warmstore');
    assert.equal(crc32c(new Uint8Array(data)), crc32c(data));
    assert.equal(crc32c(data.subarray(7), crc32c(data.subarray(0, 7))), crc32c(data));
  });
});

describe('file header', () => {
  test('encode/decode round trip for every kind, fields kept exactly', () => {
    assert.equal(HEADER_BYTES, 32);
    for (const kind of KINDS) {
      const expected: Record<string, number> = { RECS: 3, WALG: 4 };
      assert.equal(FORMAT_VERSION[kind], expected[kind] ?? 1, `${kind}'s current version`);
      const fields: [number, number, number, number] = [0, 1, 0xffffffff, 123456789];
      const h = encodeHeader(kind, fields);
      assert.equal(h.length, HEADER_BYTES);
      assert.equal(h.toString('latin1', 0, 4), MAGIC);
      assert.equal(h.toString('latin1', 4, 8), kind);
      assert.equal(h.readUInt32LE(8), FORMAT_VERSION[kind]);
      assert.equal(h.readUInt32LE(28), crc32c(h.subarray(0, 28)));
      const d = decodeHeader(h, kind, `/x/${kind}`);
      assert.equal(d.kind, kind);
      assert.equal(d.version, FORMAT_VERSION[kind]);
      assert.deepEqual(d.fields, fields);
      assert.deepEqual(d.migrations, []);
      // Decoding works from a view inside a larger buffer too.
      const big = Buffer.concat([Buffer.alloc(5, 9), h, Buffer.alloc(7)]);
      assert.deepEqual(decodeHeader(big.subarray(5, 5 + HEADER_BYTES), kind, 'f').fields, fields);
      assert.deepEqual(decodeHeader(new Uint8Array(h), kind, 'f').fields, fields);
    }
    assert.deepEqual(decodeHeader(encodeHeader('SEGM'), 'SEGM', 'f').fields, [0, 0, 0, 0], 'default fields');
  });

  test('decode errors: short buffer, bad magic, wrong kind, any flipped byte => CORRUPTION_DETECTED naming the file', () => {
    const h = encodeHeader('RECS', [8, 384, 0, 0]);
    const file = '/store/records.dat';
    const named = (e: WarmStoreError): void => assert.equal(e.details.file, file);
    for (const n of [0, 1, 31]) {
      assert.throws(
        () => decodeHeader(h.subarray(0, n), 'RECS', file),
        code('CORRUPTION_DETECTED', `length ${n}`, named),
      );
    }
    const badMagic = Buffer.from(h);
    badMagic.write('XMST', 0, 'latin1');
    badMagic.writeUInt32LE(crc32c(badMagic.subarray(0, 28)), 28);
    assert.throws(() => decodeHeader(badMagic, 'RECS', file), code('CORRUPTION_DETECTED', 'magic', named));
    assert.throws(() => decodeHeader(h, 'SEGM', file), code('CORRUPTION_DETECTED', 'kind', named));
    assert.throws(
      () => decodeHeader(encodeHeader('WALG'), 'MANI', file),
      code('CORRUPTION_DETECTED', 'kind 2'),
    );
    for (let i = 0; i < HEADER_BYTES; i++) {
      for (const mask of [0x01, 0x80]) {
        const b = Buffer.from(h);
        b[i] = b[i]! ^ mask;
        assert.throws(
          () => decodeHeader(b, 'RECS', file),
          code('CORRUPTION_DETECTED', `byte ${i} ^ ${mask}`, named),
        );
      }
    }
    assert.throws(
      () => decodeHeader(Buffer.alloc(HEADER_BYTES), 'RECS', file),
      code('CORRUPTION_DETECTED', 'zeros'),
    );
  });

  test('a future version is UNSUPPORTED_VERSION, with the versions in details', () => {
    for (const kind of KINDS) {
      for (const v of [FORMAT_VERSION[kind] + 1, 99, 0xffffffff]) {
        const b = withVersion(encodeHeader(kind, [1, 2, 3, 4]), v);
        assert.throws(
          () => decodeHeader(b, kind, `/s/${kind}`),
          code('UNSUPPORTED_VERSION', `${kind} v${v}`, (e) => {
            assert.equal(e.details.file, `/s/${kind}`);
            assert.equal(e.details.version, v);
            assert.equal(e.details.supported, FORMAT_VERSION[kind]);
          }),
        );
      }
    }
  });

  test('an older version without a migration is UNSUPPORTED_VERSION; with one it is migrated', () => {
    const old = withVersion(encodeHeader('SEGM', [7, 0, 0, 0]), 0);
    assert.equal(findMigration('SEGM', 0), undefined);
    assert.throws(() => decodeHeader(old, 'SEGM', 'seg'), code('UNSUPPORTED_VERSION', 'v0, no migration'));
    let calls = 0;
    const unregister = registerMigration({
      kind: 'SEGM',
      fromVersion: 0,
      toVersion: 1,
      migrateFields: ([a, b, c, d]) => {
        calls++;
        return [a, b + 100, c, d];
      },
    });
    try {
      assert.ok(findMigration('SEGM', 0));
      const d = decodeHeader(old, 'SEGM', 'seg');
      assert.equal(d.version, 0, 'the stored version is reported');
      assert.deepEqual(d.fields, [7, 100, 0, 0], 'fields went through the migration');
      assert.equal(d.migrations.length, 1);
      assert.equal(d.migrations[0]?.toVersion, 1);
      assert.equal(calls, 1);
      // A migration of one kind does not apply to another.
      assert.throws(
        () => decodeHeader(withVersion(encodeHeader('RECS'), 0), 'RECS', 'r'),
        code('UNSUPPORTED_VERSION', 'other kind'),
      );
      // The current version needs no migration.
      assert.deepEqual(decodeHeader(encodeHeader('SEGM', [7, 0, 0, 0]), 'SEGM', 'seg').migrations, []);
    } finally {
      unregister();
    }
    assert.equal(findMigration('SEGM', 0), undefined, 'unregistered');
    assert.throws(() => decodeHeader(old, 'SEGM', 'seg'), code('UNSUPPORTED_VERSION', 'after unregister'));
  });
});
