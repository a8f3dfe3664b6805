/**
 * Crash-test child for compaction. Opens (or builds) a store with churn, then runs
 * `compact({ force: true })` COMPACT_LOOPS times while writers keep mutating it, with more churn
 * between runs. Every write follows the begin/ack protocol of test/helpers/ack-model.ts.
 *
 * Kill points: the store's `onKillPoint` hook (set with `withTestHooks`) prints `killpoint <name> <hit>` at every hit (the parent
 * discovers the names from these lines; LIST_KILL_POINTS=1 only asks for a full, unkilled run).
 * With KILL_AT=<name>:<n> the child SIGKILLs itself at the nth hit of <name>, after printing
 * `killing <name> <n>`.
 *
 * Env: STORE_DIR, SEED, ROUND, DIM (16), SEGMENT_BYTES (64 KiB), TARGET (records to build, 120),
 * COMPACT_LOOPS (3), CONCURRENCY (3: writers during compaction), TAIL (memories put and deleted
 * before each compaction, 0), KILL_AT, LIST_KILL_POINTS.
 * Run: node --import tsx test/crash/child-compactor.ts
 */
import { WarmStore } from '../../src/index.js';
import { withTestHooks } from '../../src/testing/index.js';
import { recordFor } from '../helpers/random.js';
import { runWorkload } from '../helpers/workload.js';
import { awaitGo, die, envInt, envStr, out } from './child-io.js';

await awaitGo();

const dir = envStr('STORE_DIR');
const seed = envInt('SEED', 1);
const round = envInt('ROUND', 0);
const dimension = envInt('DIM', 16);
const target = envInt('TARGET', 120);
const loops = envInt('COMPACT_LOOPS', 3);
const concurrency = envInt('CONCURRENCY', 3);

let killName: string | undefined;
let killNth = 0;
const killAt = process.env.KILL_AT;
if (killAt !== undefined && killAt !== '') {
  const i = killAt.lastIndexOf(':');
  killName = i < 0 ? killAt : killAt.slice(0, i);
  killNth = i < 0 ? 1 : Number(killAt.slice(i + 1));
}
const hits = new Map<string, number>();

function onKillPoint(name: string): void {
  const n = (hits.get(name) ?? 0) + 1;
  hits.set(name, n);
  out(`killpoint ${name} ${n}`);
  if (name === killName && n === killNth) {
    out(`killing ${name} ${n}`);
    process.kill(process.pid, 'SIGKILL');
  }
}

out('opening');
let store: WarmStore;
try {
  store = await WarmStore.open(
    dir,
    withTestHooks(
      {
        dimension,
        segmentBytes: envInt('SEGMENT_BYTES', 64 * 1024),
        maintenanceIntervalMs: false,
        maintenance: { startupCompaction: 'off' },
      },
      { onKillPoint },
    ),
  );
} catch (err) {
  die('open', err);
}
out(`ready ${store.size}`);

// Seeds must be unique across rounds and phases: each phase takes its own block of a million.
let phase = 0;
const seedBase = (): number => (round + 1) * 100_000_000 + phase++ * 1_000_000;
const idSpace = target + 20;

async function churn(ops: number, mix: { put: number; putMany: number; del: number }): Promise<void> {
  const r = await runWorkload(store, {
    seed: seed * 7919 + phase,
    seedBase: seedBase(),
    dimension,
    idSpace,
    idPrefix: 'c',
    concurrency: 4,
    maxOps: ops,
    emit: out,
    mix,
  });
  if (r.error !== undefined) die('churn', r.error);
}

// Build: fill up to TARGET records, then overwrite and delete a good part of them, so that
// sealed segments hold plenty of dead content.
if (store.size < target) {
  await churn(target * 2, { put: 0.7, putMany: 0.3, del: 0 });
  await churn(target, { put: 0.5, putMany: 0.1, del: 0.4 });
}
out('built');

/**
 * Leaves free slots at the files' tail: `TAIL` new memories (past every hole, so some land at the
 * end) deleted again, announced like the workload's ops. The kill points of the record files' cut
 * need such a tail, and the rounds before may have used it up (an open that finishes an
 * interrupted cut leaves none; writers' updates fill holes).
 */
async function growTail(): Promise<void> {
  const n = envInt('TAIL', 0);
  if (n === 0) return;
  const base = seedBase();
  const ids = Array.from({ length: n }, (_, i) => ({ id: `t${i}`, seed: base + i }));
  for (const t of ids) out(`begin put ${t.id} ${t.seed}`);
  await store.putMany(ids.map((t) => recordFor(t.id, t.seed, dimension)));
  for (const t of ids) out(`ack put ${t.id} ${t.seed}`);
  for (const t of ids) {
    out(`begin del ${t.id}`);
    const existed = await store.delete(t.id);
    out(`ack del ${t.id} ${existed}`);
  }
  // Into the files: a cut shortens what a checkpoint wrote.
  await store.checkpoint();
}

for (let loop = 0; loop < loops; loop++) {
  try {
    await growTail();
  } catch (err) {
    die('tail', err);
  }
  let compacting = true;
  const writers = runWorkload(store, {
    seed: seed * 31 + loop,
    seedBase: seedBase(),
    dimension,
    idSpace,
    idPrefix: 'c',
    concurrency,
    shouldStop: () => !compacting,
    emit: out,
  });
  out(`compact-start ${loop}`);
  try {
    const stats = await store.compact({ force: true });
    out(`compact-done ${loop} ${JSON.stringify(stats)}`);
  } catch (err) {
    die('compact', err);
  } finally {
    compacting = false;
  }
  const w = await writers;
  if (w.error !== undefined) die('writers', w.error);
  await churn(30, { put: 0.6, putMany: 0.1, del: 0.3 });
}

try {
  await store.close();
} catch (err) {
  die('close', err);
}
out('done');
