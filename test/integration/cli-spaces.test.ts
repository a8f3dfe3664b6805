/**
 * Memory spaces from the command line, in child processes (`node dist/cli/main.js`, needs
 * `npm run build`): `warmstore spaces`, `--space` on recall, export and import, `recall --filter`,
 * on a directory and through a server (`--url`).
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { WarmStore } from '../../src/index.js';
import { startServer, type StartedServer } from '../../src/server/index.js';
import type { MemoryRecord } from '../../src/types.js';
import { DIM, embeddingOf, tempDir } from '../unit/server/fixtures.js';

const CLI = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));

interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** The environment without the variables that would change what a command works on. */
function cleanEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env['WARMSTORE_DATA'];
  delete env['WARMSTORE_API_KEY'];
  return env;
}

function run(args: string[]): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      env: cleanEnv(),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

async function runJson<T>(args: string[]): Promise<T> {
  const r = await run([...args, '--json']);
  assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}

/** The same ten ids in three spaces; confidence i/10 in 'alice'. */
function records(): MemoryRecord[] {
  const out: MemoryRecord[] = [];
  for (const space of ['default', 'alice', 'bob']) {
    for (let i = 0; i < 10; i++) {
      out.push({
        id: `m${i}`,
        space,
        embedding: embeddingOf(i + (space === 'bob' ? 50 : 0)),
        content: `${space} ${i}`,
        confidence: i / 10,
      });
    }
  }
  return out;
}

interface Hit {
  score: number;
  id: string;
  space: string;
  confidence: number;
}

const lines = (text: string): Array<{ id: string; space: string }> =>
  text
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as { id: string; space: string });

/** The checks that hold whether the CLI opens the directory or goes through `--url`. */
function spaceChecks(where: () => string[]): void {
  it('spaces lists every space with its size; stats shows them too', async () => {
    const { spaces } = await runJson<{ spaces: Array<{ name: string; size: number }> }>([
      'spaces',
      ...where(),
    ]);
    assert.deepEqual(spaces, [
      { name: 'alice', size: 10 },
      { name: 'bob', size: 10 },
      { name: 'default', size: 10 },
    ]);
    const text = await run(['spaces', ...where()]);
    assert.equal(text.code, 0, text.stderr);
    assert.deepEqual(text.stdout.split('\n').filter(Boolean), ['alice    10', 'bob      10', 'default  10']);
    const stats = await runJson<{ spaces: unknown; size: number }>(['stats', ...where()]);
    assert.deepEqual(stats.spaces, spaces);
    assert.equal(stats.size, 30);
    const statsText = await run(['stats', ...where()]);
    assert.match(statsText.stdout, /^spaces \(3\)\n {2}alice {4}10\n/m);
  });

  it('recall --space finds memories of that space only; --like looks there too', async () => {
    const { results } = await runJson<{ results: Hit[] }>([
      'recall',
      '--like',
      'm3',
      '--space',
      'bob',
      '-k',
      '3',
      ...where(),
    ]);
    assert.equal(results.length, 3);
    assert.deepEqual(
      results.map((h) => h.space),
      ['bob', 'bob', 'bob'],
    );
    assert.equal(results[0]?.id, 'm3');
    assert.ok(results[0]!.score > 0.9999, 'its own embedding, the one stored in bob');
  });

  it('recall --filter returns exactly the memories in its ranges', async () => {
    const q = JSON.stringify(Array.from(embeddingOf(4)));
    for (const exact of [[], ['--exact']]) {
      const { results } = await runJson<{ results: Hit[] }>([
        'recall',
        q,
        '--space',
        'alice',
        '--filter',
        '{"confidence":{"gte":0.5,"lt":0.8}}',
        '-k',
        '100',
        ...exact,
        ...where(),
      ]);
      assert.deepEqual(results.map((h) => h.id).sort(), ['m5', 'm6', 'm7']);
      assert.ok(results.every((h) => h.confidence >= 0.5 && h.confidence < 0.8 && h.space === 'alice'));
    }
    const bad = await run(['recall', q, '--filter', '{"confidence":{"gte":"high"}}', ...where()]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /^error INVALID_INPUT: .*filter\.confidence\.gte/m);
    const notJson = await run(['recall', q, '--filter', '{confidence', ...where()]);
    assert.equal(notJson.code, 2);
    assert.match(notJson.stderr, /^error INVALID_INPUT: --filter is not JSON/m);
  });

  it('export --space writes that space only; export writes every space with its name', async () => {
    const one = await run(['export', '--space', 'alice', ...where()]);
    assert.equal(one.code, 0, one.stderr);
    const alice = lines(one.stdout);
    assert.equal(alice.length, 10);
    assert.ok(alice.every((l) => l.space === 'alice'));
    const all = await run(['export', ...where()]);
    const counts: Record<string, number> = {};
    for (const l of lines(all.stdout)) counts[l.space] = (counts[l.space] ?? 0) + 1;
    assert.deepEqual(counts, { default: 10, alice: 10, bob: 10 });
  });
}

