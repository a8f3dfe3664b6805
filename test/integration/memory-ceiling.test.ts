/**
 * The memory ceiling of an open store: its vectors are read from vectors.dat through the page
 * cache, so the anonymous memory a store adds to its process (the part that cannot be evicted) is a
 * small fraction of its files. A real child process builds a store of N memories x 768, reopens it,
 * reads every memory, recalls and iterates, and reports RssAnon; a second child that opens an empty
 * store gives the process's own share, measured the same way.
 *
 * WARMSTORE_SLOW=1 runs it with the recall index kept (built, saved and viewed from its file
 * before the store is reopened), which takes minutes: the build inserts every vector into the graph.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { REPO_ROOT } from '../helpers/spawn.js';
import { tempDir } from '../helpers/tmp.js';

const SLOW = process.env.WARMSTORE_SLOW === '1';
const N = 100_000;
/** The store's files must be at least this many times the anonymous memory it adds. */
const MIN_FILE_TO_ANON = 3;
const CHILD = 'test/integration/memory-ceiling-child.ts';

interface ChildReport {
  n: number;
  got: number;
  entries: number;
  recalls: number;
  exactSelfHits: number;
  approxSelfHits: number;
  indexSearches: number;
  fileBytes: number;
  rssAnonOpen: number;
  rssAnonAfter: number;
  heapUsed: number;
}

/** Runs the child on a store of `n` memories in `dir`; resolves with its report once it exits 0. */
function runChild(dir: string, n: number): Promise<ChildReport> {
  const proc = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      // A JS heap far smaller than the vectors: a store that kept them on the heap could not open.
      '--max-old-space-size=64',
      // The young generation grows to its ceiling (16 MiB a semi-space) under the read loops
      // whatever the store holds; kept small, the figure measured is the store's own.
      '--max-semi-space-size=1',
      // The child collects garbage before each reading, so the build's leftovers are not counted.
      '--expose-gc',
      join(REPO_ROOT, CHILD),
    ],
    {
      cwd: REPO_ROOT,
      env: { ...process.env, STORE_DIR: join(dir, 'store'), N: String(n), SEED: '7', INDEX: SLOW ? '1' : '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let stdout = '';
  let stderr = '';
  proc.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
  proc.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
  return new Promise((resolve, reject) => {
    proc.on('error', reject);
    proc.on('close', (code, signal) => {
      if (code !== 0) {
        reject(new Error(`child (n=${n}) exited with ${code ?? signal}; stderr: ${stderr.slice(-3000)}`));
        return;
      }
      const line = stdout.trim().split('\n').pop() ?? '';
      try {
        resolve(JSON.parse(line) as ChildReport);
      } catch {
        reject(new Error(`child (n=${n}) printed no report: ${stdout.slice(-1000)}`));
      }
    });
  });
}

const mib = (bytes: number): string => `${(bytes / 2 ** 20).toFixed(1)} MiB`;

describe('memory ceiling', () => {
  it(
    `a reopened store of ${N} memories x 768 adds at most a third of its file size in anonymous memory`,
    { timeout: SLOW ? 3_600_000 : 600_000 },
    async (t) => {
      const dir = await tempDir(t, 'warmstore-memceil-');
      const empty = await runChild(join(dir, 'empty'), 0);
      assert.equal(empty.n, 0);
      assert.equal(empty.entries, 0);
      const report = await runChild(join(dir, 'full'), N);
      const baseline = empty.rssAnonAfter;
      const growth = report.rssAnonAfter - baseline;
      const summary =
        `files ${mib(report.fileBytes)} (${(report.fileBytes / N).toFixed(0)} B/memory); RssAnon ` +
        `${mib(baseline)} empty, ${mib(report.rssAnonOpen)} after open, ${mib(report.rssAnonAfter)} ` +
        `after the reads: +${mib(growth)} (${(growth / N).toFixed(0)} B/memory); heap ${mib(report.heapUsed)}`;
      t.diagnostic(summary);

      assert.equal(report.n, N);
      assert.equal(report.got, N, 'every memory read back');
      assert.equal(report.entries, N, 'entries() visits every memory once');
      assert.equal(report.recalls, 40);
      // A stored vector's nearest memory, by an exact scan, is the memory itself.
      assert.equal(report.exactSelfHits, 20, 'exact recall finds each query memory first');
      // Below this the store could not hold its embeddings (3 KiB each) at all.
      assert.ok(report.fileBytes > N * 768 * 4, `files hold the vectors: ${summary}`);
      assert.ok(
        report.fileBytes >= MIN_FILE_TO_ANON * growth,
        `the store's files are at least ${MIN_FILE_TO_ANON}x the anonymous memory it adds: ${summary}`,
      );
    },
  );
});
