/**
 * The test hooks and the migration registry of `warmstore/testing`: hooks ride on a copy of the
 * options under a symbol (never as a public option), and test migrations cannot displace the
 * ones warmstore ships.
 */
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { testHooksOf } from '../../../src/engine/test-hooks.js';
import { crc32c } from '../../../src/format/crc.js';
import { FORMAT_VERSION, WarmStore, WarmStoreError, type WarmStoreOptions } from '../../../src/index.js';
import { findMigration } from '../../../src/format/header.js';
import { registerMigration, withTestHooks } from '../../../src/testing/index.js';
import { recordFor } from '../../helpers/random.js';
import { tempDir } from '../../helpers/tmp.js';

const DIM = 4;
const BASE: WarmStoreOptions = {
  dimension: DIM,
  segmentBytes: 4096,
  maintenanceIntervalMs: false,
  maintenance: { startupCompaction: 'off' },
};

function invalidField(field: string) {
  return (err: unknown): boolean => {
    assert.ok(WarmStoreError.is(err, 'INVALID_INPUT'), `INVALID_INPUT, got ${String(err)}`);
    assert.equal(err.details.field, field);
    return true;
  };
}

/** Opens a store, deletes half its records and force-compacts it. */
async function openAndCompact(dir: string, options: WarmStoreOptions): Promise<void> {
  const store = await WarmStore.open(dir, options);
  try {
    for (let i = 0; i < 40; i++) await store.put(recordFor(`r${i}`, 1, DIM));
    for (let i = 0; i < 40; i += 2) await store.delete(`r${i}`);
    await store.compact({ force: true });
    assert.equal(store.size, 20);
  } finally {
    await store.close();
  }
}

describe('withTestHooks', () => {
  it('returns a copy carrying the hooks under a symbol; the input is unchanged', () => {
    const onKillPoint = (): void => undefined;
    const options: WarmStoreOptions = { ...BASE };
    const copy = withTestHooks(options, { onKillPoint });
    assert.notEqual(copy, options);
    assert.equal(testHooksOf(copy).onKillPoint, onKillPoint);
    assert.equal(testHooksOf(options).onKillPoint, undefined, 'the input carries no hooks');
    assert.deepEqual(Object.keys(copy), Object.keys(BASE), 'no string key was added');
    // Spreading (as option helpers do) keeps own enumerable symbol keys.
    assert.equal(testHooksOf({ ...copy, dimension: 8 }).onKillPoint, onKillPoint);
  });

  it('merges over hooks the options already carry', () => {
    const first = (): void => undefined;
    const second = (): void => undefined;
    const once = withTestHooks(BASE, { onKillPoint: first });
    assert.equal(testHooksOf(withTestHooks(once, {})).onKillPoint, first);
    assert.equal(testHooksOf(withTestHooks(once, { onKillPoint: second })).onKillPoint, second);
  });

  it('validates its input, naming the field', () => {
    assert.throws(() => withTestHooks(null as unknown as WarmStoreOptions, {}), invalidField('options'));
    assert.throws(() => withTestHooks(BASE, 'x' as unknown as object), invalidField('hooks'));
    assert.throws(
      () => withTestHooks(BASE, { onKillPoint: 42 as unknown as () => void }),
      invalidField('hooks.onKillPoint'),
    );
    assert.throws(() => withTestHooks(BASE, { annMergeMin: 0 }), invalidField('hooks.annMergeMin'));
    assert.throws(() => withTestHooks(BASE, { annMergeMin: 1.5 }), invalidField('hooks.annMergeMin'));
    assert.equal(testHooksOf(withTestHooks(BASE, { annMergeMin: 64 })).annMergeMin, 64);
    assert.throws(() => withTestHooks(BASE, { annMinRecall: 1.5 }), invalidField('hooks.annMinRecall'));
    assert.equal(testHooksOf(withTestHooks(BASE, { annMinRecall: 0.5 })).annMinRecall, 0.5);
  });

  it('the store calls onKillPoint during a compaction; a plain `onKillPoint` option is ignored', async (t) => {
    const seen: string[] = [];
    await openAndCompact(
      join(await tempDir(t), 's'),
      withTestHooks(BASE, { onKillPoint: (name) => seen.push(name) }),
    );
    for (const p of ['plan', 'begin-committed', 'end-committed']) {
      assert.ok(seen.includes(p), `kill point ${p} fired (${[...new Set(seen)].join(', ')})`);
    }

    const ignored: string[] = [];
    const plain: WarmStoreOptions = {
      ...BASE,
      // @ts-expect-error onKillPoint is no field of WarmStoreOptions
      onKillPoint: (name: string) => ignored.push(name),
    };
    await openAndCompact(join(await tempDir(t), 'p'), plain);
    assert.equal(ignored.length, 0, 'onKillPoint is no public option');
  });
});

