import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { PowerCutFileSystem } from '../../../src/testing/index.js';
import type { WsFile } from '../../../src/fs/types.js';
import { Rng, randomBytes } from '../../helpers/random.js';
import { tempDir } from '../../helpers/tmp.js';

const bytes = (s: string): Buffer => Buffer.from(s, 'utf8');

function write(f: WsFile, s: string, pos: number): void {
  assert.equal(f.writeSync(bytes(s), 0, Buffer.byteLength(s), pos), Buffer.byteLength(s));
}

const text = (p: string): string => readFileSync(p, 'utf8');

describe('PowerCutFileSystem', () => {
  it('undoes unsynced writes and keeps synced ones', async (t) => {
    const dir = await tempDir(t);
    const p = join(dir, 'f');
    await writeFile(p, 'AAAAAAAA'); // existing before: durable baseline
    const fs = new PowerCutFileSystem(dir);
    const f = fs.open(p, 'rw');
    write(f, 'BB', 2);
    await f.sync();
    write(f, 'CC', 4); // overwrite, not synced
    write(f, 'DD', 2); // overwrite of a synced range, not synced
    write(f, 'EEEE', 8); // append, not synced
    await f.write(bytes('FF'), 0, 2, 6);
    assert.equal(text(p), 'AADDCCFFEEEE');
    const report = fs.cut();
    assert.equal(text(p), 'AABBAAAA');
    assert.deepEqual(report.filesReverted, [p]);
    assert.deepEqual(readdirSync(dir), ['f'], 'stash removed');
  });

  it('a sync covers only what was written before it was called', async (t) => {
    const dir = await tempDir(t);
    const p = join(dir, 'f');
    await writeFile(p, '');
    const fs = new PowerCutFileSystem(dir);
    const f = fs.open(p, 'rw');
    write(f, 'one', 0);
    const s = f.sync();
    write(f, 'TWO', 0); // written while the sync is in flight
    write(f, '+more', 3);
    await s;
    fs.cut();
    assert.equal(text(p), 'one');
  });

  it('a sync that resolves after a newer one does not roll the durable size back', async (t) => {
    const dir = await tempDir(t);
    const p = join(dir, 'f');
    await writeFile(p, '');
    const fs = new PowerCutFileSystem(dir);
    const f = fs.open(p, 'rw');
    write(f, 'ab', 0);
    const s1 = f.sync();
    write(f, 'cd', 2);
    const s2 = f.sync();
    await Promise.all([s2, s1]);
    write(f, 'ef', 4);
    fs.cut();
    assert.equal(text(p), 'abcd');
  });

  it('restores bytes cut off by an unsynced truncate; keeps a synced one', async (t) => {
    const dir = await tempDir(t);
    const p = join(dir, 'f');
    const q = join(dir, 'g');
    await writeFile(p, '0123456789');
    await writeFile(q, '0123456789');
    const fs = new PowerCutFileSystem(dir);
    const f = fs.open(p, 'rw');
    await f.truncate(3);
    write(f, 'xyz', 5); // re-grows with a hole
    const g = fs.open(q, 'rw');
    await g.truncate(4);
    await g.sync();
    await g.truncate(2);
    fs.cut();
    assert.equal(text(p), '0123456789');
    assert.equal(text(q), '0123');
  });

  it('a new file needs syncDir for its name and sync for its bytes', async (t) => {
    const dir = await tempDir(t);
    const fs = new PowerCutFileSystem(dir);
    const cases = {
      none: join(dir, 'none'), // neither
      dataOnly: join(dir, 'data-only'), // sync without syncDir: vanishes
      nameOnly: join(dir, 'name-only'), // syncDir without sync: exists, empty
      both: join(dir, 'both'),
    };
    for (const p of Object.values(cases)) write(fs.open(p, 'excl'), 'payload', 0);
    const handle = (p: string): WsFile => fs.open(p, 'rw');
    await handle(cases.dataOnly).sync();
    await handle(cases.both).sync();
    await fs.syncDir(dir);
    // Created after the syncDir: not durable even if synced.
    const late = fs.open(join(dir, 'late'), 'create');
    write(late, 'x', 0);
    await late.sync();
    const report = fs.cut();
    assert.deepEqual(readdirSync(dir).sort(), ['both', 'data-only', 'name-only', 'none']);
    assert.equal(text(cases.both), 'payload');
    assert.equal(text(cases.dataOnly), 'payload');
    assert.equal(text(cases.nameOnly), '');
    assert.equal(text(cases.none), '');
    assert.deepEqual(report.entriesRemoved, [join(dir, 'late')]);
  });

  it('forgets files whose directory entry was never synced', async (t) => {
    const dir = await tempDir(t);
    const fs = new PowerCutFileSystem(dir);
    const f = fs.open(join(dir, 'a'), 'create');
    write(f, 'data', 0);
    await f.sync();
    fs.cut();
    assert.deepEqual(readdirSync(dir), []);
  });

  it('reverts an unsynced rename, restoring the replaced file with its durable bytes', async (t) => {
    const dir = await tempDir(t);
    const target = join(dir, 'MANIFEST');
    const tmp = join(dir, 'MANIFEST.tmp');
    await writeFile(target, 'old');
    const fs = new PowerCutFileSystem(dir);
    const f = fs.open(tmp, 'excl');
    write(f, 'new', 0);
    await f.sync();
    await f.close();
    await fs.rename(tmp, target);
    assert.equal(text(target), 'new');
    const report = fs.cut();
    assert.deepEqual(readdirSync(dir), ['MANIFEST']);
    assert.equal(text(target), 'old');
    assert.deepEqual(report.entriesRestored, [target]);
  });

  it('keeps a rename followed by syncDir; the classic missing-fsync bug shows as an empty file', async (t) => {
    const dir = await tempDir(t);
    const good = join(dir, 'good');
    const bad = join(dir, 'bad');
    await writeFile(good, 'old');
    await writeFile(bad, 'old');
    const fs = new PowerCutFileSystem(dir);
    for (const [target, syncData] of [
      [good, true],
      [bad, false],
    ] as const) {
      const f = fs.open(`${target}.tmp`, 'excl');
      write(f, 'new', 0);
      if (syncData) await f.sync();
      await f.close();
      await fs.rename(`${target}.tmp`, target);
    }
    await fs.syncDir(dir);
    fs.cut();
    assert.deepEqual(readdirSync(dir).sort(), ['bad', 'good']);
    assert.equal(text(good), 'new');
    assert.equal(text(bad), '', 'rename durable, data never synced');
  });

  it('reverts an unsynced unlink, even while a handle still writes to the orphan', async (t) => {
    const dir = await tempDir(t);
    const p = join(dir, 'seg');
    await writeFile(p, 'durable');
    const fs = new PowerCutFileSystem(dir);
    const f = fs.open(p, 'rw');
    write(f, 'D', 0);
    await f.sync();
    await fs.unlink(p);
    assert.equal(existsSync(p), false);
    write(f, 'X', 1); // orphan write, never synced
    fs.cut();
    assert.equal(text(p), 'Durable');
  });

  it('keeps an unlink followed by syncDir', async (t) => {
    const dir = await tempDir(t);
    await writeFile(join(dir, 'a'), 'a');
    const fs = new PowerCutFileSystem(dir);
    await fs.unlink(join(dir, 'a'));
    await fs.syncDir(dir);
    fs.cut();
    assert.deepEqual(readdirSync(dir), []);
  });

  it('a syncDir covers only directory changes made before it was called', async (t) => {
    const dir = await tempDir(t);
    const fs = new PowerCutFileSystem(dir);
    fs.open(join(dir, 'a'), 'excl');
    const s = fs.syncDir(dir);
    fs.open(join(dir, 'b'), 'excl');
    await s;
    fs.cut();
    assert.deepEqual(readdirSync(dir), ['a']);
  });

  it('resolves chains of renames (a->b, b->a) and same-name recreation', async (t) => {
    const dir = await tempDir(t);
    await writeFile(join(dir, 'a'), 'A');
    await writeFile(join(dir, 'x'), 'X');
    const fs = new PowerCutFileSystem(dir);
    await fs.rename(join(dir, 'a'), join(dir, 'b'));
    await fs.rename(join(dir, 'b'), join(dir, 'a'));
    await fs.rename(join(dir, 'a'), join(dir, 'c'));
    await fs.unlink(join(dir, 'x'));
    const f = fs.open(join(dir, 'x'), 'excl');
    write(f, 'new x', 0);
    await f.sync();
    fs.cut();
    assert.deepEqual(readdirSync(dir).sort(), ['a', 'x']);
    assert.equal(text(join(dir, 'a')), 'A');
    assert.equal(text(join(dir, 'x')), 'X');
  });

  it('link (the lock file pattern) is a directory change like any other', async (t) => {
    const dir = await tempDir(t);
    const fs = new PowerCutFileSystem(dir);
    const f = fs.open(join(dir, 'LOCK.tmp'), 'excl');
    write(f, '123', 0);
    await f.close();
    await fs.link(join(dir, 'LOCK.tmp'), join(dir, 'LOCK'));
    await assert.rejects(fs.link(join(dir, 'LOCK.tmp'), join(dir, 'LOCK')), { code: 'EEXIST' });
    await fs.unlink(join(dir, 'LOCK.tmp'));
    await fs.syncDir(dir);
    fs.cut();
    assert.deepEqual(readdirSync(dir), ['LOCK']);
    assert.equal(text(join(dir, 'LOCK')), '', 'bytes never synced');
  });

  it('a directory made without syncing its parent vanishes with everything inside', async (t) => {
    const dir = await tempDir(t);
    const fs = new PowerCutFileSystem(dir);
    const store = join(dir, 'store');
    await fs.mkdir(join(store, 'sub'));
    const f = fs.open(join(store, 'sub', 'f'), 'excl');
    write(f, 'x', 0);
    await f.sync();
    await fs.syncDir(join(store, 'sub'));
    await fs.syncDir(store);
    fs.cut();
    assert.deepEqual(readdirSync(dir), []);
  });

  it('a directory made and synced into its parent survives', async (t) => {
    const dir = await tempDir(t);
    const fs = new PowerCutFileSystem(dir);
    const store = join(dir, 'store');
    await fs.mkdir(store);
    await fs.syncDir(dir);
    const f = fs.open(join(store, 'f'), 'excl');
    write(f, 'x', 0);
    await f.sync();
    await fs.syncDir(store);
    fs.open(join(store, 'g'), 'excl');
    fs.cut();
    assert.deepEqual(readdirSync(store), ['f']);
    assert.equal(text(join(store, 'f')), 'x');
  });

  it('after a cut every handle and every operation fails; pending acks reject', async (t) => {
    const dir = await tempDir(t);
    const fs = new PowerCutFileSystem(dir);
    const f = fs.open(join(dir, 'a'), 'create');
    write(f, 'x', 0);
    const pendingSync = f.sync(); // resolves on a later turn: the cut comes first
    const pendingWrite = f.write(bytes('y'), 0, 1, 1);
    fs.cut();
    await assert.rejects(pendingSync, { code: 'EIO' });
    await assert.rejects(pendingWrite, { code: 'EIO' });
    assert.throws(() => f.writeSync(bytes('x'), 0, 1, 0), { code: 'EIO' });
    assert.throws(() => f.readSync(Buffer.alloc(1), 0, 1, 0), { code: 'EIO' });
    await assert.rejects(f.sync(), { code: 'EIO' });
    assert.throws(() => fs.open(join(dir, 'b'), 'create'), { code: 'EIO' });
    await assert.rejects(fs.readdir(dir), { code: 'EIO' });
    await assert.rejects(fs.syncDir(dir), { code: 'EIO' });
    assert.throws(() => fs.cut(), /already/);
    assert.deepEqual(readdirSync(dir), []);
  });

  it('cutAtOp cuts instead of the Nth mutating operation', async (t) => {
    const dir = await tempDir(t);
    const fs = new PowerCutFileSystem(dir);
    const f = fs.open(join(dir, 'a'), 'create'); // op 1
    await fs.syncDir(dir); // op 2
    write(f, 'abc', 0); // op 3
    await f.sync(); // op 4
    assert.equal(fs.opCount, 4);
    fs.cutAtOp(2);
    write(f, 'X', 0); // op 5
    assert.throws(() => write(f, 'Y', 1), { code: 'EIO' }); // op 6: the cut
    assert.equal(fs.isCut, true);
    assert.ok(fs.lastCut !== undefined);
    assert.equal(text(join(dir, 'a')), 'abc');
  });

  it('hides its stash from readdir and refuses paths outside its root', async (t) => {
    const dir = await tempDir(t);
    const fs = new PowerCutFileSystem(dir);
    fs.open(join(dir, 'a'), 'create');
    assert.deepEqual(await fs.readdir(dir), ['a']);
    assert.throws(() => fs.open(join(dir, '..', 'escape'), 'create'), /outside/);
    fs.dispose();
    assert.deepEqual(readdirSync(dir), ['a']);
  });

  it('torn cuts keep, per byte, either the durable or a later written value', async (t) => {
    const dir = await tempDir(t);
    const p = join(dir, 'f');
    const base = Buffer.alloc(64 * 1024, 0x41);
    writeFileSync(p, base);
    for (let seed = 1; seed <= 8; seed++) {
      writeFileSync(p, base);
      const fs = new PowerCutFileSystem(dir);
      const f = fs.open(p, 'rw');
      const r = new Rng(seed);
      for (let i = 0; i < 20; i++) {
        const pos = r.int(base.length);
        const data = Buffer.alloc(r.range(1, 5000), 0x42 + (i % 20));
        f.writeSync(data, 0, data.length, pos);
      }
      f.writeSync(Buffer.alloc(10_000, 0x5a), 0, 10_000, base.length); // growth
      fs.cut({ tornSeed: seed });
      const after = await readFile(p);
      assert.ok(
        after.length === base.length || after.length === base.length + 10_000,
        `size ${after.length}`,
      );
      for (let i = 0; i < base.length; i++) {
        const b = after[i] as number;
        assert.ok(b === 0x41 || (b >= 0x42 && b < 0x42 + 20), `byte ${i} = ${b}`);
      }
      for (let i = base.length; i < after.length; i++) {
        const b = after[i] as number;
        assert.ok(b === 0 || b === 0x5a, `grown byte ${i} = ${b}`);
      }
    }
  });

  it('keepUnsynced flushes the chosen files only (a precise reordering)', async (t) => {
    const dir = await tempDir(t);
    await writeFile(join(dir, 'wal'), 'w0');
    await writeFile(join(dir, 'seg'), 's0');
    const fs = new PowerCutFileSystem(dir);
    const wal = fs.open(join(dir, 'wal'), 'rw');
    const seg = fs.open(join(dir, 'seg'), 'rw');
    write(seg, '+s1', 2);
    write(wal, '+w1', 2);
    fs.cut({ keepUnsynced: (p) => p.endsWith('wal') });
    assert.equal(text(join(dir, 'wal')), 'w0+w1');
    assert.equal(text(join(dir, 'seg')), 's0');
  });

  it('matches a reference model over random operation sequences', async (t) => {
    // The model: inodes with current and durable bytes; a directory with current and durable
    // name -> inode maps. The real tree after cut() must equal the durable side of the model.
    interface Inode {
      cur: Buffer;
      dur: Buffer;
      file: WsFile;
    }
    for (let seed = 1; seed <= 40; seed++) {
      const dir = await tempDir(t);
      const r = new Rng(seed);
      const names = ['a', 'b', 'c', 'd', 'e'];
      const curDir = new Map<string, Inode>();
      const durDir = new Map<string, Inode>();
      const fs = new PowerCutFileSystem(dir);
      const inodes: Inode[] = [];
      // Two files exist before the layer starts: durable as they are.
      for (const name of ['a', 'b']) {
        const content = randomBytes(r, r.int(3000));
        writeFileSync(join(dir, name), content);
      }
      for (const name of ['a', 'b']) {
        const content = readFileSync(join(dir, name));
        const node: Inode = {
          cur: Buffer.from(content),
          dur: Buffer.from(content),
          file: fs.open(join(dir, name), 'rw'),
        };
        inodes.push(node);
        curDir.set(name, node);
        durDir.set(name, node);
      }
      const log: string[] = [];
      for (let step = 0; step < 80; step++) {
        const roll = r.int(100);
        const name = r.pick(names);
        if (roll < 12 && !curDir.has(name)) {
          const node: Inode = {
            cur: Buffer.alloc(0),
            dur: Buffer.alloc(0),
            file: fs.open(join(dir, name), 'excl'),
          };
          inodes.push(node);
          curDir.set(name, node);
          log.push(`create ${name}`);
        } else if (roll < 50 && inodes.length > 0) {
          const node = r.pick(inodes);
          const pos = r.int(node.cur.length + 100);
          const data = randomBytes(r, r.range(1, 2000));
          const how = r.int(3);
          if (how === 0) node.file.writeSync(data, 0, data.length, pos);
          else if (how === 1) await node.file.write(data, 0, data.length, pos);
          else await node.file.writeDurable!(data, 0, data.length, pos);
          const grown = Buffer.alloc(Math.max(node.cur.length, pos + data.length));
          node.cur.copy(grown);
          data.copy(grown, pos);
          node.cur = grown;
          if (how === 2) {
            // Durable: these bytes, and the size reaching them; a range it skipped over that
            // nothing durable covers is a hole.
            const dur = Buffer.alloc(Math.max(node.dur.length, pos + data.length));
            node.dur.copy(dur);
            data.copy(dur, pos);
            node.dur = dur;
          }
          log.push(`${['writeSync', 'write', 'writeDurable'][how]} ${pos}+${data.length}`);
        } else if (roll < 58 && inodes.length > 0) {
          const node = r.pick(inodes);
          const len = r.int(node.cur.length + 50);
          await node.file.truncate(len);
          const next = Buffer.alloc(len);
          node.cur.copy(next, 0, 0, Math.min(len, node.cur.length));
          node.cur = next;
          log.push(`truncate ${len}`);
        } else if (roll < 72 && inodes.length > 0) {
          const node = r.pick(inodes);
          await node.file.sync();
          node.dur = Buffer.from(node.cur);
          log.push('sync');
        } else if (roll < 80) {
          await fs.syncDir(dir);
          durDir.clear();
          for (const [k, v] of curDir) durDir.set(k, v);
          log.push('syncDir');
        } else if (roll < 90 && curDir.has(name)) {
          const to = r.pick(names);
          if (to === name) continue;
          await fs.rename(join(dir, name), join(dir, to));
          curDir.set(to, curDir.get(name) as Inode);
          curDir.delete(name);
          log.push(`rename ${name} ${to}`);
        } else if (curDir.has(name)) {
          await fs.unlink(join(dir, name));
          curDir.delete(name);
          log.push(`unlink ${name}`);
        }
      }
      fs.cut();
      const ctx = `seed ${seed}: ${log.join(', ')}`;
      assert.deepEqual(readdirSync(dir).sort(), [...durDir.keys()].sort(), ctx);
      for (const [name, node] of durDir) {
        assert.ok(readFileSync(join(dir, name)).equals(node.dur), `${ctx}: content of ${name}`);
      }
    }
  });

  describe('durable writes', () => {
    it('a durable write that resolved survives a cut: its bytes and the size reaching them', async (t) => {
      const dir = await tempDir(t);
      const p = join(dir, 'f');
      await writeFile(p, 'AAAAAAAA');
      const fs = new PowerCutFileSystem(dir);
      const f = fs.open(p, 'rw');
      write(f, 'CC', 0); // plain, never synced: undone
      assert.equal(await f.writeDurable!(bytes('DD'), 0, 2, 4), 2);
      write(f, 'xx', 8); // plain growth, skipped over by the next durable write: a hole
      assert.equal(await f.writeDurable!(bytes('EE'), 0, 2, 10), 2);
      write(f, 'FF', 12); // plain growth past the durable size: cut off
      assert.equal(text(p), 'CCAADDAAxxEEFF');
      const report = fs.cut();
      assert.equal(text(p), 'AAAADDAA\0\0EE');
      assert.deepEqual(report.filesReverted, [p]);
    });

    it('a durable write over bytes a plain write left keeps its own, and only its own, bytes', async (t) => {
      const dir = await tempDir(t);
      const p = join(dir, 'f');
      await writeFile(p, '0123456789');
      const fs = new PowerCutFileSystem(dir);
      const f = fs.open(p, 'rw');
      write(f, 'abcdef', 2); // plain: undone where the durable write does not cover it
      await f.writeDurable!(bytes('XY'), 0, 2, 4);
      write(f, 'z', 5); // plain, after the durable write: its byte goes back to the durable 'Y'
      await f.truncate(3); // unsynced: undone
      fs.cut();
      assert.equal(text(p), '0123XY6789');
    });

    it('a durable write in flight when the power goes is undone; a torn cut keeps or undoes each page', async (t) => {
      const dir = await tempDir(t);
      const p = join(dir, 'f');
      const page = 4096;
      const old = Buffer.alloc(4 * page, 0x41);
      const outcomes = new Set<string>();
      for (let seed = 0; seed <= 16; seed++) {
        writeFileSync(p, old);
        const fs = new PowerCutFileSystem(dir);
        const f = fs.open(p, 'rw');
        // Overwrites the 4 pages and grows the file by 2 more.
        const inFlight = f.writeDurable!(Buffer.alloc(6 * page, 0x42), 0, 6 * page, 0);
        fs.cut(seed === 0 ? {} : { tornSeed: seed });
        await assert.rejects(inFlight, { code: 'EIO' });
        const after = await readFile(p);
        if (seed === 0) {
          assert.ok(after.equals(old), 'an exact cut undoes a durable write that had not resolved');
          continue;
        }
        assert.ok(after.length === 4 * page || after.length === 6 * page, `size ${after.length}`);
        let shape = '';
        for (let at = 0; at < after.length; at += page) {
          const first = after[at] as number;
          assert.ok(
            after.subarray(at, at + page).every((b) => b === first),
            `seed ${seed}: page ${at / page} is one write's or the other's`,
          );
          assert.ok(at < old.length ? first === 0x41 || first === 0x42 : first === 0 || first === 0x42);
          shape += first === 0x42 ? 'B' : first === 0x41 ? 'A' : '0';
        }
        outcomes.add(shape.slice(0, 4));
      }
      assert.ok(
        [...outcomes].some((o) => o.includes('A') && o.includes('B')),
        `some torn cut landed part of the write (${[...outcomes].join(' ')})`,
      );
    });

    it('a cut armed on a durable write fails it before any byte lands', async (t) => {
      const dir = await tempDir(t);
      const p = join(dir, 'f');
      await writeFile(p, 'AAAA');
      const fs = new PowerCutFileSystem(dir);
      const f = fs.open(p, 'rw');
      await f.writeDurable!(bytes('B'), 0, 1, 0);
      fs.cutAtOp(1);
      await assert.rejects(f.writeDurable!(bytes('CC'), 0, 2, 2), { code: 'EIO' });
      assert.ok(fs.isCut);
      assert.equal(text(p), 'BAAA');
    });

    it('a durable write followed by a sync called before it resolved stays durable', async (t) => {
      const dir = await tempDir(t);
      const p = join(dir, 'f');
      await writeFile(p, '');
      const fs = new PowerCutFileSystem(dir);
      const f = fs.open(p, 'rw');
      const d = f.writeDurable!(bytes('abcd'), 0, 4, 0);
      const s = f.sync();
      write(f, 'ef', 4); // after both calls: undone
      await Promise.all([d, s]);
      fs.cut();
      assert.equal(text(p), 'abcd');
    });
  });
});
