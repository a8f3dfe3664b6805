/**
 * How a compaction run splits its memory budget: a read window, an output buffer of the same size,
 * candidate arrays and the staged remap table, a quarter each. Nothing scales with store size.
 */

const MAX_WINDOW = 8 * 1024 * 1024;
const MIN_WINDOW = 64 * 1024;

export interface BufferSizes {
  /** Bytes read from a victim at a time; also the largest entry copied through the buffers. */
  window: number;
  /** Output buffer bytes. */
  outCap: number;
  /** Remaps staged before a chunk commit. */
  maxRemaps: number;
  /** Live entries collected per window before the window is halved. */
  maxCand: number;
}

export function splitBudget(memoryBudgetBytes: number): BufferSizes {
  const quarter = Math.floor(memoryBudgetBytes / 4);
  const window = Math.max(MIN_WINDOW, Math.min(MAX_WINDOW, quarter));
  return {
    window,
    outCap: window,
    maxRemaps: Math.max(256, Math.min(8192, Math.floor(quarter / 128))),
    // Capped at 2^20 so a (relative offset, index) pair packs exactly into one float64 sort key.
    maxCand: Math.min(1 << 20, Math.max(256, Math.floor(quarter / 24))),
  };
}