describe('registerMigration (testing entry)', () => {
  it('validates the migration, naming the field', () => {
    const ok = { kind: 'SEGM', fromVersion: 0, toVersion: 1, migrateFields: (f: never) => f } as const;
    const bad = (m: object) => m as unknown as Parameters<typeof registerMigration>[0];
    assert.throws(() => registerMigration(bad({ ...ok, kind: 'NOPE' })), invalidField('migration.kind'));
    assert.throws(
      () => registerMigration(bad({ ...ok, fromVersion: 1 })),
      invalidField('migration.fromVersion'),
    );
    assert.throws(() => registerMigration(bad({ ...ok, toVersion: 2 })), invalidField('migration.toVersion'));
    assert.throws(
      () => registerMigration(bad({ ...ok, migrateFields: undefined })),
      invalidField('migration.migrateFields'),
    );
    assert.throws(
      () => registerMigration(bad({ ...ok, migrateBody: 'x' })),
      invalidField('migration.migrateBody'),
    );
    assert.equal(findMigration('SEGM', 0), undefined, 'nothing was registered');
  });

  it('refuses to replace a migration warmstore ships (RECS 1 -> 2), which stays registered', () => {
    const shipped = findMigration('RECS', 1);
    assert.ok(shipped, 'the RECS 1 -> 2 migration is registered');
    assert.throws(
      () =>
        registerMigration({
          kind: 'RECS',
          fromVersion: 1,
          toVersion: FORMAT_VERSION.RECS,
          migrateFields: (f) => f,
        }),
      invalidField('migration.fromVersion'),
    );
    assert.equal(findMigration('RECS', 1), shipped);
  });

  it('a registered migration opens a store whose MANIFEST was written at version 0; unregister removes it', async (t) => {
    const dir = join(await tempDir(t), 'm');
    const store = await WarmStore.open(dir, BASE);
    await store.put(recordFor('a', 1, DIM));
    await store.close();
    const path = join(dir, 'MANIFEST');
    const current = await readFile(path);
    const downgraded = Buffer.from(current);
    downgraded.writeUInt32LE(0, 8);
    // The header checksum covers the version, so reseal it the way an older writer would have.
    downgraded.writeUInt32LE(crc32c(downgraded.subarray(0, 28)), 28);
    await writeFile(path, downgraded);
    await assert.rejects(WarmStore.open(dir, BASE), (err: unknown) =>
      WarmStoreError.is(err, 'UNSUPPORTED_VERSION'),
    );

    let calls = 0;
    const unregister = registerMigration({
      kind: 'MANI',
      fromVersion: 0,
      toVersion: FORMAT_VERSION.MANI,
      migrateFields: (f) => {
        calls++;
        return f;
      },
    });
    try {
      const reopened = await WarmStore.open(dir, BASE);
      try {
        assert.ok(calls >= 1, 'the migration ran');
        assert.equal(reopened.size, 1);
      } finally {
        await reopened.close();
      }
    } finally {
      unregister();
    }
    assert.equal(findMigration('MANI', 0), undefined);
  });
});
