/** The options of `run.ts`, read once and handed to every phase. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Durability } from '../../src/index.js';
import { PEER_NAMES, type PeerName, type WarmstoreBuild } from '../engines/engine.ts';
import { DEFAULT_DIST } from '../engines/warmstore.ts';
import { flag, list, num, opt } from './options.ts';

export const PHASES = ['put', 'get', 'iter', 'open', 'recover', 'recall', 'compact'] as const;
export type Phase = (typeof PHASES)[number];

export interface RunConfig {
  readonly count: number;
  readonly dim: number;
  /** Records per durable batch (store and delete). */
  readonly batch: number;
  readonly reps: number;
  readonly getOps: number;
  readonly asyncGetOps: number;
  /** Size of the sequential-write measurement; 0 skips it. */
  readonly bwMib: number;
  /** Whether compaction runs under the concurrent reader loop. */
  readonly readers: boolean;
  /** Keep the stores on disk afterwards. */
  readonly keep: boolean;
  /** Where the stores live. */
  readonly root: string;
  readonly phases: ReadonlySet<Phase>;
  /** Phases profiled (first repetition, warmstore 'sync' rows). */
  readonly profile: ReadonlySet<Phase>;
  /** warmstore builds measured side by side, in the order given. */
  readonly builds: readonly WarmstoreBuild[];
  /** Whether `--engines` named the builds (then a build that fails to load is an error). */
  readonly buildsGiven: boolean;
  readonly durabilities: readonly Durability[];
  readonly peers: readonly PeerName[];
}

function phaseSet(name: string, def: string): Set<Phase> {
  const out = new Set<Phase>();
  for (const p of list(name, def)) {
    if (!(PHASES as readonly string[]).includes(p))
      throw new Error(`--${name}: unknown phase ${p}; phases: ${PHASES.join(',')}`);
    out.add(p as Phase);
  }
  return out;
}

/**
 * `--engines label=dir,label=dir`: each `dir` is a warmstore build (a directory holding
 * index.js), relative to the current directory; a lone `dir` is labelled `warmstore`.
 */
export function parseBuilds(spec: string): WarmstoreBuild[] {
  const builds: WarmstoreBuild[] = [];
  for (const item of spec
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)) {
    const eq = item.indexOf('=');
    const label = eq < 0 ? 'warmstore' : item.slice(0, eq).trim();
    const dir = path.resolve(eq < 0 ? item : item.slice(eq + 1).trim());
    if (!/^[A-Za-z0-9_.-]+$/.test(label))
      throw new Error(`--engines: label '${label}' must be letters, digits, '_', '.' or '-'`);
    if (builds.some((b) => b.label === label)) throw new Error(`--engines: label '${label}' given twice`);
    if (!fs.existsSync(path.join(dir, 'index.js')))
      throw new Error(`--engines: ${label}: no index.js in ${dir} (build it with \`npm run build\`)`);
    builds.push({ label, dist: dir });
  }
  if (builds.length === 0) throw new Error('--engines: no build given');
  return builds;
}

export function readRunConfig(): RunConfig {
  const count = num('count', 100_000);
  const enginesOpt = opt('engines', '');
  const durabilities = list('ws', 'sync,relaxed').map((d) => {
    if (d !== 'sync' && d !== 'relaxed') throw new Error(`--ws: unknown durability ${d}; sync or relaxed`);
    return d;
  });
  const peers = list('peers', PEER_NAMES.join(',')).map((p) => {
    if (!(PEER_NAMES as readonly string[]).includes(p))
      throw new Error(`--peers: unknown peer ${p}; peers: ${PEER_NAMES.join(',')}`);
    return p as PeerName;
  });
  return {
    count,
    dim: num('dim', 768),
    batch: num('batch', 1000),
    reps: num('reps', 3),
    getOps: num('get-ops', Math.min(100_000, Math.max(20_000, count))),
    asyncGetOps: num('async-get-ops', 30_000),
    bwMib: num('bw-mib', 512),
    readers: !flag('no-readers'),
    keep: flag('keep'),
    // Data lives under bench/.data (gitignored), not /tmp: other sessions clean /tmp by pattern.
    root: opt('dir', fileURLToPath(new URL(`../.data/run-${process.pid}`, import.meta.url))),
    phases: phaseSet('only', PHASES.join(',')),
    profile: phaseSet('profile', ''),
    builds: enginesOpt ? parseBuilds(enginesOpt) : [{ label: 'warmstore', dist: DEFAULT_DIST }],
    buildsGiven: enginesOpt !== '',
    durabilities,
    peers,
  };
}
