import type { Span } from '@opentelemetry/api';
import { startSpan } from '../engine/tracing.js';
import type { Segment } from '../content/segment.js';
import { WarmStoreError } from '../errors.js';
import type { CompactProgress, CompactionStats, ContentStorageStats } from '../types.js';
import { WalType } from '../wal/entries.js';
import { splitBudget } from './budget.js';
import { ChunkCommitter } from './committer.js';
import { throwIfAborted, wrapFailure } from './failure.js';
import type { CompactorHost } from './host.js';
import { OutputWriter } from './output.js';
import { PauseMeter } from './pause-meter.js';
import { pickVictims, type SegmentStats, type VictimPlan } from './picker.js';
import { ProgressReporter } from './progress.js';
import { checkMemoryBudget, checkResources, type Refusal, type ResourceVerdict } from './resources.js';
import { relocateSlots, type RelocationResult } from './relocator.js';
import { rollback } from './rollback.js';
import { WindowCopier } from './window-copier.js';

export type { CompactorHost } from './host.js';
export { MIN_MEMORY_BUDGET } from './resources.js';

export interface RunOptions {
  signal: AbortSignal;
  onProgress: ((p: CompactProgress) => void) | undefined;
  force: boolean;
  resumeVictims: number[];
  resumed: boolean;
}

/** What every phase of one run shares. */
interface Run {
  host: CompactorHost;
  o: RunOptions;
  t0: number;
  before: ContentStorageStats;
  meter: PauseMeter;
}

/** The parts that copy and commit, built once the run has victims. */
interface Copying {
  committer: ChunkCommitter;
  copier: WindowCopier;
}

/**
 * Online compaction, in bounded chunks. Phases (see docs/ARCHITECTURE.md):
 * plan -> begin (WAL) -> [copy window -> write+fsync output -> chunk commit (WAL, CAS apply)]* ->
 * end (WAL) -> checkpoint -> retire victims. Every chunk commit is atomic and leaves the store
 * consistent, so a crash at any instant loses nothing; open cuts uncommitted output and the next
 * run resumes with the victims that were left.
 */
export async function runCompaction(host: CompactorHost, o: RunOptions): Promise<CompactionStats> {
  const run: Run = {
    host,
    o,
    t0: performance.now(),
    meter: new PauseMeter((ms) => host.emit('compactionPause', ms)),
    before: host.stats(),
  };
  const segments = host.segments();
  const planned = planVictims(host, o, segments);
  const plan = await checkOrRefuse(run, planned, segments);
  const victims = plan.victims.map((id) => segments.get(id)!);

  const runId = host.nextRunId();
  host.emit('compactionStart', { runId, victims: victims.length, resumed: o.resumed });
  host.logger?.debug?.(
    { runId, victims: plan.victims, bytesToCopy: plan.bytesToCopy, resumed: o.resumed },
    'compaction start',
  );
  const progress = new ProgressReporter(host, o.onProgress, victims.length, plan.bytesToCopy);
  const recordBytesBefore = host.recordFileBytes();
  if (victims.length === 0) {
    const span = startSpan('warmstore.compaction', { 'warmstore.run_id': runId });
    const moved = await relocate(run, span);
    // A checkpoint records the lowered slot limit and cuts the files; with nothing moved or freed
    // there is nothing to record.
    if (moved.slotsMoved > 0 || moved.slotsAfter < moved.slotsBefore) await checkpoint(run, progress, span);
    else span.end();
    progress.report('done');
    run.meter.stop();
    const stats = statsOf(run, {
      bytesAfter: host.stats().totalBytes,
      bytesReclaimed: 0,
      recordsMoved: 0,
      segmentsCompacted: 0,
      slotsMoved: moved.slotsMoved,
      recordBytesReclaimed: Math.max(0, recordBytesBefore - host.recordFileBytes()),
    });
    host.emit('compactionEnd', { outcome: 'success', stats });
    return stats;
  }

  const sizes = splitBudget(host.memoryBudgetBytes);
  const writer = new OutputWriter(host, run.meter, Buffer.allocUnsafe(sizes.outCap));
  const committer = new ChunkCommitter(host, run.meter, writer, progress, runId);
  const copier = new WindowCopier(
    { host, meter: run.meter, writer, committer, progress, signal: o.signal },
    sizes,
  );
  for (const v of victims) v.pins++;
  const span = startSpan('warmstore.compaction', { 'warmstore.run_id': runId });
  let reclaimedVictimBytes: number;
  try {
    reclaimedVictimBytes = await copyVictims(run, runId, plan, victims, progress, { committer, copier });
  } catch (err) {
    const scope = { host, signal: o.signal, span, runId, victims, writer, committer };
    throw await rollback({ ...scope, bytesCopied: copier.bytesCopied }, err);
  }

  writer.release();
  for (const v of victims) v.pins--;
  const moved = await relocate(run, span);
  await checkpoint(run, progress, span);
  warnUndeleted(host, runId, victims);
  const after = host.stats();
  run.meter.stop();
  const stats = statsOf(run, {
    bytesAfter: after.totalBytes,
    bytesReclaimed: Math.max(0, reclaimedVictimBytes - copier.bytesCopied),
    recordsMoved: committer.recordsMoved,
    segmentsCompacted: victims.length,
    slotsMoved: moved.slotsMoved,
    recordBytesReclaimed: Math.max(0, recordBytesBefore - host.recordFileBytes()),
  });
  progress.report('done');
  host.logger?.debug?.({ runId, ...stats }, 'compaction done');
  host.emit('compactionEnd', { outcome: 'success', stats });
  return stats;
}

