import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import {
  ENTRY_HEADER_BYTES,
  Segment,
  encodeEntry,
  entryBytes,
  parseSegmentFileName,
  segmentFileName,
  verifyEntry,
} from '../../../src/content/segment.js';
import { WarmStoreError } from '../../../src/errors.js';
import { crc32c } from '../../../src/format/crc.js';
import { HEADER_BYTES, encodeHeader } from '../../../src/format/header.js';
import { FaultyFileSystem } from '../../../src/testing/index.js';
import { writeFully, writeFullySync } from '../../../src/fs/io.js';
import { nodeFileSystem } from '../../../src/fs/node-fs.js';
import { tempDir } from '../../helpers/tmp.js';

const FILE = '/store/seg-00000003.dat';

function entry(id: string, content: string | Buffer): { buf: Buffer; idBytes: Buffer; content: Buffer } {
  const idBytes = Buffer.from(id, 'utf8');
  const c = typeof content === 'string' ? Buffer.from(content, 'utf8') : content;
  const buf = Buffer.alloc(entryBytes(idBytes.length, c.length));
  assert.equal(encodeEntry(buf, 0, idBytes, c), buf.length);
  return { buf, idBytes, content: c };
}

function corruption(id: string, offset: number, label: string, reason?: RegExp) {
  return (err: unknown): boolean => {
    assert.ok(WarmStoreError.is(err, 'CORRUPTION_DETECTED'), `${label}: got ${String(err)}`);
    assert.equal(err.details.id, id, `${label}: details.id`);
    assert.equal(err.details.file, FILE, `${label}: details.file`);
    assert.equal(err.details.offset, offset, `${label}: details.offset`);
    if (reason) assert.match(err.message, reason, label);
    return true;
  };
}

describe('segment entries', () => {
  test('encode/verify round trip returns exactly the content bytes', () => {
    const cases: Array<[string, string | Buffer]> = [
      ['a', 'x'],
      ['漢字🧠', 'héllo 🙂 wörld'],
      ['k'.repeat(255), Buffer.alloc(70_000, 0xab)],
      ['zero', Buffer.from([0, 0, 0])],
    ];
    for (const [id, content] of cases) {
      const e = entry(id, content);
      assert.equal(e.buf.length, ENTRY_HEADER_BYTES + e.idBytes.length + e.content.length);
      assert.equal(e.buf.readUInt32LE(4), e.content.length);
      assert.equal(e.buf[8], e.idBytes.length);
      assert.equal(e.buf.readUInt32LE(0), crc32c(e.buf.subarray(4)));
      const got = verifyEntry(e.buf, e.idBytes, e.content.length, FILE, id, 4096);
      assert.ok(got.equals(e.content), id);
    }
    // Several entries back to back in one buffer, each verifiable from its offset.
    const a = Buffer.from('first');
    const b = Buffer.from('second entry');
    const buf = Buffer.alloc(entryBytes(1, a.length) + entryBytes(2, b.length));
    const n = encodeEntry(buf, 0, Buffer.from('A'), a);
    encodeEntry(buf, n, Buffer.from('BB'), b);
    assert.ok(verifyEntry(buf.subarray(n), Buffer.from('BB'), b.length, FILE, 'BB', n).equals(b));
  });

  test('verify catches each kind of mismatch as CORRUPTION_DETECTED naming id, file and offset', () => {
    const e = entry('owner', 'some content bytes');
    const v = (buf: Buffer, idBytes = e.idBytes, len = e.content.length, id = 'owner'): Buffer =>
      verifyEntry(buf, idBytes, len, FILE, id, 777);
    // Truncated: any shorter buffer.
    for (let n = 0; n < e.buf.length; n++) {
      assert.throws(
        () => v(e.buf.subarray(0, n)),
        corruption('owner', 777, `truncated to ${n}`, /truncated/),
      );
    }
    // The reference expects another length than the entry holds.
    assert.throws(
      () => v(e.buf, e.idBytes, e.content.length - 1),
      corruption('owner', 777, 'shorter ref', /length/),
    );
    assert.throws(
      () => v(Buffer.concat([e.buf, Buffer.alloc(4)]), e.idBytes, e.content.length + 4),
      corruption('owner', 777, 'longer ref', /length/),
    );
    // Any flipped byte.
    for (let i = 0; i < e.buf.length; i++) {
      const b = Buffer.from(e.buf);
      b[i] = b[i]! ^ 0x20;
      assert.throws(() => v(b), corruption('owner', 777, `flip ${i}`));
    }
    // A well-formed entry that belongs to another id of the same length: the owner check.
    const other = entry('OWNER', 'some content bytes');
    assert.throws(() => v(other.buf), corruption('owner', 777, 'other owner', /another id/));
    // Another id of another length.
    const longer = entry('owner2', 'some content bytes');
    assert.throws(() => v(longer.buf), corruption('owner', 777, 'other id length'));
    // A wrong length field with a recomputed checksum (a bug, not bit rot) is still caught.
    const relen = Buffer.from(e.buf);
    relen.writeUInt32LE(e.content.length + 1, 4);
    relen.writeUInt32LE(crc32c(relen.subarray(4)), 0);
    assert.throws(() => v(relen), corruption('owner', 777, 'length field', /length/));
  });

  test('segment file names', () => {
    assert.equal(segmentFileName(1), 'seg-00000001.dat');
    assert.equal(segmentFileName(123456789), 'seg-123456789.dat');
    assert.equal(parseSegmentFileName('seg-00000001.dat'), 1);
    assert.equal(parseSegmentFileName(segmentFileName(987654321)), 987654321);
    for (const bad of [
      'seg-1.dat',
      'seg-00000001.dat.tmp',
      'xseg-00000001.dat',
      'seg-0000000a.dat',
      'records.dat',
    ]) {
      assert.equal(parseSegmentFileName(bad), undefined, bad);
    }
  });
});

