/**
 * Whether a compaction run may start, and with which victims: enough memory budget for its
 * buffers and enough free disk for the live bytes it copies plus a headroom. Decided before anything is written; a refusal
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
  /** `compaction.diskHeadroomBytes`: free space left over after the taken victims are copied. */
  diskHeadroomBytes: number;
  /** The store directory, named in a disk refusal. */
  dir: string;
}

/** Either the check passes, or the message and details of its INSUFFICIENT_RESOURCES error. */
export type Refusal = { ok: false; message: string; details: WarmStoreErrorDetails };
export type MemoryVerdict = { ok: true } | Refusal;
/** The run may start with the victims at these indexes (in the picker's order), or it is refused. */
export type ResourceVerdict = { ok: true; take: number[] } | Refusal;

const OK: MemoryVerdict = { ok: true };

/**
 * The memory half alone. The caller asks the file system for free bytes only when this passes, so
 * a budget refusal needs no I/O at all.
 */
export function checkMemoryBudget(
  victimLiveBytes: readonly number[],
  memoryBudgetBytes: number,
): MemoryVerdict {
  if (victimLiveBytes.length === 0 || memoryBudgetBytes >= MIN_MEMORY_BUDGET) return OK;
  return {
    ok: false,
    message: `compaction.memoryBudgetBytes ${memoryBudgetBytes} is below the minimum of ${MIN_MEMORY_BUDGET}`,
    details: { budget: memoryBudgetBytes, minimum: MIN_MEMORY_BUDGET },
  };
}

/**
 * Memory first, then disk. A victim's output needs room for its live bytes until the victim is
 * deleted at the end of the run, so the run takes, in the picker's order, every victim whose live
 * bytes still fit in the free space less the headroom, and skips the others (a later run takes
 * them once this one freed space). On a nearly full disk that still frees space: a segment with
 * little live data costs little room, and one with nothing live costs none. Refused only when not
 * even one victim fits.
 */
export function checkResources(input: ResourceInput): ResourceVerdict {
  const memory = checkMemoryBudget(input.victimLiveBytes, input.memoryBudgetBytes);
  if (!memory.ok) return memory;
  const room = input.freeBytes - input.diskHeadroomBytes;
  const take: number[] = [];
  let used = 0;
  input.victimLiveBytes.forEach((live, i) => {
    if (used + live <= room) {
      take.push(i);
      used += live;
    }
  });
  if (take.length > 0 || input.victimLiveBytes.length === 0) return { ok: true, take };
  const smallest = Math.min(...input.victimLiveBytes);
  const need = smallest + input.diskHeadroomBytes;
  return {
    ok: false,
    message: `compaction needs ${need} free bytes (smallest victim live ${smallest} + headroom ${input.diskHeadroomBytes}), ${input.freeBytes} available`,
    details: { free: input.freeBytes, need, file: input.dir },
  };
}