describe('warmstore CLI with memory spaces', () => {
  let root: string;
  let cleanup: () => Promise<void>;
  const local = (): string[] => ['--data', join(root, 'local')];

  before(async () => {
    assert.ok(existsSync(CLI), `${CLI} is missing: run \`npm run build\` first`);
    const t = await tempDir('warmstore-cli-spaces-');
    root = t.dir;
    cleanup = t.cleanup;
    const store = await WarmStore.open(join(root, 'local'), { dimension: DIM, maintenanceIntervalMs: false });
    await store.putMany(records());
    await store.close();
  });
  after(async () => {
    await cleanup();
  });

  describe('on a directory', () => {
    spaceChecks(local);

    it('import keeps each line’s space, and --space puts every line in one', async () => {
      const file = join(root, 'all.jsonl');
      assert.equal((await run(['export', file, ...local()])).code, 0);
      const kept = join(root, 'kept');
      assert.equal((await run(['import', file, '--data', kept])).code, 0);
      const { spaces } = await runJson<{ spaces: unknown }>(['spaces', '--data', kept]);
      assert.deepEqual(spaces, [
        { name: 'alice', size: 10 },
        { name: 'bob', size: 10 },
        { name: 'default', size: 10 },
      ]);
      const moved = join(root, 'moved');
      assert.equal((await run(['import', file, '--space', 'carol', '--data', moved])).code, 0);
      const again = await runJson<{ spaces: unknown }>(['spaces', '--data', moved]);
      // Thirty lines, ten ids: each id written three times into carol, the last line winning.
      assert.deepEqual(again.spaces, [
        { name: 'carol', size: 10 },
        { name: 'default', size: 0 },
      ]);
      const exported = lines(await readFile(file, 'utf8'));
      assert.equal(exported.length, 30);
    });

    it('spaces --delete removes a space and its memories, leaving the others', async () => {
      const r = await runJson<{ space: string; deleted: number }>(['spaces', '--delete', 'bob', ...local()]);
      assert.deepEqual(r, { space: 'bob', deleted: 10 });
      const text = await run(['spaces', '--delete', 'bob', ...local()]);
      assert.equal(text.stdout, 'deleted space bob (0 memories)\n');
      const store = await WarmStore.open(join(root, 'local'), { maintenanceIntervalMs: false });
      try {
        assert.equal(await store.get('m1', { space: 'bob' }), undefined);
        assert.equal((await store.get('m1', { space: 'alice' }))?.content, 'alice 1');
        assert.equal((await store.get('m1'))?.content, 'default 1');
        assert.deepEqual(
          store.spaces().map((s) => s.name),
          ['alice', 'default'],
        );
      } finally {
        await store.close();
      }
    });
  });

  describe('through a server (--url)', () => {
    let server: StartedServer;
    const remote = (): string[] => ['--url', server.url];

    before(async () => {
      server = await startServer({
        dataDir: join(root, 'served'),
        port: 0,
        logger: false,
        storeOptions: { dimension: DIM, maintenanceIntervalMs: false },
      });
      await server.store.putMany(records());
    });
    after(async () => {
      await server.close();
    });

    spaceChecks(remote);

    it('spaces --url --delete deletes on the server', async () => {
      const r = await runJson<{ space: string; deleted: number }>([
        'spaces',
        '--delete',
        'alice',
        ...remote(),
      ]);
      assert.deepEqual(r, { space: 'alice', deleted: 10 });
      assert.equal(await server.store.get('m1', { space: 'alice' }), undefined);
      assert.equal((await server.store.get('m1', { space: 'bob' }))?.content, 'bob 1');
    });
  });
});