/**
 * Relocation (relocator.ts): after the content is compacted, memories move from the tail of the
 * record files into free slots below, so the run's checkpoint can cut the files. Skipped on a full
 * disk (each move's WAL entry carries its whole record). A failure ends the run as failed; every
 * committed move batch stands, the rest of the store is as before.
 */
async function relocate(run: Run, span: Span): Promise<RelocationResult> {
  const { host } = run;
  const slots = host.slotLimit();
  if (host.diskFull()) return { slotsMoved: 0, slotsBefore: slots, slotsAfter: slots };
  try {
    const r = await relocateSlots(host, run.meter, run.o.signal);
    host.logger?.debug?.({ ...r }, 'slots relocated');
    return r;
  } catch (err) {
    const error = wrapFailure(err, run.o.signal);
    span.recordException(error);
    span.end();
    const aborted = run.o.signal.aborted;
    host.logger?.[aborted ? 'warn' : 'error']({ err: error }, 'slot relocation stopped');
    host.emit('compactionEnd', { outcome: aborted ? 'aborted' : 'failure', error });
    throw error;
  }
}

/** Plan: which segments this run compacts, decided from their figures alone. */
function planVictims(host: CompactorHost, o: RunOptions, segments: Map<number, Segment>): VictimPlan {
  const activeId = host.activeId();
  const stats: SegmentStats[] = [...segments.values()].map((s) => ({
    id: s.id,
    sealed: s.sealed,
    active: s.id === activeId,
    retired: s.retired,
    totalBytes: s.totalBytes,
    liveBytes: s.live,
    deadBytes: s.dead,
  }));
  return pickVictims(stats, {
    force: o.force,
    minSegmentDeadRatio: host.minSegmentDeadRatio,
    resume: new Set(o.resumeVictims),
  });
}

/**
 * Resource check, before anything is written: the plan keeps the victims whose live bytes fit on
 * the disk (all of them when there is room). A refusal is an outcome too: it ends the run with
 * its own `compactionEnd` so that it is counted.
 */
async function checkOrRefuse(
  run: Run,
  plan: VictimPlan,
  segments: Map<number, Segment>,
): Promise<VictimPlan> {
  const { host } = run;
  const victimLiveBytes = plan.victims.map((id) => segments.get(id)!.live);
  const verdict = await check(run, victimLiveBytes);
  if (!verdict.ok) {
    const error = new WarmStoreError('INSUFFICIENT_RESOURCES', verdict.message, verdict.details);
    host.emit('compactionEnd', { outcome: 'refused', error });
    throw error;
  }
  if (verdict.take.length === plan.victims.length) return plan;
  const victims = verdict.take.map((i) => plan.victims[i]!);
  host.logger?.debug?.({ planned: plan.victims, taken: victims }, 'compaction takes the victims that fit');
  return {
    victims,
    sealActiveFirst: plan.sealActiveFirst && victims.includes(host.activeId()),
    bytesToCopy: verdict.take.reduce((n, i) => n + victimLiveBytes[i]!, 0),
  };
}

