/**
 * Recovery of a write batch whose WAL entries landed and whose content or vectors did not. Under
 * synchronous durability the writer writes a batch's WAL entries while its content and vectors
 * are made durable, and acknowledges the batch once all are; a crash in between may leave the WAL
 * entries without the bytes they name. Open drops such a batch whole (the last of its WAL file,
 * never acknowledged) and keeps every acknowledged one, even one whose bytes are damaged.
 */
import assert from 'node:assert/strict';
import { closeSync, cpSync, openSync, readFileSync, readdirSync, truncateSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { segmentFileName } from '../../../src/content/segment.js';
import { HEADER_BYTES as FILE_HEADER_BYTES } from '../../../src/format/header.js';
import { RECORDS_DATA_START } from '../../../src/records/slot-codec.js';
import { ContentKind, WalType, decodeWal, type PutEntry } from '../../../src/wal/entries.js';
import { parseWalFileName, walFileName } from '../../../src/wal/log.js';
import { tempDir } from '../../helpers/tmp.js';
import {
  DIM,
  RecordingLogger,
  contentOf,
  expectStoreEquals,
  idList,
  openStore,
  putAll,
  recordOf,
  versions,
  type Model,
} from '../compaction/fixture.js';

type Damage = 'vector' | 'content' | 'content cut';

/** The put entries of the newest WAL file, split at its last batch. */
function walPuts(dir: string): { earlier: PutEntry[]; last: PutEntry[] } {
  const walNo = Math.max(...readdirSync(dir).map((n) => parseWalFileName(n) ?? -1));
  const wal = decodeWal(readFileSync(join(dir, walFileName(walNo))), FILE_HEADER_BYTES, DIM, 0);
  const puts = (from: number, to: number): PutEntry[] =>
    wal.entries.slice(from, to).filter((e): e is PutEntry => e.type === WalType.Put);
  return { earlier: puts(0, wal.lastBatch), last: puts(wal.lastBatch, wal.entries.length) };
}

/** Leaves `e`'s vector or content as a crash before its write landed would. */
function damage(dir: string, e: PutEntry, how: Damage): void {
  if (how === 'content cut') {
    truncateSync(join(dir, segmentFileName(e.seg)), e.off);
    return;
  }
  const [file, pos, len] =
    how === 'vector'
      ? ['vectors.dat', RECORDS_DATA_START + e.slot * DIM * 4, DIM * 4]
      : [segmentFileName(e.seg), e.off, 64];
  const fd = openSync(join(dir, file), 'r+');
  try {
    writeSync(fd, Buffer.alloc(len, 0x5a), 0, len, pos);
  } finally {
    closeSync(fd);
  }
}

/**
 * A store of 300 memories written in batches of 100, then one batch (in one tick) replacing 30 of
 * them and adding 30, and a copy of its directory taken while it is open: what a kill -9 would
 * leave. Returns the model before and after the last batch.
 */
async function storeAndImage(dir: string, image: string): Promise<{ before: Model; after: Model }> {
  const before: Model = new Map();
  const store = await openStore(dir, { durability: 'sync' });
  try {
    const ids = idList(300);
    await putAll(store, before, versions(ids, 1), undefined, 100);
    const after = new Map(before);
    const last = [
      ...ids.slice(0, 30).map((id) => [id, 2] as const),
      ...idList(30, 'n').map((id) => [id, 1] as const),
    ];
    await Promise.all(
      last.map(([id, v]) => {
        const content = contentOf(id, v);
        after.set(id, { v, content });
        return store.put(recordOf(id, v, content, DIM));
      }),
    );
    cpSync(dir, image, { recursive: true, filter: (src) => !src.endsWith('LOCK') });
    return { before, after };
  } finally {
    await store.close();
  }
}

async function verifyProblems(store: { verify(): Promise<{ problems: unknown[] }> }): Promise<unknown[]> {
  return (await store.verify()).problems;
}

describe('recovery: a batch whose WAL entries landed without its bytes', () => {
  for (const how of ['vector', 'content', 'content cut'] as const) {
    it(`the last batch lost a ${how}: it is dropped whole, every acknowledged memory whole, the store writable`, async (t) => {
      const root = await tempDir(t);
      const dir = join(root, 'store');
      const image = join(root, 'image');
      const { before, after } = await storeAndImage(dir, image);
      const { last } = walPuts(image);
      assert.equal(last.length, 60, 'the last batch holds the 60 puts');
      // One in the middle, with content (every fixture record has some).
      const victim = last[37]!;
      assert.equal(victim.kind, ContentKind.Present);
      damage(image, victim, how);

      // Undamaged, the image opens with the batch (it was written whole).
      const whole = join(root, 'whole');
      cpSync(dir, whole, { recursive: true, filter: (src) => !src.endsWith('LOCK') });
      const check = await openStore(whole);
      try {
        expectStoreEquals(check, after, 'the store itself');
      } finally {
        await check.close();
      }

      const logger = new RecordingLogger();
      const again = await openStore(image, { durability: 'sync', logger });
      try {
        expectStoreEquals(again, before, 'the image, its last batch dropped');
        assert.deepEqual(await verifyProblems(again), [], 'verify after the drop');
        assert.ok(
          logger.calls.some((c) => c.level === 'warn' && /never acknowledged/.test(c.msg ?? '')),
          'the drop is logged',
        );
        // Written again: new LSNs above the dropped ones, slots and content reused.
        await putAll(again, before, versions(idList(20, 'p'), 1), undefined, 10);
        await putAll(again, before, versions(idList(10), 3), undefined, 10);
      } finally {
        await again.close();
      }
      const third = await openStore(image);
      try {
        expectStoreEquals(third, before, 'after writes and a reopen');
        assert.deepEqual(await verifyProblems(third), [], 'verify after the reopen');
      } finally {
        await third.close();
      }
    });
  }

  it('an earlier, acknowledged batch with a damaged vector is kept: the damage is reported, never dropped', async (t) => {
    const root = await tempDir(t);
    const dir = join(root, 'store');
    const image = join(root, 'image');
    const { after } = await storeAndImage(dir, image);
    const { earlier } = walPuts(image);
    // A memory the last batch did not replace (its slot's last writer in the WAL).
    const victim = earlier.find((e) => e.id === 'm000200')!;
    assert.ok(victim, 'm000200 was put in an earlier batch of this WAL file');
    damage(image, victim, 'vector');
    const again = await openStore(image);
    try {
      assert.equal(again.size, after.size, 'every memory is there, the last batch too');
      assert.equal(again.getSync('n000029')?.content, after.get('n000029')!.content);
      const problems = await verifyProblems(again);
      assert.equal(problems.length, 1, JSON.stringify(problems));
      assert.match(JSON.stringify(problems[0]), /m000200/);
    } finally {
      await again.close();
    }
  });
});
