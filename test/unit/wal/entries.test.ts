import { embeddingSummary } from '../../../src/format/embedding.js';
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { crc32c } from '../../../src/format/crc.js';
import {
  ContentKind,
  WAL_ENTRY_HEADER,
  WalType,
  decodeWal,
  encodeWalEntry,
  walEntrySize,
  type PutEntry,
  type WalEntry,
  type WalEntryInput,
} from '../../../src/wal/entries.js';

const DIM = 8;

function emb(seed: number): Float32Array {
  const e = new Float32Array(DIM);
  for (let i = 0; i < DIM; i++) e[i] = Math.sin(seed * 31 + i) * 10;
  e[1] = -0;
  e[2] = 1.401298464324817e-45;
  return e;
}

/** What format 4 stores of an embedding (the norm as a float32). */
function summary(e: Float32Array): { embCrc: number; norm: number } {
  const s = embeddingSummary(e);
  return { embCrc: s.embCrc, norm: Math.fround(s.norm) };
}

function put(id: string, kind: ContentKind, seed: number): WalEntryInput {
  const idBytes = Buffer.from(id, 'utf8');
  return {
    type: WalType.Put,
    slot: 1000 + seed,
    space: seed % 2 === 0 ? 0 : 0xffffffff - seed,
    id,
    idBytes,
    kind,
    seg: kind === ContentKind.Present ? 7 : 0,
    off: kind === ContentKind.Present ? 2 ** 40 + 32 : 0,
    clen: kind === ContentKind.Present ? 0xfffffff0 : 0,
    confidence: 0.1,
    activation: -1e300,
    decayRate: 5e-324,
    createdAt: 1_700_000_000_123,
    lastAccess: 1_700_000_000_999,
    accessCount: Number.MAX_SAFE_INTEGER,
    ...summary(emb(seed)),
  };
}

/** One of every entry type, with edge values. */
const SAMPLES: WalEntryInput[] = [
  put('plain', ContentKind.Present, 1),
  put('a', ContentKind.Absent, 2),
  put('漢字🧠', ContentKind.Empty, 3),
  put('x'.repeat(255), ContentKind.Present, 4),
  { type: WalType.Delete, slot: 0, id: 'gone' },
  { type: WalType.Delete, slot: 0xffffffff, id: 'ключ🙂'.repeat(20) },
  { type: WalType.Touch, slot: 42, lastAccess: 1_700_000_123_456.5, accessCount: 2 ** 52 },
  { type: WalType.CompactBegin, runId: 3, victims: [1, 2, 0xffffffff] },
  { type: WalType.CompactBegin, runId: 4, victims: [] },
  {
    type: WalType.CompactChunk,
    runId: 3,
    outSeg: 9,
    outEnd: 2 ** 33 + 5,
    victimsDone: [1],
    remaps: [
      { slot: 0, oldSeg: 1, oldOff: 32, expectedLsn: 17, newOff: 32 },
      { slot: 123456, oldSeg: 2, oldOff: 2 ** 35, expectedLsn: 2 ** 50, newOff: 99999 },
    ],
  },
  { type: WalType.CompactChunk, runId: 3, outSeg: 0, outEnd: 0, victimsDone: [], remaps: [] },
  { type: WalType.CompactEnd, runId: 3, outcome: 0 },
  { type: WalType.CompactEnd, runId: 0xffffffff, outcome: 255 },
  { type: WalType.SpaceDefine, space: 1, name: 'alice' },
  { type: WalType.SpaceDefine, space: 0xffffffff, name: 'é'.repeat(32) },
  { type: WalType.SpaceDrop, space: 7 },
  slotMove('moved', ContentKind.Present, 5),
  slotMove('x'.repeat(255), ContentKind.Absent, 6),
];

function slotMove(id: string, kind: ContentKind, seed: number): WalEntryInput {
  const { type: _type, slot: _slot, ...rest } = put(id, kind, seed) as PutEntry;
  return { ...rest, type: WalType.SlotMove, from: 0xffffffff - seed, to: seed, expectedLsn: 2 ** 50 + seed };
}

function encodeAll(entries: WalEntryInput[], firstLsn: number, prefix = 0): { buf: Buffer; ends: number[] } {
  const total = prefix + entries.reduce((n, e) => n + walEntrySize(e), 0);
  const buf = Buffer.alloc(total, 0xee);
  const ends: number[] = [];
  let pos = prefix;
  entries.forEach((e, i) => {
    const n = encodeWalEntry(buf, pos, firstLsn + i, e);
    assert.equal(n, walEntrySize(e), `size of entry ${i} (type ${e.type})`);
    pos += n;
    ends.push(pos);
  });
  return { buf, ends };
}