/** Memory first, without I/O; the free disk is asked for only when the budget passes. */
async function check(run: Run, victimLiveBytes: number[]): Promise<ResourceVerdict | Refusal> {
  const { host } = run;
  const memory = checkMemoryBudget(victimLiveBytes, host.memoryBudgetBytes);
  if (!memory.ok) return memory;
  if (victimLiveBytes.length === 0) return { ok: true, take: [] };
  return checkResources({
    victimLiveBytes,
    memoryBudgetBytes: host.memoryBudgetBytes,
    freeBytes: await run.meter.io(host.fs.freeBytes(host.dir)),
    // The run ends with a checkpoint, which grows the record files by the slots added since the
    // last one: on a nearly full disk that is what fails first.
    diskHeadroomBytes: host.diskHeadroomBytes + host.checkpointGrowthBytes(),
    dir: host.dir,
  });
}

/**
 * Begin, copy every victim chunk by chunk, end: everything a rollback undoes. Returns the bytes
 * the victims held, which become free once they are deleted.
 */
async function copyVictims(
  run: Run,
  runId: number,
  plan: VictimPlan,
  victims: readonly Segment[],
  progress: ProgressReporter,
  { committer, copier }: Copying,
): Promise<number> {
  const { host, meter } = run;
  let reclaimedVictimBytes = 0;
  progress.report('plan');
  host.killPoint('plan');
  if (plan.sealActiveFirst) await meter.io(host.sealActive());
  await meter.io(host.submit({ type: WalType.CompactBegin, runId, victims: plan.victims }));
  host.killPoint('begin-committed');
  for (const v of victims) {
    throwIfAborted(run.o.signal);
    progress.report('copy');
    const copySpan = startSpan('warmstore.compaction.copy', {
      'warmstore.segment': v.id,
      'warmstore.phase': 'copy',
    });
    try {
      await copier.copy(v);
      await committer.flush([v.id]);
      reclaimedVictimBytes += v.totalBytes;
      progress.state.segmentsDone++;
      host.killPoint('victim-done');
    } finally {
      copySpan.end();
    }
  }
  await committer.settle();
  progress.report('commit');
  await meter.io(host.submit({ type: WalType.CompactEnd, runId, outcome: 0 }));
  host.killPoint('end-committed');
  return reclaimedVictimBytes;
}

/** Checkpoint: makes the remaps durable outside the WAL, so that the victims can be deleted. */
async function checkpoint(run: Run, progress: ProgressReporter, span: Span): Promise<void> {
  try {
    progress.report('checkpoint');
    await run.meter.io(run.host.checkpoint());
    run.host.killPoint('checkpointed');
    progress.report('retire');
  } catch (err) {
    const error = wrapFailure(err, run.o.signal);
    run.host.emit('compactionEnd', { outcome: 'failure', error });
    throw error;
  } finally {
    span.end();
  }
}

/** Retire: the checkpoint deleted every victim it could; one still pinned by a reader goes later. */
function warnUndeleted(host: CompactorHost, runId: number, victims: readonly Segment[]): void {
  const left = victims.filter((v) => host.segments().has(v.id));
  if (left.length > 0) {
    host.logger?.warn(
      { runId, segments: left.map((v) => ({ id: v.id, live: v.live, pins: v.pins })) },
      'victims not yet deleted',
    );
  }
}

function statsOf(
  run: Run,
  result: Pick<
    CompactionStats,
    | 'bytesAfter'
    | 'bytesReclaimed'
    | 'recordsMoved'
    | 'segmentsCompacted'
    | 'slotsMoved'
    | 'recordBytesReclaimed'
  >,
): CompactionStats {
  return {
    durationMs: performance.now() - run.t0,
    bytesBefore: run.before.totalBytes,
    ...result,
    maxPauseMs: run.meter.max,
    resumed: run.o.resumed,
  };
}
