import assert from 'node:assert/strict';
import { readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import { crc32c } from '../../../src/format/crc.js';
import { FORMAT_VERSION, WarmStore, WarmStoreError, type MemoryRecord } from '../../../src/index.js';
import { FaultyFileSystem, registerMigration } from '../../../src/testing/index.js';
import { expectSameRecord } from '../../helpers/assert.js';
import { recordFor } from '../../helpers/random.js';
import { makeTempDir, removeDir } from '../../helpers/tmp.js';

const DIM = 8;
const OPTS = { dimension: DIM, maintenanceIntervalMs: false as const };

async function seededStore(t: TestContext): Promise<{ dir: string; recs: MemoryRecord[] }> {
  const dir = await makeTempDir('warmstore-versions-');
  t.after(() => removeDir(dir));
  const recs = Array.from({ length: 5 }, (_, i) => ({
    ...recordFor(`v${i}`, i, DIM),
    content: `version test ${i}`,
  }));
  const s = await WarmStore.open(dir, OPTS);
  try {
    for (const r of recs) await s.put(r);
  } finally {
    await s.close();
  }
  return { dir, recs };
}

/** Rewrites a file's header version field (offset 8) and recomputes the header CRC (offset 28). */
async function patchVersion(path: string, version: number): Promise<Buffer> {
  const original = await readFile(path);
  const b = Buffer.from(original);
  b.writeUInt32LE(version, 8);
  b.writeUInt32LE(crc32c(b.subarray(0, 28)), 28);
  await writeFile(path, b);
  return original;
}

function unsupported(fileEnds: string, label: string) {
  return (err: unknown): boolean => {
    assert.ok(WarmStoreError.is(err), `${label}: not a WarmStoreError: ${String(err)}`);
    assert.equal(err.code, 'UNSUPPORTED_VERSION', `${label}: ${err.message}`);
    assert.ok(
      String(err.details.file).endsWith(fileEnds),
      `${label}: details.file ${String(err.details.file)}`,
    );
    return true;
  };
}

async function fileNamed(dir: string, re: RegExp): Promise<string> {
  const n = (await readdir(dir)).filter((x) => re.test(x)).sort();
  assert.ok(n.length > 0, `a file matching ${re}`);
  return n.at(-1)!;
}

async function expectAll(dir: string, recs: MemoryRecord[]): Promise<void> {
  const s = await WarmStore.open(dir, OPTS);
  try {
    assert.equal(s.size, recs.length);
    for (const r of recs) expectSameRecord(await s.get(r.id), r);
  } finally {
    await s.close();
  }
}

describe('format versions at open', () => {
  for (const [label, pattern] of [
    ['MANIFEST', /^MANIFEST$/],
    ['records.dat', /^records\.dat$/],
    ['vectors.dat', /^vectors\.dat$/],
    ['the newest WAL', /^wal-\d+\.log$/],
  ] as const) {
    for (const version of [99, 0]) {
      test(`${label} at version ${version} is refused with UNSUPPORTED_VERSION, and the store is untouched`, async (t) => {
        const { dir, recs } = await seededStore(t);
        const name = await fileNamed(dir, pattern);
        const original = await patchVersion(join(dir, name), version);
        const patched = await readFile(join(dir, name));
        await assert.rejects(WarmStore.open(dir, OPTS), unsupported(name, `${name} v${version}`));
        await assert.rejects(WarmStore.open(dir, OPTS), unsupported(name, `${name} v${version}, twice`));
        assert.deepEqual(await readFile(join(dir, name)), patched, 'the refused file was not rewritten');
        await writeFile(join(dir, name), original);
        await expectAll(dir, recs);
      });
    }
  }

  for (const version of [99, 0]) {
    test(`a segment at version ${version} is refused with UNSUPPORTED_VERSION, never read as corrupt or deleted`, async (t) => {
      const { dir, recs } = await seededStore(t);
      const name = await fileNamed(dir, /^seg-\d+\.dat$/);
      const original = await patchVersion(join(dir, name), version);
      const patched = await readFile(join(dir, name));
      let refused = false;
      try {
        const s = await WarmStore.open(dir, OPTS);
        try {
          // If open goes ahead, reading content from that segment must say why it cannot.
          for (const r of recs) await assert.rejects(s.get(r.id), unsupported(name, `get ${r.id}`));
          refused = true;
        } finally {
          await s.close();
        }
      } catch (err) {
        unsupported(name, `open with ${name} v${version}`)(err);
        refused = true;
      }
      assert.ok(refused);
      assert.deepEqual(await readFile(join(dir, name)), patched, 'the segment was kept, byte for byte');
      await writeFile(join(dir, name), original);
      await expectAll(dir, recs);
    });
  }
});

/**
 * Builds the RECS v1 file of the store in `dir` (each 352-byte header followed by its vector) from
 * its v2 records.dat and vectors.dat, and removes vectors.dat: a store as format 1 left it.
 */
async function downgradeToRecordsV1(dir: string): Promise<Buffer> {
  const start = 4096;
  const headers = await readFile(join(dir, 'records.dat'));
  const vectors = await readFile(join(dir, 'vectors.dat'));
  const slots = (headers.length - start) / 352;
  assert.ok(Number.isInteger(slots) && slots > 0, `records.dat holds whole headers (${slots})`);
  const slot = 352 + DIM * 4;
  const v1 = Buffer.alloc(start + slots * slot);
  headers.copy(v1, 0, 0, 32);
  v1.writeUInt32LE(1, 8);
  v1.writeUInt32LE(DIM, 12);
  v1.writeUInt32LE(slot, 16);
  v1.writeUInt32LE(crc32c(v1.subarray(0, 28)), 28);
  for (let i = 0; i < slots; i++) {
    headers.copy(v1, start + i * slot, start + i * 352, start + (i + 1) * 352);
    vectors.copy(v1, start + i * slot + 352, start + i * DIM * 4, start + (i + 1) * DIM * 4);
  }
  await writeFile(join(dir, 'records.dat'), v1);
  await rm(join(dir, 'vectors.dat'));
  return v1;
}

describe('migrations', () => {
  test('a fault at any write of the records.dat 1 -> 2 migration fails the open cleanly; the next open migrates', async (t) => {
    const { dir, recs } = await seededStore(t);
    const v1 = await downgradeToRecordsV1(dir);
    // Count the mutating operations of an open that migrates (the migration comes first).
    const counter = new FaultyFileSystem();
    const probe = await makeTempDir('warmstore-versions-probe-');
    t.after(() => removeDir(probe));
    for (const n of await readdir(dir)) await writeFile(join(probe, n), await readFile(join(dir, n)));
    await (await WarmStore.open(probe, { ...OPTS, fileSystem: counter })).close();
    const migrationOps = counter.counts['any-write'];
    assert.ok(migrationOps >= 8, `an open that migrates made ${migrationOps} mutating operations`);
    for (let nth = 1; nth <= migrationOps; nth++) {
      for (const error of ['ENOSPC', 'EIO'] as const) {
        const label = `${error} at mutating op ${nth}/${migrationOps}`;
        await writeFile(join(dir, 'records.dat'), v1);
        await rm(join(dir, 'vectors.dat'), { force: true });
        const fs = new FaultyFileSystem();
        fs.failAt({ op: 'any-write', nth, error });
        try {
          await (await WarmStore.open(dir, { ...OPTS, fileSystem: fs })).close();
        } catch (err) {
          assert.ok(WarmStoreError.is(err), `${label}: ${String(err)}`);
          assert.equal(err.code, 'IO_ERROR', `${label}: ${err.message}`);
        }
        // Whatever the fault hit, the store opens afterwards with every record.
        await expectAll(dir, recs);
      }
    }
  });

  test('records.dat format 1 (headers and vectors interleaved) is split into format 2 on open', async (t) => {
    const { dir, recs } = await seededStore(t);
    await downgradeToRecordsV1(dir);
    // What a migration killed half way leaves behind: staged files, the v1 file still in place.
    await writeFile(join(dir, 'records.dat.migrating'), 'half written');
    await writeFile(join(dir, 'vectors.dat.migrating'), 'half written');
    await expectAll(dir, recs);
    const names = await readdir(dir);
    assert.ok(names.includes('vectors.dat'), 'vectors.dat created');
    assert.ok(!names.some((n) => n.endsWith('.migrating')), `staged files renamed: ${names.join(' ')}`);
    const head = await readFile(join(dir, 'records.dat'));
    assert.equal(head.readUInt32LE(8), FORMAT_VERSION.RECS, 'records.dat is at the current version');
    assert.equal(head.readUInt32LE(16), 352, 'records.dat now holds headers only');
    // A second open reads format 2 as is; writes keep working after the migration.
    const s = await WarmStore.open(dir, OPTS);
    try {
      await s.put({ id: 'after-split', embedding: recs[0]!.embedding, content: 'new' });
      assert.equal((await s.verify()).ok, true);
    } finally {
      await s.close();
    }
    await expectAll(dir, [...recs, { id: 'after-split', embedding: recs[0]!.embedding, content: 'new' }]);
  });

  test('a MANIFEST 0 -> 1 migration registered with registerMigration lets an old store open', async (t) => {
    const { dir, recs } = await seededStore(t);
    const path = join(dir, 'MANIFEST');
    // Fabricate a version-0 manifest: the body used `dim` where version 1 says `dimension`.
    const current = await readFile(path);
    const body = JSON.parse(current.subarray(32).toString('utf8')) as Record<string, unknown>;
    const oldBody = Buffer.from(
      JSON.stringify({ ...body, dimension: undefined, dim: body.dimension }),
      'utf8',
    );
    const header = Buffer.alloc(32);
    current.copy(header, 0, 0, 32);
    header.writeUInt32LE(0, 8);
    header.writeUInt32LE(oldBody.length, 12);
    header.writeUInt32LE(crc32c(oldBody), 16);
    header.writeUInt32LE(crc32c(header.subarray(0, 28)), 28);
    await writeFile(path, Buffer.concat([header, oldBody]));

    await assert.rejects(WarmStore.open(dir, OPTS), unsupported('MANIFEST', 'no migration registered'));

    let fieldCalls = 0;
    let bodyCalls = 0;
    const unregister = registerMigration({
      kind: 'MANI',
      fromVersion: 0,
      toVersion: FORMAT_VERSION.MANI,
      migrateFields(f) {
        fieldCalls++;
        return f;
      },
      migrateBody(b) {
        bodyCalls++;
        const o = JSON.parse(b.toString('utf8')) as Record<string, unknown>;
        o.dimension = o.dim;
        delete o.dim;
        return Buffer.from(JSON.stringify(o), 'utf8');
      },
    });
    try {
      const s = await WarmStore.open(dir, OPTS);
      try {
        assert.ok(fieldCalls >= 1 && bodyCalls >= 1, 'the migration ran');
        assert.equal(s.dimension, DIM);
        assert.equal(s.size, recs.length);
        for (const r of recs) expectSameRecord(await s.get(r.id), r);
        await s.put({ id: 'after-migration', embedding: recs[0]!.embedding, content: 'new' });
      } finally {
        await s.close();
      }
    } finally {
      unregister();
    }
    // The manifest was rewritten at the current version: the store opens without the migration.
    const rewritten = await readFile(path);
    assert.equal(rewritten.readUInt32LE(8), FORMAT_VERSION.MANI);
    const s = await WarmStore.open(dir, OPTS);
    try {
      for (const r of recs) expectSameRecord(await s.get(r.id), r);
      assert.equal((await s.get('after-migration'))?.content, 'new');
    } finally {
      await s.close();
    }
  });
});
