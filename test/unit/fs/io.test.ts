/**
 * io.ts's loops over short counts: `writevFully` writes every piece, through one `writev` where the
 * file layer has it, and copies what is left into one buffer when it has not or wrote short.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { writevFully } from '../../../src/fs/io.js';
import { NodeFileSystem } from '../../../src/fs/node-fs.js';
import type { WsFile } from '../../../src/fs/types.js';
import { tempDir } from '../../helpers/tmp.js';

/** A file whose writes (and writev, when `vectored`) stop after at most `cap` bytes each. */
function shortWriting(inner: WsFile, cap: number, vectored: boolean, calls: string[]): WsFile {
  const f: WsFile = {
    path: inner.path,
    readSync: (b, o, l, p) => inner.readSync(b, o, l, p),
    read: (b, o, l, p) => inner.read(b, o, l, p),
    writeSync: (b, o, l, p) => inner.writeSync(b, o, l, p),
    write: (b, o, l, p) => {
      calls.push('write');
      return inner.write(b, o, Math.min(l, cap), p);
    },
    writeDurable: (b, o, l, p) => {
      calls.push('writeDurable');
      return inner.writeDurable!(b, o, Math.min(l, cap), p);
    },
    sync: () => inner.sync(),
    truncate: (n) => inner.truncate(n),
    size: () => inner.size(),
    close: () => inner.close(),
    closeSync: () => inner.closeSync(),
  };
  if (vectored) {
    f.writev = async (bufs, position, durable) => {
      calls.push(durable ? 'writev durable' : 'writev');
      // The first pieces that fit under the cap, the last of them cut: a short pwritev.
      const out: Uint8Array[] = [];
      let left = cap;
      for (const b of bufs) {
        if (left === 0) break;
        out.push(b.subarray(0, Math.min(b.length, left)));
        left -= Math.min(b.length, left);
      }
      return inner.writev!(out, position, durable);
    };
  }
  return f;
}

test('writevFully writes every piece in order, whatever the layer and however short its writes', async (t) => {
  const dir = await tempDir(t);
  const fs = new NodeFileSystem();
  let n = 0;
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.uint8Array({ minLength: 0, maxLength: 300 }), { minLength: 1, maxLength: 12 }),
      fc.integer({ min: 0, max: 5000 }),
      fc.integer({ min: 1, max: 4000 }),
      fc.boolean(),
      fc.boolean(),
      async (pieces, position, cap, vectored, durable) => {
        const path = join(dir, `f${n++}`);
        const calls: string[] = [];
        const f = shortWriting(fs.open(path, 'create'), cap, vectored, calls);
        try {
          await writevFully(f, pieces, position, durable);
        } finally {
          await f.close();
        }
        const want = Buffer.concat(pieces);
        const back = readFileSync(path);
        if (want.length > 0) assert.ok(back.subarray(position).equals(want));
        if (vectored) assert.equal(calls[0], durable ? 'writev durable' : 'writev', 'one writev first');
        if (!vectored || cap >= want.length) {
          // Either no writev at all, or one that wrote everything.
          assert.ok(calls.every((c) => !c.startsWith('writev')) || calls.length === 1, calls.join());
        }
        const plain = calls.filter((c) => !c.startsWith('writev'));
        assert.ok(
          plain.every((c) => c === (durable ? 'writeDurable' : 'write')),
          calls.join(),
        );
      },
    ),
    { numRuns: 150 },
  );
});

test('writevFully: a writev that writes nothing fails with EIO, not a loop', async (t) => {
  const dir = await tempDir(t);
  const inner = new NodeFileSystem().open(join(dir, 'f'), 'create');
  const f: WsFile = Object.assign(Object.create(null) as WsFile, {
    path: inner.path,
    writev: () => Promise.resolve(0),
  });
  try {
    await assert.rejects(writevFully(f, [Buffer.from('abc')], 0, false), { code: 'EIO' });
  } finally {
    await inner.close();
  }
});
