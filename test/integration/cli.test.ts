/**
 * The CLI as users run it: `node dist/cli/main.js ...` in a child process. Needs `npm run build`.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { open, readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { WarmStore } from '../../src/index.js';
import type { MemoryRecord } from '../../src/types.js';
import { DIM, embeddingOf, tempDir } from '../unit/server/fixtures.js';

const CLI = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));

interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(
  args: string[],
  options: { env?: Record<string, string>; input?: string } = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      env: { ...process.env, ...options.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(options.input ?? '');
  });
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
    records.push({
      id: `bulk-${i}`,
      embedding: embeddingOf(100 + i),
      content: `bulk content ${i} `.repeat(20),
    });
  }
  return records;
}

async function makeStore(dir: string, records = sampleRecords()): Promise<void> {
  const store = await WarmStore.open(dir, { dimension: DIM, maintenanceIntervalMs: false });
  await store.putMany(records);
  await store.close();
}

function parseLines(text: string): Map<string, unknown> {
  const out = new Map<string, unknown>();
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const o = JSON.parse(line) as { id: string };
    out.set(o.id, o);
  }
  return out;
}

describe('warmstore CLI', () => {
  let root: string;
  let cleanup: () => Promise<void>;

  before(async () => {
    assert.ok(existsSync(CLI), `${CLI} is missing: run \`npm run build\` first`);
    const t = await tempDir('warmstore-cli-');
    root = t.dir;
    cleanup = t.cleanup;
  });
  after(async () => {
    await cleanup();
  });

  it('stats --json prints one JSON object describing the store', async () => {
    const dir = join(root, 'stats');
    await makeStore(dir);
    const r = await run(['stats', '--data', dir, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const s = JSON.parse(r.stdout) as Record<string, unknown>;
    assert.equal(s['size'], 305);
    assert.equal(s['dimension'], DIM);
    for (const k of ['totalBytes', 'liveBytes', 'deadBytes', 'fragmentationRatio', 'segments']) {
      assert.equal(typeof s[k], 'number', k);
    }
    assert.equal(r.stdout.trim().split('\n').length, 1, 'exactly one line');

    const human = await run(['stats'], { env: { WARMSTORE_DATA: dir } });
    assert.equal(human.code, 0, human.stderr);
    assert.match(human.stdout, /memories\s+305/);
    assert.match(human.stdout, /fragmentation\s+0\.0 %/);
  });

  it('export then import round-trips every field, and re-export is identical', async () => {
    const src = join(root, 'export-src');
    const dst = join(root, 'export-dst');
    await makeStore(src);
    const file1 = join(root, 'dump1.jsonl');
    const file2 = join(root, 'dump2.jsonl');

    const exp = await run(['export', file1, '--data', src, '--json']);
    assert.equal(exp.code, 0, exp.stderr);
    assert.equal((JSON.parse(exp.stdout) as { exported: number }).exported, 305);

    // No --dimension: a new store takes it from the first record.
    const imp = await run(['import', file1, '--data', dst, '--json', '--batch', '64']);
    assert.equal(imp.code, 0, imp.stderr);
    assert.equal((JSON.parse(imp.stdout) as { imported: number }).imported, 305);

    const exp2 = await run(['export', file2, '--data', dst]);
    assert.equal(exp2.code, 0, exp2.stderr);
    const a = parseLines(await readFile(file1, 'utf8'));
    const b = parseLines(await readFile(file2, 'utf8'));
    assert.equal(a.size, 305);
    assert.deepEqual(b, a);

    // And the library sees exactly what was put in the source.
    const store = await WarmStore.open(dst, { maintenanceIntervalMs: false });
    try {
      for (const r of sampleRecords()) {
        const m = await store.get(r.id);
        assert.ok(m, r.id);
        assert.deepEqual(m.embedding, r.embedding, r.id);
        assert.equal(m.content, r.content ?? null, r.id);
        if (r.accessCount !== undefined) assert.equal(m.accessCount, r.accessCount);
        if (r.confidence !== undefined) assert.equal(m.confidence, r.confidence);
      }
    } finally {
      await store.close();
    }

    // stdout export carries the same lines.
    const toStdout = await run(['export', '--data', src]);
    assert.equal(toStdout.code, 0, toStdout.stderr);
    assert.deepEqual(parseLines(toStdout.stdout), a);
  });

  it('import reads stdin with "-", and stops at a bad line naming it (exit 2)', async () => {
    const dir = join(root, 'import-bad');
    const good = JSON.stringify({ id: 'ok', embedding: Array.from(embeddingOf(1)) });
    const stdin = await run(['import', '-', '--data', dir, '--dimension', String(DIM), '--json'], {
      input: `${good}\n`,
    });
    assert.equal(stdin.code, 0, stdin.stderr);
    const file = join(root, 'bad.jsonl');
    await writeFile(file, `${good}\n\n{"id": "x", "embedding": "not base64!"}\n`);
    const r = await run(['import', file, '--data', dir]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /^error INVALID_INPUT: line 3: .*embedding/m);
  });

  it('compact --json prints the compaction stats', async () => {
    const dir = join(root, 'compact');
    const store = await WarmStore.open(dir, {
      dimension: DIM,
      segmentBytes: 8192,
      maintenanceIntervalMs: false,
    });
    await store.putMany(sampleRecords());
    for (let i = 0; i < 300; i += 2) await store.delete(`bulk-${i}`);
    await store.close();
    const r = await run(['compact', '--data', dir, '--force', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const stats = JSON.parse(r.stdout) as { bytesReclaimed: number; segmentsCompacted: number };
    assert.ok(stats.segmentsCompacted > 0);
    assert.ok(stats.bytesReclaimed > 0);
    const after = JSON.parse((await run(['stats', '--data', dir, '--json'])).stdout) as { deadBytes: number };
    assert.equal(after.deadBytes, 0);
  });

  it('backup --json copies a store that then verifies clean; a second backup into it is refused', async () => {
    const dir = join(root, 'backup-src');
    await makeStore(dir);
    const dest = join(root, 'backup-dest');
    const r = await run(['backup', dest, '--data', dir, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const result = JSON.parse(r.stdout) as { dir: string; lsn: number; files: number };
    assert.equal(result.dir, dest);
    assert.ok(result.files >= 5, r.stdout);
    const check = await run(['verify', '--data', dest]);
    assert.equal(check.code, 0, check.stdout + check.stderr);
    assert.match(check.stdout, /^ok: 305 records/m);
    const again = await run(['backup', dest, '--data', dir]);
    assert.equal(again.code, 2);
    assert.match(again.stderr, /INVALID_INPUT.*not empty/);
  });

  it('verify passes a clean store and names a flipped byte in a segment (exit 1)', async () => {
    const dir = join(root, 'verify');
    await makeStore(dir);
    const clean = await run(['verify', '--data', dir]);
    assert.equal(clean.code, 0, clean.stdout + clean.stderr);
    assert.match(clean.stdout, /^ok: 305 records/m);

    // Every entry is live (nothing was overwritten), so any byte past the header belongs to one.
    const segments = (await readdir(dir)).filter((n) => /^seg-.*\.dat$/.test(n));
    assert.ok(segments.length > 0, 'a segment file exists');
    let biggest = '';
    let size = 0;
    for (const s of segments) {
      const st = await stat(join(dir, s));
      if (st.size > size) [biggest, size] = [s, st.size];
    }
    const fh = await open(join(dir, biggest), 'r+');
    try {
      const pos = Math.floor(size / 2);
      const b = Buffer.alloc(1);
      await fh.read(b, 0, 1, pos);
      b[0] = (b[0] ?? 0) ^ 0xff;
      await fh.write(b, 0, 1, pos);
    } finally {
      await fh.close();
    }

    const bad = await run(['verify', '--data', dir]);
    assert.equal(bad.code, 1, bad.stdout + bad.stderr);
    assert.match(bad.stdout, /^problem [a-z-]+ \(id ".+" in .*seg-.*\.dat\): /m);
    assert.match(bad.stdout, /problem\(s\) found/);
    const json = await run(['verify', '--data', dir, '--json']);
    assert.equal(json.code, 1);
    const report = JSON.parse(json.stdout) as {
      ok: boolean;
      problems: Array<{ kind: string; file?: string }>;
    };
    assert.equal(report.ok, false);
    assert.ok(
      report.problems.some((p) => p.file?.endsWith(biggest)),
      JSON.stringify(report.problems),
    );
  });

  it('prints "error CODE: message" and exits 2 on errors', async () => {
    const missing = await run(['stats', '--data', join(root, 'does-not-exist')]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /^error NOT_FOUND: /);

    // A store open elsewhere (here: this process) is locked.
    const dir = join(root, 'locked');
    const store = await WarmStore.open(dir, { dimension: DIM, maintenanceIntervalMs: false });
    try {
      const locked = await run(['stats', '--data', dir]);
      assert.equal(locked.code, 2);
      assert.match(locked.stderr, /^error STORE_LOCKED: /);
    } finally {
      await store.close();
    }

    const usage = await run(['stats', '--no-such-option']);
    assert.equal(usage.code, 2);
    const noFile = await run(['import', join(root, 'nope.jsonl'), '--data', join(root, 'x')]);
    assert.equal(noFile.code, 2);
    assert.match(noFile.stderr, /^error IO_ERROR: /);
  });

  it('bench prints ops/s and percentiles', async () => {
    const r = await run(['bench', '--count', '200', '--dimension', String(DIM), '--data', root, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout) as {
      results: Array<{ op: string; opsPerSecond: number; p50Us: number; p99Us: number }>;
    };
    assert.deepEqual(
      out.results.map((x) => x.op),
      ['put', 'get'],
    );
    for (const x of out.results) {
      assert.ok(x.opsPerSecond > 0);
      assert.ok(x.p99Us >= x.p50Us);
    }
    assert.deepEqual(
      (await readdir(root)).filter((n) => n.startsWith('.warmstore-bench-')),
      [],
      'the temporary store is removed',
    );
    const human = await run(['bench', '--count', '50', '--dimension', String(DIM), '--data', root]);
    assert.equal(human.code, 0, human.stderr);
    assert.match(human.stdout, /^put\s+[\d,]+\s+[\d.]+\s+[\d.]+/m);
  });
});
