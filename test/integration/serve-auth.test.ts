/**
 * `warmstore serve` with API keys and TLS, as a child process run from the sources through tsx:
 * the flags, WARMSTORE_API_KEY, the refusal to listen beyond loopback without keys, and logs that
 * never carry a key.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { request as httpsRequest } from 'node:https';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { tempDir, waitFor } from '../unit/server/fixtures.js';

const MAIN = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));

const ENV_KEY = 'env-key-0123456789abcdef';
const READ_KEY = 'file-read-key-0123456789';

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function serve(
  args: string[],
  env: Record<string, string>,
): {
  exited: Promise<Run>;
  lines: string[];
  kill: (signal: NodeJS.Signals) => void;
} {
  const child = spawn(process.execPath, ['--import', 'tsx', MAIN, 'serve', ...args], {
    env: { ...process.env, WARMSTORE_API_KEY: '', ...env },
  });
  const lines: string[] = [];
  let stderr = '';
  createInterface({ input: child.stdout }).on('line', (l) => lines.push(l));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const exited = once(child, 'exit').then(([code]) => ({
    code: code as number | null,
    stdout: lines.join('\n'),
    stderr,
  }));
  return { exited, lines, kill: (s) => child.kill(s) };
}

describe('warmstore serve: keys and TLS', () => {
  let dir: string;
  let cleanup: () => Promise<void>;

  before(async () => {
    const t = await tempDir();
    dir = t.dir;
    cleanup = t.cleanup;
  });
  after(async () => {
    await cleanup();
  });

  it('refuses to listen beyond loopback without a key, before creating the store', async () => {
    const data = join(dir, 'refused');
    const run = await serve(['--data', data, '--host', '0.0.0.0', '--port', '0'], {}).exited;
    assert.equal(run.code, 2, run.stderr);
    assert.match(
      run.stderr,
      /error INVALID_INPUT: .*refusing to listen on 0\.0\.0\.0 without API keys.*--insecure/,
    );
    assert.equal(existsSync(data), false);
  });

  it('refuses a bad key file and a short WARMSTORE_API_KEY, naming what is wrong', async () => {
    const file = join(dir, 'bad-keys.json');
    await writeFile(file, JSON.stringify([{ key: READ_KEY, spaces: ['*'], access: 'admin' }]));
    const bad = await serve(['--data', join(dir, 'bad'), '--port', '0', '--api-keys', file], {}).exited;
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /apiKeys\[0\]\.access/);
    assert.equal(bad.stderr.includes(READ_KEY), false, 'the error does not quote the key');
    const short = await serve(['--data', join(dir, 'bad'), '--port', '0'], { WARMSTORE_API_KEY: 'short' })
      .exited;
    assert.equal(short.code, 2);
    assert.match(short.stderr, /WARMSTORE_API_KEY must be at least 16/);
    const half = await serve(['--data', join(dir, 'bad'), '--port', '0', '--tls-cert', file], {}).exited;
    assert.equal(half.code, 2);
    assert.match(half.stderr, /--tls-cert and --tls-key go together/);
  });

  it('serves HTTPS with the env key and the key file, and logs neither key', async () => {
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-keyout',
        join(dir, 'key.pem'),
        '-out',
        join(dir, 'cert.pem'),
        '-days',
        '1',
        '-subj',
        '/CN=127.0.0.1',
        '-addext',
        'subjectAltName=IP:127.0.0.1',
      ],
      { stdio: 'ignore' },
    );
    const ca = readFileSync(join(dir, 'cert.pem'));
    const keys = join(dir, 'keys.json');
    await writeFile(keys, JSON.stringify([{ key: READ_KEY, spaces: ['*'], access: 'read' }]));
    const s = serve(
      [
        '--data',
        join(dir, 'store'),
        '--port',
        '0',
        '--dimension',
        '4',
        '--log-level',
        'trace',
        '--api-keys',
        keys,
        '--tls-cert',
        join(dir, 'cert.pem'),
        '--tls-key',
        join(dir, 'key.pem'),
      ],
      { WARMSTORE_API_KEY: ENV_KEY },
    );
    try {
      await waitFor(
        () => s.lines.some((l) => l.includes('warmstore listening')),
        30_000,
        'the server to listen',
      );
      const url = (JSON.parse(s.lines.find((l) => l.includes('warmstore listening'))!) as { url: string })
        .url;
      assert.match(url, /^https:\/\/127\.0\.0\.1:/);

      const send = (method: string, path: string, key?: string, body?: unknown): Promise<number> =>
        new Promise((resolve, reject) => {
          const headers: Record<string, string> = {};
          if (key !== undefined) headers['authorization'] = `Bearer ${key}`;
          if (body !== undefined) headers['content-type'] = 'application/json';
          const req = httpsRequest(`${url}${path}`, { method, ca, headers }, (res) => {
            res.resume().on('end', () => resolve(res.statusCode ?? 0));
          });
          req.on('error', reject);
          req.end(body === undefined ? undefined : JSON.stringify(body));
        });
      const memory = { id: 'a', embedding: [1, 2, 3, 4] };
      assert.equal(await send('POST', '/api/v1/memories', undefined, memory), 401);
      assert.equal(await send('POST', '/api/v1/memories', READ_KEY, memory), 403);
      assert.equal(await send('POST', '/api/v1/memories', ENV_KEY, memory), 201);
      assert.equal(await send('GET', '/api/v1/memories/a', READ_KEY), 200);
      assert.equal(await send('GET', '/api/v1/memories/a', 'wrong-key-0123456789abc'), 401);
      assert.equal(await send('GET', '/healthz'), 200);
    } finally {
      s.kill('SIGTERM');
    }
    const run = await s.exited;
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /"apiKeys":2/);
    assert.equal(run.stdout.includes(ENV_KEY), false, 'the env key reached the log');
    assert.equal(run.stdout.includes(READ_KEY), false, 'a file key reached the log');
  });
});
