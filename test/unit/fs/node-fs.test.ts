/**
 * The real file layer: reads leave a file's access time alone (O_NOATIME), so a read never waits
 * for the filesystem's journal to record one; a durable write goes through a descriptor of its own
 * opened with O_DSYNC.
 */
import assert from 'node:assert/strict';
import {
  constants,
  readFileSync,
  readdirSync,
  readlinkSync,
  renameSync,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { NodeFileSystem } from '../../../src/fs/node-fs.js';
import { tempDir } from '../../helpers/tmp.js';

test('reading a file written since its last access leaves its atime alone', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'data.bin');
  writeFileSync(path, Buffer.alloc(8192, 7));
  // An atime older than the mtime: under relatime, the next read through a plain descriptor
  // would update it.
  const old = new Date(Date.now() - 3_600_000);
  utimesSync(path, old, new Date());
  const fs = new NodeFileSystem();
  for (const mode of ['r', 'rw'] as const) {
    const f = fs.open(path, mode);
    try {
      const buf = Buffer.alloc(4096);
      assert.equal(f.readSync(buf, 0, 4096, 0), 4096);
      assert.equal(await f.read(buf, 0, 4096, 4096), 4096);
      assert.equal(buf[0], 7);
    } finally {
      await f.close();
    }
    // An updated atime would be now, an hour past the one set (stat rounds it to the microsecond).
    const atime = statSync(path).atimeMs;
    assert.ok(
      Math.abs(atime - old.getTime()) < 1,
      `${mode}: atime unchanged (${atime} against ${old.getTime()})`,
    );
  }
});

/** Flags of this process's descriptors open on `path` (Linux: /proc/self/fdinfo). */
function descriptorFlags(path: string): number[] {
  const flags: number[] = [];
  for (const fd of readdirSync('/proc/self/fd')) {
    let target: string;
    try {
      target = readlinkSync(`/proc/self/fd/${fd}`);
    } catch {
      continue; // closed meanwhile (readdir's own descriptor)
    }
    if (target !== path) continue;
    const m = /^flags:\s+([0-7]+)$/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'));
    if (m) flags.push(parseInt(m[1]!, 8));
  }
  return flags;
}

/** A new file through the real layer, and what the descriptor checks need. */
async function freshFile(t: TestContext) {
  const path = join(await tempDir(t), 'data.bin');
  const fs = new NodeFileSystem();
  return {
    path,
    fs,
    f: fs.open(path, 'create'),
    linux: process.platform === 'linux',
    dsync: constants.O_DSYNC ?? 0,
  };
}

test('a durable write is on the file when it resolves, through an O_DSYNC descriptor opened for it', async (t) => {
  const { path, fs, f, linux, dsync } = await freshFile(t);
  try {
    assert.equal(f.writeSync(Buffer.alloc(100, 1), 0, 100, 0), 100);
    if (linux)
      assert.deepEqual(
        descriptorFlags(path).filter((x) => (x & dsync) !== 0),
        [],
        'none before',
      );
    // A short-looking window into a bigger buffer, past the end: the file grows to reach it.
    const buf = Buffer.alloc(8192, 9);
    assert.equal(await f.writeDurable!(buf, 4096, 4000, 200), 4000);
    assert.equal(f.size(), 4200);
    assert.equal(await f.writeDurable!(Buffer.from('abc'), 0, 3, 50), 3);
    if (linux) {
      const open = descriptorFlags(path);
      assert.equal(open.length, 2, 'the file and its durable descriptor');
      assert.equal(open.filter((x) => (x & dsync) !== 0).length, 1, 'one descriptor with O_DSYNC');
    }
    // The file renamed: durable writes still reach it (the descriptor is the inode's, not the name's).
    renameSync(path, `${path}.moved`);
    assert.equal(await f.writeDurable!(Buffer.from('z'), 0, 1, 4200), 1);
  } finally {
    await f.close();
  }
  if (linux) assert.deepEqual(descriptorFlags(`${path}.moved`), [], 'both descriptors closed');
  const back = readFileSync(`${path}.moved`);
  assert.equal(back.length, 4201);
  assert.ok(back.subarray(0, 50).every((b) => b === 1));
  assert.equal(back.subarray(50, 53).toString(), 'abc');
  assert.ok(back.subarray(53, 100).every((b) => b === 1));
  assert.ok(
    back.subarray(100, 200).every((b) => b === 0),
    'the gap is a hole',
  );
  assert.ok(back.subarray(200, 4200).every((b) => b === 9));
  assert.equal(back[4200], 'z'.charCodeAt(0));
  // Reopened through the layer: the same bytes.
  const g = fs.open(`${path}.moved`, 'r');
  try {
    const got = Buffer.alloc(4201);
    assert.equal(await g.read(got, 0, 4201, 0), 4201);
    assert.ok(got.equals(back));
    // Read-only: a durable write fails as any write would.
    await assert.rejects(g.writeDurable!(Buffer.from('x'), 0, 1, 0), { code: 'EBADF' });
  } finally {
    g.closeSync();
  }
});

test('writev writes its pieces back to back from the position, plain or durable', async (t) => {
  const { path, fs, f, linux, dsync } = await freshFile(t);
  // Views into one buffer and buffers of their own, of odd sizes.
  const big = Buffer.alloc(5000);
  for (let i = 0; i < big.length; i++) big[i] = i % 251;
  try {
    const pieces = [
      big.subarray(10, 1010),
      Buffer.from('hello'),
      new Uint8Array(3).fill(200),
      big.subarray(4000),
    ];
    assert.equal(await f.writev!(pieces, 100, false), 2008);
    if (linux)
      assert.deepEqual(
        descriptorFlags(path).filter((x) => (x & dsync) !== 0),
        [],
        'a plain writev opens no durable descriptor',
      );
    assert.equal(await f.writev!([Buffer.from('ab'), Buffer.from('cd')], 2108, true), 4);
    if (linux) assert.equal(descriptorFlags(path).filter((x) => (x & dsync) !== 0).length, 1);
  } finally {
    await f.close();
  }
  const back = readFileSync(path);
  assert.equal(back.length, 2112);
  assert.ok(back.subarray(0, 100).every((b) => b === 0));
  assert.ok(back.subarray(100, 1100).equals(big.subarray(10, 1010)));
  assert.equal(back.subarray(1100, 1105).toString(), 'hello');
  assert.ok(back.subarray(1105, 1108).every((b) => b === 200));
  assert.ok(back.subarray(1108, 2108).equals(big.subarray(4000)));
  assert.equal(back.subarray(2108).toString(), 'abcd');
  const g = fs.open(path, 'r');
  try {
    await assert.rejects(g.writev!([Buffer.from('x')], 0, false), { code: 'EBADF' });
    await assert.rejects(g.writev!([Buffer.from('x')], 0, true), { code: 'EBADF' });
  } finally {
    g.closeSync();
  }
});
