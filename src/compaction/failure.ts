import { WarmStoreError } from '../errors.js';

/** Stops the run at the next window or victim once the caller aborted. */
export function throwIfAborted(signal: AbortSignal): void {
  if (signal.aborted) throw abortError(signal);
}

function abortError(signal: AbortSignal): Error {
  const reason: unknown = signal.reason;
  return reason instanceof Error
    ? reason
    : new Error(`compaction aborted${reason ? `: ${String(reason)}` : ''}`);
}

/** What the caller of a failed or aborted run gets: COMPACTION_FAILED, the cause attached. */
export function wrapFailure(err: unknown, signal: AbortSignal): WarmStoreError {
  if (err instanceof WarmStoreError && err.code === 'COMPACTION_FAILED') return err;
  if (signal.aborted) {
    return new WarmStoreError('COMPACTION_FAILED', 'compaction aborted', { aborted: true }, err);
  }
  const msg = err instanceof Error ? err.message : String(err);
  return new WarmStoreError('COMPACTION_FAILED', `compaction failed: ${msg}`, { aborted: false }, err);
}
