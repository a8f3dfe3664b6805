import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { rm, symlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { WarmStore, WarmStoreError, type WarmStoreOptions } from '../../../src/index.js';
import { tempDir } from '../../helpers/tmp.js';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const INDEX_URL = pathToFileURL(join(REPO, 'src', 'index.ts')).href;
const OPTS: WarmStoreOptions = { dimension: 8, maintenanceIntervalMs: false };
const e8 = (x: number): Float32Array => Float32Array.from([x, 1, 2, 3, 4, 5, 6, 7]);

/**
 * Starts one child that tries to open `dir` twice: at once, and again after a line arrives on its
 * stdin. It prints OPENED <content of 'parent'> or ERROR <code> for each attempt.
 */
function childOpener(dir: string): { next(): Promise<string>; again(): void; done: Promise<void> } {
  const script = `
    import { createInterface } from 'node:readline';
    const { WarmStore } = await import(${JSON.stringify(INDEX_URL)});
    const attempt = async () => {
      try {
        const s = await WarmStore.open(${JSON.stringify(dir)}, { maintenanceIntervalMs: false });
        const m = await s.get('parent');
        await s.close();
        console.log('OPENED ' + (m ? m.content : 'missing'));
      } catch (err) {
        console.log('ERROR ' + (err && err.code));
      }
    };
    await attempt();
    const rl = createInterface({ input: process.stdin });
    for await (const _ of rl) { await attempt(); break; }
    rl.close();
  `;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    cwd: REPO,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  const lines: string[] = [];
  const waiters: Array<(l: string) => void> = [];
  let stderr = '';
  let buf = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  child.stdout.setEncoding('utf8').on('data', (d: string) => {
    buf += d;
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      const w = waiters.shift();
      if (w) w(line);
      else lines.push(line);
    }
  });
  const done = new Promise<void>((resolve, reject) => {
    child.on('exit', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve();
      else reject(new Error(`child exited with ${code}: ${stderr}`));
      for (const w of waiters.splice(0)) w(`EXIT ${code} ${stderr}`);
    });
  });
  return {
    next: () => {
      const l = lines.shift();
      return l !== undefined ? Promise.resolve(l) : new Promise((resolve) => waiters.push(resolve));
    },
    again: () => {
      child.stdin.end('go\n');
    },
    done,
  };
}

function isCode(code: string, label: string) {
  return (err: unknown): boolean => {
    assert.ok(WarmStoreError.is(err), `${label}: not a WarmStoreError: ${String(err)}`);
    assert.equal(err.code, code, `${label}: ${err.message}`);
    return true;
  };
}

describe('locking', () => {
  test('a second open in the same process gets STORE_LOCKED; the first keeps working', async (t) => {
    const dir = await tempDir(t);
    const a = await WarmStore.open(dir, OPTS);
    try {
      await a.put({ id: 'x', embedding: e8(1), content: 'first' });
      await assert.rejects(WarmStore.open(dir, OPTS), isCode('STORE_LOCKED', 'same dir'));
      // Another spelling of the same directory is the same store.
      await assert.rejects(
        WarmStore.open(join(dir, '.', 'sub', '..'), OPTS),
        isCode('STORE_LOCKED', 'other path'),
      );
      const link = `${dir}-link`;
      await symlink(dir, link);
      t.after(() => rm(link, { force: true }));
      await assert.rejects(WarmStore.open(link, OPTS), isCode('STORE_LOCKED', 'through a symlink'));
      await a.put({ id: 'y', embedding: e8(2), content: 'second' });
      assert.equal((await a.get('x'))?.content, 'first');
    } finally {
      await a.close();
    }
    // Released on close: it opens again with the data.
    const b = await WarmStore.open(dir, OPTS);
    try {
      assert.equal((await b.get('y'))?.content, 'second');
    } finally {
      await b.close();
    }
  });

  test('another process gets STORE_LOCKED while this one holds the store, and opens it after close', async (t) => {
    const dir = await tempDir(t);
    const s = await WarmStore.open(dir, OPTS);
    const child = childOpener(dir);
    try {
      await s.put({ id: 'parent', embedding: e8(1), content: 'from the parent' });
      assert.equal(await child.next(), 'ERROR STORE_LOCKED');
      // The refused child did not disturb the parent.
      assert.equal((await s.get('parent'))?.content, 'from the parent');
      await s.put({ id: 'after', embedding: e8(2) });
    } finally {
      await s.close();
    }
    child.again();
    assert.equal(await child.next(), 'OPENED from the parent');
    await child.done;
    const again = await WarmStore.open(dir, OPTS);
    try {
      assert.equal(again.size, 2);
    } finally {
      await again.close();
    }
  });

  test('a stale LOCK left by a dead process is taken over', async (t) => {
    const dir = await tempDir(t);
    const s = await WarmStore.open(dir, OPTS);
    await s.put({ id: 'a', embedding: e8(1), content: 'kept' });
    await s.close();
    // pid 2^22+1 is above the default pid_max, so it cannot be alive.
    await writeFile(join(dir, 'LOCK'), `${2 ** 22 + 1} 12345\n`);
    const again = await WarmStore.open(dir, OPTS);
    try {
      assert.equal((await again.get('a'))?.content, 'kept');
    } finally {
      await again.close();
    }
  });
});

