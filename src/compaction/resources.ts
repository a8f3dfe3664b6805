/**
 * Whether a compaction run may start: enough memory budget for its buffers and enough free disk
 * for every live byte it copies plus a headroom. Decided before anything is written; a refusal
 * becomes an INSUFFICIENT_RESOURCES error. Pure, so the boundaries are tested from tables.
 */
import type { WarmStoreErrorDetails } from '../errors.js';

/** Smallest budget that still makes progress: a read window and an output buffer. */
export const MIN_MEMORY_BUDGET = 256 * 1024;

export interface ResourceInput {
  /** Live bytes of each victim; empty when the run has nothing to do (then nothing is checked). */
  victimLiveBytes: readonly number[];
  /** `compaction.memoryBudgetBytes`. */
  memoryBudgetBytes: number;
  /** Free bytes on the file system of the store directory. */
  freeBytes: number;
  /** `compaction.diskHeadroomBytes`: free space left over after every live byte is copied. */
  diskHeadroomBytes: number;
  /** The store directory, named in a disk refusal. */
  dir: string;
}

/** Either the run may start, or the message and details of its INSUFFICIENT_RESOURCES error. */
export type ResourceVerdict = { ok: true } | { ok: false; message: string; details: WarmStoreErrorDetails };

const OK: ResourceVerdict = { ok: true };

/**
 * The memory half alone. The caller asks the file system for free bytes only when this passes, so
 * a budget refusal needs no I/O at all.
 */
export function checkMemoryBudget(
  victimLiveBytes: readonly number[],
  memoryBudgetBytes: number,
): ResourceVerdict {
  if (victimLiveBytes.length === 0 || memoryBudgetBytes >= MIN_MEMORY_BUDGET) return OK;
  return {
    ok: false,
    message: `compaction.memoryBudgetBytes ${memoryBudgetBytes} is below the minimum of ${MIN_MEMORY_BUDGET}`,
    details: { budget: memoryBudgetBytes, minimum: MIN_MEMORY_BUDGET },
  };
}

/** Memory first, then disk: the output needs room for every live byte plus the headroom. */
export function checkResources(input: ResourceInput): ResourceVerdict {
  const memory = checkMemoryBudget(input.victimLiveBytes, input.memoryBudgetBytes);
  if (!memory.ok || input.victimLiveBytes.length === 0) return memory;
  const live = input.victimLiveBytes.reduce((n, b) => n + b, 0);
  const need = live + input.diskHeadroomBytes;
  if (input.freeBytes >= need) return OK;
  return {
    ok: false,
    message: `compaction needs ${need} free bytes (live ${live} + headroom ${input.diskHeadroomBytes}), ${input.freeBytes} available`,
    details: { free: input.freeBytes, need, file: input.dir },
  };
}
