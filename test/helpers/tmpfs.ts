import { execFile } from 'node:child_process';
import { mkdtemp, rm, statfs } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { promisify } from 'node:util';

const run = promisify(execFile);

/**
 * Mounts a tmpfs of `mib` MiB on a fresh directory for the test `t`, unmounted (and removed) when
 * it ends: a real file system that really fills up. Needs root and a kernel that lets this
 * process mount; where it cannot, the test is skipped with the reason and undefined is returned.
 */
export async function mountTmpfs(t: TestContext, mib: number): Promise<string | undefined> {
  if (process.platform !== 'linux' || process.getuid?.() !== 0) {
    t.skip(`mounting a ${mib} MiB tmpfs needs root on Linux (uid ${process.getuid?.() ?? 'n/a'})`);
    return undefined;
  }
  const dir = await mkdtemp(join(tmpdir(), 'warmstore-tmpfs-'));
  try {
    await run('mount', ['-t', 'tmpfs', '-o', `size=${mib}m`, 'tmpfs', dir]);
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    t.skip(`mount -t tmpfs is not allowed here: ${(err as Error).message.split('\n')[0]}`);
    return undefined;
  }
  t.after(async () => {
    await run('umount', ['-l', dir]).catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  });
  return dir;
}

/** Bytes free to this process on the file system holding `path`. */
export async function freeBytes(path: string): Promise<number> {
  const s = await statfs(path);
  return s.bavail * s.bsize;
}
