import { setImmediate as tick } from 'node:timers/promises';
import { trace } from '@opentelemetry/api';
import { ENTRY_HEADER_BYTES, Segment, entryBytes, verifyEntry, writeFully } from '../content/segment.js';
import { WarmStoreError } from '../errors.js';
import { crc32c } from '../format/crc.js';
import type { WsFileSystem } from '../fs/types.js';
import { CHUNK_SLOTS, type RecordTable } from '../records/table.js';
import type {
  CompactProgress,
  CompactionPhase,
  CompactionStats,
  ContentStorageStats,
  WarmStoreEvents,
  WarmStoreLogger,
} from '../types.js';
import { ContentKind, WalType, type Remap, type WalEntryInput } from '../wal/entries.js';

const tracer = trace.getTracer('warmstore');

/** What the compactor may touch of the engine; everything else stays private to the store. */
export interface CompactorHost {
  fs: WsFileSystem;
  dir: string;
  segmentBytes: number;
  memoryBudgetBytes: number;
  minSegmentDeadRatio: number;
  diskHeadroomBytes: number;
  logger: WarmStoreLogger | undefined;
  killPoint(name: string): void;
  table(): RecordTable;
  /** One past the highest slot ever used. */
  slotLimit(): number;
  segments(): Map<number, Segment>;
  activeId(): number;
  stats(): ContentStorageStats;
  nextRunId(): number;
  /** A new sealed, pinned segment whose directory entry is durable. */
  createOutputSegment(): Promise<Segment>;
  /** Seals the active segment (between two write batches) so it can be a victim. */
  sealActive(): Promise<void>;
  /** Commits a compaction WAL entry through the writer; resolves after it is durable and applied. */
  submit(entry: WalEntryInput): Promise<{ moved: number; applyMs: number }>;
  checkpoint(): Promise<void>;
  emit<K extends keyof WarmStoreEvents>(event: K, arg: Parameters<WarmStoreEvents[K]>[0]): void;
}

export interface RunOptions {
  signal: AbortSignal;
  onProgress: ((p: CompactProgress) => void) | undefined;
  force: boolean;
  resumeVictims: number[];
  resumed: boolean;
}

/** Smallest budget that still makes progress: a read window and an output buffer. */
export const MIN_MEMORY_BUDGET = 256 * 1024;
const MAX_WINDOW = 8 * 1024 * 1024;
const MIN_WINDOW = 64 * 1024;
/** Synchronous work between two yields; the event loop never waits longer than about this. */
const STEP_MS = 2;

/** Measures every synchronous stretch of the compaction: the time between two awaits. */
class PauseMeter {
  max = 0;
  #last = performance.now();
  readonly #onPause: (ms: number) => void;

  constructor(onPause: (ms: number) => void) {
    this.#onPause = onPause;
  }

  stop(): void {
    const d = performance.now() - this.#last;
    if (d > this.max) this.max = d;
    this.#onPause(d);
  }

  start(): void {
    this.#last = performance.now();
  }

  async io<T>(p: Promise<T>): Promise<T> {
    this.stop();
    try {
      return await p;
    } finally {
      this.start();
    }
  }

