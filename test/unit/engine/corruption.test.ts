import assert from 'node:assert/strict';
import { copyFile, open as fsOpen, readFile, readdir, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import { WarmStore, WarmStoreError, type MemoryRecord, type WarmStoreOptions } from '../../../src/index.js';
import { expectSameRecord } from '../../helpers/assert.js';
import { recordFor, writeRecords } from '../../helpers/random.js';
import { makeTempDir, removeDir } from '../../helpers/tmp.js';

const DIM = 8;
const OPTS: WarmStoreOptions = { dimension: DIM, maintenanceIntervalMs: false };
const HEADER_BYTES = 32; // src/format/header.ts
const ENTRY_HEADER_BYTES = 12; // src/content/segment.ts
const RECORDS_DATA_START = 4096; // src/records/slot-codec.ts, both records.dat and vectors.dat
const SLOT_HEADER_BYTES = 352;
const VECTOR_BYTES = DIM * 4;

async function scratch(t: TestContext): Promise<string> {
  const dir = await makeTempDir('warmstore-corrupt-');
  t.after(() => removeDir(dir));
  return dir;
}

async function flipByte(path: string, offset: number, mask = 0x5a): Promise<void> {
  const fh = await fsOpen(path, 'r+');
  try {
    const b = Buffer.alloc(1);
    const { bytesRead } = await fh.read(b, 0, 1, offset);
    assert.equal(bytesRead, 1, `${path} has a byte at ${offset}`);
    b[0] = b[0]! ^ mask;
    await fh.write(b, 0, 1, offset);
  } finally {
    await fh.close();
  }
}

function corruptionOf(id: string | undefined, fileEnds: string | undefined, label: string) {
  return (err: unknown): boolean => {
    assert.ok(WarmStoreError.is(err), `${label}: not a WarmStoreError: ${String(err)}`);
    assert.equal(err.code, 'CORRUPTION_DETECTED', `${label}: ${err.message}`);
    if (id !== undefined) assert.equal(err.details.id, id, `${label}: details.id`);
    if (fileEnds !== undefined) {
      assert.ok(
        typeof err.details.file === 'string' && err.details.file.endsWith(fileEnds),
        `${label}: details.file ${String(err.details.file)} should name ${fileEnds}`,
      );
    }
    return true;
  };
}

async function filesMatching(dir: string, re: RegExp): Promise<string[]> {
  return (await readdir(dir)).filter((n) => re.test(n)).sort();
}

/** A store with a few records written and closed (so everything is checkpointed). */
async function seeded(dir: string, n = 6): Promise<Map<string, MemoryRecord>> {
  const recs = new Map<string, MemoryRecord>();
  const store = await WarmStore.open(dir, OPTS);
  try {
    for (let i = 0; i < n; i++) {
      const r: MemoryRecord = { ...recordFor(`r${i}`, i, DIM), content: `content of r${i} `.repeat(10 + i) };
      await store.put(r);
      recs.set(r.id, r);
    }
  } finally {
    await store.close();
  }
  return recs;
}

/** Where an id's entry is in a segment: entries follow the header back to back. */
async function findEntry(segPath: string, id: string): Promise<{ offset: number; size: number }> {
  const buf = await readFile(segPath);
  let pos = HEADER_BYTES;
  const idBytes = Buffer.from(id, 'utf8');
  while (pos + ENTRY_HEADER_BYTES <= buf.length) {
    const clen = buf.readUInt32LE(pos + 4);
    const idLen = buf[pos + 8]!;
    const size = ENTRY_HEADER_BYTES + idLen + clen;
    if (buf.subarray(pos + ENTRY_HEADER_BYTES, pos + ENTRY_HEADER_BYTES + idLen).equals(idBytes)) {
      return { offset: pos, size };
    }
    pos += size;
  }
  assert.fail(`no entry for ${id} in ${segPath}`);
}

/** The slot of an id in records.dat (id bytes sit at slot offset + 96). */
async function findSlot(recordsPath: string, id: string): Promise<number> {
  const buf = await readFile(recordsPath);
  const idBytes = Buffer.from(id, 'utf8');
  for (
    let pos = RECORDS_DATA_START, slot = 0;
    pos + SLOT_HEADER_BYTES <= buf.length;
    pos += SLOT_HEADER_BYTES, slot++
  ) {
    if (buf[pos + 5] === idBytes.length && buf.subarray(pos + 96, pos + 96 + idBytes.length).equals(idBytes))
      return slot;
  }
  assert.fail(`no slot for ${id} in ${recordsPath}`);
}

const slotCache = new Map<string, Map<string, number>>();
/** findSlot over a whole file at once: the slot of every id, read once per file. */
async function findSlotCached(recordsPath: string, id: string): Promise<number> {
  let m = slotCache.get(recordsPath);
  if (!m) {
    m = new Map();
    const buf = await readFile(recordsPath);
    for (
      let pos = RECORDS_DATA_START, slot = 0;
      pos + SLOT_HEADER_BYTES <= buf.length;
      pos += SLOT_HEADER_BYTES, slot++
    ) {
      const len = buf[pos + 5]!;
      if (len > 0) m.set(buf.toString('utf8', pos + 96, pos + 96 + len), slot);
    }
    slotCache.set(recordsPath, m);
  }
  const slot = m.get(id);
  assert.ok(slot !== undefined, `no slot for ${id} in ${recordsPath}`);
  return slot;
}

async function expectOthersIntact(
  store: WarmStore,
  recs: Map<string, MemoryRecord>,
  except: string[],
): Promise<void> {
  for (const [id, r] of recs) if (!except.includes(id)) expectSameRecord(await store.get(id), r);
}

describe('corruption is loud', () => {
  const places: Array<[string, (idLen: number, size: number) => number]> = [
    ['content byte', (idLen) => ENTRY_HEADER_BYTES + idLen + 7],
    ['last content byte', (_idLen, size) => size - 1],
    ['owner id byte', () => ENTRY_HEADER_BYTES],
    ['length field', () => 4],
    ['checksum', () => 1],
  ];
  for (const [where, delta] of places) {
    test(`a flipped ${where} in a segment entry: get throws CORRUPTION_DETECTED naming id and file`, async (t) => {
      const dir = await scratch(t);
      const recs = await seeded(dir);
      const [segName] = await filesMatching(dir, /^seg-\d+\.dat$/);
      assert.ok(segName);
      const segPath = join(dir, segName);
      const { offset, size } = await findEntry(segPath, 'r3');
      const store = await WarmStore.open(dir, OPTS);
      try {
        expectSameRecord(await store.get('r3'), recs.get('r3')!);
        // Flipped under a running store: the next read checks the bytes, not a cache.
        await flipByte(segPath, offset + delta(2, size));
        await assert.rejects(store.get('r3'), corruptionOf('r3', segName, 'get'));
        assert.throws(() => store.getSync('r3'), corruptionOf('r3', segName, 'getSync'));
        assert.equal(store.has('r3'), true, 'a corrupt record is not turned into an absent one');
        await expectOthersIntact(store, recs, ['r3']);
        const report = await store.verify();
        assert.equal(report.ok, false);
        assert.ok(
          report.problems.some(
            (p) => p.id === 'r3' && p.kind === 'corrupt-content' && p.file?.endsWith(segName),
          ),
          JSON.stringify(report.problems),
        );
        await assert.rejects(
          async () => {
            for await (const m of store.entries())
              assert.ok(m.id !== 'r3', 'entries() yielded the corrupt record');
          },
          corruptionOf('r3', segName, 'entries'),
        );
        await assert.rejects(
          store.recall(recs.get('r3')!.embedding, { k: 1 }),
          corruptionOf('r3', segName, 'recall'),
        );
      } finally {
        await store.close();
      }
      // Still loud after a reopen; a rewrite of the record heals it.
      const again = await WarmStore.open(dir, OPTS);
      try {
        await assert.rejects(again.get('r3'), corruptionOf('r3', segName, 'get after reopen'));
        await again.put(recs.get('r3')!);
        expectSameRecord(await again.get('r3'), recs.get('r3')!);
        await expectOthersIntact(again, recs, []);
      } finally {
        await again.close();
      }
    });
  }

  test('a flipped byte in a slot embedding in vectors.dat: after reopen get throws, verify reports it', async (t) => {
    const dir = await scratch(t);
    const recs = await seeded(dir);
    const recordsPath = join(dir, 'records.dat');
    const slot = await findSlot(recordsPath, 'r2');
    await flipByte(join(dir, 'vectors.dat'), RECORDS_DATA_START + slot * VECTOR_BYTES + 4 * 3 + 1);
    const store = await WarmStore.open(dir, OPTS);
    try {
      await assert.rejects(store.get('r2'), corruptionOf('r2', 'vectors.dat', 'get'));
      assert.throws(() => store.getSync('r2'), corruptionOf('r2', 'vectors.dat', 'getSync'));
      assert.equal(store.has('r2'), true, 'the corrupt record is still known');
      await expectOthersIntact(store, recs, ['r2']);
      const report = await store.verify();
      assert.equal(report.ok, false);
      assert.ok(
        report.problems.some((p) => p.id === 'r2' && p.kind === 'corrupt-record'),
        JSON.stringify(report.problems),
      );
      // Recall must not return the corrupt record as if it were valid: it skips it or is loud.
      try {
        const hits = await store.recall(recs.get('r2')!.embedding, { k: recs.size });
        assert.ok(!hits.some((h) => h.memory.id === 'r2'), 'recall returned a corrupt record');
        assert.equal(hits[0]?.memory.id === 'r2', false);
      } catch (err) {
        corruptionOf('r2', 'vectors.dat', 'recall')(err);
      }
    } finally {
      await store.close();
    }
    // The corrupt slot is kept as evidence across a checkpoint and reopen, not masked.
    const again = await WarmStore.open(dir, OPTS);
    try {
      await assert.rejects(again.get('r2'), corruptionOf('r2', 'vectors.dat', 'get after second reopen'));
      await again.put(recs.get('r2')!);
      expectSameRecord(await again.get('r2'), recs.get('r2')!);
    } finally {
      await again.close();
    }
    const third = await WarmStore.open(dir, OPTS);
    try {
      expectSameRecord(await third.get('r2'), recs.get('r2')!, { context: 'rewritten record persisted' });
      assert.equal((await third.verify()).ok, true);
    } finally {
      await third.close();
    }
  });

  test('a flipped byte in a slot header (metadata) in records.dat is CORRUPTION_DETECTED too', async (t) => {
    const dir = await scratch(t);
    const recs = await seeded(dir);
    const recordsPath = join(dir, 'records.dat');
    const slot = await findSlot(recordsPath, 'r4');
    await flipByte(recordsPath, RECORDS_DATA_START + slot * SLOT_HEADER_BYTES + 33); // inside confidence
    const store = await WarmStore.open(dir, OPTS);
    try {
      await assert.rejects(store.get('r4'), corruptionOf('r4', 'records.dat', 'get'));
      await expectOthersIntact(store, recs, ['r4']);
      assert.ok(store.corruptRecords.some((c) => c.id === 'r4'));
    } finally {
      await store.close();
    }
  });

  for (const [where, offsetInHeader] of [
    ['id bytes', 96 + 1],
    ['id length', 5],
    ['id checksum', 85],
  ] as const) {
    test(`a flipped byte in a slot header's ${where}: the record's own id still finds it, loudly`, async (t) => {
      const dir = await scratch(t);
      const recs = await seeded(dir);
      const recordsPath = join(dir, 'records.dat');
      const slot = await findSlot(recordsPath, 'r3');
      await flipByte(recordsPath, RECORDS_DATA_START + slot * SLOT_HEADER_BYTES + offsetInHeader);
      const store = await WarmStore.open(dir, OPTS);
      try {
        // Never "absent": the id the record was written under raises CORRUPTION_DETECTED.
        await assert.rejects(store.get('r3'), corruptionOf('r3', 'records.dat', `get after ${where}`));
        assert.throws(() => store.getSync('r3'), corruptionOf('r3', 'records.dat', `getSync after ${where}`));
        assert.equal(store.has('r3'), true);
        await expectOthersIntact(store, recs, ['r3']);
        assert.equal((await store.verify()).ok, false);
        // Deleting the id repairs the slot; a later put stores it afresh.
        assert.equal(await store.delete('r3'), true);
        assert.equal(await store.get('r3'), undefined);
        await store.put(recs.get('r3')!);
        expectSameRecord(await store.get('r3'), recs.get('r3')!);
        assert.equal((await store.verify()).ok, true);
      } finally {
        await store.close();
      }
      const again = await WarmStore.open(dir, OPTS);
      try {
        expectSameRecord(await again.get('r3'), recs.get('r3')!, { context: `reopen after ${where}` });
        await expectOthersIntact(again, recs, []);
      } finally {
        await again.close();
      }
    });
  }

  test('damaged and missing vectors in a store of several table chunks: loud when read, listed by verify()', async (t) => {
    const dir = await scratch(t);
    const n = 2 * WarmStore.chunkSlots + 500;
    await writeRecords(() => WarmStore.open(dir, OPTS), n, 'w', DIM);
    const recordsPath = join(dir, 'records.dat');
    const vectorsPath = join(dir, 'vectors.dat');
    const damaged = ['w5', `w${WarmStore.chunkSlots + 7}`, `w${2 * WarmStore.chunkSlots + 3}`];
    for (const id of damaged) {
      const slot = await findSlot(recordsPath, id);
      await flipByte(vectorsPath, RECORDS_DATA_START + slot * VECTOR_BYTES + 5);
    }
    // The last 10 vectors never reached the disk (a checkpoint cut short, say).
    const size = (await stat(vectorsPath)).size;
    await truncate(vectorsPath, size - 10 * VECTOR_BYTES + 3);
    const lastSlots = new Set<number>();
    for (let i = n - 10; i < n; i++) lastSlots.add(await findSlot(recordsPath, `w${i}`));
    const store = await WarmStore.open(dir, OPTS);
    try {
      // Open reads no vector: the damage is found where a vector is read.
      for (const id of damaged) {
        assert.throws(() => store.getSync(id), corruptionOf(id, 'vectors.dat', `getSync ${id}`));
        await assert.rejects(store.get(id), corruptionOf(id, 'vectors.dat', `get ${id}`));
      }
      const report = await store.verify();
      assert.equal(report.ok, false);
      const flagged = new Set(
        report.problems.filter((p) => p.file?.endsWith('vectors.dat')).map((p) => p.id ?? ''),
      );
      for (const id of damaged) assert.ok(flagged.has(id), `verify lists ${id}`);
      assert.equal(flagged.size, damaged.length + 10, 'verify lists every damaged and missing vector');
      let missing = 0;
      for (let i = 0; i < n; i++) {
        const id = `w${i}`;
        if (damaged.includes(id)) continue;
        if (lastSlots.has(await findSlotCached(recordsPath, id))) {
          assert.throws(() => store.getSync(id), corruptionOf(id, 'vectors.dat', `getSync ${id}`));
          missing++;
        } else if (i % 97 === 0) {
          expectSameRecord(store.getSync(id), recordFor(id, i, DIM), { context: id });
        }
      }
      assert.equal(missing, 10, 'every record whose vector is missing is corrupt, not absent');
      assert.equal(store.size, n);
    } finally {
      await store.close();
    }
  });

  test('a slot whose id bytes are damaged is repaired by a put of its id', async (t) => {
    const dir = await scratch(t);
    const recs = await seeded(dir);
    const recordsPath = join(dir, 'records.dat');
    const slot = await findSlot(recordsPath, 'r1');
    await flipByte(recordsPath, RECORDS_DATA_START + slot * SLOT_HEADER_BYTES + 96);
    const store = await WarmStore.open(dir, OPTS);
    try {
      await assert.rejects(store.get('r1'), corruptionOf('r1', 'records.dat', 'get'));
      const updated = { ...recs.get('r1')!, content: 'rewritten' };
      await store.put(updated);
      expectSameRecord(await store.get('r1'), updated);
      assert.equal(store.size, recs.size, 'the put reused the damaged slot rather than adding one');
      assert.equal((await store.verify()).ok, true);
    } finally {
      await store.close();
    }
  });

  test('a flipped byte in MANIFEST: open throws CORRUPTION_DETECTED naming the file', async (t) => {
    const dir = await scratch(t);
    const recs = await seeded(dir);
    const manifest = join(dir, 'MANIFEST');
    const original = await readFile(manifest);
    for (const offset of [2, 9, 13, 29, HEADER_BYTES + 3, original.length - 2]) {
      await flipByte(manifest, offset);
      await assert.rejects(
        WarmStore.open(dir, OPTS),
        corruptionOf(undefined, 'MANIFEST', `offset ${offset}`),
      );
      await writeFile(manifest, original);
    }
    // Each refusal released the lock; the restored manifest opens with everything.
    const store = await WarmStore.open(dir, OPTS);
    try {
      await expectOthersIntact(store, recs, []);
    } finally {
      await store.close();
    }
  });

  test('a flipped byte in the records.dat header: open throws CORRUPTION_DETECTED', async (t) => {
    const dir = await scratch(t);
    await seeded(dir);
    await flipByte(join(dir, 'records.dat'), 14);
    await assert.rejects(WarmStore.open(dir, OPTS), corruptionOf(undefined, 'records.dat', 'records header'));
  });

  test('a truncated segment: get of a record cut off throws CORRUPTION_DETECTED (open store and after reopen)', async (t) => {
    const dir = await scratch(t);
    const recs = await seeded(dir);
    const [segName] = await filesMatching(dir, /^seg-\d+\.dat$/);
    const segPath = join(dir, segName!);
    const last = await findEntry(segPath, 'r5');
    const prev = await findEntry(segPath, 'r4');
    const store = await WarmStore.open(dir, OPTS);
    try {
      await truncate(segPath, last.offset + last.size - 3);
      await assert.rejects(store.get('r5'), corruptionOf('r5', segName, 'get while open'));
      expectSameRecord(await store.get('r4'), recs.get('r4')!);
    } finally {
      await store.close();
    }
    // Cut deeper, into r4 too, and reopen.
    await truncate(segPath, prev.offset + 5);
    let again = await WarmStore.open(dir, OPTS);
    try {
      assert.equal(again.size, recs.size, 'no record silently vanished');
      await assert.rejects(again.get('r5'), corruptionOf('r5', segName, 'get r5 after reopen'));
      await assert.rejects(again.get('r4'), corruptionOf('r4', segName, 'get r4 after reopen'));
      await expectOthersIntact(again, recs, ['r4', 'r5']);
      const report = await again.verify();
      assert.ok(report.problems.some((p) => p.id === 'r4'));
      assert.ok(report.problems.some((p) => p.id === 'r5'));
      // New writes land past the cut; the damaged records stay loud.
      await again.put({ id: 'fresh', embedding: recs.get('r0')!.embedding, content: 'x'.repeat(500) });
    } finally {
      await again.close();
    }
    again = await WarmStore.open(dir, OPTS);
    try {
      assert.equal((await again.get('fresh'))?.content, 'x'.repeat(500));
      await assert.rejects(again.get('r4'), corruptionOf('r4', undefined, 'r4 after new writes'));
      await assert.rejects(again.get('r5'), corruptionOf('r5', undefined, 'r5 after new writes'));
    } finally {
      await again.close();
    }
  });

  test('a missing segment file: records that point into it are CORRUPTION_DETECTED, not absent', async (t) => {
    const dir = await scratch(t);
    const recs = await seeded(dir);
    const store = await WarmStore.open(dir, OPTS);
    try {
      // Records without content are unaffected by losing a segment.
      await store.put({ id: 'no-content', embedding: recs.get('r0')!.embedding });
    } finally {
      await store.close();
    }
    const [segName] = await filesMatching(dir, /^seg-\d+\.dat$/);
    await rm(join(dir, segName!));
    const again = await WarmStore.open(dir, OPTS);
    try {
      for (const id of recs.keys())
        await assert.rejects(again.get(id), corruptionOf(id, segName, `get ${id}`));
      assert.equal((await again.get('no-content'))?.content, null);
      assert.equal(again.size, recs.size + 1);
      assert.equal((await again.verify()).ok, false);
    } finally {
      await again.close();
    }
  });

  test('a flipped byte in a segment header: its records are CORRUPTION_DETECTED, the file is kept', async (t) => {
    const dir = await scratch(t);
    const recs = await seeded(dir);
    const [segName] = await filesMatching(dir, /^seg-\d+\.dat$/);
    const segPath = join(dir, segName!);
    const sizeBefore = (await stat(segPath)).size;
    await flipByte(segPath, 13);
    const store = await WarmStore.open(dir, OPTS);
    try {
      for (const id of recs.keys())
        await assert.rejects(store.get(id), corruptionOf(id, segName, `get ${id}`));
    } finally {
      await store.close();
    }
    assert.equal((await stat(segPath)).size, sizeBefore, 'the damaged segment is kept as evidence');
  });
});

describe('torn WAL tails are cut at open', () => {
  test('garbage appended to the newest WAL of a closed store: open succeeds with all data', async (t) => {
    const dir = await scratch(t);
    const recs = await seeded(dir);
    const wals = await filesMatching(dir, /^wal-\d+\.log$/);
    const newest = join(dir, wals.at(-1)!);
    const junk = Buffer.alloc(777);
    for (let i = 0; i < junk.length; i++) junk[i] = (i * 131 + 7) & 0xff;
    await writeFile(newest, junk, { flag: 'a' });
    const store = await WarmStore.open(dir, OPTS);
    try {
      assert.equal(store.size, recs.size);
      await expectOthersIntact(store, recs, []);
      await store.put({ id: 'after', embedding: recs.get('r0')!.embedding, content: 'after the cut' });
    } finally {
      await store.close();
    }
    const again = await WarmStore.open(dir, OPTS);
    try {
      assert.equal((await again.get('after'))?.content, 'after the cut');
      await expectOthersIntact(again, recs, []);
    } finally {
      await again.close();
    }
  });

  /**
   * A crash image: the files of a live store copied while it runs (every put acknowledged under
   * 'sync', so it is in the WAL; nothing checkpointed since open).
   */
  async function crashImage(t: TestContext): Promise<{ image: string; recs: MemoryRecord[]; wal: string }> {
    const dir = await scratch(t);
    const image = await scratch(t);
    const recs: MemoryRecord[] = [];
    const store = await WarmStore.open(dir, OPTS);
    try {
      for (let i = 0; i < 12; i++) {
        const r: MemoryRecord = { ...recordFor(`w${i}`, i, DIM), content: `wal-only ${i} `.repeat(i + 1) };
        await store.put(r);
        recs.push(r);
      }
      assert.equal(await store.delete('w0'), true);
      for (const n of await readdir(dir)) if (n !== 'LOCK') await copyFile(join(dir, n), join(image, n));
    } finally {
      await store.close();
    }
    const wals = await filesMatching(image, /^wal-\d+\.log$/);
    return { image, recs: recs.slice(1), wal: join(image, wals.at(-1)!) };
  }

  test('a crash image with garbage after the last WAL entry replays every entry', async (t) => {
    const { image, recs, wal } = await crashImage(t);
    assert.ok((await stat(wal)).size > HEADER_BYTES, 'the image holds WAL entries to replay');
    await writeFile(wal, Buffer.from('\x00\x01garbage, not an entry\xff'.repeat(20), 'latin1'), {
      flag: 'a',
    });
    const store = await WarmStore.open(image, OPTS);
    try {
      assert.equal(store.size, recs.length);
      assert.equal(store.has('w0'), false, 'the delete replayed');
      for (const r of recs) expectSameRecord(await store.get(r.id), r);
      assert.equal((await store.verify()).ok, true);
    } finally {
      await store.close();
    }
  });

  test('a flipped byte in a WAL entry followed by valid entries is loud, not cut as a torn tail', async (t) => {
    const { image, recs, wal } = await crashImage(t);
    // Walk to the third entry (the put of w2) and damage its body.
    const buf = await readFile(wal);
    let pos = HEADER_BYTES;
    for (let i = 0; i < 2; i++) pos += 16 + buf.readUInt32LE(pos + 4);
    await flipByte(wal, pos + 20);
    const damaged = await readFile(wal);
    let store: WarmStore | undefined;
    try {
      store = await WarmStore.open(image, OPTS);
    } catch (err) {
      // Refusing to open, naming the WAL, is loud; the evidence must be left as it was.
      corruptionOf(undefined, basename(wal), 'open')(err);
      assert.deepEqual(await readFile(wal), damaged, 'the damaged WAL was kept byte for byte');
      return;
    }
    try {
      // Opening is acceptable only if nothing acknowledged but the damaged entry was dropped.
      const after = recs.filter((r) => r.id !== 'w2');
      const missing = after.filter((r) => !store.has(r.id)).map((r) => r.id);
      assert.deepEqual(missing, [], 'acknowledged writes after a damaged WAL entry were silently dropped');
      for (const r of after) expectSameRecord(await store.get(r.id), r);
      await assert.rejects(store.get('w2'), corruptionOf('w2', undefined, 'the damaged entry'));
    } finally {
      await store.close();
    }
  });

  test('a crash image whose last WAL entry is torn replays everything before it', async (t) => {
    const { image, recs, wal } = await crashImage(t);
    // The last entry is the delete of w0 (16-byte header + type + slot + id): tear it.
    await truncate(wal, (await stat(wal)).size - 3);
    const store = await WarmStore.open(image, OPTS);
    try {
      for (const r of recs) expectSameRecord(await store.get(r.id), r);
      assert.equal(store.has('w0'), true, 'the torn delete was not applied');
      assert.equal(store.size, recs.length + 1);
      assert.equal((await store.verify()).ok, true);
      await store.put({ id: 'new', embedding: recs[0]!.embedding, content: 'written after recovery' });
    } finally {
      await store.close();
    }
    const again = await WarmStore.open(image, OPTS);
    try {
      assert.equal((await again.get('new'))?.content, 'written after recovery');
      for (const r of recs) expectSameRecord(await again.get(r.id), r);
    } finally {
      await again.close();
    }
  });
});
