import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { attachStoreLogging } from '../../../src/server/logging.js';
import type { CompactProgress } from '../../../src/types.js';
import type { MetricsSource } from '../../../src/metrics/index.js';

type Line = { level: string; obj: Record<string, unknown>; msg: string | undefined };

function capture(): {
  lines: Line[];
  logger: Record<'info' | 'warn' | 'error', (o: object, m?: string) => void>;
} {
  const lines: Line[] = [];
  const at =
    (level: string) =>
    (obj: object, msg?: string): void => {
      lines.push({ level, obj: obj as Record<string, unknown>, msg });
    };
  return { lines, logger: { info: at('info'), warn: at('warn'), error: at('error') } };
}

const progress = (phase: CompactProgress['phase'], bytesCopied: number): CompactProgress => ({
  phase,
  segmentsDone: 0,
  segmentsTotal: 2,
  bytesCopied,
  bytesToCopy: 100,
  recordsMoved: 0,
});

describe('compaction logging', () => {
  it('logs start, phase changes (throttled within a phase), the result and slow pauses', () => {
    const store = new EventEmitter() as EventEmitter & Pick<MetricsSource, 'on' | 'off'>;
    const { lines, logger } = capture();
    const detach = attachStoreLogging(store, logger, { progressIntervalMs: 60_000, slowPauseMs: 50 });
    store.emit('compactionStart', { runId: 7, victims: 2, resumed: true });
    store.emit('compactionProgress', progress('plan', 0));
    store.emit('compactionProgress', progress('copy', 10));
    store.emit('compactionProgress', progress('copy', 20));
    store.emit('compactionProgress', progress('copy', 30));
    store.emit('compactionProgress', progress('commit', 100));
    store.emit('compactionPause', 10);
    store.emit('compactionPause', 120);
    store.emit('compactionEnd', { outcome: 'aborted', error: new Error('stop') });
    store.emit('compactionEnd', { outcome: 'failure', error: new Error('boom') });

    assert.deepEqual(
      lines.map((l) => `${l.level} ${l.msg}`),
      [
        'info compaction started',
        'info compaction progress',
        'info compaction progress',
        'info compaction progress',
        'warn compaction held the event loop longer than expected',
        'warn compaction aborted',
        'error compaction failed',
      ],
    );
    assert.deepEqual(lines[0]?.obj, { runId: 7, victims: 2, resumed: true });
    assert.equal(lines[2]?.obj['phase'], 'copy');
    detach();
    store.emit('compactionStart', { runId: 8, victims: 1, resumed: false });
    assert.equal(lines.length, 7, 'detached');
  });
});