/**
 * One put or slot move, encoded as WAL formats 1 to 3 did: the embedding itself after the id where
 * format 4 has its CRC32C and norm.
 */
function withCarriedEmbedding(entry: WalEntryInput, lsn: number, embedding: Float32Array): Buffer {
  const { buf } = encodeAll([entry], lsn);
  const old = Buffer.concat([buf.subarray(0, buf.length - 8), Buffer.from(embedding.buffer.slice(0))]);
  old.writeUInt32LE(old.length - WAL_ENTRY_HEADER, 4);
  old.writeUInt32LE(crc32c(old.subarray(4)), 0);
  return old;
}

/** Compares a decoded entry with its input, exact for numbers. */
function assertSameEntry(got: WalEntry | undefined, want: WalEntryInput, lsn: number, label: string): void {
  assert.ok(got, `${label}: missing`);
  assert.equal(got.lsn, lsn, `${label}: lsn`);
  assert.equal(got.type, want.type, `${label}: type`);
  if (
    (got.type === WalType.Put && want.type === WalType.Put) ||
    (got.type === WalType.SlotMove && want.type === WalType.SlotMove)
  ) {
    const { idBytes: gi, lsn: _l, ...gr } = got;
    const { idBytes: wi, ...wr } = want;
    assert.deepEqual(gr, wr, `${label}: put fields`);
    assert.ok(gi.equals(wi), `${label}: id bytes`);
    return;
  }
  const { lsn: _lsn, ...rest } = got;
  assert.deepEqual(rest, want, `${label}: fields`);
}

describe('WAL format 1 (before memory spaces)', () => {
  test('a format-1 put (no space number) decodes into the default space; space entries are refused', () => {
    // Format 1 wrote a put as format 2 does, minus the 4-byte space after the slot.
    const e = put('old', ContentKind.Present, 9) as PutEntry;
    const buf = withCarriedEmbedding(e, 1, emb(9));
    const body = WAL_ENTRY_HEADER + 1;
    const v1 = Buffer.concat([buf.subarray(0, body + 4), buf.subarray(body + 8)]);
    v1.writeUInt32LE(v1.length - WAL_ENTRY_HEADER, 4);
    v1.writeUInt32LE(crc32c(v1.subarray(4)), 0);
    const res = decodeWal(v1, 0, DIM, 0, 1);
    assert.equal(res.entries.length, 1);
    const got = res.entries[0] as PutEntry;
    assert.deepEqual(got.embedding, emb(9), 'format 1 carried the embedding');
    delete got.embedding;
    assertSameEntry(got, { ...e, space: 0 }, 1, 'format-1 put');
    const def = encodeAll([{ type: WalType.SpaceDefine, space: 1, name: 'x' }], 1).buf;
    assert.equal(decodeWal(def, 0, DIM, 0, 1).entries.length, 0);
  });
});

describe('WAL format 2 (before slot moves)', () => {
  test('a slot move is not an entry of format 2: decoding stops there', () => {
    const buf = withCarriedEmbedding(slotMove('m', ContentKind.Empty, 1), 1, emb(1));
    assert.equal(decodeWal(buf, 0, DIM, 0, 2).entries.length, 0);
    assert.equal(decodeWal(buf, 0, DIM, 0, 3).entries.length, 1);
  });
});

describe('WAL format 3 (embeddings carried in the log)', () => {
  test('puts and slot moves decode with their embedding, its CRC32C and norm computed from it', () => {
    for (const e of [put('p', ContentKind.Empty, 3), slotMove('m', ContentKind.Present, 5)]) {
      const seed = e.type === WalType.Put ? 3 : 5;
      const res = decodeWal(withCarriedEmbedding(e, 1, emb(seed)), 0, DIM, 0, 3);
      assert.equal(res.entries.length, 1);
      const got = res.entries[0] as PutEntry;
      assert.deepEqual(got.embedding, emb(seed));
      delete got.embedding;
      assertSameEntry(got, e, 1, `format-3 ${e.type}`);
      // Read as format 4, the same bytes are a body of the wrong length.
      assert.equal(decodeWal(withCarriedEmbedding(e, 1, emb(seed)), 0, DIM, 0, 4).entries.length, 0);
    }
  });

  test('a format-3 put for another dimension is refused', () => {
    const buf = withCarriedEmbedding(put('p', ContentKind.Empty, 3), 1, emb(3));
    assert.equal(decodeWal(buf, 0, DIM * 2, 0, 3).entries.length, 0);
  });
});