describe('segment files', () => {
  test('create, append, read back (sync and async), reopen', async (t) => {
    const dir = await tempDir(t);
    const seg = Segment.create(nodeFileSystem, dir, 5);
    const e1 = entry('one', 'first content');
    const e2 = entry('two', 'second, longer content '.repeat(100));
    try {
      assert.equal(seg.end, HEADER_BYTES);
      assert.equal(seg.totalBytes, 0);
      await writeFully(seg.file, e1.buf, seg.end);
      seg.end += e1.buf.length;
      writeFullySync(seg.file, e2.buf, seg.end);
      seg.end += e2.buf.length;
      await seg.file.sync();
      assert.equal(seg.totalBytes, e1.buf.length + e2.buf.length);
      assert.ok(seg.readSync(HEADER_BYTES, e1.buf.length).equals(e1.buf));
      assert.ok((await seg.read(HEADER_BYTES + e1.buf.length, e2.buf.length)).equals(e2.buf));
      const into = Buffer.alloc(100_000);
      assert.ok((await seg.read(HEADER_BYTES, e1.buf.length, into)).equals(e1.buf));
      // Reading past the end returns what there is: verify then reports the entry truncated.
      const past = seg.readSync(seg.end - 10, 50);
      assert.equal(past.length, 10);
      assert.throws(() => verifyEntry(past, e2.idBytes, e2.content.length, seg.path, 'two', seg.end - 10));
    } finally {
      await seg.file.close();
    }
    const reopened = Segment.open(nodeFileSystem, dir, 5);
    try {
      assert.equal(
        reopened.end,
        HEADER_BYTES + e1.buf.length + e2.buf.length,
        'end comes from the file size',
      );
      const b = reopened.readSync(HEADER_BYTES + e1.buf.length, e2.buf.length);
      assert.ok(verifyEntry(b, e2.idBytes, e2.content.length, reopened.path, 'two', 0).equals(e2.content));
    } finally {
      await reopened.file.close();
    }
  });

  test('open refuses a damaged header, a header naming another segment, and a future version', async (t) => {
    const dir = await tempDir(t);
    const seg = Segment.create(nodeFileSystem, dir, 7);
    await seg.file.close();
    const path = join(dir, segmentFileName(7));
    const good = await readFile(path);
    const cases: Array<[string, Buffer, string]> = [
      ['empty file', Buffer.alloc(0), 'CORRUPTION_DETECTED'],
      ['torn header', good.subarray(0, 20), 'CORRUPTION_DETECTED'],
      ['flipped byte', Buffer.from(good.map((x, i) => (i === 13 ? x ^ 1 : x))), 'CORRUPTION_DETECTED'],
      ['another segment id', encodeHeader('SEGM', [8, 0, 0, 0]), 'CORRUPTION_DETECTED'],
      ['another file kind', encodeHeader('WALG', [7, 0, 0, 0]), 'CORRUPTION_DETECTED'],
    ];
    const future = Buffer.from(good);
    future.writeUInt32LE(42, 8);
    future.writeUInt32LE(crc32c(future.subarray(0, 28)), 28);
    cases.push(['version 42', future, 'UNSUPPORTED_VERSION']);
    const fs = new FaultyFileSystem();
    for (const [label, bytes, code] of cases) {
      await writeFile(path, bytes);
      assert.throws(
        () => Segment.open(fs, dir, 7),
        (err: unknown) => {
          assert.ok(WarmStoreError.is(err), `${label}: ${String(err)}`);
          assert.equal(err.code, code, `${label}: ${err.message}`);
          assert.equal(err.details.file, path, `${label}: names the file`);
          return true;
        },
      );
      assert.deepEqual(fs.openFiles(), [], `${label}: the handle was closed`);
    }
    await writeFile(path, good);
    const ok = Segment.open(fs, dir, 7);
    assert.equal(ok.end, HEADER_BYTES);
    await ok.file.close();
    // create refuses to clobber an existing segment.
    assert.throws(
      () => Segment.create(fs, dir, 7),
      (err: unknown) => WarmStoreError.is(err, 'IO_ERROR'),
    );
    assert.deepEqual(fs.openFiles(), []);
  });

  test('writeFully completes short writes and fails loudly when no progress is made', async (t) => {
    const dir = await tempDir(t);
    const fs = new FaultyFileSystem();
    const f = fs.open(join(dir, 'w.dat'), 'create');
    try {
      const data = Buffer.from('0123456789'.repeat(50));
      fs.failAt({ op: 'write', nth: 1, error: 'ENOSPC', short: true });
      fs.failAt({ op: 'write', nth: 2, error: 'ENOSPC', short: true });
      await writeFully(f, data, 0);
      assert.equal(fs.triggered.filter((x) => x.short).length, 2, 'two short writes happened');
      assert.equal(fs.counts.write, 3, 'looped over the short writes');
      const back = Buffer.alloc(data.length);
      assert.equal(f.readSync(back, 0, data.length, 0), data.length);
      assert.ok(back.equals(data));
      fs.reset();
      fs.failAt({ op: 'write', nth: 1, error: 'ENOSPC', short: true });
      writeFullySync(f, data, 1000);
      const back2 = Buffer.alloc(data.length);
      f.readSync(back2, 0, data.length, 1000);
      assert.ok(back2.equals(data));
      // A write of one byte made short writes zero bytes: no progress is an error, not a hang.
      fs.reset();
      fs.failAt({ op: 'write', nth: 1, error: 'ENOSPC', short: true });
      await assert.rejects(
        writeFully(f, Buffer.from('x'), 0),
        (err: NodeJS.ErrnoException) => err.code === 'EIO',
      );
      fs.failAt({ op: 'write', nth: 1, error: 'EIO' });
      await assert.rejects(writeFully(f, data, 0), (err: NodeJS.ErrnoException) => err.code === 'EIO');
    } finally {
      await f.close();
    }
  });
});
