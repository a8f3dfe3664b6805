import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { WarmStore } from '../../index.js';
import { formatCount, printJson } from '../common.js';

export interface BenchOptions {
  data?: string;
  count: number;
  dimension: number;
  contentBytes: number;
  concurrency: number;
  json?: boolean;
}

interface Result {
  op: string;
  count: number;
  opsPerSecond: number;
  p50Us: number;
  p99Us: number;
  maxUs: number;
}

function summarize(op: string, latenciesMs: Float64Array, wallMs: number): Result {
  const sorted = Float64Array.from(latenciesMs).sort();
  const q = (p: number): number =>
    (sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? 0) * 1000;
  return {
    op,
    count: sorted.length,
    opsPerSecond: Math.round(sorted.length / (wallMs / 1000)),
    p50Us: Math.round(q(0.5) * 10) / 10,
    p99Us: Math.round(q(0.99) * 10) / 10,
    maxUs: Math.round((sorted[sorted.length - 1] ?? 0) * 1000 * 10) / 10,
  };
}

/** Runs `count` calls of `fn` with `concurrency` workers, timing each call. */
async function timed(
  count: number,
  concurrency: number,
  fn: (i: number) => Promise<unknown>,
): Promise<[Float64Array, number]> {
  const lat = new Float64Array(count);
  let next = 0;
  const t0 = performance.now();
  const worker = async (): Promise<void> => {
    while (next < count) {
      const i = next++;
      const t = performance.now();
      await fn(i);
      lat[i] = performance.now() - t;
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency, count)) }, worker));
  return [lat, performance.now() - t0];
}

/**
 * A quick in-process smoke benchmark: durable puts, then random gets, on a fresh store in a
 * temporary directory (inside --data when given, so the disk under test is the user's). The
 * comparative benchmarks against other engines live in bench/.
 */
export async function bench(opts: BenchOptions): Promise<void> {
  const parent = opts.data === undefined ? tmpdir() : resolve(opts.data);
  await mkdir(parent, { recursive: true });
  const dir = await mkdtemp(join(parent, '.warmstore-bench-'));
  const results: Result[] = [];
  try {
    const store = await WarmStore.open(dir, { dimension: opts.dimension, maintenanceIntervalMs: false });
    try {
      const embedding = new Float32Array(opts.dimension);
      for (let i = 0; i < embedding.length; i++) embedding[i] = Math.sin(i + 1);
      const content = 'x'.repeat(opts.contentBytes);
      const id = (i: number): string => `bench-${i.toString(36).padStart(6, '0')}`;

      const [putLat, putWall] = await timed(opts.count, opts.concurrency, (i) =>
        store.put({ id: id(i), embedding, content }),
      );
      results.push(summarize('put', putLat, putWall));

      // A fixed permutation-like stride visits every record once in a cache-unfriendly order.
      const stride = 7919;
      const [getLat, getWall] = await timed(opts.count, opts.concurrency, async (i) => {
        const m = await store.get(id((i * stride) % opts.count));
        if (m === undefined) throw new Error(`bench: record ${id((i * stride) % opts.count)} missing`);
      });
      results.push(summarize('get', getLat, getWall));
    } finally {
      await store.close();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }

  if (opts.json) {
    printJson({
      count: opts.count,
      dimension: opts.dimension,
      contentBytes: opts.contentBytes,
      concurrency: opts.concurrency,
      results,
    });
    return;
  }
  process.stdout.write(
    `${formatCount(opts.count)} records, dimension ${opts.dimension}, ${formatCount(opts.contentBytes)} B content, ` +
      `concurrency ${opts.concurrency}, durability sync\n`,
  );
  process.stdout.write(
    `${'op'.padEnd(6)}${'ops/s'.padStart(12)}${'p50 us'.padStart(10)}${'p99 us'.padStart(10)}${'max us'.padStart(10)}\n`,
  );
  for (const r of results) {
    process.stdout.write(
      `${r.op.padEnd(6)}${formatCount(r.opsPerSecond).padStart(12)}${r.p50Us.toFixed(1).padStart(10)}` +
        `${r.p99Us.toFixed(1).padStart(10)}${r.maxUs.toFixed(1).padStart(10)}\n`,
    );
  }
}
