/**
 * A put's embedding is written to vectors.dat from the slab it was copied into (one pwritev for a
 * batch's adjacent copies), and a slab is reused once every write of its copies' batches has
 * settled (validate.ts, `releaseCopies`). A slab reused while a write of it was still in flight
 * would put another memory's bytes on the disk (caught later as a checksum mismatch: data lost).
 * Here every write to vectors.dat and the content segments waits before it starts, while more puts
 * arrive and are copied.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { WarmStore, type WsFile } from '../../../src/index.js';
import { WrappedFileSystem, delegate } from '../../helpers/wrapped-fs.js';
import { tempDir } from '../../helpers/tmp.js';

const DIM = 96;

/** Writes to vectors.dat and the segments start `ms` late; counts the vectored ones. */
class SlowWrites extends WrappedFileSystem {
  writevs = 0;
  constructor(readonly ms: number) {
    super();
  }
  protected override wrap(inner: WsFile, path: string): WsFile {
    if (!path.endsWith('vectors.dat') && !path.includes('seg')) return inner;
    return delegate(inner, {
      write: async (b, o, l, p) => {
        await sleep(this.ms);
        return inner.write(b, o, l, p);
      },
      writeDurable: async (b, o, l, p) => {
        await sleep(this.ms);
        return inner.writeDurable!(b, o, l, p);
      },
      writev: async (bufs, p, durable) => {
        this.writevs++;
        await sleep(this.ms);
        return inner.writev!(bufs, p, durable);
      },
    });
  }
}

/** Memory `i`'s embedding (distinct in every float) and content. */
function embedding(i: number): Float32Array {
  const e = new Float32Array(DIM);
  for (let d = 0; d < DIM; d++) e[d] = i * 1000 + d + 0.25;
  return e;
}
const content = (i: number): string => `memory ${i} `.repeat(1 + (i % 40));

for (const durability of ['sync', 'relaxed'] as const) {
  test(`slabs are reused only after their copies are written (${durability})`, async (t) => {
    const dir = await tempDir(t);
    const fs = new SlowWrites(8);
    const opts = {
      dimension: DIM,
      durability,
      fileSystem: fs,
      maintenanceIntervalMs: false as const,
      maintenance: { startupCompaction: 'off' as const },
    };
    const N = 6000;
    const store = await WarmStore.open(dir, opts);
    try {
      // Waves of puts, each started while the one before is still being written: the copies of a
      // later wave would land in a slab of an earlier one if it were reused too soon.
      const waves: Promise<void>[] = [];
      for (let w = 0; w < N; w += 500) {
        const batch: Promise<void>[] = [];
        for (let i = w; i < w + 500; i++)
          batch.push(store.put({ id: `m${i}`, embedding: embedding(i), content: content(i) }));
        waves.push(Promise.all(batch).then(() => undefined));
        await sleep(2);
      }
      await Promise.all(waves);
      assert.ok(fs.writevs > 0, 'bulk batches were written with pwritev');
    } finally {
      await store.close();
    }
    const again = await WarmStore.open(dir, { ...opts, fileSystem: new WrappedFileSystem() });
    try {
      assert.equal(again.size, N);
      for (let i = 0; i < N; i++) {
        const m = again.getSync(`m${i}`);
        assert.ok(m, `m${i} present`);
        assert.deepEqual(Array.from(m.embedding), Array.from(embedding(i)), `m${i}'s embedding`);
        assert.equal(m.content, content(i), `m${i}'s content`);
      }
      const report = await again.verify();
      assert.equal(report.ok, true, JSON.stringify(report.problems.slice(0, 3)));
      assert.equal(report.records, N);
    } finally {
      await again.close();
    }
  });
}
