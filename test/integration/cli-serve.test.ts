/**
 * `warmstore serve` as a child process: signals during a compaction, then a reopen that finds
 * every acknowledged record. Needs `npm run build`.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface } from 'node:readline';
import { once } from 'node:events';
import { request } from 'node:http';
import { fileURLToPath } from 'node:url';
import { WarmStore } from '../../src/index.js';
import {
  SLOW_COMPACTION_OPTIONS,
  assertRecordsIntact,
  fillForCompaction,
  tempDir,
  waitFor,
} from '../unit/server/fixtures.js';

const CLI = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));

interface LogLine {
  msg?: string;
  url?: string;
  [k: string]: unknown;
}

class Serve {
  readonly child: ChildProcessWithoutNullStreams;
  readonly logs: LogLine[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stderr = '';

  constructor(args: string[], env: Record<string, string> = {}) {
    this.child = spawn(process.execPath, [CLI, 'serve', ...args], { env: { ...process.env, ...env } });
    this.exited = once(this.child, 'exit').then(([code, signal]) => ({
      code: code as number | null,
      signal: signal as NodeJS.Signals | null,
    }));
    createInterface({ input: this.child.stdout }).on('line', (line) => {
      try {
        this.logs.push(JSON.parse(line) as LogLine);
      } catch {
        this.logs.push({ msg: line });
      }
    });
    this.child.stderr.setEncoding('utf8').on('data', (d: string) => (this.stderr += d));
  }

  async waitForLog(msg: string, timeoutMs = 15_000): Promise<LogLine> {
    await waitFor(
      () => this.logs.some((l) => l.msg === msg) || this.child.exitCode !== null,
      timeoutMs,
      `log "${msg}"`,
    );
    const line = this.logs.find((l) => l.msg === msg);
    if (!line) throw new Error(`serve exited before logging "${msg}": ${this.stderr}`);
    return line;
  }

  has(msg: string): boolean {
    return this.logs.some((l) => l.msg === msg);
  }
}

async function prepare(): Promise<{ dir: string; live: string[]; cleanup: () => Promise<void> }> {
  const t = await tempDir('warmstore-serve-');
  const store = await WarmStore.open(t.dir, SLOW_COMPACTION_OPTIONS);
  const live = await fillForCompaction(store);
  await store.close();
  return { dir: t.dir, live, cleanup: t.cleanup };
}

async function reopenAndCheck(dir: string, live: string[]): Promise<void> {
  const store = await WarmStore.open(dir, SLOW_COMPACTION_OPTIONS);
  try {
    assert.equal(store.size, live.length);
    await assertRecordsIntact(store, live);
    const report = await store.verify();
    assert.deepEqual(report.problems, []);
  } finally {
    await store.close();
  }
}

describe('warmstore serve', () => {
  it('SIGTERM during a compaction: aborts it, answers in-flight requests, exits 0; the data reopens intact', async () => {
    const { dir, live, cleanup } = await prepare();
    const serve = new Serve(['--data', dir, '--port', '0', '--host', '127.0.0.1']);
    try {
      const { url } = await serve.waitForLog('warmstore listening');
      assert.ok(url);
      const health = await fetch(`${url}/healthz`);
      assert.equal(health.status, 200);

      const compaction = fetch(`${url}/api/v1/maintenance/compact`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ force: true }),
      });
      await serve.waitForLog('compaction started');
      serve.child.kill('SIGTERM');
      const res = await compaction;
      const body = (await res.json()) as { error?: { code: string } };
      assert.equal(res.status, 503, JSON.stringify(body));
      assert.equal(body.error?.code, 'SHUTTING_DOWN');

      const { code } = await serve.exited;
      assert.equal(code, 0, serve.stderr);
      assert.ok(serve.has('shutting down'));
      assert.ok(serve.has('compaction aborted'), 'the compaction was aborted, not run to the end');
      assert.ok(serve.has('shutdown complete'));
      await reopenAndCheck(dir, live);
    } finally {
      if (serve.child.exitCode === null) serve.child.kill('SIGKILL');
      await cleanup();
    }
  });

  it('a second signal exits at once with 130, and the store still reopens intact', async () => {
    const { dir, live, cleanup } = await prepare();
    // Port and host from the environment this time.
    const serve = new Serve(['--data', dir], { WARMSTORE_PORT: '0', WARMSTORE_HOST: '127.0.0.1' });
    try {
      const { url } = await serve.waitForLog('warmstore listening');
      assert.match(url ?? '', /^http:\/\/127\.0\.0\.1:\d+$/);
      const compaction = fetch(`${url}/api/v1/maintenance/compact`, {
        method: 'POST',
        body: '{"force":true}',
        headers: { 'content-type': 'application/json' },
      }).catch(() => undefined);
      await serve.waitForLog('compaction started');
      // An upload that never finishes keeps the graceful shutdown waiting (up to its 10 s
      // timeout), so the second signal is sure to arrive while the first is still being handled.
      const { port } = new URL(url ?? '');
      const upload = request({
        host: '127.0.0.1',
        port: Number(port),
        method: 'POST',
        path: '/api/v1/memories',
        headers: { 'content-type': 'application/json', 'content-length': '1000' },
      });
      upload.on('error', () => undefined);
      upload.write('{"id":');
      await new Promise((r) => setTimeout(r, 100));
      serve.child.kill('SIGINT');
      await serve.waitForLog('shutting down');
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(serve.child.exitCode, null, 'the first signal alone waits for the upload');
      serve.child.kill('SIGINT');
      const { code } = await serve.exited;
      assert.equal(code, 130, serve.stderr);
      await compaction;
      await reopenAndCheck(dir, live);
    } finally {
      if (serve.child.exitCode === null) serve.child.kill('SIGKILL');
      await cleanup();
    }
  });

  it('--ann-min-memories sets where recall starts using the index; a bad value is refused', async () => {
    const t = await tempDir('warmstore-serve-ann-');
    const args = ['--data', t.dir, '--port', '0', '--host', '127.0.0.1', '--dimension', '8'];
    const serve = new Serve([...args, '--ann-min-memories', '50']);
    try {
      const { url } = await serve.waitForLog('warmstore listening');
      const memories = Array.from({ length: 60 }, (_, i) => ({
        id: `m${i}`,
        embedding: Array.from({ length: 8 }, (_, j) => Math.sin(i * 8 + j + 1)),
      }));
      const put = await fetch(`${url}/api/v1/memories/batch`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ memories }),
      });
      assert.equal(put.status, 200);
      // The store's default (20,000) would leave the index off at 60 memories.
      let state = 'off';
      for (const deadline = Date.now() + 30_000; state !== 'ready' && Date.now() < deadline;) {
        const r = await fetch(`${url}/api/v1/metrics/storage`);
        state = ((await r.json()) as { index: { state: string } }).index.state;
        if (state !== 'ready') await new Promise((r) => setTimeout(r, 50));
      }
      assert.equal(state, 'ready');
      serve.child.kill('SIGTERM');
      assert.equal((await serve.exited).code, 0, serve.stderr);

      const bad = new Serve([...args, '--ann-min-memories', '-1']);
      const { code } = await bad.exited;
      assert.notEqual(code, 0);
      assert.match(bad.stderr, /--ann-min-memories/);
    } finally {
      if (serve.child.exitCode === null) serve.child.kill('SIGKILL');
      await t.cleanup();
    }
  });
});
