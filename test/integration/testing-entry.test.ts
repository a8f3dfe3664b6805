/**
 * `warmstore/testing` as an application reaches it: imported by package name from the build (the
 * package's `exports` map resolves the self-reference to dist/). Needs `npm run build`.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { recordFor } from '../helpers/random.js';
import { tempDir } from '../helpers/tmp.js';

type Library = typeof import('../../src/index.js');
type Testing = typeof import('../../src/testing/index.js');

// Specifiers held in variables so the type checker does not resolve them (dist/ may not be built
// when it runs); their types come from the sources they are built from.
const LIBRARY: string = 'warmstore';
const TESTING: string = 'warmstore/testing';
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const DIM = 4;

describe('warmstore/testing (built package)', () => {
  it('is an exports entry with types, naming exactly its public exports', async () => {
    const pkg = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as {
      exports: Record<string, { types: string; import: string }>;
    };
    const entry = pkg.exports['./testing'];
    assert.ok(entry, 'package.json exports ./testing');
    assert.ok(existsSync(join(ROOT, entry.types)), `${entry.types} is built`);
    assert.ok(existsSync(join(ROOT, entry.import)), `${entry.import} is built`);

    const testing = (await import(TESTING)) as Testing;
    assert.deepEqual(Object.keys(testing).sort(), [
      'FaultyFileSystem',
      'PowerCutFileSystem',
      'makeFsError',
      'registerMigration',
      'withTestHooks',
    ]);
    const library = (await import(LIBRARY)) as Library;
    assert.equal('registerMigration' in library, false, 'registerMigration left the main entry');

    // The power-cut layer's bookkeeping is private: its declarations show none of it.
    const dts = await readFile(join(ROOT, 'dist/testing/power-cut-fs.d.ts'), 'utf8');
    for (const name of ['beforeMutation', 'captureOverwrite', 'later', 'stateOf', 'forget']) {
      assert.equal(dts.includes(`${name}(`), false, `${name} is not declared publicly`);
    }
  });

  it('withTestHooks kill points fire during a compaction through the public WarmStore', async (t) => {
    const { WarmStore, WarmStoreError } = (await import(LIBRARY)) as Library;
    const { FaultyFileSystem, withTestHooks } = (await import(TESTING)) as Testing;
    const dir = join(await tempDir(t), 'store');
    const fs = new FaultyFileSystem();
    const points: string[] = [];
    const store = await WarmStore.open(
      dir,
      withTestHooks(
        {
          dimension: DIM,
          segmentBytes: 4096,
          maintenanceIntervalMs: false,
          maintenance: { startupCompaction: 'off' },
          fileSystem: fs,
        },
        { onKillPoint: (name) => points.push(name) },
      ),
    );
    try {
      for (let i = 0; i < 40; i++) await store.put(recordFor(`r${i}`, 1, DIM));
      for (let i = 0; i < 40; i += 2) await store.delete(`r${i}`);
      assert.equal(points.length, 0, 'no kill point before a compaction');
      const stats = await store.compact({ force: true });
      assert.ok(stats.segmentsCompacted > 0, 'the compaction moved segments');
      for (const p of ['plan', 'begin-committed', 'copy-written', 'end-committed']) {
        assert.ok(points.includes(p), `kill point ${p} fired (${[...new Set(points)].join(', ')})`);
      }
      assert.ok(fs.counts.sync > 0, 'the store wrote through the injected file layer');

      // The example in the entry point's documentation: the next fdatasync fails, and the put
      // waiting on it rejects without being applied.
      fs.failAt({ op: 'sync', nth: 1, error: 'EIO' });
      await assert.rejects(store.put(recordFor('after', 1, DIM)), (err: unknown) =>
        WarmStoreError.is(err, 'IO_ERROR'),
      );
      assert.equal(fs.triggered.length, 1);
    } finally {
      await store.close().catch(() => undefined);
    }
  });
});
