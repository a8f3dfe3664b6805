import * as fs from 'node:fs';
import * as path from 'node:path';

/**
 * The compaction tools' store fill: n memories `m0, m1, ...` of uniform random vectors in batches
 * of 1000 (one group commit each), then every even-numbered one deleted.
 */
interface Fillable {
  put(m: { id: string; embedding: Float32Array; content: string }): Promise<unknown>;
  delete(id: string): Promise<unknown>;
}

/** Puts n memories with 50 + (j % contentSpan) bytes of content, deletes the even ones; returns the live ids. */
export async function fillHalfDeleted(
  store: Fillable,
  n: number,
  dim: number,
  contentSpan: number,
): Promise<string[]> {
  let seed = 1;
  const rnd = (): number => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
  for (let i = 0; i < n; i += 1000) {
    const batch = [];
    for (let j = i; j < Math.min(n, i + 1000); j++) {
      const e = new Float32Array(dim);
      for (let d = 0; d < dim; d++) e[d] = rnd() - 0.5;
      batch.push({ id: `m${j}`, embedding: e, content: 'x'.repeat(50 + (j % contentSpan)) });
    }
    await Promise.all(batch.map((m) => store.put(m)));
  }
  const live: string[] = [];
  const gone: string[] = [];
  for (let j = 0; j < n; j++) (j % 2 === 0 ? gone : live).push(`m${j}`);
  for (let i = 0; i < gone.length; i += 1000)
    await Promise.all(gone.slice(i, i + 1000).map((id) => store.delete(id)));
  return live;
}

/**
 * A fresh store for a compaction tool under `.data/` (recall index and scrub off, no maintenance
 * loop), filled with `fillHalfDeleted` and checkpointed; the caller closes it and removes `dir`.
 */
export async function halfDeletedScratch<S extends Fillable & { checkpoint(): Promise<unknown> }>(
  open: (dir: string, options: Record<string, unknown>) => Promise<S>,
  prefix: string,
  n: number,
  dim: number,
): Promise<{ dir: string; store: S; live: string[] }> {
  const root = path.resolve('.data');
  fs.mkdirSync(root, { recursive: true });
  const dir = fs.mkdtempSync(path.join(root, prefix));
  const store = await open(dir, {
    dimension: dim,
    maintenanceIntervalMs: false,
    annMinMemories: 2 ** 31,
    scrub: false,
  });
  const live = await fillHalfDeleted(store, n, dim, 2000);
  await store.checkpoint();
  return { dir, store, live };
}
