/**
 * The real file layer: reads leave a file's access time alone (O_NOATIME), so a read never waits
 * for the filesystem's journal to record one.
 */
import assert from 'node:assert/strict';
import { statSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
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
