/**
 * An update writes the new version into a free slot and frees the old one, so a memory can leave a
 * slot a reader has not reached for one it has passed, or the other way round. A memory present
 * throughout an iteration or a recall must still be seen exactly once (in its old or new version):
 * these tests move memories under a paused iteration and under recalls in flight.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { WarmStore, type MemoryRecord } from '../../../src/index.js';
import { Rng, hashSeed } from '../../helpers/random.js';
import { tempDir } from '../../helpers/tmp.js';

const DIM = 16;

function record(id: string, version: number): MemoryRecord {
  const r = new Rng(hashSeed(id, version));
  const embedding = new Float32Array(DIM);
  for (let i = 0; i < DIM; i++) embedding[i] = r.next() * 2 - 1;
  return { id, embedding, content: `${id}@${version}`, activation: version };
}

describe('updates during reads', () => {
  test('an iteration yields every memory present throughout exactly once while updates move them both ways', async (t) => {
    const dir = await tempDir(t);
    const store = await WarmStore.open(dir, { dimension: DIM, maintenanceIntervalMs: false });
    t.after(() => store.close());
    const ids = Array.from({ length: 100 }, (_, i) => `m${i}`);
    for (const id of ids) await store.put(record(id, 0));

    const seen = new Map<string, number>();
    const it = store.entries();
    for (let i = 0; i < 50; i++) {
      const n = await it.next();
      assert.equal(n.done, false);
      const m = n.value!;
      seen.set(m.id, (seen.get(m.id) ?? 0) + 1);
    }
    const passed = [...seen.keys()];
    const ahead = ids.filter((id) => !seen.has(id));
    // A hole behind the iteration, then updates: the first lands in that hole (ahead -> behind),
    // the others bounce between slots behind and ahead of it, of memories already yielded or not.
    await store.delete(passed[10]!);
    await store.put(record(ahead[30]!, 1));
    // Back ahead before the iteration has yielded it from behind.
    await store.put(record(ahead[30]!, 2));
    await store.put(record(passed[20]!, 1));
    await store.put(record(passed[20]!, 2));
    await store.put(record(ahead[10]!, 1));
    await store.put(record(passed[30]!, 1));
    await store.put(record(ahead[20]!, 1));
    await store.put(record(passed[30]!, 2));
    for (;;) {
      const n = await it.next();
      if (n.done === true) break;
      seen.set(n.value.id, (seen.get(n.value.id) ?? 0) + 1);
    }
    const twice = [...seen].filter(([, c]) => c > 1).map(([id]) => id);
    assert.deepEqual(twice, [], 'yielded more than once');
    const missing = ids.filter((id) => id !== passed[10] && !seen.has(id));
    assert.deepEqual(missing, [], 'present throughout, never yielded');
  });

  test('random updates, deletes and new memories between steps of an iteration: every memory never deleted is yielded once', async (t) => {
    const dir = await tempDir(t);
    const store = await WarmStore.open(dir, { dimension: DIM, maintenanceIntervalMs: false });
    t.after(() => store.close());
    let run = 0;
    const op = fc.oneof(
      fc.record({ kind: fc.constant('step' as const), n: fc.integer({ min: 1, max: 6 }) }),
      fc.record({ kind: fc.constant('update' as const), i: fc.nat() }),
      fc.record({ kind: fc.constant('delete' as const), i: fc.nat() }),
      fc.record({ kind: fc.constant('add' as const) }),
    );
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 40 }), fc.array(op, { maxLength: 60 }), async (n, ops) => {
        const space = `run${run++}`;
        const ids = Array.from({ length: n }, (_, i) => `m${i}`);
        for (const id of ids) await store.put({ ...record(id, 0), space });
        const deleted = new Set<string>();
        const seen = new Map<string, number>();
        const it = store.entries({ space });
        const note = (id: string): void => void seen.set(id, (seen.get(id) ?? 0) + 1);
        let version = 1;
        let added = 0;
        let done = false;
        for (const o of ops) {
          if (o.kind === 'step') {
            for (let k = 0; k < o.n && !done; k++) {
              const r = await it.next();
              if (r.done === true) done = true;
              else note(r.value.id);
            }
          } else if (o.kind === 'update') {
            const id = ids[o.i % ids.length]!;
            await store.put({ ...record(id, version++), space });
          } else if (o.kind === 'delete') {
            const id = ids[o.i % ids.length]!;
            if (await store.delete(id, { space })) deleted.add(id);
          } else {
            await store.put({ ...record(`new${added++}`, 0), space });
          }
        }
        while (!done) {
          const r = await it.next();
          if (r.done === true) done = true;
          else note(r.value.id);
        }
        for (const id of ids) {
          if (deleted.has(id)) continue;
          assert.equal(seen.get(id) ?? 0, 1, `${id} yielded ${seen.get(id) ?? 0} times`);
        }
        await store.deleteSpace(space);
      }),
      { numRuns: 60 },
    );
  });

  test('recall over more than one table chunk never loses a memory that concurrent puts rewrite', async (t) => {
    const dir = await tempDir(t);
    const store = await WarmStore.open(dir, { dimension: DIM, maintenanceIntervalMs: false });
    t.after(() => store.close());
    // More than one chunk of 8192 slots: the exact scan runs on the scan workers and awaits them,
    // so writes land while it runs.
    const n = 12_000;
    const records = Array.from({ length: n }, (_, i) => record(`m${i}`, 0));
    for (let i = 0; i < n; i += 1000) await Promise.all(records.slice(i, i + 1000).map((r) => store.put(r)));
    const norms = records.map((r) => Math.hypot(...r.embedding));
    const exact = (q: Float32Array, k: number): string[] => {
      const qn = Math.hypot(...q);
      return records
        .map((r, i) => {
          let dot = 0;
          for (let d = 0; d < DIM; d++) dot += r.embedding[d]! * q[d]!;
          return { id: r.id, s: dot / (norms[i]! * qn) };
        })
        .sort((a, b) => b.s - a.s)
        .slice(0, k)
        .map((h) => h.id);
    };

    let stop = false;
    let rewrites = 0;
    // Each writer rewrites memories with the values they already have: the right answer never changes.
    const writers = Array.from({ length: 8 }, async (_, w) => {
      const r = new Rng(hashSeed('writer', w));
      while (!stop) {
        await store.put(records[r.int(n)]!);
        rewrites++;
      }
    });
    const wrong: string[] = [];
    const q = new Rng(7);
    let recalls = 0;
    try {
      for (let i = 0; i < 150 || rewrites < 3000; i++) {
        recalls++;
        const near = records[q.int(n)]!.embedding;
        const query = near.map((v) => v + (q.next() - 0.5) * 0.5);
        const want = exact(query, 10);
        const got = (await store.recall(query, { k: 10 })).map((h) => h.memory.id);
        if (got.join() !== want.join()) wrong.push(`query ${i}: want ${want.join()} got ${got.join()}`);
      }
    } finally {
      stop = true;
      await Promise.all(writers);
    }
    assert.deepEqual(wrong, [], `${wrong.length} of ${recalls} recalls beside ${rewrites} rewrites`);
  });
});