  /** Yields to the event loop if this stretch has run for a while. */
  async maybeYield(): Promise<void> {
    if (performance.now() - this.#last >= STEP_MS) await this.io(tick());
  }

  note(ms: number): void {
    if (ms > this.max) this.max = ms;
  }
}

function abortError(signal: AbortSignal): Error {
  const reason: unknown = signal.reason;
  return reason instanceof Error
    ? reason
    : new Error(`compaction aborted${reason ? `: ${String(reason)}` : ''}`);
}

/**
 * Online compaction, in bounded chunks. Phases (see docs/ARCHITECTURE.md):
 * plan -> begin (WAL) -> [copy window -> write+fsync output -> chunk commit (WAL, CAS apply)]* ->
 * end (WAL) -> checkpoint -> retire victims. Every chunk commit is atomic and leaves the store
 * consistent, so a crash at any instant loses nothing; open cuts uncommitted output and the next
 * run resumes with the victims that were left.
 */
export async function runCompaction(host: CompactorHost, o: RunOptions): Promise<CompactionStats> {
  const t0 = performance.now();
  const meter = new PauseMeter((ms) => host.emit('compactionPause', ms));
  const before = host.stats();
  let phase: CompactionPhase = 'plan';
  const kill = (name: string): void => host.killPoint(name);

  // ------------------------------------------------------------------ plan
  const resumeSet = new Set(o.resumeVictims);
  const eligible = (s: Segment): boolean =>
    !s.retired &&
    (s.live === 0 ||
      (s.dead > 0 &&
        (o.force || resumeSet.has(s.id) || s.dead / Math.max(1, s.totalBytes) > host.minSegmentDeadRatio)));
  // The active segment qualifies like any other, but it is sealed (inside the run, after the
  // resource checks) before anything is copied, so compaction never competes with appends.
  const active = host.segments().get(host.activeId());
  const sealFirst = active !== undefined && active.totalBytes > 0 && active.dead > 0 && eligible(active);
  const victims = [...host.segments().values()]
    .filter(
      (s) =>
        (s.sealed || (sealFirst && s === active)) &&
        s.totalBytes > 0 &&
        eligible(s) &&
        (s !== active || sealFirst),
    )
    .sort((a, b) => b.dead / Math.max(1, b.totalBytes) - a.dead / Math.max(1, a.totalBytes));
  const bytesToCopy = victims.reduce((n, s) => n + s.live, 0);

  // A refusal is an outcome too: it ends the run with its own event so that it is counted.
  const refuse = (error: WarmStoreError): WarmStoreError => {
    host.emit('compactionEnd', { outcome: 'refused', error });
    return error;
  };
  const budget = host.memoryBudgetBytes;
  if (victims.length > 0 && budget < MIN_MEMORY_BUDGET) {
    throw refuse(
      new WarmStoreError(
        'INSUFFICIENT_RESOURCES',
        `compaction.memoryBudgetBytes ${budget} is below the minimum of ${MIN_MEMORY_BUDGET}`,
        { budget, minimum: MIN_MEMORY_BUDGET },
      ),
    );
  }
  if (victims.length > 0) {
    const free = await meter.io(host.fs.freeBytes(host.dir));
    const need = bytesToCopy + host.diskHeadroomBytes;
    if (free < need) {
      throw refuse(
        new WarmStoreError(
          'INSUFFICIENT_RESOURCES',
          `compaction needs ${need} free bytes (live ${bytesToCopy} + headroom ${host.diskHeadroomBytes}), ${free} available`,
          { free, need, file: host.dir },
        ),
      );
    }
  }

  const runId = host.nextRunId();
  host.emit('compactionStart', { runId, victims: victims.length, resumed: o.resumed });
  host.logger?.debug?.(
    { runId, victims: victims.map((v) => v.id), bytesToCopy, resumed: o.resumed },
    'compaction start',
  );
  const progress: CompactProgress = {
    phase,
    segmentsDone: 0,
    segmentsTotal: victims.length,
    bytesCopied: 0,
    bytesToCopy,
    recordsMoved: 0,
  };
  const report = (p: CompactionPhase): void => {
    phase = p;
    progress.phase = p;
    o.onProgress?.({ ...progress });
    host.emit('compactionProgress', { ...progress });
  };

  if (victims.length === 0) {
    report('done');
    const stats: CompactionStats = {
      durationMs: performance.now() - t0,
      bytesBefore: before.totalBytes,
      bytesAfter: before.totalBytes,
      bytesReclaimed: 0,
      recordsMoved: 0,
      segmentsCompacted: 0,
      maxPauseMs: meter.max,
      resumed: o.resumed,
    };
    host.emit('compactionEnd', { outcome: 'success', stats });
    return stats;
  }

  // Budget split: read window, output buffer, candidate arrays and the staged remap table.
  const quarter = Math.floor(budget / 4);
  const window = Math.max(MIN_WINDOW, Math.min(MAX_WINDOW, quarter));
  const outCap = window;
  const maxRemaps = Math.max(256, Math.min(8192, Math.floor(quarter / 128)));
  // Capped at 2^20 so a (relative offset, index) pair packs exactly into one float64 sort key.
  const maxCand = Math.min(1 << 20, Math.max(256, Math.floor(quarter / 24)));
  const readBuf = Buffer.allocUnsafe(window);
  const outBuf = Buffer.allocUnsafe(outCap);
  const candOff = new Float64Array(maxCand);
  const candLsn = new Float64Array(maxCand);
  const candSlot = new Uint32Array(maxCand);
  const sortKeys = new Float64Array(maxCand);

  for (const v of victims) v.pins++;
  let out: Segment | undefined;
  let outPos = 0; // file position where outBuf[0] goes
  let outLen = 0;
  let committedEnd = 0;
  let staged: Remap[] = [];
  let recordsMoved = 0;
  let bytesCopied = 0;
  let reclaimedVictimBytes = 0;
  const check = (): void => {
    if (o.signal.aborted) throw abortError(o.signal);
  };

  const ensureOut = async (): Promise<Segment> => {
    if (!out) {
      out = await meter.io(host.createOutputSegment());
      outPos = out.end;
      committedEnd = out.end;
      outLen = 0;
    }
    return out;
  };
  const writeOut = async (): Promise<void> => {
    if (outLen === 0 || !out) return;
    await meter.io(writeFully(out.file, outBuf.subarray(0, outLen), outPos));
    kill('copy-written');
    outPos += outLen;
    outLen = 0;
  };
  // Chunk commits are pipelined: while chunk k's output is fsynced and its remap committed through
  // the WAL, chunk k+1 is already being copied. Commits stay in order (each waits for the one
  // before), at most one is in flight, and it always belongs to the current output segment (a
  // segment that fills up waits for its commit before the next one starts).
  let inflight: Promise<void> | undefined;
  const settle = async (): Promise<void> => {
    const p = inflight;
    inflight = undefined;
    if (p) await meter.io(p);
  };
  const flushChunk = async (victimsDone: number[], wait = false): Promise<void> => {
    report('commit');
    await writeOut();
    const seg = out;
    const end = outPos;
    const remaps = staged;
    staged = [];
    const prev = inflight;
    const task = (async (): Promise<void> => {
      if (prev) await prev;
      if (seg && end > committedEnd) {
        await seg.file.sync();
        kill('copy-synced');
        seg.end = end;
      }
      const r = await host.submit({
        type: WalType.CompactChunk,
        runId,
        outSeg: seg?.id ?? 0,
        outEnd: seg ? end : 0,
        victimsDone,
        remaps,
      });
      meter.note(r.applyMs);
      host.emit('compactionPause', r.applyMs);
      committedEnd = end;
      recordsMoved += r.moved;
      progress.recordsMoved = recordsMoved;
      kill('chunk-committed');
    })();
    // Awaited later (by the next flush, settle() or the rollback); never an unhandled rejection.
    task.catch(() => undefined);
    inflight = task;
    if (wait || (seg && end >= host.segmentBytes)) await settle();
    if (out && out.end >= host.segmentBytes) {
      out.pins--;
      out = undefined;
    }
  };

  const span = tracer.startSpan('warmstore.compaction', { attributes: { 'warmstore.run_id': runId } });
  try {
    report('plan');
    kill('plan');
    if (sealFirst) await meter.io(host.sealActive());
    await meter.io(host.submit({ type: WalType.CompactBegin, runId, victims: victims.map((v) => v.id) }));
    kill('begin-committed');

    for (const v of victims) {
      check();
      report('copy');
      const copySpan = tracer.startSpan('warmstore.compaction.copy', {
        attributes: { 'warmstore.segment': v.id, 'warmstore.phase': 'copy' },
      });
      try {
        // A victim with nothing live needs no copying, only its done marker.
        let lo = v.live === 0 ? v.end : 0;
        let span = Math.max(window, 1);
        while (lo < v.end) {
          check();
          const hi = lo + span;
          // Collect the live entries of this victim whose offset falls in [lo, hi).
          let n = 0;
          let overflow = false;
          const limit = host.slotLimit();
          const table = host.table();
          for (let ci = 0; ci < table.chunks.length && !overflow; ci++) {
            const c = table.chunks[ci]!;
            const base = ci * CHUNK_SLOTS;
            const end = Math.min(CHUNK_SLOTS, limit - base);
            for (let i = 0; i < end; i++) {
              if (c.seg[i] !== v.id || c.kind[i] !== ContentKind.Present) continue;
              const off = c.off[i]!;
              if (off < lo || off >= hi) continue;
              if (n === maxCand) {
                overflow = true;
                break;
              }
              candOff[n] = off;
              candLsn[n] = c.clsn[i]!;
              candSlot[n] = base + i;
              n++;
            }
            await meter.maybeYield();
          }
          if (overflow) {
            span = Math.max(1, Math.floor(span / 2));
            continue;
          }
          // Offset order without a comparator callback (a JS comparator over tens of thousands of
          // entries is a long synchronous step): key = (offset - lo) * 2^20 + index, exact in a
          // float64 since the window spans at most 8 MiB.
          for (let i = 0; i < n; i++) sortKeys[i] = (candOff[i]! - lo) * 1048576 + i;
          const ord = sortKeys.subarray(0, n).sort();
          let bufStart = 0;
          let bufEnd = 0;
          for (let j = 0; j < n; j++) {
            const ci = ord[j]! % 1048576;
            const off = candOff[ci]!;
            const slot = candSlot[ci]!;
            const expectedLsn = candLsn[ci]!;
            const ch = host.table().chunk(slot);
            const li = slot & (CHUNK_SLOTS - 1);
            const stillLive = (): boolean =>
              ch.kind[li] === ContentKind.Present &&
              ch.seg[li] === v.id &&
              ch.off[li] === off &&
              ch.clsn[li] === expectedLsn;
            if (!stillLive()) continue;
            const id = ch.ids[li]!;
            const idBytes = Buffer.from(id, 'utf8');
            const clen = ch.clen[li]!;
            const size = entryBytes(idBytes.length, clen);
            if (size > window) {
              // Too big for the buffers: stream it straight from victim to output.
              await ensureOut();
              await writeOut();
              const newOff = outPos;
              let crc = 0;
              let stored = -1;
              for (let p = 0; p < size; p += window) {
                const len = Math.min(window, size - p);
                const piece = await meter.io(v.read(off + p, len, readBuf));
                if (piece.length < len)
                  throw new WarmStoreError('CORRUPTION_DETECTED', 'content entry truncated', {
                    id,
                    file: v.path,
                  });
                let from = 0;
                if (p === 0) {
                  stored = piece.readUInt32LE(0);
                  if (
                    piece.readUInt32LE(4) !== clen ||
                    !piece.subarray(ENTRY_HEADER_BYTES, ENTRY_HEADER_BYTES + idBytes.length).equals(idBytes)
                  ) {
                    throw new WarmStoreError(
                      'CORRUPTION_DETECTED',
                      `content entry at ${off} does not match its record`,
                      { id, file: v.path },
                    );
                  }
                  from = 4;
                }
                crc = crc32c(piece.subarray(from), crc);
                await meter.io(writeFully(out!.file, piece, newOff + p));
              }
              if (crc !== stored) {
                throw new WarmStoreError('CORRUPTION_DETECTED', `content checksum mismatch at ${off}`, {
                  id,
                  file: v.path,
                });
              }
              outPos += size;
              bytesCopied += size;
              if (stillLive()) staged.push({ slot, oldSeg: v.id, oldOff: off, expectedLsn, newOff });
              bufEnd = 0;
              continue;
            }
            if (off < bufStart || off + size > bufEnd) {
              const len = Math.min(window, v.end - off);
              const got = await meter.io(v.read(off, len, readBuf));
              bufStart = off;
              bufEnd = off + got.length;
              if (off + size > bufEnd) {
                throw new WarmStoreError(
                  'CORRUPTION_DETECTED',
                  `content entry at ${off} runs past the end of ${v.path}`,
                  {
                    id,
                    file: v.path,
                  },
                );
              }
              // The read yielded: the record may have changed meanwhile.
              if (!stillLive()) continue;
            }
            const entry = readBuf.subarray(off - bufStart, off - bufStart + size);
            verifyEntry(entry, idBytes, clen, v.path, id, off);
            if (outLen + size > outCap) {
              await ensureOut();
              await writeOut();
              if (!stillLive()) continue;
            }
            if (!out) {
              await ensureOut();
              if (!stillLive()) continue;
            }
            entry.copy(outBuf, outLen);
            staged.push({ slot, oldSeg: v.id, oldOff: off, expectedLsn, newOff: outPos + outLen });
            outLen += size;
            bytesCopied += size;
            progress.bytesCopied = bytesCopied;
            if (staged.length >= maxRemaps) await flushChunk([]);
            else await meter.maybeYield();
          }
          lo = hi;
          span = Math.max(window, span);
        }
        await flushChunk([v.id]);
        reclaimedVictimBytes += v.totalBytes;
        progress.segmentsDone++;
        kill('victim-done');
      } finally {
        copySpan.end();
      }
    }

    await settle();
    report('commit');
    await meter.io(host.submit({ type: WalType.CompactEnd, runId, outcome: 0 }));
    kill('end-committed');
  } catch (err) {
    // A commit still in flight settles first: the truncation below must not race its fsync.
    await inflight?.catch(() => undefined);
    inflight = undefined;
    await rollback(err);
    throw wrapFailure(err, o.signal);
  }

  async function rollback(err: unknown): Promise<void> {
    span.recordException(err as Error);
    span.end();
    const aborted = o.signal.aborted;
    const o2 = out;
    if (o2) {
      // Uncommitted copies are cut off; committed chunks stay, they are consistent.
      await o2.file.truncate(committedEnd).catch(() => undefined);
      o2.end = committedEnd;
      o2.pins--;
      out = undefined;
    }
    for (const v of victims) v.pins--;
    await host.submit({ type: WalType.CompactEnd, runId, outcome: aborted ? 2 : 1 }).catch(() => undefined);
    const error = wrapFailure(err, o.signal);
    host.logger?.[aborted ? 'warn' : 'error'](
      { runId, err: error, recordsMoved, bytesCopied },
      'compaction stopped',
    );
    host.emit('compactionEnd', { outcome: aborted ? 'aborted' : 'failure', error });
  }

  const finalOut = out as Segment | undefined;
  if (finalOut) finalOut.pins--;
  out = undefined;
  for (const v of victims) v.pins--;
  try {
    report('checkpoint');
    await meter.io(host.checkpoint());
    kill('checkpointed');
    report('retire');
  } catch (err) {
    span.end();
    const error = wrapFailure(err, o.signal);
    host.emit('compactionEnd', { outcome: 'failure', error });
    throw error;
  }
  span.end();
  const left = victims.filter((v) => host.segments().has(v.id));
  if (left.length > 0) {
    host.logger?.warn(
      { runId, segments: left.map((v) => ({ id: v.id, live: v.live, pins: v.pins })) },
      'victims not yet deleted',
    );
  }
  const after = host.stats();
  meter.stop();
  const stats: CompactionStats = {
    durationMs: performance.now() - t0,
    bytesBefore: before.totalBytes,
    bytesAfter: after.totalBytes,
    bytesReclaimed: Math.max(0, reclaimedVictimBytes - bytesCopied),
    recordsMoved,
    segmentsCompacted: victims.length,
    maxPauseMs: meter.max,
    resumed: o.resumed,
  };
  report('done');
  host.logger?.debug?.({ runId, ...stats }, 'compaction done');
  host.emit('compactionEnd', { outcome: 'success', stats });
  return stats;
}

function wrapFailure(err: unknown, signal: AbortSignal): WarmStoreError {
  if (err instanceof WarmStoreError && err.code === 'COMPACTION_FAILED') return err;
  if (signal.aborted) {
    return new WarmStoreError('COMPACTION_FAILED', 'compaction aborted', { aborted: true }, err);
  }
  const msg = err instanceof Error ? err.message : String(err);
  return new WarmStoreError('COMPACTION_FAILED', `compaction failed: ${msg}`, { aborted: false }, err);
}
