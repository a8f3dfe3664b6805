import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { FaultyFileSystem, makeFsError } from '../../../src/testing/index.js';
import { nodeFileSystem } from '../../../src/fs/node-fs.js';
import type { WsFileSystem } from '../../../src/fs/types.js';
import { tempDir } from '../../helpers/tmp.js';

const bytes = (s: string): Buffer => Buffer.from(s, 'utf8');

function isFsError(code: string, syscall?: string) {
  return (err: unknown): boolean => {
    const e = err as NodeJS.ErrnoException;
    assert.ok(e instanceof Error, 'an Error');
    assert.equal(e.code, code);
    assert.equal(typeof e.errno, 'number');
    assert.ok((e.errno ?? 0) < 0, 'errno is negative, as Node reports it');
    if (syscall !== undefined) assert.equal(e.syscall, syscall);
    assert.match(e.message, new RegExp(`^${code}: `));
    return true;
  };
}

/** A miniature of what the engine does to replace a file atomically: the ops a fault can hit. */
async function atomicReplace(fs: WsFileSystem, dir: string, name: string, data: Buffer): Promise<void> {
  const tmp = join(dir, `${name}.tmp`);
  const f = fs.open(tmp, 'create');
  try {
    let off = 0;
    while (off < data.length) {
      const n = await f.write(data, off, data.length - off, off);
      if (n <= 0) throw new Error('write made no progress');
      off += n;
    }
    await f.truncate(data.length);
    await f.sync();
  } finally {
    await f.close();
  }
  await fs.rename(tmp, join(dir, name));
  await fs.syncDir(dir);
}

