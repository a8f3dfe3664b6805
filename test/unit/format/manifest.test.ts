import assert from 'node:assert/strict';
import { readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { WarmStoreError } from '../../../src/errors.js';
import { crc32c } from '../../../src/format/crc.js';
import { HEADER_BYTES, encodeHeader } from '../../../src/format/header.js';
import {
  MANIFEST_FILE,
  decodeManifest,
  encodeManifest,
  readManifest,
  writeManifest,
  type Manifest,
} from '../../../src/format/manifest.js';
import { FaultyFileSystem } from '../../../src/testing/index.js';
import { nodeFileSystem } from '../../../src/fs/node-fs.js';
import { tempDir } from '../../helpers/tmp.js';

const sample = (): Manifest => ({
  dimension: 768,
  slotBytes: 352 + 768 * 4,
  walFileNo: 17,
  checkpointLsn: 123456789012,
  nextSegmentId: 9,
  activeSegment: 8,
  nextCompactionRunId: 4,
  compaction: { runId: 3, victims: [2, 5], victimsDone: [2], outputs: { '7': 4096 }, committedChunks: 2 },
  createdAt: 1_700_000_000_000,
});

function corrupt(label: string) {
  return (err: unknown): boolean => {
    assert.ok(WarmStoreError.is(err, 'CORRUPTION_DETECTED'), `${label}: got ${String(err)}`);
    assert.equal(err.details.file, '/s/MANIFEST', `${label}: names the file`);
    return true;
  };
}

/** A manifest file with an arbitrary body but a consistent header (length and CRC). */
function withBody(body: Buffer): Buffer {
  return Buffer.concat([encodeHeader('MANI', [body.length, crc32c(body), 0, 0]), body]);
}

describe('manifest codec', () => {
  test('encode/decode round trip', () => {
    const m = sample();
    assert.deepEqual(decodeManifest(encodeManifest(m), '/s/MANIFEST'), m);
    const idle = { ...m, compaction: null };
    assert.deepEqual(decodeManifest(encodeManifest(idle), '/s/MANIFEST'), idle);
  });

  test('optional fields of an older writer get defaults', () => {
    const body = Buffer.from(
      JSON.stringify({
        dimension: 8,
        slotBytes: 384,
        walFileNo: 1,
        checkpointLsn: 0,
        nextSegmentId: 2,
        activeSegment: 1,
      }),
    );
    const m = decodeManifest(withBody(body), '/s/MANIFEST');
    assert.equal(m.nextCompactionRunId, 1);
    assert.equal(m.compaction, null);
    assert.equal(m.createdAt, 0);
    assert.equal(m.dimension, 8);
  });

  test('every flipped byte, a cut, extra bytes, bad JSON and missing fields are CORRUPTION_DETECTED', () => {
    const good = encodeManifest(sample());
    for (let i = 0; i < good.length; i++) {
      const b = Buffer.from(good);
      b[i] = b[i]! ^ 0x04;
      assert.throws(() => decodeManifest(b, '/s/MANIFEST'), corrupt(`byte ${i}`));
    }
    assert.throws(
      () => decodeManifest(good.subarray(0, good.length - 1), '/s/MANIFEST'),
      corrupt('cut by one'),
    );
    assert.throws(
      () => decodeManifest(good.subarray(0, HEADER_BYTES), '/s/MANIFEST'),
      corrupt('header only'),
    );
    assert.throws(() => decodeManifest(good.subarray(0, 10), '/s/MANIFEST'), corrupt('torn header'));
    assert.throws(
      () => decodeManifest(Buffer.concat([good, Buffer.from(' ')]), '/s/MANIFEST'),
      corrupt('extra'),
    );
    assert.throws(
      () => decodeManifest(withBody(Buffer.from('{"dimension": 8,')), '/s/MANIFEST'),
      corrupt('bad JSON'),
    );
    for (const k of [
      'dimension',
      'slotBytes',
      'walFileNo',
      'checkpointLsn',
      'nextSegmentId',
      'activeSegment',
    ] as const) {
      const m: Partial<Manifest> = sample();
      delete m[k];
      assert.throws(
        () => decodeManifest(withBody(Buffer.from(JSON.stringify(m))), '/s/MANIFEST'),
        corrupt(`no ${k}`),
      );
      const s = { ...sample(), [k]: 'seven' };
      assert.throws(
        () => decodeManifest(withBody(Buffer.from(JSON.stringify(s))), '/s/MANIFEST'),
        corrupt(`bad ${k}`),
      );
    }
  });

  test('writeManifest replaces the file atomically; readManifest reads it back or says it is missing', async (t) => {
    const dir = await tempDir(t);
    assert.equal(await readManifest(nodeFileSystem, dir), undefined);
    const m = sample();
    await writeManifest(nodeFileSystem, dir, m);
    assert.deepEqual(await readManifest(nodeFileSystem, dir), m);
    const next = { ...m, walFileNo: 18, checkpointLsn: m.checkpointLsn + 10 };
    await writeManifest(nodeFileSystem, dir, next);
    assert.deepEqual(await readManifest(nodeFileSystem, dir), next);
    assert.deepEqual(await readdir(dir), [MANIFEST_FILE], 'no temp file left behind');
    // A stale temp file from a crashed writer does not get in the way.
    await writeFile(join(dir, 'MANIFEST.tmp'), 'junk');
    await writeManifest(nodeFileSystem, dir, m);
    assert.deepEqual(await readManifest(nodeFileSystem, dir), m);
  });

  test('a failed manifest write leaves the previous manifest readable, and reports IO_ERROR', async (t) => {
    const dir = await tempDir(t);
    const fs = new FaultyFileSystem();
    const m = sample();
    await writeManifest(fs, dir, m);
    fs.resetCounts();
    await writeManifest(fs, dir, { ...m, walFileNo: 99 });
    const steps = fs.counts['any-write'];
    assert.ok(steps >= 4, `write, sync, rename, syncDir at least (${steps})`);
    for (let nth = 1; nth <= steps; nth++) {
      await writeManifest(nodeFileSystem, dir, m);
      fs.reset();
      fs.failAt({ op: 'any-write', nth, error: 'EIO' });
      const next = { ...m, walFileNo: 1000 + nth };
      let failed = false;
      try {
        await writeManifest(fs, dir, next);
      } catch (err) {
        failed = true;
        assert.ok(WarmStoreError.is(err, 'IO_ERROR'), `step ${nth}: got ${String(err)}`);
      }
      const got = await readManifest(nodeFileSystem, dir);
      assert.ok(got, `step ${nth}: a manifest is always readable`);
      if (!failed) assert.deepEqual(got, next, `step ${nth}: success means the new manifest`);
      else
        assert.ok(
          got.walFileNo === m.walFileNo || got.walFileNo === next.walFileNo,
          `step ${nth}: old or new`,
        );
      fs.reset();
      assert.deepEqual(fs.openFiles(), [], `step ${nth}: no handle leaked`);
    }
  });
});
