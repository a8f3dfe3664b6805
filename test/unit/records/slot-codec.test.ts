import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { crc32c } from '../../../src/format/crc.js';
import {
  RECORDS_DATA_START,
  SLOT_HEADER_BYTES,
  decodeSlot,
  encodeFreeSlot,
  encodeSlot,
  slotBytesFor,
  slotOffset,
} from '../../../src/records/slot-codec.js';
import type { SlotValue } from '../../../src/records/table.js';
import { ContentKind } from '../../../src/wal/entries.js';

const DIM = 16;
const SLOT = slotBytesFor(DIM);

function value(id: string, kind: ContentKind, seed: number): SlotValue {
  const embedding = new Float32Array(DIM);
  for (let i = 0; i < DIM; i++) embedding[i] = Math.cos(seed + i * 7) * 3;
  embedding[3] = -0;
  embedding[4] = 3.4028234663852886e38;
  embedding[5] = 1.401298464324817e-45;
  return {
    id,
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
    embedding,
  };
}

function encoded(v: SlotValue, pos = 0, total = SLOT): Buffer {
  const b = Buffer.alloc(total, 0xa5);
  encodeSlot(b, pos, v, Buffer.from(v.id, 'utf8'));
  return b;
}

function assertSameValue(got: SlotValue, want: SlotValue, label: string): void {
  const { embedding: ge, ...gr } = got;
  const { embedding: we, ...wr } = want;
  assert.deepEqual(gr, wr, `${label}: fields`);
  assert.deepEqual(
    new Uint32Array(ge.buffer, ge.byteOffset, ge.length),
    new Uint32Array(we.buffer, we.byteOffset, we.length),
    `${label}: embedding bits`,
  );
}

describe('records.dat slots', () => {
  test('layout: slot size and offsets', () => {
    assert.equal(SLOT_HEADER_BYTES, 352);
    assert.equal(slotBytesFor(768), 352 + 768 * 4);
    assert.equal(slotBytesFor(1), 356);
    assert.equal(slotOffset(0, SLOT), RECORDS_DATA_START);
    assert.equal(slotOffset(10, SLOT), RECORDS_DATA_START + 10 * SLOT);
  });

  test('encode/decode round trip of every content kind and id shape, at any offset in a buffer', () => {
    const ids = ['a', '漢字🧠', 'x'.repeat(255), 'é'.repeat(127) + 'z'];
    let n = 0;
    for (const kind of [ContentKind.Absent, ContentKind.Empty, ContentKind.Present]) {
      for (const id of ids) {
        const v = value(id, kind, n++);
        for (const pos of [0, SLOT, 17]) {
          const b = encoded(v, pos, pos + SLOT + 3);
          const d = decodeSlot(b, pos, DIM);
          assert.equal(d.state, 'used', `${id} kind ${kind} at ${pos}`);
          if (d.state === 'used') assertSameValue(d.value, v, `${id} kind ${kind} at ${pos}`);
        }
      }
    }
  });

  test('a free slot (never written or deleted) decodes as free', () => {
    const b = encoded(value('gone', ContentKind.Present, 1));
    encodeFreeSlot(b, 0, SLOT);
    assert.ok(b.every((x) => x === 0));
    assert.deepEqual(decodeSlot(b, 0, DIM), { state: 'free' });
    assert.deepEqual(decodeSlot(Buffer.alloc(SLOT), 0, DIM), { state: 'free' });
    // Only the header decides: a zero header with leftover embedding bytes is still free.
    const z = encoded(value('gone', ContentKind.Absent, 2));
    z.fill(0, 0, SLOT_HEADER_BYTES);
    assert.deepEqual(decodeSlot(z, 0, DIM), { state: 'free' });
  });

  test('any flipped byte in a used slot is detected as corrupt, with the id guessed when intact', () => {
    const v = value('victim', ContentKind.Present, 3);
    const good = encoded(v);
    for (let i = 0; i < SLOT; i++) {
      for (const mask of [0x01, 0x40]) {
        const b = Buffer.from(good);
        b[i] = b[i]! ^ mask;
        const d = decodeSlot(b, 0, DIM);
        assert.equal(d.state, 'corrupt', `byte ${i} ^ ${mask}`);
        if (d.state !== 'corrupt') continue;
        assert.ok(d.reason.length > 0);
        if (i >= SLOT_HEADER_BYTES) {
          assert.match(d.reason, /embedding/, `byte ${i}: embedding checksum`);
          assert.equal(d.id, 'victim', `byte ${i}: id is still readable`);
        }
      }
    }
  });

  test('fields out of range behind a valid header checksum are corrupt', () => {
    const v = value('bad', ContentKind.Absent, 4);
    const reseal = (b: Buffer): Buffer => {
      b.writeUInt32LE(crc32c(b.subarray(4, SLOT_HEADER_BYTES)), 0);
      return b;
    };
    const badKind = encoded(v);
    badKind[4] = 9;
    assert.equal(decodeSlot(reseal(badKind), 0, DIM).state, 'corrupt', 'kind 9');
    const freeKind = encoded(v);
    freeKind[4] = ContentKind.Free;
    assert.equal(decodeSlot(reseal(freeKind), 0, DIM).state, 'corrupt', 'kind free in a used slot');
    const noId = encoded(v);
    noId[5] = 0;
    assert.equal(decodeSlot(reseal(noId), 0, DIM).state, 'corrupt', 'empty id');
  });

  test('a slot decoded with another dimension fails its embedding checksum', () => {
    const b = Buffer.alloc(slotBytesFor(32));
    const v = value('dim', ContentKind.Absent, 5);
    encodeSlot(b, 0, v, Buffer.from('dim'));
    assert.equal(decodeSlot(b, 0, DIM).state, 'used');
    assert.equal(decodeSlot(b, 0, 32).state, 'corrupt');
  });
});
