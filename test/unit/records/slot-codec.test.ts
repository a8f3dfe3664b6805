import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { crc32c } from '../../../src/format/crc.js';
import {
  RECORDS_DATA_START,
  SLOT_HEADER_BYTES,
  decodeSlot,
  encodeFreeHeader,
  encodeSlotHeader,
  encodeVector,
  headerOffset,
  idHash,
  slotBytesFor,
  stampIdHash,
  vectorOffset,
} from '../../../src/records/slot-codec.js';
import { RecordTable, type SlotValue } from '../../../src/records/table.js';
import { ContentKind } from '../../../src/wal/entries.js';
import { embeddingCrc, embeddingSummary } from '../../../src/format/embedding.js';

const DIM = 16;
const VEC = DIM * 4;

type Valued = SlotValue & { embedding: Float32Array };

function value(id: string, kind: ContentKind, seed: number): Valued {
  const embedding = new Float32Array(DIM);
  for (let i = 0; i < DIM; i++) embedding[i] = Math.cos(seed + i * 7) * 3;
  embedding[3] = -0;
  embedding[4] = 3.4028234663852886e38;
  embedding[5] = 1.401298464324817e-45;
  return {
    id,
    space: seed % 3 === 0 ? 0 : 0xfffffff0 + (seed % 7),
    idLen: Buffer.byteLength(id),
    kind,
    seg: kind === ContentKind.Present ? 0xfffffffe : 0,
    off: kind === ContentKind.Present ? 2 ** 45 + 12 : 0,
    clen: kind === ContentKind.Present ? 0xffffffff : 0,
    clsn: 2 ** 50 + seed,
    confidence: 0.3,
    activation: -7.25e-300,
    decayRate: 1e308,
    createdAt: 1_700_000_000_000 + seed,
    lastAccess: -5,
    accessCount: Number.MAX_SAFE_INTEGER,
    ...embeddingSummary(embedding),
    embedding,
  };
}

/** A header (in records.dat's buffer) and a vector (in vectors.dat's), each at `pos`. */
interface Encoded {
  h: Buffer;
  vec: Buffer;
}

function encoded(v: Valued, pos = 0, extra = 0): Encoded {
  const h = Buffer.alloc(pos + SLOT_HEADER_BYTES + extra, 0xa5);
  const vec = Buffer.alloc(pos + VEC + extra, 0xa5);
  const table = new RecordTable(DIM);
  table.set(0, v);
  encodeSlotHeader(h, pos, table.chunk(0), 0);
  encodeVector(vec, pos, v.embedding);
  return { h, vec };
}

const decode = (e: Encoded, pos = 0, dim = DIM) => decodeSlot(e.h, pos, e.vec, pos, dim);

function assertSameValue(got: SlotValue, want: Valued, label: string): void {
  const { embedding: _e, ...wr } = want;
  // The header stores the norm as a float32.
  assert.deepEqual(got, { ...wr, norm: Math.fround(wr.norm) }, `${label}: fields`);
}

