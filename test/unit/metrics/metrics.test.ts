import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { Registry } from 'prom-client';
import { createMetrics, type MetricsSource } from '../../../src/metrics/index.js';
import type { CompactionStats, ContentStorageStats, IndexStatus } from '../../../src/types.js';
import { WarmStoreError } from '../../../src/errors.js';
import { parsePrometheus, sample } from './prom-text.js';

class Source extends EventEmitter implements MetricsSource {
  size = 3;
  closed = false;
  isCompacting = false;
  stats: ContentStorageStats = {
    totalBytes: 1000,
    liveBytes: 250,
    deadBytes: 750,
    fragmentationRatio: 0.75,
    segments: 4,
  };
  contentStorageStats(): ContentStorageStats {
    if (this.closed) throw new WarmStoreError('STORE_CLOSED', 'closed');
    return this.stats;
  }
}

const stats = (over: Partial<CompactionStats> = {}): CompactionStats => ({
  durationMs: 1500,
  bytesBefore: 1000,
  bytesAfter: 250,
  bytesReclaimed: 750,
  recordsMoved: 10,
  segmentsCompacted: 3,
  maxPauseMs: 2,
  resumed: false,
  slotsMoved: 0,
  recordBytesReclaimed: 0,
  ...over,
});

describe('metrics', () => {
  it('reads gauges from the store at scrape time', async () => {
    const src = new Source();
    const m = createMetrics(src, { defaultMetrics: false });
    let text = await m.metrics();
    assert.equal(sample(text, 'warmstore_content_bytes_total'), 1000);
    assert.equal(sample(text, 'warmstore_content_live_bytes'), 250);
    assert.equal(sample(text, 'warmstore_content_dead_bytes'), 750);
    assert.equal(sample(text, 'warmstore_fragmentation_ratio'), 0.75);
    assert.equal(sample(text, 'warmstore_content_segments'), 4);
    assert.equal(sample(text, 'warmstore_memories'), 3);
    src.size = 5;
    src.stats = { ...src.stats, totalBytes: 2000 };
    src.isCompacting = true;
    text = await m.metrics();
    assert.equal(sample(text, 'warmstore_memories'), 5);
    assert.equal(sample(text, 'warmstore_content_bytes_total'), 2000);
    assert.equal(sample(text, 'warmstore_compaction_in_progress'), 1);
  });

  it('reads the recall index state at scrape time', async () => {
    const src = new Source() as Source & { indexStatus: IndexStatus };
    src.indexStatus = {
      state: 'building',
      indexed: 40,
      tail: 7,
      built: 40,
      toBuild: 160,
      searches: 0,
      resident: 40,
      merges: 0,
    };
    const m = createMetrics(src, { defaultMetrics: false });
    let text = await m.metrics();
    assert.equal(sample(text, 'warmstore_index_ready'), 0);
    assert.equal(sample(text, 'warmstore_index_building'), 1);
    assert.equal(sample(text, 'warmstore_index_vectors'), 40);
    assert.equal(sample(text, 'warmstore_index_lag'), 7);
    assert.equal(sample(text, 'warmstore_index_build_progress_ratio'), 0.25);
    assert.equal(sample(text, 'warmstore_index_recall_estimate'), -1, 'not sampled yet');
    src.indexStatus = {
      state: 'ready',
      indexed: 160,
      tail: 0,
      built: 160,
      toBuild: 160,
      searches: 3,
      resident: 10,
      merges: 1,
      recallEstimate: 0.97,
    };
    text = await m.metrics();
    assert.equal(sample(text, 'warmstore_index_ready'), 1);
    assert.equal(sample(text, 'warmstore_index_building'), 0);
    assert.equal(sample(text, 'warmstore_index_build_progress_ratio'), 1);
    assert.equal(sample(text, 'warmstore_index_searches'), 3);
    assert.equal(sample(text, 'warmstore_index_resident_vectors'), 10);
    assert.equal(sample(text, 'warmstore_index_merges'), 1);
    assert.equal(sample(text, 'warmstore_index_recall_estimate'), 0.97);
  });

  it('keeps the last values instead of failing the scrape once the store is closed', async () => {
    const src = new Source();
    const m = createMetrics(src, { defaultMetrics: false });
    await m.metrics();
    src.closed = true;
    const text = await m.metrics();
    assert.equal(sample(text, 'warmstore_content_bytes_total'), 1000);
  });

  it('counts operations and their durations by op, with every op present from the start', async () => {
    const src = new Source();
    const m = createMetrics(src, { defaultMetrics: false });
    let text = await m.metrics();
    for (const op of ['put', 'get', 'delete', 'recall']) {
      assert.equal(sample(text, 'warmstore_operations_total', { op }), 0, op);
    }
    src.emit('op', 'put', 0.2);
    src.emit('op', 'put', 3);
    src.emit('op', 'get', 0.004);
    text = await m.metrics();
    assert.equal(sample(text, 'warmstore_operations_total', { op: 'put' }), 2);
    assert.equal(sample(text, 'warmstore_operations_total', { op: 'get' }), 1);
    assert.equal(sample(text, 'warmstore_operation_duration_seconds_count', { op: 'put' }), 2);
    assert.ok(
      Math.abs((sample(text, 'warmstore_operation_duration_seconds_sum', { op: 'put' }) ?? 0) - 0.0032) <
        1e-9,
    );
    // 0.2 ms falls in the 0.00025 s bucket, 3 ms does not.
    assert.equal(
      sample(text, 'warmstore_operation_duration_seconds_bucket', { op: 'put', le: '0.00025' }),
      1,
    );
  });

  it('counts every operation, across batches and whichever way the metrics are read', async () => {
    const src = new Source();
    const m = createMetrics(src, { defaultMetrics: false });
    // More than one batch, with some left over: 2.5 batches of 1024 gets at 0.02 ms, 1 put.
    for (let i = 0; i < 2560; i++) src.emit('op', 'get', 0.02);
    src.emit('op', 'put', 2);
    const text = await m.metrics();
    assert.equal(sample(text, 'warmstore_operations_total', { op: 'get' }), 2560);
    assert.equal(sample(text, 'warmstore_operation_duration_seconds_count', { op: 'get' }), 2560);
    assert.equal(
      sample(text, 'warmstore_operation_duration_seconds_bucket', { op: 'get', le: '0.000025' }),
      2560,
    );
    assert.equal(sample(text, 'warmstore_operations_total', { op: 'put' }), 1);
    // Read through the metric objects themselves, not the registry.
    src.emit('op', 'get', 0.02);
    const total = await m.operationsTotal.get();
    assert.equal(total.values.find((v) => v.labels['op'] === 'get')?.value, 2561);
    src.emit('op', 'get', 0.02);
    const duration = await m.operationDuration.get();
    const count = duration.values.find(
      (v) => v.labels['op'] === 'get' && v.metricName === 'warmstore_operation_duration_seconds_count',
    );
    assert.equal(count?.value, 2562);
    // Operations kept when the metrics detach are counted, not lost.
    src.emit('op', 'delete', 1);
    m.detach();
    assert.equal(sample(await m.metrics(), 'warmstore_operations_total', { op: 'delete' }), 1);
  });

  it('counts compactions by result, reclaimed bytes, durations and pauses', async () => {
    const src = new Source();
    const m = createMetrics(src, { defaultMetrics: false });
    src.emit('compactionStart', { runId: 1, victims: 3, resumed: false });
    src.emit('compactionPause', 4);
    src.emit('compactionPause', 0.5);
    src.emit('compactionEnd', { outcome: 'success', stats: stats() });
    src.emit('compactionStart', { runId: 2, victims: 1, resumed: false });
    src.emit('compactionEnd', { outcome: 'aborted', error: new Error('aborted') });
    src.emit('compactionStart', { runId: 3, victims: 1, resumed: false });
    src.emit('compactionEnd', { outcome: 'failure', error: new Error('boom') });
    const text = await m.metrics();
    assert.equal(sample(text, 'warmstore_compactions_total', { result: 'success' }), 1);
    assert.equal(sample(text, 'warmstore_compactions_total', { result: 'aborted' }), 1);
    assert.equal(sample(text, 'warmstore_compactions_total', { result: 'failure' }), 1);
    assert.equal(sample(text, 'warmstore_bytes_reclaimed_total'), 750);
    assert.equal(sample(text, 'warmstore_compaction_duration_seconds_sum', { result: 'success' }), 1.5);
    assert.equal(sample(text, 'warmstore_compaction_duration_seconds_count', { result: 'aborted' }), 1);
    assert.equal(sample(text, 'warmstore_compaction_duration_seconds_count', { result: 'failure' }), 1);
    assert.equal(sample(text, 'warmstore_compaction_pause_seconds_count'), 2);
    assert.equal(sample(text, 'warmstore_compaction_pause_seconds_bucket', { le: '0.001' }), 1);
  });

  it('detach() stops counting', async () => {
    const src = new Source();
    const m = createMetrics(src, { defaultMetrics: false });
    m.detach();
    src.emit('op', 'put', 1);
    assert.equal(sample(await m.metrics(), 'warmstore_operations_total', { op: 'put' }), 0);
    assert.equal(src.listenerCount('op'), 0);
  });

  it('uses a private registry with default process metrics, never the global one', async () => {
    const a = createMetrics(new Source());
    const b = createMetrics(new Source());
    assert.notEqual(a.registry, b.registry);
    const text = await a.metrics();
    assert.ok(parsePrometheus(text).some((s) => s.name === 'process_cpu_user_seconds_total'));
    assert.match(a.contentType, /^text\/plain/);
    const { register } = await import('prom-client');
    assert.equal(register.getSingleMetric('warmstore_memories'), undefined);
  });

  it('registers into a given registry with default labels', async () => {
    const registry = new Registry();
    createMetrics(new Source(), { registry, defaultMetrics: false, defaultLabels: { store: 'main' } });
    const text = await registry.metrics();
    assert.equal(sample(text, 'warmstore_memories', { store: 'main' }), 3);
  });

  it('every warmstore_ series is documented (HELP and TYPE)', async () => {
    const text = await createMetrics(new Source(), { defaultMetrics: false }).metrics();
    const names = new Set(parsePrometheus(text).map((s) => s.name.replace(/_(bucket|sum|count)$/, '')));
    for (const n of names) {
      assert.match(text, new RegExp(`# HELP ${n} `), n);
      assert.match(text, new RegExp(`# TYPE ${n} `), n);
    }
  });
});