describe('closing', () => {
  test('every operation after close fails with STORE_CLOSED; close is idempotent', async (t) => {
    const dir = await tempDir(t);
    const s = await WarmStore.open(dir, OPTS);
    await s.put({ id: 'a', embedding: e8(1), content: 'c' });
    assert.equal(s.closed, false);
    await s.close();
    assert.equal(s.closed, true);
    await s.close();
    const closed = isCode('STORE_CLOSED', 'after close');
    await assert.rejects(s.put({ id: 'b', embedding: e8(2) }), closed);
    await assert.rejects(s.putMany([{ id: 'b', embedding: e8(2) }]), closed);
    await assert.rejects(s.get('a'), closed);
    await assert.rejects(s.delete('a'), closed);
    await assert.rejects(s.recall(e8(1)), closed);
    await assert.rejects(s.compact(), closed);
    await assert.rejects(s.verify(), closed);
    await assert.rejects(s.runMaintenance(), closed);
    assert.throws(() => s.checkpoint(), closed);
    assert.throws(() => s.has('a'), closed);
    assert.throws(() => s.getSync('a'), closed);
    assert.throws(() => [...s.ids()], closed);
    await assert.rejects(async () => {
      for await (const m of s.entries()) assert.fail(`yielded ${m.id} after close`);
    }, closed);
    const again = await WarmStore.open(dir, OPTS);
    try {
      assert.equal(again.size, 1, 'nothing was written after close');
    } finally {
      await again.close();
    }
  });

  test('writes issued before close complete and are durable', async (t) => {
    const dir = await tempDir(t);
    const s = await WarmStore.open(dir, OPTS);
    const pending = Array.from({ length: 50 }, (_, i) =>
      s.put({ id: `p${i}`, embedding: e8(i + 1), content: `v${i}` }),
    );
    const closing = s.close();
    await Promise.all(pending);
    await closing;
    const again = await WarmStore.open(dir, OPTS);
    try {
      assert.equal(again.size, 50);
      for (let i = 0; i < 50; i++) assert.equal((await again.get(`p${i}`))?.content, `v${i}`);
    } finally {
      await again.close();
    }
  });

  test('Symbol.asyncDispose closes the store and releases the lock', async (t) => {
    const dir = await tempDir(t);
    const s = await WarmStore.open(dir, OPTS);
    assert.equal(typeof s[Symbol.asyncDispose], 'function');
    await s.put({ id: 'a', embedding: e8(1), content: 'disposed' });
    await s[Symbol.asyncDispose]();
    assert.equal(s.closed, true);
    await assert.rejects(s.get('a'), isCode('STORE_CLOSED', 'after dispose'));
    const again = await WarmStore.open(dir, OPTS);
    try {
      assert.equal((await again.get('a'))?.content, 'disposed');
    } finally {
      await again[Symbol.asyncDispose]();
    }
  });
});