describe('records.dat headers and vectors.dat vectors', () => {
  test('layout: slot size and offsets in both files', () => {
    assert.equal(SLOT_HEADER_BYTES, 352);
    assert.equal(slotBytesFor(768), 352 + 768 * 4);
    assert.equal(slotBytesFor(1), 356);
    assert.equal(headerOffset(0), RECORDS_DATA_START);
    assert.equal(headerOffset(10), RECORDS_DATA_START + 10 * 352);
    assert.equal(vectorOffset(0, 768), RECORDS_DATA_START);
    assert.equal(vectorOffset(10, 768), RECORDS_DATA_START + 10 * 768 * 4);
  });

  test('encode/decode round trip of every content kind and id shape, at any offset in a buffer', () => {
    const ids = ['a', '漢字🧠', 'x'.repeat(255), 'é'.repeat(127) + 'z'];
    let n = 0;
    for (const kind of [ContentKind.Absent, ContentKind.Empty, ContentKind.Present]) {
      for (const id of ids) {
        const v = value(id, kind, n++);
        for (const pos of [0, SLOT_HEADER_BYTES, 16]) {
          const d = decode(encoded(v, pos, 3), pos);
          assert.equal(d.state, 'used', `${id} kind ${kind} at ${pos}`);
          if (d.state !== 'used') continue;
          assertSameValue(d.value, v, `${id} kind ${kind} at ${pos}`);
          assert.equal(d.embCrc, embeddingCrc(v.embedding), 'the stored embedding CRC is returned');
        }
      }
    }
  });

  test('a free slot (never written or deleted) decodes as free', () => {
    const e = encoded(value('gone', ContentKind.Present, 1));
    encodeFreeHeader(e.h, 0);
    assert.ok(e.h.every((x) => x === 0));
    // Only the header decides: a zero header with a leftover vector is still free.
    assert.deepEqual(decode(e), { state: 'free' });
    assert.deepEqual(decodeSlot(Buffer.alloc(SLOT_HEADER_BYTES), 0, Buffer.alloc(0), 0, DIM), {
      state: 'free',
    });
  });

  test('a used header whose vector is missing (vectors.dat ends early) is corrupt, not absent', () => {
    const e = encoded(value('short', ContentKind.Absent, 6));
    for (const len of [0, 1, VEC - 1]) {
      const d = decodeSlot(e.h, 0, e.vec.subarray(0, len), 0, DIM);
      assert.equal(d.state, 'corrupt', `vector of ${len} bytes`);
      if (d.state === 'corrupt') assert.equal(d.where, 'vector');
    }
  });

  test("a header paired with another record's vector fails the embedding checksum", () => {
    const a = encoded(value('a', ContentKind.Absent, 7));
    const b = encoded(value('b', ContentKind.Absent, 8));
    const d = decodeSlot(a.h, 0, b.vec, 0, DIM);
    assert.equal(d.state, 'corrupt');
    if (d.state === 'corrupt') assert.deepEqual([d.where, d.id], ['vector', 'a']);
  });

  test('any flipped byte in a used header or its vector is detected as corrupt, with the id guessed when intact', () => {
    const v = value('victim', ContentKind.Present, 3);
    const good = encoded(v);
    for (const part of ['h', 'vec'] as const) {
      for (let i = 0; i < good[part].length; i++) {
        for (const mask of [0x01, 0x40]) {
          const e = { h: Buffer.from(good.h), vec: Buffer.from(good.vec) };
          e[part][i] = e[part][i]! ^ mask;
          const d = decode(e);
          assert.equal(d.state, 'corrupt', `${part} byte ${i} ^ ${mask}`);
          if (d.state !== 'corrupt') continue;
          assert.ok(d.reason.length > 0);
          if (part === 'vec') {
            assert.match(d.reason, /embedding/, `vector byte ${i}: embedding checksum`);
            assert.equal(d.where, 'vector');
            assert.equal(d.id, 'victim', `vector byte ${i}: id is still readable`);
          } else {
            assert.equal(d.where, 'header');
          }
        }
      }
    }
  });

  test('fields out of range behind a valid header checksum are corrupt', () => {
    const v = value('bad', ContentKind.Absent, 4);
    const patched = (at: number, byte: number): Encoded => {
      const e = encoded(v);
      e.h[at] = byte;
      e.h.writeUInt32LE(crc32c(e.h.subarray(4, SLOT_HEADER_BYTES)), 0);
      return e;
    };
    assert.equal(decode(patched(4, 9)).state, 'corrupt', 'kind 9');
    assert.equal(decode(patched(4, ContentKind.Free)).state, 'corrupt', 'kind free in a used slot');
    assert.equal(decode(patched(5, 0)).state, 'corrupt', 'empty id');
  });

  test("the header keeps the id's checksum; a format-1 header gets it stamped by the migration", () => {
    const v = value('stamp-me', ContentKind.Present, 9);
    const e = encoded(v);
    assert.equal(e.h.readUInt32LE(84), idHash('stamp-me'));
    assert.notEqual(idHash('stamp-me'), 0);
    // What format 1 wrote: bytes 84..88 zero, CRC over the rest.
    e.h.writeUInt32LE(0, 84);
    e.h.writeUInt32LE(crc32c(e.h.subarray(4, SLOT_HEADER_BYTES)), 0);
    assert.equal(decode(e).state, 'used');
    const before = Buffer.from(e.h);
    assert.equal(stampIdHash(e.h, 0), true);
    assert.equal(e.h.readUInt32LE(84), idHash('stamp-me'));
    assert.equal(decode(e).state, 'used', 'resealed');
    assert.equal(stampIdHash(e.h, 0), false, 'already stamped');
    // Damaged or free headers are left exactly as found.
    before[40] = before[40]! ^ 1;
    const damaged = Buffer.from(before);
    assert.equal(stampIdHash(before, 0), false);
    assert.deepEqual(before, damaged);
    const free = Buffer.alloc(SLOT_HEADER_BYTES);
    assert.equal(stampIdHash(free, 0), false);
    assert.ok(free.every((x) => x === 0));
  });

  test('the header carries the embedding norm the table computed, so open need not recompute it', () => {
    const v = value('normed', ContentKind.Absent, 11);
    const table = new RecordTable(DIM);
    table.set(0, v);
    const d = decode(encoded(v));
    assert.equal(d.state, 'used');
    if (d.state === 'used') {
      assert.equal(d.norm, table.chunk(0).norm[0]);
      assert.ok(d.norm! > 0);
    }
    // A header written without the flag (format 1, or before the norm was kept) has no norm.
    const e = encoded(v);
    e.h[6] = 0;
    e.h.writeUInt32LE(crc32c(e.h.subarray(4, SLOT_HEADER_BYTES)), 0);
    const old = decode(e);
    assert.equal(old.state, 'used');
    if (old.state === 'used') assert.equal(old.norm, undefined);
  });

  test('a corrupt header reports the id checksum it kept', () => {
    const e = encoded(value('kept', ContentKind.Absent, 10));
    e.h[96] = e.h[96]! ^ 0x20; // 'k' -> 'K': the id bytes are damaged, the checksum is not
    const d = decode(e);
    assert.equal(d.state, 'corrupt');
    if (d.state === 'corrupt') {
      assert.equal(d.id, 'Kept');
      assert.equal(d.idHash, idHash('kept'));
    }
  });

  test('a slot decoded with another dimension fails its embedding checksum', () => {
    const e = encoded(value('dim', ContentKind.Absent, 5), 0, 64);
    assert.equal(decode(e).state, 'used');
    assert.equal(decode(e, 0, 32).state, 'corrupt');
  });
});
