/**
 * What the bench asks of every engine, and which engines a run measures. One adapter per engine,
 * so that every engine stores the same records with the same durability, in the same batches, and
 * is read, iterated and compacted the same way.
 */
import * as fs from 'node:fs';
import type { Durability } from '../../src/index.js';
import type { BenchMemory } from '../lib/data.ts';
import { WarmstoreEngine } from './warmstore.ts';
import { LmdbEngine } from './lmdb.ts';
import { LevelEngine } from './level.ts';
import { SqliteEngine } from './sqlite.ts';

export interface CompactResult {
  /** Engine-reported details (warmstore: CompactionStats plus time and stalls per phase). */
  details: Record<string, unknown>;
  /** Time readers could not read at all (lmdb: close/rename/reopen), ms. */
  pauseMs?: number;
}

export interface Engine {
  readonly name: string;
  readonly dir: string;
  open(): Promise<void>;
  putBatch(recs: BenchMemory[]): Promise<void>;
  deleteBatch(ids: string[]): Promise<void>;
  getSync(id: string): BenchMemory | undefined;
  get?(id: string): Promise<BenchMemory | undefined>;
  /** Visits every record (decoded); returns the count. */
  iterate(): Promise<number>;
  compact(): Promise<CompactResult>;
  /** Ids of the `k` nearest records by cosine, for the engines that search vectors. */
  recall?(query: Float32Array, k: number): Promise<string[]>;
  /** Records the engine says it holds, where it keeps the count. */
  recordCount?(): number;
  /** Flushes pending background work (checkpoints) so that compaction measures compaction. */
  settle?(): Promise<void>;
  /** Set while reads cannot proceed (a close/reopen swap); readers await it. */
  blocked?: Promise<void> | undefined;
  close(): Promise<void>;
  stats?(): Record<string, unknown>;
}

export const PEER_NAMES = ['lmdb', 'level', 'sqlite'] as const;
export type PeerName = (typeof PEER_NAMES)[number];

/** One warmstore build: a `dist/` directory, and the label its rows carry. */
export interface WarmstoreBuild {
  readonly label: string;
  /** Absolute path of the directory holding the build's `index.js`. */
  readonly dist: string;
}

/** One row of the results: a warmstore build at one durability, or a peer. */
export type EngineSpec =
  | {
      readonly kind: 'warmstore';
      readonly row: string;
      readonly build: WarmstoreBuild;
      readonly durability: Durability;
    }
  | { readonly kind: 'peer'; readonly row: PeerName; readonly peer: PeerName };

export function warmstoreSpec(build: WarmstoreBuild, durability: Durability): EngineSpec {
  return { kind: 'warmstore', row: `${build.label}-${durability}`, build, durability };
}

export function peerSpec(peer: PeerName): EngineSpec {
  return { kind: 'peer', row: peer, peer };
}

/**
 * Whether every phase runs for this row. warmstore 'relaxed' differs from 'sync' only in when a
 * write is durable, so it is measured on store and get alone.
 */
export function runsEveryPhase(spec: EngineSpec): boolean {
  return spec.kind === 'peer' || spec.durability !== 'relaxed';
}

export async function makeEngine(spec: EngineSpec, dir: string, dim: number): Promise<Engine> {
  fs.mkdirSync(dir, { recursive: true });
  if (spec.kind === 'warmstore')
    return WarmstoreEngine.create(spec.row, dir, spec.build.dist, spec.durability, dim);
  switch (spec.peer) {
    case 'lmdb':
      return new LmdbEngine(dir, dim);
    case 'level':
      return new LevelEngine(dir, dim);
    case 'sqlite':
      return new SqliteEngine(dir, dim);
  }
}
