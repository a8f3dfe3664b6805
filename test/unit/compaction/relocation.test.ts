/**
 * Relocation: compaction moves memories from the tail of records.dat/vectors.dat into free slots
 * below and cuts the files. Every memory keeps its id, metadata, content and embedding; recall
 * and iteration find moved memories; writes racing the moves win; reopen sees the same store.
 */
import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { tempDir } from '../../helpers/tmp.js';
import {
  DIM,
  deleteAll,
  embeddingOf,
  expectStoreEquals,
  expectStoreEqualsAsync,
  idList,
  openStore,
  putAll,
  putVersion,
  versions,
  type Model,
} from './fixture.js';

const RECORDS_DATA_START = 4096;
const HEADER_BYTES = 352;

function recordFileSlots(dir: string): { headers: number; vectors: number } {
  const r = statSync(join(dir, 'records.dat')).size;
  const v = statSync(join(dir, 'vectors.dat')).size;
  return {
    headers: Math.floor((r - RECORDS_DATA_START) / HEADER_BYTES),
    vectors: Math.floor((v - RECORDS_DATA_START) / (DIM * 4)),
  };
}

async function verifyClean(
  store: { verify(): Promise<{ ok: boolean; problems: unknown[] }> },
  ctx: string,
): Promise<void> {
  const r = await store.verify();
  assert.ok(r.ok, `${ctx}: verify: ${JSON.stringify(r.problems)}`);
}

describe('relocation', () => {
  it('moves the tail into holes, cuts both files, keeps every memory; reopen agrees', async (t) => {
    const dir = await tempDir(t);
    const store = await openStore(dir);
    const model: Model = new Map();
    const ids = idList(600, 'r');
    await putAll(store, model, versions(ids, 1));
    // Delete 60%, spread over the whole slot range.
    await deleteAll(
      store,
      model,
      ids.filter((_, i) => i % 5 < 3),
    );
    await store.checkpoint();
    assert.equal(recordFileSlots(dir).headers, 600);
    const stats = await store.compact({ force: true });
    assert.ok(stats.slotsMoved > 0, `slots moved: ${JSON.stringify(stats)}`);
    assert.ok(stats.recordBytesReclaimed > 0, `record bytes reclaimed: ${JSON.stringify(stats)}`);
    const slots = recordFileSlots(dir);
    assert.equal(slots.headers, 240, 'records.dat holds exactly the live memories');
    assert.ok(slots.vectors <= 240, `vectors.dat holds ${slots.vectors} slots`);
    expectStoreEquals(store, model, 'after relocation');
    await verifyClean(store, 'after relocation');
    // Exact recall finds a moved memory first for its own embedding.
    for (const id of ids.filter((_, i) => i % 5 >= 3).slice(-5)) {
      const hits = await store.recall(embeddingOf(id, 1), { k: 1, exact: true });
      assert.equal(hits[0]?.memory.id, id);
    }
    // Iteration sees each memory once.
    const seen = new Set<string>();
    for await (const m of store.entries()) {
      assert.ok(!seen.has(m.id), `entries repeated ${m.id}`);
      seen.add(m.id);
    }
    assert.equal(seen.size, model.size);
    // New writes reuse the holes left, then grow the files again.
    await putVersion(store, model, 'new-1', 1);
    await store.close();
    const again = await openStore(dir);
    try {
      expectStoreEquals(again, model, 'after reopen');
      await expectStoreEqualsAsync(again, model, 'after reopen (async)');
      await verifyClean(again, 'after reopen');
      assert.equal(again.interruptedCompaction, undefined);
    } finally {
      await again.close();
    }
  });
});
