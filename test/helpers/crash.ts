import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { WarmStore } from '../../src/index.js';
import type { WarmStoreOptions } from '../../src/types.js';
import type { AckModel, VerifyResult } from './ack-model.js';
import type { SpawnedChild } from './spawn.js';

export { sleep };

export const CRASH_DIM = 16;
export const CRASH_SEGMENT_BYTES = 64 * 1024;

/** Options every crash test opens its stores with: small dimension and segments, no background work. */
export function crashStoreOptions(extra: WarmStoreOptions = {}): WarmStoreOptions {
  return {
    dimension: CRASH_DIM,
    segmentBytes: CRASH_SEGMENT_BYTES,
    maintenanceIntervalMs: false,
    maintenance: { startupCompaction: 'off' },
    ...extra,
  };
}

/** The base seed of a run: WARMSTORE_SEED replays a failure; otherwise a fresh one, logged. */
export function runSeed(label: string): number {
  const fromEnv = process.env.WARMSTORE_SEED;
  const seed =
    fromEnv !== undefined && fromEnv !== '' ? Number(fromEnv) : Math.floor(Math.random() * 1_000_000);
  console.log(`[${label}] seed ${seed} (replay with WARMSTORE_SEED=${seed})`);
  return seed;
}

/** Fails on any `error ...` line: the child saw an op fail or a read-your-writes mismatch. */
export function assertNoChildErrors(child: SpawnedChild, context: string): void {
  const errors = child.lines.filter((l) => l.startsWith('error'));
  assert.deepEqual(errors, [], `${context}: child reported errors; stderr:\n${child.stderr().slice(-3000)}`);
}

export interface ReopenCheck {
  verify: VerifyResult;
  problems: number;
}

/**
 * Reopens the store in this process, checks every acknowledged write against the model, runs the
 * store's own fsck, optionally compacts and checks again, and closes.
 */
export async function reopenAndVerify(
  dir: string,
  model: AckModel,
  context: string,
  options: { compact?: boolean; storeOptions?: WarmStoreOptions } = {},
): Promise<ReopenCheck> {
  const store = await WarmStore.open(dir, crashStoreOptions(options.storeOptions));
  try {
    const verify = await model.verify(store, `${context} (after reopen)`);
    const report = await store.verify();
    assert.ok(
      report.ok,
      `${context}: verify() found problems: ${JSON.stringify(report.problems.slice(0, 5))}`,
    );
    if (options.compact === true) {
      await store.compact({ force: true });
      await model.verify(store, `${context} (after compact)`);
      const again = await store.verify();
      assert.ok(
        again.ok,
        `${context}: verify() after compact: ${JSON.stringify(again.problems.slice(0, 5))}`,
      );
    }
    return { verify, problems: report.problems.length };
  } finally {
    await store.close();
  }
}
