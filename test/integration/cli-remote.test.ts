/**
 * The CLI with `--url` against a running `warmstore serve`, both child processes: import, stats,
 * export and compact go through the HTTP API, and the export equals the one made from the
 * directory once the server is gone. Needs `npm run build`.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { memoryToJson } from '../../src/server/codec.js';
import type { MemoryRecord, StoredMemory } from '../../src/types.js';
import { DIM, embeddingOf, tempDir, waitFor } from '../unit/server/fixtures.js';

const CLI = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));

interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** The child's environment without the variables that would point it elsewhere. */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const k of ['WARMSTORE_DATA', 'WARMSTORE_API_KEY', 'WARMSTORE_PORT', 'WARMSTORE_HOST']) delete env[k];
  return { ...env, ...extra };
}

function run(
  args: string[],
  options: { env?: Record<string, string>; input?: string } = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: cleanEnv(options.env), stdio: 'pipe' });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(options.input ?? '');
  });
}

/** `warmstore serve` on a free port; resolves with its URL once it logs that it listens. */
async function serve(
  dir: string,
  env: Record<string, string> = {},
  args: string[] = [],
): Promise<{ url: string; child: ChildProcessWithoutNullStreams }> {
  const child = spawn(
    process.execPath,
    [CLI, 'serve', '--data', dir, '--port', '0', '--host', '127.0.0.1', '--dimension', String(DIM), ...args],
    { env: cleanEnv(env) },
  );
  let url: string | undefined;
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  createInterface({ input: child.stdout }).on('line', (line) => {
    try {
      const log = JSON.parse(line) as { msg?: string; url?: string };
      if (log.msg === 'warmstore listening') url = log.url;
    } catch {
      // not a log line
    }
  });
  await waitFor(() => url !== undefined || child.exitCode !== null, 15_000, 'serve to listen');
  if (url === undefined) throw new Error(`serve exited: ${stderr}`);
  return { url, child };
}

/** Records that exercise the corners: unicode, empty vs absent content, long content, metadata. */
function sampleRecords(): MemoryRecord[] {
  const records: MemoryRecord[] = [
    { id: 'unicode-ü-🧠', embedding: embeddingOf(1), content: 'naïve café — 記憶 🧠' },
    { id: 'empty', embedding: embeddingOf(2), content: '' },
    { id: 'absent', embedding: embeddingOf(3) },
    { id: 'long', embedding: embeddingOf(4), content: 'L'.repeat(20_000) },
    {
      id: 'meta',
      embedding: embeddingOf(5),
      content: 'with metadata\nand a newline and "quotes"',
      confidence: 0.25,
      activation: -3.5,
      decayRate: 0.01,
      createdAt: 1_700_000_000_000,
      lastAccess: 1_700_000_000_500,
      accessCount: 42,
    },
  ];
  for (let i = 0; i < 300; i++) {
    records.push({ id: `bulk-${i}`, embedding: embeddingOf(100 + i), content: `bulk ${i} `.repeat(20) });
  }
  return records;
}

/** JSON Lines of records, as `warmstore export` writes them (metadata filled in). */
function jsonl(records: MemoryRecord[]): string {
  return records
    .map((r) => {
      const stored: StoredMemory = {
        id: r.id,
        space: r.space ?? 'default',
        embedding: r.embedding,
        content: r.content ?? null,
        confidence: r.confidence ?? 1,
        activation: r.activation ?? 0,
        decayRate: r.decayRate ?? 0,
        createdAt: r.createdAt ?? 1_600_000_000_000,
        lastAccess: r.lastAccess ?? r.createdAt ?? 1_600_000_000_000,
        accessCount: r.accessCount ?? 0,
      };
      return `${JSON.stringify(memoryToJson(stored))}\n`;
    })
    .join('');
}