describe('FaultyFileSystem', () => {
  it('passes everything through and counts operations when no fault is armed', async (t) => {
    const dir = await tempDir(t);
    const fs = new FaultyFileSystem();
    const p = join(dir, 'a');
    const f = fs.open(p, 'create');
    assert.equal(f.writeSync(bytes('hello'), 0, 5, 0), 5);
    assert.equal(await f.write(bytes(' world'), 0, 6, 5), 6);
    await f.sync();
    const buf = Buffer.alloc(11);
    assert.equal(f.readSync(buf, 0, 11, 0), 11);
    assert.equal(buf.toString(), 'hello world');
    assert.equal(await f.read(buf, 0, 5, 6), 5);
    assert.equal(f.size(), 11);
    await f.close();
    await fs.rename(p, join(dir, 'b'));
    await fs.syncDir(dir);
    assert.deepEqual(await fs.readdir(dir), ['b']);
    assert.equal((await fs.readFile(join(dir, 'b'))).toString(), 'hello world');
    assert.equal(fs.counts.write, 2);
    assert.equal(fs.counts.sync, 1);
    assert.equal(fs.counts.open, 1);
    assert.equal(fs.counts.rename, 1);
    assert.equal(fs.counts.syncDir, 1);
    assert.equal(fs.counts.read, 3);
    // open('create'), 2 writes, sync, rename, syncDir.
    assert.equal(fs.counts['any-write'], 6);
    assert.deepEqual(fs.triggered, []);
  });

  it('fails exactly the Nth matching write, counting from failAt, with a Node-shaped error', async (t) => {
    const dir = await tempDir(t);
    const fs = new FaultyFileSystem();
    const f = fs.open(join(dir, 'a'), 'create');
    f.writeSync(bytes('x'), 0, 1, 0); // before failAt: not counted towards nth
    fs.failAt({ op: 'write', nth: 2, error: 'ENOSPC' });
    assert.equal(f.writeSync(bytes('a'), 0, 1, 1), 1);
    assert.throws(() => f.writeSync(bytes('b'), 0, 1, 2), isFsError('ENOSPC', 'write'));
    assert.equal(f.writeSync(bytes('c'), 0, 1, 2), 1, 'one-shot fault: the next write succeeds');
    await f.close();
    assert.equal(await readFile(join(dir, 'a'), 'utf8'), 'xac');
    assert.equal(fs.triggered.length, 1);
    assert.equal(fs.triggered[0]?.op, 'write');
    assert.equal(fs.pendingFaults, 0);
  });

  it('rejects async operations instead of throwing synchronously', async (t) => {
    const dir = await tempDir(t);
    const fs = new FaultyFileSystem();
    const f = fs.open(join(dir, 'a'), 'create');
    fs.failAt({ op: 'write', nth: 1, error: 'EIO' });
    fs.failAt({ op: 'sync', nth: 1, error: 'EIO' });
    fs.failAt({ op: 'truncate', nth: 1, error: 'ENOSPC' });
    let p: Promise<unknown> | undefined;
    assert.doesNotThrow(() => {
      p = f.write(bytes('a'), 0, 1, 0);
    });
    await assert.rejects(p as Promise<unknown>, isFsError('EIO', 'write'));
    await assert.rejects(f.sync(), isFsError('EIO', 'fdatasync'));
    await assert.rejects(f.truncate(0), isFsError('ENOSPC', 'ftruncate'));
    await f.close();
  });

  it('performs a short write of half the bytes when asked', async (t) => {
    const dir = await tempDir(t);
    const fs = new FaultyFileSystem();
    const p = join(dir, 'a');
    const f = fs.open(p, 'create');
    fs.failAt({ op: 'write', nth: 1, error: 'ENOSPC', short: true });
    assert.equal(f.writeSync(bytes('abcdefgh'), 0, 8, 0), 4);
    fs.failAt({ op: 'write', nth: 1, error: 'ENOSPC', short: true });
    assert.equal(await f.write(bytes('ABCDEFG'), 0, 7, 4), 3);
    fs.failAt({ op: 'write', nth: 1, error: 'ENOSPC', short: true });
    assert.equal(f.writeSync(bytes('Z'), 0, 1, 7), 0, 'half of one byte is nothing');
    await f.close();
    assert.equal(await readFile(p, 'utf8'), 'abcdABC');
    assert.deepEqual(
      fs.triggered.map((x) => x.short),
      [true, true, true],
    );
  });

  it('persistent faults keep failing; a persistent short write is followed by errors, as a full disk', async (t) => {
    const dir = await tempDir(t);
    const fs = new FaultyFileSystem();
    const f = fs.open(join(dir, 'a'), 'create');
    fs.failAt({ op: 'write', nth: 2, error: 'ENOSPC', short: true, persistent: true });
    assert.equal(f.writeSync(bytes('1234'), 0, 4, 0), 4);
    assert.equal(f.writeSync(bytes('1234'), 0, 4, 4), 2);
    assert.throws(() => f.writeSync(bytes('1234'), 0, 4, 6), isFsError('ENOSPC'));
    await assert.rejects(f.write(bytes('1234'), 0, 4, 6), isFsError('ENOSPC'));
    fs.clearFaults();
    assert.equal(f.writeSync(bytes('1234'), 0, 4, 6), 4, 'disk freed');
    await f.close();
  });

  it('filters by pathIncludes (either path of a rename)', async (t) => {
    const dir = await tempDir(t);
    const fs = new FaultyFileSystem();
    const seg = fs.open(join(dir, 'seg-1'), 'create');
    const wal = fs.open(join(dir, 'wal-1'), 'create');
    fs.failAt({ op: 'write', nth: 1, error: 'EIO', pathIncludes: 'wal-' });
    assert.equal(seg.writeSync(bytes('a'), 0, 1, 0), 1);
    assert.throws(() => wal.writeSync(bytes('a'), 0, 1, 0), isFsError('EIO'));
    fs.failAt({ op: 'rename', nth: 1, error: 'EIO', pathIncludes: 'MANIFEST' });
    await fs.rename(join(dir, 'seg-1'), join(dir, 'seg-2'));
    await assert.rejects(
      fs.rename(join(dir, 'wal-1'), join(dir, 'MANIFEST')),
      (err: NodeJS.ErrnoException) => {
        assert.equal(err.code, 'EIO');
        assert.equal((err as NodeJS.ErrnoException & { dest?: string }).dest, join(dir, 'MANIFEST'));
        return true;
      },
    );
    assert.ok(await fs.exists(join(dir, 'wal-1')), 'a failed rename does nothing');
    await seg.close();
    await wal.close();
  });

  it('any-write matches every mutating operation and no read', async (t) => {
    const dir = await tempDir(t);
    await writeFile(join(dir, 'existing'), 'data');
    const fs = new FaultyFileSystem();
    fs.failAt({ op: 'any-write', nth: 1, error: 'EIO', persistent: true });
    // Reads are unaffected.
    const r = fs.open(join(dir, 'existing'), 'r');
    const buf = Buffer.alloc(4);
    assert.equal(r.readSync(buf, 0, 4, 0), 4);
    assert.equal(await r.read(buf, 0, 4, 0), 4);
    assert.equal((await fs.readFile(join(dir, 'existing'))).toString(), 'data');
    assert.deepEqual(await fs.readdir(dir), ['existing']);
    assert.equal(await fs.exists(join(dir, 'existing')), true);
    await r.close();
    // Every mutation fails.
    assert.throws(() => fs.open(join(dir, 'new'), 'create'), isFsError('EIO', 'open'));
    assert.throws(() => fs.open(join(dir, 'new'), 'excl'), isFsError('EIO', 'open'));
    const rw = fs.open(join(dir, 'existing'), 'rw'); // opening an existing file changes nothing
    assert.throws(() => rw.writeSync(buf, 0, 1, 0), isFsError('EIO'));
    await assert.rejects(rw.sync(), isFsError('EIO'));
    await assert.rejects(rw.truncate(1), isFsError('EIO'));
    await rw.close();
    await assert.rejects(fs.rename(join(dir, 'existing'), join(dir, 'x')), isFsError('EIO', 'rename'));
    await assert.rejects(fs.unlink(join(dir, 'existing')), isFsError('EIO', 'unlink'));
    await assert.rejects(fs.link(join(dir, 'existing'), join(dir, 'y')), isFsError('EIO', 'link'));
    await assert.rejects(fs.mkdir(join(dir, 'sub')), isFsError('EIO', 'mkdir'));
    await assert.rejects(fs.syncDir(dir), isFsError('EIO', 'fsync'));
    assert.deepEqual(await readFile(join(dir, 'existing'), 'utf8'), 'data');
    assert.deepEqual(await fs.readdir(dir), ['existing']);
    assert.equal(fs.triggered.length, 10);
  });

  it('open and read faults', async (t) => {
    const dir = await tempDir(t);
    await writeFile(join(dir, 'a'), 'data');
    const fs = new FaultyFileSystem();
    fs.failAt({ op: 'open', nth: 1, error: 'EIO' });
    assert.throws(() => fs.open(join(dir, 'a'), 'r'), isFsError('EIO', 'open'));
    const f = fs.open(join(dir, 'a'), 'r');
    fs.failAt({ op: 'read', nth: 1, error: 'EIO' });
    assert.throws(() => f.readSync(Buffer.alloc(1), 0, 1, 0), isFsError('EIO', 'read'));
    fs.failAt({ op: 'read', nth: 1, error: 'EIO' });
    await assert.rejects(f.read(Buffer.alloc(1), 0, 1, 0), isFsError('EIO', 'read'));
    fs.failAt({ op: 'read', nth: 1, error: 'EIO' });
    await assert.rejects(fs.readFile(join(dir, 'a')), isFsError('EIO', 'read'));
    await f.close();
  });

  it('freeBytesOverride simulates a full disk; reset() clears everything', async (t) => {
    const dir = await tempDir(t);
    const fs = new FaultyFileSystem();
    assert.ok((await fs.freeBytes(dir)) > 0);
    fs.freeBytesOverride = 1234;
    assert.equal(await fs.freeBytes(dir), 1234);
    fs.failAt({ op: 'sync', nth: 5, error: 'EIO' });
    fs.reset();
    assert.equal(fs.freeBytesOverride, undefined);
    assert.equal(fs.pendingFaults, 0);
    assert.equal(fs.counts.freeBytes, 0);
    assert.ok((await fs.freeBytes(dir)) > 1234);
  });

  it('tracks open handles, so tests can detect leaks after errors', async (t) => {
    const dir = await tempDir(t);
    const fs = new FaultyFileSystem();
    const a = fs.open(join(dir, 'a'), 'create');
    const b = fs.open(join(dir, 'b'), 'create');
    assert.deepEqual(fs.openFiles().sort(), [join(dir, 'a'), join(dir, 'b')]);
    await a.close();
    b.closeSync();
    assert.deepEqual(fs.openFiles(), []);
  });

  it('wraps any WsFileSystem and rejects a bad nth', () => {
    const fs = new FaultyFileSystem(new FaultyFileSystem(nodeFileSystem));
    assert.throws(() => fs.failAt({ op: 'write', nth: 0, error: 'EIO' }), RangeError);
    const e = makeFsError('ENOSPC', 'write', '/x');
    assert.equal(e.code, 'ENOSPC');
    assert.equal(e.path, '/x');
  });

  it('count-then-fail-each: every single failure of an atomic replace leaves old or new content', async (t) => {
    const dir = await tempDir(t);
    const target = join(dir, 'MANIFEST');
    const fs = new FaultyFileSystem();
    await atomicReplace(fs, dir, 'MANIFEST', bytes('v0'));
    fs.resetCounts();
    await atomicReplace(fs, dir, 'MANIFEST', bytes('v1'));
    const total = fs.counts['any-write'];
    assert.ok(total >= 6, `expected several mutating ops, saw ${total}`);
    for (let nth = 1; nth <= total; nth++) {
      for (const error of ['ENOSPC', 'EIO'] as const) {
        fs.reset();
        fs.failAt({ op: 'any-write', nth, error });
        const next = `v${nth}${error}`;
        let failed = false;
        try {
          await atomicReplace(fs, dir, 'MANIFEST', bytes(next));
        } catch (err) {
          failed = true;
          assert.equal((err as NodeJS.ErrnoException).code, error);
        }
        assert.ok(failed, `fault #${nth} (${error}) must surface`);
        assert.equal(fs.triggered.length, 1);
        const content = await readFile(target, 'utf8');
        assert.ok(/^v\d/.test(content), `content after failing op ${nth}: ${content}`);
        assert.deepEqual(fs.openFiles(), [], `handle leaked after failing op ${nth}`);
      }
    }
  });

  describe('durable writes', () => {
    it('count once as a durable write, a write, a sync and a mutating operation', async (t) => {
      const dir = await tempDir(t);
      const fs = new FaultyFileSystem();
      const p = join(dir, 'a');
      const f = fs.open(p, 'create');
      fs.resetCounts();
      assert.equal(await f.writeDurable!(bytes('abc'), 0, 3, 0), 3);
      await f.close();
      assert.equal(await readFile(p, 'utf8'), 'abc');
      assert.equal(fs.counts.durableWrite, 1);
      assert.equal(fs.counts.write, 1);
      assert.equal(fs.counts.sync, 1);
      assert.equal(fs.counts['any-write'], 1);
    });

    it('a write fault fails one before any byte lands; a sync fault after its bytes landed', async (t) => {
      const dir = await tempDir(t);
      const fs = new FaultyFileSystem();
      const p = join(dir, 'a');
      const f = fs.open(p, 'create');
      fs.failAt({ op: 'write', nth: 1, error: 'ENOSPC' });
      await assert.rejects(f.writeDurable!(bytes('xy'), 0, 2, 0), isFsError('ENOSPC', 'write'));
      assert.equal(f.size(), 0, 'nothing landed');
      fs.failAt({ op: 'sync', nth: 1, error: 'EIO' });
      await assert.rejects(f.writeDurable!(bytes('xy'), 0, 2, 0), isFsError('EIO', 'fdatasync'));
      assert.equal(await readFile(p, 'utf8'), 'xy', 'landed, not known durable');
      fs.failAt({ op: 'durableWrite', nth: 1, error: 'EIO' });
      await assert.rejects(f.writeDurable!(bytes('zz'), 0, 2, 0), isFsError('EIO', 'write'));
      assert.deepEqual(
        fs.triggered.map((x) => x.op),
        ['write', 'sync', 'durableWrite'],
      );
      await f.close();
      assert.equal(await readFile(p, 'utf8'), 'xy');
    });

    it('a durableWrite fault leaves plain writes and syncs alone; write and sync faults count them', async (t) => {
      const dir = await tempDir(t);
      const fs = new FaultyFileSystem();
      const f = fs.open(join(dir, 'a'), 'create');
      fs.failAt({ op: 'durableWrite', nth: 1, error: 'EIO' });
      assert.equal(await f.write(bytes('a'), 0, 1, 0), 1);
      await f.sync();
      assert.equal(fs.pendingFaults, 1, 'not fired by a plain write or sync');
      fs.clearFaults();
      // The second write of the file is a durable one: nth counts it like any write.
      fs.failAt({ op: 'write', nth: 2, error: 'ENOSPC' });
      assert.equal(await f.write(bytes('b'), 0, 1, 1), 1);
      await assert.rejects(f.writeDurable!(bytes('c'), 0, 1, 2), isFsError('ENOSPC'));
      await f.close();
    });

    it('a short durable write lands half of the bytes; a persistent one then fails', async (t) => {
      const dir = await tempDir(t);
      const fs = new FaultyFileSystem();
      const p = join(dir, 'a');
      const f = fs.open(p, 'create');
      fs.failAt({ op: 'durableWrite', nth: 1, error: 'ENOSPC', short: true, persistent: true });
      assert.equal(await f.writeDurable!(bytes('abcdefgh'), 0, 8, 0), 4);
      await assert.rejects(f.writeDurable!(bytes('efgh'), 0, 4, 4), isFsError('ENOSPC'));
      fs.clearFaults();
      fs.failAt({ op: 'sync', nth: 1, error: 'EIO', short: true });
      await assert.rejects(
        f.writeDurable!(bytes('efgh'), 0, 4, 4),
        isFsError('EIO'),
        'a sync is never short',
      );
      await f.close();
      assert.equal(await readFile(p, 'utf8'), 'abcdefgh');
      assert.deepEqual(
        fs.triggered.map((x) => [x.op, x.short]),
        [
          ['durableWrite', true],
          ['durableWrite', false],
          ['sync', false],
        ],
      );
    });

    it('over a file layer without durable writes: a write then a sync', async (t) => {
      const dir = await tempDir(t);
      const calls: string[] = [];
      const inner: WsFileSystem = {
        open: (path, mode) => {
          const f = nodeFileSystem.open(path, mode);
          return {
            path: f.path,
            readSync: (b, o, l, q) => f.readSync(b, o, l, q),
            read: (b, o, l, q) => f.read(b, o, l, q),
            writeSync: (b, o, l, q) => f.writeSync(b, o, l, q),
            write: (b, o, l, q) => (calls.push('write'), f.write(b, o, l, q)),
            sync: () => (calls.push('sync'), f.sync()),
            truncate: (n) => f.truncate(n),
            size: () => f.size(),
            close: () => f.close(),
            closeSync: () => f.closeSync(),
          };
        },
        readFile: (q) => nodeFileSystem.readFile(q),
        rename: (a, b) => nodeFileSystem.rename(a, b),
        unlink: (q) => nodeFileSystem.unlink(q),
        link: (a, b) => nodeFileSystem.link(a, b),
        readdir: (q) => nodeFileSystem.readdir(q),
        mkdir: (q) => nodeFileSystem.mkdir(q),
        exists: (q) => nodeFileSystem.exists(q),
        syncDir: (q) => nodeFileSystem.syncDir(q),
        freeBytes: (q) => nodeFileSystem.freeBytes(q),
      };
      const fs = new FaultyFileSystem(inner);
      const p = join(dir, 'a');
      const f = fs.open(p, 'create');
      assert.equal(await f.writeDurable!(bytes('abc'), 0, 3, 0), 3);
      await f.close();
      assert.deepEqual(calls, ['write', 'sync']);
      assert.equal(await readFile(p, 'utf8'), 'abc');
    });
  });
});
