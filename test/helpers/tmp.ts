import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';

/** Set WARMSTORE_KEEP_TMP=1 to keep temp dirs for a post-mortem (their paths are logged). */
const KEEP = process.env.WARMSTORE_KEEP_TMP === '1';

export async function makeTempDir(prefix = 'warmstore-test-'): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

export async function removeDir(dir: string): Promise<void> {
  if (KEEP) {
    console.error(`[warmstore] kept temp dir ${dir}`);
    return;
  }
  await rm(dir, { recursive: true, force: true, maxRetries: 3 });
}

/** A temp dir removed when the test `t` ends (pass or fail). */
export async function tempDir(t: TestContext, prefix?: string): Promise<string> {
  const dir = await makeTempDir(prefix);
  t.after(() => removeDir(dir));
  return dir;
}

/** Runs `fn` with a fresh temp dir, removed afterwards whatever happens. */
export async function withTempDir<T>(fn: (dir: string) => Promise<T>, prefix?: string): Promise<T> {
  const dir = await makeTempDir(prefix);
  try {
    return await fn(dir);
  } finally {
    await removeDir(dir);
  }
}