describe('warmstore CLI with --url', () => {
  let root: string;
  let dir: string;
  let cleanup: () => Promise<void>;
  let server: { url: string; child: ChildProcessWithoutNullStreams };
  const records = sampleRecords();
  let input: string;

  before(async () => {
    assert.ok(existsSync(CLI), `${CLI} is missing: run \`npm run build\` first`);
    const t = await tempDir('warmstore-cli-remote-');
    root = t.dir;
    cleanup = t.cleanup;
    dir = join(root, 'store');
    input = jsonl(records);
    await writeFile(join(root, 'in.jsonl'), input);
    server = await serve(dir, {}, ['--backup-dir', join(root, 'backups')]);
  });
  after(async () => {
    if (server.child.exitCode === null) server.child.kill('SIGKILL');
    await cleanup();
  });

  it('import --url puts every line through the server', async () => {
    const r = await run(['import', join(root, 'in.jsonl'), '--url', server.url, '--json', '--batch', '64']);
    assert.equal(r.code, 0, r.stderr);
    const summary = JSON.parse(r.stdout) as { imported: number };
    assert.equal(summary.imported, records.length);
  });

  it('stats --url prints the server store figures', async () => {
    const r = await run(['stats', '--url', server.url, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const s = JSON.parse(r.stdout) as Record<string, unknown>;
    assert.equal(s['size'], records.length);
    assert.equal(s['url'], `${server.url}/`);
    assert.equal(s['isCompacting'], false);
    for (const k of ['totalBytes', 'liveBytes', 'deadBytes', 'fragmentationRatio', 'segments']) {
      assert.equal(typeof s[k], 'number', k);
    }
    const human = await run(['stats', '--url', server.url]);
    assert.equal(human.code, 0, human.stderr);
    assert.match(human.stdout, new RegExp(`memories\\s+${records.length}`));
    assert.match(human.stdout, /server\s+http:\/\/127\.0\.0\.1:\d+\//);
  });

  it('verify --url runs the check in the server and exits 0 when clean', async () => {
    const r = await run(['verify', '--url', server.url, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const report = JSON.parse(r.stdout) as { ok: boolean; records: number; problems: unknown[] };
    assert.equal(report.ok, true);
    assert.equal(report.records, records.length);
    assert.deepEqual(report.problems, []);
    const human = await run(['verify', '--url', server.url]);
    assert.equal(human.code, 0, human.stderr);
    assert.match(human.stdout, new RegExp(`^ok: ${records.length} records`, 'm'));
    const both = await run(['verify', '--url', server.url, '--data', root]);
    assert.equal(both.code, 2, 'a URL and a data directory are refused together');
  });

  it('backup --url has the server back its store up under its --backup-dir; the copy verifies', async () => {
    const r = await run(['backup', 'nightly', '--url', server.url, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const result = JSON.parse(r.stdout) as { dir: string; lsn: number };
    assert.equal(result.dir, join(root, 'backups', 'nightly'));
    const again = await run(['backup', 'nightly', '--url', server.url]);
    assert.equal(again.code, 2, 'a used name is refused');
    const copy = await run(['verify', '--data', result.dir, '--json']);
    assert.equal(copy.code, 0, copy.stderr);
    assert.equal((JSON.parse(copy.stdout) as { records: number }).records, records.length);
  });

  it('export --url writes exactly the imported lines, to a file and to stdout', async () => {
    const out = join(root, 'remote.jsonl');
    const r = await run(['export', out, '--url', server.url, '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal((JSON.parse(r.stdout) as { exported: number }).exported, records.length);
    const text = await readFile(out, 'utf8');
    assert.equal(text, input, 'same lines, same order, same bytes');
    const piped = await run(['export', '--url', server.url]);
    assert.equal(piped.code, 0, piped.stderr);
    assert.equal(piped.stdout, input);
  });

  it('import --url names the line of a refused record; the valid lines are written', async () => {
    const bad = [
      JSON.stringify({ id: 'fine-1', embedding: Array.from(embeddingOf(7)) }),
      JSON.stringify({ id: 'bad-confidence', embedding: Array.from(embeddingOf(8)), confidence: 3 }),
      '',
      JSON.stringify({ id: 'fine-2', embedding: Array.from(embeddingOf(9)) }),
    ].join('\n');
    const r = await run(['import', '-', '--url', server.url], { input: bad });
    assert.equal(r.code, 2, r.stdout);
    assert.match(r.stderr, /^error INVALID_INPUT: line 2: .*confidence/m);
    const check = await run(['stats', '--url', server.url, '--json']);
    assert.equal((JSON.parse(check.stdout) as { size: number }).size, records.length + 2);
  });

  it('recall --url finds a memory by its own embedding, given as --like, JSON or base64', async () => {
    const like = await run(['recall', '--like', 'meta', '--url', server.url, '--json', '-k', '3']);
    assert.equal(like.code, 0, like.stderr);
    const { results } = JSON.parse(like.stdout) as {
      results: Array<{ id: string; score: number; content: string }>;
    };
    assert.equal(results.length, 3);
    assert.equal(results[0]?.id, 'meta');
    assert.equal(results[0]?.content, 'with metadata\nand a newline and "quotes"');
    assert.ok(Math.abs((results[0]?.score ?? 0) - 1) < 1e-6);
    assert.equal('embedding' in (results[0] ?? {}), false, 'no embeddings in the output');

    const e = embeddingOf(4);
    const base64 = Buffer.from(e.buffer, e.byteOffset, e.byteLength).toString('base64');
    for (const query of [JSON.stringify(Array.from(e)), base64]) {
      // The fixture's embeddings come close to each other, so the hit may share first place.
      const r = await run(['recall', query, '--url', server.url, '-k', '3']);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout.split('\n').length, 4, r.stdout);
      assert.match(r.stdout, /^1\.0000 {2}"long" {2}L{79}…$/m);
    }
    const missing = await run(['recall', '--like', 'nope', '--url', server.url]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /^error NOT_FOUND: /m);
    const wrongDim = await run(['recall', '[1,2,3]', '--url', server.url]);
    assert.equal(wrongDim.code, 2);
    assert.match(wrongDim.stderr, /^error INVALID_INPUT: .*embedding/m);
  });

  it('compact --url runs a compaction on the server', async () => {
    const r = await run(['compact', '--url', server.url, '--force', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const stats = JSON.parse(r.stdout) as Record<string, unknown>;
    for (const k of ['durationMs', 'bytesReclaimed', 'segmentsCompacted', 'maxPauseMs']) {
      assert.equal(typeof stats[k], 'number', k);
    }
  });

  it('refuses --url with --data, --api-key without --url, and --dimension with import --url', async () => {
    const both = await run(['stats', '--url', server.url, '--data', dir]);
    assert.equal(both.code, 2);
    assert.match(both.stderr, /^error INVALID_INPUT: --url and --data/m);
    const key = await run(['stats', '--data', dir, '--api-key', 'k']);
    assert.equal(key.code, 2);
    assert.match(key.stderr, /^error INVALID_INPUT: --api-key needs --url/m);
    const dim = await run(['import', '-', '--url', server.url, '--dimension', '8']);
    assert.equal(dim.code, 2);
    assert.match(dim.stderr, /^error INVALID_INPUT: --dimension/m);
    const badUrl = await run(['stats', '--url', 'not-a-url']);
    assert.equal(badUrl.code, 2);
    assert.match(badUrl.stderr, /^error INVALID_INPUT: --url/m);
  });

  it('after SIGTERM the directory exports the same lines locally; --url then fails cleanly', async () => {
    server.child.kill('SIGTERM');
    const [code] = (await once(server.child, 'exit')) as [number | null];
    assert.equal(code, 0);
    const local = await run(['export', '--data', dir]);
    assert.equal(local.code, 0, local.stderr);
    const remote = await readFile(join(root, 'remote.jsonl'), 'utf8');
    assert.ok(local.stdout.startsWith(remote), 'the remote export is what the directory holds');

    const localRecall = await run(['recall', '--like', 'meta', '--data', dir, '--json', '-k', '3']);
    assert.equal(localRecall.code, 0, localRecall.stderr);
    assert.equal(
      (JSON.parse(localRecall.stdout) as { results: Array<{ id: string }> }).results[0]?.id,
      'meta',
    );

    const gone = await run(['stats', '--url', server.url]);
    assert.equal(gone.code, 2);
    assert.match(gone.stderr, /^error CONNECTION_FAILED: .*ECONNREFUSED/m);
  });
});

describe('warmstore CLI with --url and an API key', () => {
  const KEY = 'cli-remote-key-0123456789';
  const NARROW = 'cli-remote-default-reader-0123';

  it('--api-key or WARMSTORE_API_KEY authenticates; without one the server answers 401', async () => {
    const t = await tempDir('warmstore-cli-remote-auth-');
    const keysFile = join(t.dir, 'keys.json');
    await writeFile(keysFile, JSON.stringify([{ key: NARROW, spaces: ['default'], access: 'read' }]));
    const server = await serve(join(t.dir, 'store'), { WARMSTORE_API_KEY: KEY }, ['--api-keys', keysFile]);
    try {
      const none = await run(['stats', '--url', server.url]);
      assert.equal(none.code, 2);
      assert.match(none.stderr, /^error UNAUTHORIZED: /m);
      const wrong = await run(['stats', '--url', server.url, '--api-key', 'wrong-key-0123456789']);
      assert.equal(wrong.code, 2);
      assert.match(wrong.stderr, /^error UNAUTHORIZED: /m);
      assert.ok(!wrong.stderr.includes('wrong-key'), 'the key is not echoed');

      const flag = await run(['stats', '--url', server.url, '--api-key', KEY, '--json']);
      assert.equal(flag.code, 0, flag.stderr);
      assert.equal((JSON.parse(flag.stdout) as { size: number }).size, 0);
      const env = await run(['export', '--url', server.url], { env: { WARMSTORE_API_KEY: KEY } });
      assert.equal(env.code, 0, env.stderr);
      assert.equal(env.stdout, '');

      // A key for the default space only may export (to a file, with its progress total left
      // out) but not read the store-wide statistics.
      const narrowExport = await run(['export', join(t.dir, 'out.jsonl'), '--url', server.url, '--json'], {
        env: { WARMSTORE_API_KEY: NARROW },
      });
      assert.equal(narrowExport.code, 0, narrowExport.stderr);
      assert.equal((JSON.parse(narrowExport.stdout) as { exported: number }).exported, 0);
      const narrowStats = await run(['stats', '--url', server.url, '--api-key', NARROW]);
      assert.equal(narrowStats.code, 2);
      assert.match(narrowStats.stderr, /^error FORBIDDEN: /m);
    } finally {
      server.child.kill('SIGTERM');
      await once(server.child, 'exit');
      await t.cleanup();
    }
  });
});
