/**
 * warmstore side-by-side benchmark: warmstore (durability 'sync' and 'relaxed') against lmdb-js,
 * classic-level and better-sqlite3 storing the same records with equal durability, in durable
 * batches of 1000. Options: docs/benchmarks.md, "How to run".
 *
 *   node --import tsx run.ts [--count 100000] [--only put,get,iter,open,recover,recall,compact]
 *        [--peers lmdb,level,sqlite] [--ws sync,relaxed] [--engines label=dist,...] [--reps 3]
 *        [--dir /tmp/x] [--get-ops 100000] [--async-get-ops 30000] [--bw-mib 512] [--no-readers]
 *        [--keep] [--profile put,get,iter,open,compact]
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { type EngineSpec, type WarmstoreBuild, peerSpec, warmstoreSpec } from './engines/engine.ts';
import { loadWarmstore } from './engines/warmstore.ts';
import { type RunConfig, readRunConfig } from './lib/config.ts';
import { Dataset } from './lib/data.ts';
import { DiskBaseline } from './lib/disk-baseline.ts';
import { fmtBytes, now } from './lib/measure.ts';
import { type EngineResult, emptyResult, writeResultsFile } from './lib/results.ts';
import { benchRow } from './phases/index.ts';
import { recallBench } from './recall/index.ts';
import { log } from './phases/context.ts';
import { type BuildInfo, printReport, resultsDocument, summarize } from './report.ts';

/** A build's commit, and whether its src/ had uncommitted changes (dist/ may include them). */
/**
 * The commit a build was made from: `dist/COMMIT` when the build wrote one (a side build:
 * `npx tsc -p tsconfig.build.json --outDir DIR && git rev-parse --short HEAD > DIR/COMMIT`), else
 * the tree's HEAD when `dist` is that tree's own build directory. A build anywhere else names no
 * commit: the tree around it is not what it was built from.
 */
function gitInfo(build: WarmstoreBuild): BuildInfo['git'] {
  const dist = path.resolve(build.dist);
  try {
    const commit = fs.readFileSync(path.join(dist, 'COMMIT'), 'utf8').trim();
    if (commit) return { commit, dirtySrc: false };
  } catch {
    // No marker: the tree's own build, or unknown.
  }
  const root = path.dirname(dist);
  if (path.basename(dist) !== 'dist' || !fs.existsSync(path.join(root, 'src'))) return undefined;
  try {
    const git = (...args: string[]): string =>
      execFileSync('git', ['-C', root, ...args], { encoding: 'utf8' }).trim();
    return {
      commit: git('rev-parse', '--short', 'HEAD'),
      dirtySrc: git('status', '--porcelain', 'src') !== '',
    };
  } catch {
    return undefined;
  }
}

/** The builds that load; a default build that does not is left out (peers only), a named one is an error. */
async function loadableBuilds(cfg: RunConfig): Promise<WarmstoreBuild[]> {
  if (cfg.durabilities.length === 0) return [];
  const out: WarmstoreBuild[] = [];
  for (const b of cfg.builds) {
    try {
      await loadWarmstore(b.dist);
      out.push(b);
    } catch (e) {
      if (cfg.buildsGiven) throw new Error(`--engines: ${b.label} (${b.dist}) does not load: ${String(e)}`);
      log(`warmstore not available (${String(e)}); run \`npm run build\` at the root. Peers only.`);
    }
  }
  return out;
}

/**
 * The rows of one repetition, in running order: warmstore rows first, then the peers. With several
 * builds, their order turns by one each repetition, so that no build always runs first (on a warm
 * or a cold page cache, before or after the others' garbage).
 */
function rowsOf(cfg: RunConfig, builds: readonly WarmstoreBuild[], rep: number): EngineSpec[] {
  const turn = builds.length ? rep % builds.length : 0;
  const order = [...builds.slice(turn), ...builds.slice(0, turn)];
  return [
    ...cfg.durabilities.flatMap((d) => order.map((b) => warmstoreSpec(b, d))),
    ...cfg.peers.map(peerSpec),
  ];
}

async function main(): Promise<void> {
  const cfg = readRunConfig();
  // Recall alone is its own benchmark (its own data, engines and report): recall/index.ts.
  if (cfg.phases.size === 1 && cfg.phases.has('recall')) return recallBench(cfg);
  fs.mkdirSync(cfg.root, { recursive: true });
  const builds: BuildInfo[] = (await loadableBuilds(cfg)).map((b) => ({ ...b, git: gitInfo(b) }));
  const rows = rowsOf(cfg, builds, 0);
  const started = new Date();
  log(
    `warmstore bench: ${cfg.count} records x ${cfg.dim} dims, batches of ${cfg.batch}, ${cfg.reps} reps; ` +
      `engines ${rows.map((r) => r.row).join(', ')}; phases ${[...cfg.phases].join(',')}`,
  );
  for (const b of builds) {
    const dirty = b.git?.dirtySrc ? ' + uncommitted changes in src/' : '';
    log(
      `${b.label}: ${b.dist}${b.git ? `, commit ${b.git.commit}${dirty}` : ', commit unknown (no COMMIT file)'}`,
    );
  }
  log(
    `node ${process.version}, ${os.cpus().length} x ${os.cpus()[0]?.model}, ${fmtBytes(os.totalmem())} RAM, dir ${cfg.root}`,
  );
  log(
    `load average at start: ${os.loadavg().map((x) => x.toFixed(2))} (other work on the machine adds noise)`,
  );

  const tg = now();
  const ds = new Dataset(cfg.count, cfg.dim);
  log(
    `dataset: ${fmtBytes(ds.logicalBytes)} logical (${(ds.logicalBytes / ds.n).toFixed(0)} B/record), ` +
      `content ${fmtBytes(ds.contentBytes)}, generated in ${((now() - tg) / 1000).toFixed(1)} s`,
  );
  const disk = new DiskBaseline(cfg.root, cfg.bwMib, log);
  disk.measure('start');

  const results: Record<string, EngineResult> = {};
  for (let rep = 0; rep < cfg.reps; rep++) {
    log(`-- repetition ${rep + 1}/${cfg.reps}`);
    for (const spec of rowsOf(cfg, builds, rep))
      await benchRow(cfg, spec, ds, rep, disk.bytesPerSec, (results[spec.row] ??= emptyResult()));
  }

  disk.measure('end');
  const report = summarize(rows, results, ds, disk);
  printReport(cfg, ds, report);
  const doc = resultsDocument({ cfg, started, rows, builds, ds, disk, report, results });
  log(`results written to ${writeResultsFile('', started, doc)}`);
  if (!cfg.keep) fs.rmSync(cfg.root, { recursive: true, force: true });
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
