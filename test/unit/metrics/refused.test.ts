/**
 * A compaction refused for lack of resources (INSUFFICIENT_RESOURCES) is a compaction outcome an
 * operator must see: the store reports it through `compactionEnd` and the metrics count it under
 * `warmstore_compactions_total{result="refused"}`, apart from failures and aborts.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { WarmStore, WarmStoreError } from '../../../src/index.js';
import { createMetrics } from '../../../src/metrics/index.js';
import type { WarmStoreEvents } from '../../../src/types.js';
import { tempDir } from '../../helpers/tmp.js';
import { sample } from './prom-text.js';

type EndResult = Parameters<WarmStoreEvents['compactionEnd']>[0];

const DIM = 8;

function embedding(i: number): Float32Array {
  const v = new Float32Array(DIM);
  for (let d = 0; d < DIM; d++) v[d] = Math.sin(i * 7 + d);
  return v;
}

/** A store with dead bytes in sealed segments, so a forced compaction has victims. */
async function fragmentedStore(dir: string, memoryBudgetBytes: number): Promise<WarmStore> {
  const store = await WarmStore.open(dir, {
    dimension: DIM,
    segmentBytes: 16 * 1024,
    maintenanceIntervalMs: false,
    maintenance: { startupCompaction: 'off' },
    compaction: { memoryBudgetBytes },
  });
  const text = 'x'.repeat(400);
  for (let i = 0; i < 200; i++) {
    await store.put({ id: `m${i}`, embedding: embedding(i), content: `${i}:${text}` });
  }
  for (let i = 0; i < 200; i += 2) await store.delete(`m${i}`);
  return store;
}

describe('metrics: refused compactions', () => {
  it('counts an INSUFFICIENT_RESOURCES refusal as result="refused", once, and nothing else', async (t) => {
    const dir = await tempDir(t);
    // 1000 bytes is far below the minimum memory budget, so every compaction with victims is refused.
    const store = await fragmentedStore(dir, 1000);
    t.after(() => store.close());
    const metrics = createMetrics(store, { defaultMetrics: false });
    t.after(() => metrics.detach());
    const ends: EndResult[] = [];
    store.on('compactionEnd', (r) => ends.push(r));

    let thrown: unknown;
    await assert.rejects(store.compact({ force: true }), (err: unknown) => {
      thrown = err;
      return WarmStoreError.is(err, 'INSUFFICIENT_RESOURCES');
    });

    assert.equal(ends.length, 1, 'one compactionEnd for the refused run');
    const end = ends[0]!;
    assert.equal(end.outcome, 'refused');
    assert.equal(end.error, thrown, 'the event carries the error the caller got');

    const text = await metrics.metrics();
    assert.equal(sample(text, 'warmstore_compactions_total', { result: 'refused' }), 1);
    for (const result of ['success', 'failure', 'aborted']) {
      assert.equal(sample(text, 'warmstore_compactions_total', { result }), 0, result);
      assert.equal(sample(text, 'warmstore_compaction_duration_seconds_count', { result }), 0, result);
    }

    // A second refusal counts again: the counter follows every refusal, not the first only.
    await assert.rejects(store.compact({ force: true }), (err: unknown) =>
      WarmStoreError.is(err, 'INSUFFICIENT_RESOURCES'),
    );
    assert.equal(sample(await metrics.metrics(), 'warmstore_compactions_total', { result: 'refused' }), 2);
  });

  it('exposes the refused series at zero before any compaction', async (t) => {
    const dir = await tempDir(t);
    const store = await WarmStore.open(dir, { dimension: DIM, maintenanceIntervalMs: false });
    t.after(() => store.close());
    const metrics = createMetrics(store, { defaultMetrics: false });
    t.after(() => metrics.detach());
    assert.equal(sample(await metrics.metrics(), 'warmstore_compactions_total', { result: 'refused' }), 0);
  });

  it('a compaction with nothing to do is a success, not a refusal, even with a tiny budget', async (t) => {
    const dir = await tempDir(t);
    const store = await WarmStore.open(dir, {
      dimension: DIM,
      maintenanceIntervalMs: false,
      compaction: { memoryBudgetBytes: 1000 },
    });
    t.after(() => store.close());
    const metrics = createMetrics(store, { defaultMetrics: false });
    t.after(() => metrics.detach());
    await store.put({ id: 'a', embedding: embedding(1), content: 'kept' });
    const stats = await store.compact({ force: true });
    assert.equal(stats.segmentsCompacted, 0);
    const text = await metrics.metrics();
    assert.equal(sample(text, 'warmstore_compactions_total', { result: 'success' }), 1);
    assert.equal(sample(text, 'warmstore_compactions_total', { result: 'refused' }), 0);
  });
});
