import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { WarmStoreError, ioError } from '../errors.js';
import type { WsFileSystem } from '../fs/types.js';

export const LOCK_FILE = 'LOCK';

/** Directories open in this process: a second open here is refused like one from another process. */
const openHere = new Set<string>();

function processStartTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Field 22 (starttime) comes after the parenthesised command, which may contain spaces.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Cross-process lock without native addons: the LOCK file holds "pid starttime", created with an
 * atomic link(). A lock whose process is gone (kill -9) or whose pid was reused by a process that
 * started later is stale and taken over.
 */
export async function acquireLock(fs: WsFileSystem, dir: string, key: string): Promise<() => Promise<void>> {
  if (openHere.has(key)) {
    throw new WarmStoreError('STORE_LOCKED', `store ${dir} is already open in this process`, { file: dir });
  }
  const lockPath = join(dir, LOCK_FILE);
  const tmp = join(dir, `LOCK.${process.pid}.tmp`);
  const content = `${process.pid} ${processStartTime(process.pid) ?? '?'}\n`;
  try {
    if (await fs.exists(tmp)) await fs.unlink(tmp);
    const f = fs.open(tmp, 'excl');
    try {
      const bytes = Buffer.from(content);
      if (f.writeSync(bytes, 0, bytes.length, 0) !== bytes.length) {
        throw Object.assign(new Error('short write'), { code: 'EIO' });
      }
    } finally {
      await f.close();
    }
  } catch (err) {
    await fs.unlink(tmp).catch(() => undefined);
    throw ioError('create lock', tmp, err);
  }
  try {
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        await fs.link(tmp, lockPath);
        openHere.add(key);
        return async () => {
          openHere.delete(key);
          await fs.unlink(lockPath).catch(() => undefined);
        };
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw ioError('lock', lockPath, err);
      }
      let holder = '';
      try {
        holder = (await fs.readFile(lockPath)).toString('utf8');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
        throw ioError('read', lockPath, err);
      }
      const [pidText, start] = holder.trim().split(' ');
      const pid = Number(pidText);
      const stale =
        !Number.isInteger(pid) ||
        pid <= 0 ||
        pid === process.pid ||
        !alive(pid) ||
        (start !== undefined &&
          start !== '?' &&
          processStartTime(pid) !== undefined &&
          processStartTime(pid) !== start);
      if (!stale) {
        throw new WarmStoreError('STORE_LOCKED', `store ${dir} is open in process ${pid}`, {
          file: lockPath,
          pid,
        });
      }
      await fs.unlink(lockPath).catch(() => undefined);
    }
    throw new WarmStoreError('STORE_LOCKED', `could not take the lock of ${dir}`, { file: lockPath });
  } finally {
    await fs.unlink(tmp).catch(() => undefined);
  }
}
