import { createHash } from 'node:crypto';
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';

/** A SHA-256 over the names and bytes of every file in `dir` but `skip`, to prove it unchanged. */
export async function dirDigest(dir: string, skip: ReadonlySet<string> = new Set()): Promise<string> {
  const h = createHash('sha256');
  for (const n of (await readdir(dir)).sort()) {
    if (skip.has(n)) continue;
    h.update(n);
    h.update(await readFile(join(dir, n)));
  }
  return h.digest('hex');
}