describe('WAL entries', () => {
  test('every entry type round trips, alone and in a sequence, at any offset', () => {
    for (const [i, e] of SAMPLES.entries()) {
      const { buf } = encodeAll([e], 1 + i, 32);
      const res = decodeWal(buf, 32, DIM, 0);
      assert.equal(res.stopReason, undefined, `sample ${i}: ${res.stopReason}`);
      assert.equal(res.validEnd, buf.length);
      assert.equal(res.entries.length, 1);
      assertSameEntry(res.entries[0], e, 1 + i, `sample ${i}`);
    }
    const { buf } = encodeAll(SAMPLES, 100, 32);
    const res = decodeWal(buf, 32, DIM, 99);
    assert.equal(res.stopReason, undefined);
    assert.equal(res.validEnd, buf.length);
    assert.equal(res.entries.length, SAMPLES.length);
    SAMPLES.forEach((e, i) => assertSameEntry(res.entries[i], e, 100 + i, `sequence ${i}`));
  });

  test('an entry header holds its checksum, body length and LSN', () => {
    const e: WalEntryInput = { type: WalType.Touch, slot: 1, lastAccess: 2, accessCount: 3 };
    const { buf } = encodeAll([e], 77);
    assert.equal(buf.readUInt32LE(4), buf.length - WAL_ENTRY_HEADER, 'body length excludes the header');
    assert.equal(buf.readDoubleLE(8), 77);
    assert.equal(buf[WAL_ENTRY_HEADER], WalType.Touch);
  });

  test('a torn tail is cut at every possible tear point, keeping every whole entry before it', () => {
    const { buf, ends } = encodeAll(SAMPLES, 1);
    for (let cut = 0; cut < buf.length; cut++) {
      const res = decodeWal(buf.subarray(0, cut), 0, DIM, 0);
      const whole = ends.filter((end) => end <= cut).length;
      assert.equal(res.entries.length, whole, `cut at ${cut}`);
      assert.equal(res.validEnd, whole === 0 ? 0 : ends[whole - 1], `cut at ${cut}: validEnd`);
      if (cut !== res.validEnd) assert.ok(res.stopReason, `cut at ${cut}: says why it stopped`);
    }
  });

  test('a flipped byte in any entry stops decoding right before that entry', () => {
    const { buf, ends } = encodeAll(SAMPLES.slice(0, 6), 1);
    const starts = [0, ...ends.slice(0, -1)];
    for (let pos = 0; pos < buf.length; pos++) {
      const b = Buffer.from(buf);
      b[pos] = b[pos]! ^ 0x10;
      const res = decodeWal(b, 0, DIM, 0);
      const hit = starts.filter((s) => s <= pos).length - 1;
      assert.equal(res.entries.length, hit, `flip at ${pos}`);
      assert.equal(res.validEnd, starts[hit], `flip at ${pos}: validEnd`);
      assert.ok(res.stopReason, `flip at ${pos}: reason`);
    }
  });

  test('stale bytes: an entry whose LSN does not increase ends the log', () => {
    const a = SAMPLES[0]!;
    const b = SAMPLES[4]!;
    const c = SAMPLES[6]!;
    // LSNs 5, 6, then 6 again (a failed batch that was cut back and overwritten, leaving an old tail).
    const buf = Buffer.alloc(walEntrySize(a) + walEntrySize(b) + walEntrySize(c));
    let pos = encodeWalEntry(buf, 0, 5, a);
    pos += encodeWalEntry(buf, pos, 6, b);
    const staleAt = pos;
    encodeWalEntry(buf, pos, 6, c);
    let res = decodeWal(buf, 0, DIM, 0);
    assert.equal(res.entries.length, 2);
    assert.equal(res.validEnd, staleAt);
    assert.match(res.stopReason ?? '', /stale|LSN/i);
    // A lower LSN too.
    encodeWalEntry(buf, staleAt, 1, c);
    res = decodeWal(buf, 0, DIM, 0);
    assert.equal(res.entries.length, 2);
    // Entries at or below afterLsn (already checkpointed) are not replayed.
    res = decodeWal(buf, 0, DIM, 5);
    assert.equal(res.entries.length, 0);
    assert.equal(res.validEnd, 0);
    res = decodeWal(buf, 0, DIM, 4);
    assert.equal(res.entries.length, 2);
  });

  test('zeroed, junk and malformed tails stop decoding without throwing', () => {
    const { buf } = encodeAll(SAMPLES.slice(0, 3), 1);
    const cases: Array<[string, Buffer]> = [
      ['zeros', Buffer.alloc(100)],
      ['ones', Buffer.alloc(100, 0xff)],
      ['a few bytes', Buffer.from([1, 2, 3])],
      ['huge length', Buffer.from([0, 0, 0, 0, 0xff, 0xff, 0xff, 0x7f, ...new Array<number>(20).fill(0)])],
    ];
    for (const [label, tail] of cases) {
      const res = decodeWal(Buffer.concat([buf, tail]), 0, DIM, 0);
      assert.equal(res.entries.length, 3, label);
      assert.equal(res.validEnd, buf.length, label);
      assert.ok(res.stopReason, label);
    }
    // A checksummed entry with a body of the wrong shape: a put one byte short, an unknown type.
    const short = Buffer.alloc(walEntrySize(SAMPLES[0]!));
    encodeWalEntry(short, 0, 10, SAMPLES[0]!);
    const cut = Buffer.from(short.subarray(0, short.length - 1));
    cut.writeUInt32LE(cut.length - WAL_ENTRY_HEADER, 4);
    cut.writeUInt32LE(crc32c(cut.subarray(4)), 0);
    let res = decodeWal(Buffer.concat([buf, cut]), 0, DIM, 0);
    assert.equal(res.entries.length, 3, 'a put of the wrong length is malformed');
    res = decodeWal(Buffer.concat([buf, short]), 0, DIM, 0);
    assert.equal(res.entries.length, 4);
    const unknown = Buffer.alloc(walEntrySize(SAMPLES[6]!));
    encodeWalEntry(unknown, 0, 10, SAMPLES[6]!);
    unknown[WAL_ENTRY_HEADER] = 200;
    unknown.writeUInt32LE(crc32c(unknown.subarray(4)), 0);
    res = decodeWal(Buffer.concat([buf, unknown]), 0, DIM, 0);
    assert.equal(res.entries.length, 3);
    assert.equal(res.validEnd, buf.length);
    assert.match(res.stopReason ?? '', /malformed/);
    // An empty log.
    res = decodeWal(Buffer.alloc(0), 0, DIM, 0);
    assert.deepEqual(res, { entries: [], validEnd: 0, lastBatch: 0 });
  });

  test('the index of the last batch: where the last entry marked as a batch start is', () => {
    // Three batches of 2, 3 and 2 entries; then the same with the last batch torn part way.
    const batches = [2, 3, 2];
    const entries: WalEntryInput[] = [];
    const starts = new Set<number>();
    for (const size of batches) {
      starts.add(entries.length);
      for (let i = 0; i < size; i++)
        entries.push(slotMove(`m${entries.length}`, ContentKind.Present, entries.length + 1));
    }
    const size = entries.reduce((n, e) => n + walEntrySize(e), 0);
    const buf = Buffer.alloc(size);
    const ends: number[] = [];
    let pos = 0;
    entries.forEach((e, i) => {
      pos += encodeWalEntry(buf, pos, 10 + i, e, starts.has(i));
      ends.push(pos);
    });
    let res = decodeWal(buf, 0, DIM, 0);
    assert.equal(res.entries.length, 7);
    assert.equal(res.lastBatch, 5);
    // Torn inside the last batch: it still starts at entry 5.
    res = decodeWal(buf.subarray(0, ends[5]! + 3), 0, DIM, 0);
    assert.equal(res.entries.length, 6);
    assert.equal(res.lastBatch, 5);
    // Torn at the last batch's first entry: the batch before is the last one decoded.
    res = decodeWal(buf.subarray(0, ends[4]! + 3), 0, DIM, 0);
    assert.equal(res.entries.length, 5);
    assert.equal(res.lastBatch, 2);
    // A log with no batch marks (older writers): everything counts as one batch.
    res = decodeWal(encodeAll(entries, 10).buf, 0, DIM, 0);
    assert.equal(res.lastBatch, 0);
  });
});
