import type { CompactProgress, CompactionPhase } from '../types.js';
import type { CompactorHost } from './host.js';

/** The progress of one run, reported to the caller's callback and as a store event. */
export class ProgressReporter {
  readonly state: CompactProgress;
  readonly #host: Pick<CompactorHost, 'emit'>;
  readonly #onProgress: ((p: CompactProgress) => void) | undefined;

  constructor(
    host: Pick<CompactorHost, 'emit'>,
    onProgress: ((p: CompactProgress) => void) | undefined,
    segmentsTotal: number,
    bytesToCopy: number,
  ) {
    this.#host = host;
    this.#onProgress = onProgress;
    this.state = {
      phase: 'plan',
      segmentsDone: 0,
      segmentsTotal,
      bytesCopied: 0,
      bytesToCopy,
      recordsMoved: 0,
    };
  }

  /** Enters `phase` and reports a copy of the state (listeners never see it change under them). */
  report(phase: CompactionPhase): void {
    this.state.phase = phase;
    this.#onProgress?.({ ...this.state });
    this.#host.emit('compactionProgress', { ...this.state });
  }
}
