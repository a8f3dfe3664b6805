/**
 * Shared fixtures of the server and CLI tests (unit and integration): temporary directories and
 * a store made slow to compact, so that a test can act while a compaction is running.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WarmStore } from '../../../src/index.js';
import type { MemoryRecord, WarmStoreOptions } from '../../../src/types.js';

export const DIM = 8;

export async function tempDir(
  prefix = 'warmstore-test-',
): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

export function embeddingOf(i: number, dim = DIM): Float32Array {
  const e = new Float32Array(dim);
  for (let j = 0; j < dim; j++) e[j] = Math.sin(i * 7.1 + j * 0.37) + (j === i % dim ? 1 : 0);
  return e;
}

export function contentOf(i: number, bytes = 1000): string {
  return `record ${i} `.padEnd(bytes, String.fromCharCode(97 + (i % 26)));
}

/** Many small segments make compaction take a second or more: each one is a chunk with its own fsyncs. */
export const SLOW_COMPACTION_OPTIONS: WarmStoreOptions = {
  dimension: DIM,
  segmentBytes: 8192,
  maintenanceIntervalMs: false,
  maintenance: { startupCompaction: 'off' },
};

/**
 * Writes `count` records and deletes the even ones, leaving half the content dead across many
 * segments. Returns the ids that remain.
 */
export async function fillForCompaction(store: WarmStore, count = 3000): Promise<string[]> {
  for (let b = 0; b < count; b += 500) {
    const batch: MemoryRecord[] = [];
    for (let i = b; i < Math.min(count, b + 500); i++) {
      batch.push({ id: `r${i}`, embedding: embeddingOf(i), content: contentOf(i) });
    }
    await store.putMany(batch);
  }
  await Promise.all(Array.from({ length: Math.ceil(count / 2) }, (_, k) => store.delete(`r${k * 2}`)));
  return Array.from({ length: Math.floor(count / 2) }, (_, k) => `r${k * 2 + 1}`);
}

/** Checks that every id in `ids` reads back with the content and embedding `fillForCompaction` wrote. */
export async function assertRecordsIntact(store: WarmStore, ids: string[]): Promise<void> {
  for (const id of ids) {
    const i = Number(id.slice(1));
    const m = await store.get(id);
    if (m === undefined) throw new Error(`record ${id} is missing`);
    if (m.content !== contentOf(i)) throw new Error(`record ${id} has the wrong content`);
    const e = embeddingOf(i);
    for (let j = 0; j < e.length; j++) {
      if (m.embedding[j] !== e[j]) throw new Error(`record ${id} has the wrong embedding`);
    }
  }
}

/** Resolves when `predicate` holds, polling every turn of the event loop; rejects after `timeoutMs`. */
export async function waitFor(
  predicate: () => boolean,
  timeoutMs = 10_000,
  what = 'condition',
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 1));
  }
}
