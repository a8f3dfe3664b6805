import type { CompactionPhase, WarmStoreEvents, WarmStoreLogger } from '../types.js';
import type { MetricsSource } from '../metrics/index.js';

export interface StoreLoggingOptions {
  /** Minimum interval between two progress lines within one phase. @default 5000 */
  progressIntervalMs?: number;
  /** A compaction pause longer than this is logged as a warning (no step may block 100 ms). @default 100 */
  slowPauseMs?: number;
}

/**
 * Logs compaction start, progress and result from the store's events. Progress is logged on each
 * phase change and then at most every `progressIntervalMs`, so a long copy leaves a trail without
 * a line per chunk. Returns a function that removes the listeners.
 */
export function attachStoreLogging(
  store: Pick<MetricsSource, 'on' | 'off'>,
  logger: WarmStoreLogger,
  options: StoreLoggingOptions = {},
): () => void {
  const interval = options.progressIntervalMs ?? 5000;
  const slowPauseMs = options.slowPauseMs ?? 100;
  let lastPhase: CompactionPhase | undefined;
  let lastLogAt = 0;

  const onStart: WarmStoreEvents['compactionStart'] = (info) => {
    lastPhase = undefined;
    lastLogAt = 0;
    logger.info({ runId: info.runId, victims: info.victims, resumed: info.resumed }, 'compaction started');
  };
  const onProgress: WarmStoreEvents['compactionProgress'] = (p) => {
    const now = Date.now();
    if (p.phase === lastPhase && now - lastLogAt < interval) return;
    lastPhase = p.phase;
    lastLogAt = now;
    logger.info(
      {
        phase: p.phase,
        segmentsDone: p.segmentsDone,
        segmentsTotal: p.segmentsTotal,
        bytesCopied: p.bytesCopied,
        bytesToCopy: p.bytesToCopy,
        recordsMoved: p.recordsMoved,
      },
      'compaction progress',
    );
  };
  const onEnd: WarmStoreEvents['compactionEnd'] = (result) => {
    if (result.outcome === 'success') {
      logger.info({ ...result.stats }, 'compaction finished');
    } else if (result.outcome === 'aborted') {
      logger.warn({ err: result.error }, 'compaction aborted');
    } else if (result.outcome === 'refused') {
      logger.warn({ err: result.error }, 'compaction refused');
    } else {
      logger.error({ err: result.error }, 'compaction failed');
    }
  };
  const onPause: WarmStoreEvents['compactionPause'] = (ms) => {
    if (ms > slowPauseMs) logger.warn({ pauseMs: ms }, 'compaction held the event loop longer than expected');
  };

  store.on('compactionStart', onStart);
  store.on('compactionProgress', onProgress);
  store.on('compactionEnd', onEnd);
  store.on('compactionPause', onPause);
  return () => {
    store.off('compactionStart', onStart);
    store.off('compactionProgress', onProgress);
    store.off('compactionEnd', onEnd);
    store.off('compactionPause', onPause);
  };
}
