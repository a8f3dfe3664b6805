import { setImmediate as yieldLoop } from 'node:timers/promises';

/** What busy readers did since they started or were last `reset`. */
export interface BusyReaders {
  readonly reads: number;
  readonly readMaxMs: number;
  /** Starts counting again (after a warm-up). */
  reset(): void;
  /** Stops the readers and waits for them; rejects if one read a live memory as absent. */
  stop(): Promise<void>;
}

/**
 * R readers of random live memories, each reading with `get` and yielding to the event loop
 * (setImmediate) after every 20 reads: the load the compaction and put tools measure behind.
 */
export function busyReaders(
  store: { get(id: string): Promise<unknown> },
  live: readonly string[],
  count: number,
): BusyReaders {
  let stopped = false;
  let reads = 0;
  let readMaxMs = 0;
  const loops = Array.from({ length: count }, async (_, k) => {
    let r = k + 1;
    while (!stopped) {
      for (let i = 0; i < 20 && !stopped; i++) {
        r = (r * 1103515245 + 12345) % 2147483648;
        const t = performance.now();
        const m = await store.get(live[r % live.length]!);
        readMaxMs = Math.max(readMaxMs, performance.now() - t);
        if (m === undefined) throw new Error('a live memory read as absent');
        reads++;
      }
      await yieldLoop();
    }
  });
  return {
    get reads() {
      return reads;
    },
    get readMaxMs() {
      return readMaxMs;
    },
    reset() {
      reads = 0;
      readMaxMs = 0;
    },
    async stop() {
      stopped = true;
      await Promise.all(loops);
    },
  };
}
