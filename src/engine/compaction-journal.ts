import type { ManifestCompaction } from '../format/manifest.js';

/**
 * The durable progress of the compaction run in flight, as its WAL entries describe it: which
 * victims, which are done, how far each output segment is committed. Checkpoints write it to the
 * MANIFEST, so a crash mid-run can be reported, its uncommitted output cut, and the rest resumed.
 */
export class CompactionJournal {
  current: ManifestCompaction | null;
  #nextRunId: number;

  constructor(current: ManifestCompaction | null, nextRunId: number) {
    this.current = current;
    this.#nextRunId = nextRunId;
  }

  get nextRunId(): number {
    return this.#nextRunId;
  }

  /** Hands out a run id (never reused, also across restarts: the MANIFEST keeps the counter). */
  allocateRunId(): number {
    return this.#nextRunId++;
  }

  begin(runId: number, victims: number[]): void {
    this.current = { runId, victims, victimsDone: [], outputs: {}, committedChunks: 0 };
    this.#nextRunId = Math.max(this.#nextRunId, runId + 1);
  }

  chunk(runId: number, outSeg: number, outEnd: number, victimsDone: readonly number[]): void {
    const c = this.current;
    if (!c || c.runId !== runId) return;
    if (outSeg !== 0) c.outputs[String(outSeg)] = outEnd;
    c.victimsDone.push(...victimsDone);
    c.committedChunks++;
  }

  end(): void {
    this.current = null;
  }

  /** Output segments of the run in flight: not to be collected while it may still append. */
  outputs(): Set<number> {
    return new Set(this.current ? Object.keys(this.current.outputs).map(Number) : []);
  }

  snapshot(): ManifestCompaction | null {
    return this.current ? structuredClone(this.current) : null;
  }
}
