import type { Span } from '@opentelemetry/api';
import type { Segment } from '../content/segment.js';
import type { WarmStoreError } from '../errors.js';
import { WalType } from '../wal/entries.js';
import type { ChunkCommitter } from './committer.js';
import { wrapFailure } from './failure.js';
import type { CompactorHost } from './host.js';
import type { OutputWriter } from './output.js';

export interface RollbackScope {
  host: Pick<CompactorHost, 'submit' | 'logger' | 'emit'>;
  signal: AbortSignal;
  span: Span;
  runId: number;
  victims: readonly Segment[];
  writer: OutputWriter;
  committer: ChunkCommitter;
  /** Entry bytes the run had copied when it stopped. */
  bytesCopied: number;
}

/**
 * Ends a run that failed or was aborted after it began: the store keeps every committed chunk (each
 * left it consistent) and loses only uncommitted copies. Returns the error for the caller.
 */
export async function rollback(s: RollbackScope, err: unknown): Promise<WarmStoreError> {
  // A commit still in flight settles first: the truncation below must not race its fsync.
  await s.committer.drain();
  s.span.recordException(err as Error);
  s.span.end();
  const aborted = s.signal.aborted;
  await s.writer.cutUncommitted();
  for (const v of s.victims) v.pins--;
  await s.host
    .submit({ type: WalType.CompactEnd, runId: s.runId, outcome: aborted ? 2 : 1 })
    .catch(() => undefined);
  const error = wrapFailure(err, s.signal);
  s.host.logger?.[aborted ? 'warn' : 'error'](
    { runId: s.runId, err: error, recordsMoved: s.committer.recordsMoved, bytesCopied: s.bytesCopied },
    'compaction stopped',
  );
  s.host.emit('compactionEnd', { outcome: aborted ? 'aborted' : 'failure', error });
  return error;
}
