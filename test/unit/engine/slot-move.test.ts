/**
 * The slot-move transition, case by case, on a keyspace alone: the state a live commit meets, and
 * the states WAL replay can meet (slots a later checkpoint wrote, a torn checkpoint's damaged
 * slot, a memory with no readable copy left). Also the writer-side check (`movable`) and the
 * keyspace's relocation planning, reservation and shrink.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SegmentSet } from '../../../src/content/segment-set.js';
import { NodeFileSystem } from '../../../src/fs/node-fs.js';
import { Keyspace, type SlotWrite } from '../../../src/records/keyspace.js';
import { CHUNK_MASK } from '../../../src/records/table.js';
import { CompactionJournal } from '../../../src/engine/compaction-journal.js';
import { Transitions } from '../../../src/engine/transitions.js';
import { withMovedMemories } from '../../../src/engine/recall-moves.js';
import { ContentKind, WalType, type SlotMoveEntry } from '../../../src/wal/entries.js';
import { embeddingSummary } from '../../../src/format/embedding.js';
import { MemoryVectors } from '../../helpers/memory-vectors.js';

const DIM = 4;

function embeddingOf(seed: number): Float32Array {
  return new Float32Array(DIM).map((_, i) => seed + i + 1);
}

function write(id: string, seed: number): SlotWrite {
  const embedding = embeddingOf(seed);
  return {
    id,
    space: 0,
    idBytes: Buffer.from(id),
    kind: ContentKind.Empty,
    seg: 0,
    off: 0,
    clen: 0,
    ...embeddingSummary(embedding),
    confidence: seed / 10,
    activation: 0,
    decayRate: 0,
    createdAt: 1000 + seed,
    lastAccess: 2000 + seed,
    accessCount: seed,
  };
}

let vectors: MemoryVectors;

function setup(): { ks: Keyspace; tr: Transitions } {
  const ks = new Keyspace(DIM);
  vectors = MemoryVectors.attach(ks.table);
  const segments = new SegmentSet(new NodeFileSystem(), '/nonexistent', 1);
  const tr = new Transitions(ks, segments, new CompactionJournal(null, 1));
  return { ks, tr };
}

function put(tr: Transitions, slot: number, id: string, lsn: number, seed = lsn): void {
  vectors.write(slot, embeddingOf(seed));
  tr.apply({ type: WalType.Put, lsn, slot, ...write(id, seed), idBytes: Buffer.from(id) });
}

function moveEntry(
  lsn: number,
  from: number,
  to: number,
  id: string,
  expectedLsn: number,
  seed = expectedLsn,
): SlotMoveEntry {
  vectors.copy(from, to);
  return { type: WalType.SlotMove, lsn, from, to, expectedLsn, ...write(id, seed), idBytes: Buffer.from(id) };
}

function clsn(ks: Keyspace, slot: number): number {
  return ks.table.chunk(slot).clsn[slot & CHUNK_MASK]!;
}

describe('slot move transition', () => {
  it('live: places the memory in `to` with the move LSN as its generation and frees `from`', () => {
    const { ks, tr } = setup();
    put(tr, 0, 'a', 1);
    put(tr, 1, 'b', 2);
    put(tr, 2, 'c', 3);
    tr.apply({ type: WalType.Delete, lsn: 4, slot: 0, id: 'a' });
    const r = tr.apply(moveEntry(5, 2, 0, 'c', 3));
    assert.equal(r.count, 1);
    assert.equal(ks.indexed(0, 'c'), 0);
    assert.equal(ks.isUsed(2), false);
    assert.equal(clsn(ks, 0), 5);
    const v = ks.table.get(0);
    assert.equal(v.createdAt, 1003);
    assert.equal(v.accessCount, 3);
    assert.equal(v.embCrc, embeddingSummary(new Float32Array([4, 5, 6, 7])).embCrc);
    assert.equal(ks.size, 2);
    assert.equal(ks.moveCount, 1);
    assert.deepEqual(ks.movedSince(0), [0]);
  });

  it('replay over a checkpoint that already holds the move: nothing changes', () => {
    const { ks, tr } = setup();
    put(tr, 0, 'c', 5, 3); // the checkpointed state: c in slot 0 with the move's LSN
    const r = tr.apply(moveEntry(5, 2, 0, 'c', 3));
    assert.equal(r.count, 0);
    assert.equal(ks.indexed(0, 'c'), 0);
    assert.equal(ks.size, 1);
  });

  it('replay where a newer version of the memory exists: skipped', () => {
    const { ks, tr } = setup();
    put(tr, 2, 'c', 9); // rewritten after the move's version (generation 3)
    const r = tr.apply(moveEntry(5, 2, 0, 'c', 3));
    assert.equal(r.count, 0);
    assert.equal(ks.indexed(0, 'c'), 2);
    assert.equal(ks.isUsed(0), false);
  });

  it('replay where `to` holds a later memory: only the stale copy in `from` goes', () => {
    const { ks, tr } = setup();
    put(tr, 2, 'c', 3); // the copy as of before the move (a torn checkpoint kept it)
    put(tr, 0, 'z', 8); // a later memory in the target
    const r = tr.apply(moveEntry(5, 2, 0, 'c', 3));
    assert.equal(r.count, 0);
    assert.equal(ks.indexed(0, 'c'), undefined);
    assert.equal(ks.isUsed(2), false);
    assert.equal(ks.indexed(0, 'z'), 0);
    assert.equal(ks.size, 1);
  });

  it('replay with no readable copy left (torn checkpoint): the memory is placed from the entry', () => {
    const { ks, tr } = setup();
    ks.markCorrupt(0, undefined, 'torn', 'records.dat');
    ks.markCorrupt(2, undefined, 'torn', 'records.dat');
    const r = tr.apply(moveEntry(5, 2, 0, 'c', 3));
    assert.equal(r.count, 1);
    assert.equal(ks.indexed(0, 'c'), 0);
    assert.equal(ks.isCorrupt(0), false);
    assert.equal(ks.isCorrupt(2), false, 'the damaged source is free as of the move');
    assert.equal(ks.isUsed(2), false);
    assert.equal(ks.corruptCount, 0);
  });

  it('a later delete in the WAL removes a memory a move placed from its entry', () => {
    const { ks, tr } = setup();
    tr.apply(moveEntry(5, 2, 0, 'c', 3));
    tr.apply({ type: WalType.Delete, lsn: 6, slot: 0, id: 'c' });
    assert.equal(ks.size, 0);
    assert.equal(ks.isUsed(0), false);
  });
});

describe('relocation planning in the keyspace', () => {
  it('plans the highest memories into the lowest holes, reserves targets, settles, shrinks', () => {
    const { ks, tr } = setup();
    for (let s = 0; s < 10; s++) put(tr, s, `m${s}`, s + 1);
    for (const s of [1, 3, 4, 6]) tr.apply({ type: WalType.Delete, lsn: 20 + s, slot: s, id: `m${s}` });
    ks.rebuildFreeList();
    const plans = ks.planMoves(10, true);
    assert.deepEqual(
      plans.map((p) => [p.from, p.to]),
      [
        [9, 1],
        [8, 3],
        [7, 4],
      ],
    );
    // Reserved targets are not handed to puts.
    const s = ks.allocate();
    assert.equal(s, 6);
    ks.release([s], 10);
    assert.ok(plans.every((p) => ks.movable(p)));
    // A memory rewritten since it was planned is not movable.
    put(tr, 8, 'm8', 40);
    assert.equal(ks.movable(plans[1]!), false);
    let lsn = 50;
    for (const p of plans) if (ks.movable(p)) tr.apply(moveEntry(lsn++, p.from, p.to, p.id, p.expectedLsn));
    ks.settleMoves(plans);
    assert.equal(ks.indexed(0, 'm9'), 1);
    assert.equal(ks.indexed(0, 'm8'), 8);
    assert.equal(ks.indexed(0, 'm7'), 4);
    // Slot 3 was not filled: back on the free list.
    assert.equal(ks.allocate(), 3);
    ks.release([3], 10);
    assert.deepEqual(ks.shrink(), { before: 10, after: 9 });
    assert.equal(ks.slotLimit, 9);
    assert.ok(!ks.isUsed(9));
  });

  it('a run plans in batches that go on where the last stopped, past holes freed meanwhile', () => {
    const { ks, tr } = setup();
    for (let s = 0; s < 40; s++) put(tr, s, `m${s}`, s + 1);
    for (let s = 0; s < 20; s += 2) tr.apply({ type: WalType.Delete, lsn: 100 + s, slot: s, id: `m${s}` });
    ks.rebuildFreeList();
    let lsn = 200;
    const apply = (plans: ReturnType<typeof ks.planMoves>): void => {
      for (const p of plans) if (ks.movable(p)) tr.apply(moveEntry(lsn++, p.from, p.to, p.id, p.expectedLsn));
      ks.settleMoves(plans);
    };
    const first = ks.planMoves(3, true);
    assert.deepEqual(
      first.map((p) => [p.from, p.to]),
      [
        [39, 0],
        [38, 2],
        [37, 4],
      ],
    );
    apply(first);
    // A delete high above the scan frees a hole at the pop end of the free list: not a target.
    tr.apply({ type: WalType.Delete, lsn: lsn++, slot: 35, id: 'm35' });
    const second = ks.planMoves(3, false);
    assert.deepEqual(
      second.map((p) => [p.from, p.to]),
      [
        [36, 6],
        [34, 8],
        [33, 10],
      ],
    );
    apply(second);
    for (let n = 0; n < 10; n++) {
      const next = ks.planMoves(3, false);
      if (next.length === 0) break;
      apply(next);
    }
    assert.equal(ks.size, 29);
    for (let s = 0; s < 29; s++) assert.ok(ks.isUsed(s), `slot ${s} holds a memory`);
    assert.deepEqual(ks.shrink(), { before: 40, after: 29 });
  });

  it('never moves a corrupt slot, and a corrupt slot keeps the limit up', () => {
    const { ks, tr } = setup();
    for (let s = 0; s < 4; s++) put(tr, s, `m${s}`, s + 1);
    tr.apply({ type: WalType.Delete, lsn: 10, slot: 0, id: 'm0' });
    tr.apply({ type: WalType.Delete, lsn: 11, slot: 1, id: 'm1' });
    ks.markCorrupt(3, 'm3', 'bad', 'records.dat');
    ks.rebuildFreeList();
    const plans = ks.planMoves(10, true);
    assert.deepEqual(
      plans.map((p) => [p.from, p.to]),
      [[2, 0]],
    );
    ks.settleMoves(plans);
    assert.deepEqual(ks.shrink(), { before: 4, after: 4 });
  });
});

describe('recall across slot moves', () => {
  const query = (seed: number) => ({
    q: embeddingOf(seed),
    k: 2,
    minScore: -Infinity,
    space: 0,
    filter: undefined,
  });

  it('a memory moved behind the scan is scored and merged; a moved hit is re-pointed', () => {
    const { ks, tr } = setup();
    put(tr, 0, 'a', 1, 100);
    put(tr, 5, 'b', 2, 7);
    put(tr, 9, 'c', 3, 7);
    tr.apply({ type: WalType.Delete, lsn: 4, slot: 1, id: 'x' });
    const since = ks.moveCount;
    // The scan saw slots 0..5 (b scored) and had not reached 9 when c moved to slot 1.
    const scanned = [{ slot: 5, id: 'b', score: 1 }];
    tr.apply(moveEntry(10, 9, 1, 'c', 3, 7));
    tr.apply(moveEntry(11, 5, 2, 'b', 2, 7));
    const hits = withMovedMemories(ks, since, scanned, query(7));
    assert.ok(hits);
    assert.deepEqual(
      hits.map((h) => [h.id, h.slot]),
      [
        ['b', 2],
        ['c', 1],
      ],
    );
    assert.ok(Math.abs(hits[1]!.score - 1) < 1e-6);
    // No move since: the hits are returned as they are.
    assert.equal(withMovedMemories(ks, ks.moveCount, scanned, query(7)), scanned);
  });

  it('an update into another slot is a move: a hit is re-pointed and scored as it is now', () => {
    const { ks, tr } = setup();
    put(tr, 0, 'a', 1, 100);
    put(tr, 5, 'b', 2, 50);
    const since = ks.moveCount;
    // The scan scored a's old version in slot 0 and had not reached b in slot 5; then a was
    // rewritten into slot 9 (now equal to the query) and b into slot 1, behind the scan.
    const scanned = [{ slot: 0, id: 'a', score: 0.5 }];
    put(tr, 9, 'a', 3, 7);
    put(tr, 1, 'b', 4, 8);
    assert.equal(ks.moveCount, since + 2);
    const hits = withMovedMemories(ks, since, scanned, query(7));
    assert.ok(hits);
    assert.deepEqual(
      hits.map((h) => [h.id, h.slot]),
      [
        ['a', 9],
        ['b', 1],
      ],
    );
    assert.ok(Math.abs(hits[0]!.score - 1) < 1e-6, `a scored as its new version: ${hits[0]!.score}`);
  });

  it('more moves than the keyspace remembers: the recall must run again', () => {
    const { ks } = setup();
    const v = write('m', 1);
    ks.put(1, v, 1);
    const since = ks.moveCount;
    for (let i = 0; i <= 1 << 16; i++) ks.move(2 - (i % 2), v, 2 + i);
    assert.equal(ks.movedSince(since), undefined);
    assert.equal(withMovedMemories(ks, since, [], query(1)), undefined);
    assert.equal(ks.size, 1);
  });
});
