import type { MemoryRecord, WarmStoreOptions } from '../../src/index.js';
import { embeddingFor } from './random.js';

export const FULL_DISK_DIM = 8;
const MiB = 1024 * 1024;

/** The store of the full-disk tests: small segments and reserve, so a 16-24 MiB tmpfs fills. */
export const FULL_DISK_OPTS: WarmStoreOptions = {
  dimension: FULL_DISK_DIM,
  segmentBytes: 1 * MiB,
  diskReserveBytes: 2 * MiB,
  // Checkpoints as the disk fills: the record files' growth since the last one must fit in the
  // reserve for the checkpoint that ends a compaction (see the operations runbook).
  walCheckpointBytes: 64 * 1024,
  maintenanceIntervalMs: false,
  maintenance: { startupCompaction: 'off' },
};

/** Record `n`: 3000 bytes of content that name it, so a wrong read back cannot pass. */
export function fullDiskRecord(n: number): MemoryRecord {
  const id = `k${n}`;
  return {
    id,
    content: `${id}:`.padEnd(3000, String.fromCharCode(97 + (n % 26))),
    embedding: embeddingFor(n, FULL_DISK_DIM),
  };
}
