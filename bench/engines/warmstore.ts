/**
 * warmstore under the bench. Typed by the engine's source (`src/index.ts`) while the code that
 * runs is a build (`dist/index.js` by default, or any build given with `--engines`), so that the
 * bench type-checks in a fresh clone and measures exactly what was built.
 */
import * as path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Durability, WarmStore } from '../../src/index.js';
import type { BenchMemory } from '../lib/data.ts';
import type { CompactResult, Engine } from './engine.ts';

export type WarmstoreModule = typeof import('../../src/index.js');

/** The build next to the bench: the root's `npm run build`. */
export const DEFAULT_DIST = fileURLToPath(new URL('../../dist', import.meta.url));

const builds = new Map<string, Promise<WarmstoreModule>>();

/**
 * The build in `dist` (a directory holding index.js). Each directory is a module instance of its
 * own, so two builds can be measured side by side in one process.
 */
export function loadWarmstore(dist: string = DEFAULT_DIST): Promise<WarmstoreModule> {
  const file = path.resolve(dist, 'index.js');
  let mod = builds.get(file);
  if (!mod) {
    mod = import(pathToFileURL(file).href) as Promise<WarmstoreModule>;
    builds.set(file, mod);
  }
  return mod;
}

export class WarmstoreEngine implements Engine {
  private store: WarmStore | undefined;

  private constructor(
    readonly name: string,
    readonly dir: string,
    private readonly mod: WarmstoreModule,
    private readonly durability: Durability,
    private readonly dim: number,
  ) {}

  static async create(
    name: string,
    dir: string,
    dist: string,
    durability: Durability,
    dim: number,
  ): Promise<WarmstoreEngine> {
    return new WarmstoreEngine(name, dir, await loadWarmstore(dist), durability, dim);
  }

  private get s(): WarmStore {
    if (!this.store) throw new Error(`${this.name}: not open`);
    return this.store;
  }

  async open(): Promise<void> {
    this.store = await this.mod.WarmStore.open(this.dir, {
      dimension: this.dim,
      durability: this.durability,
      maintenanceIntervalMs: false,
      maintenance: { startupCompaction: 'off' },
    });
  }
  async putBatch(recs: BenchMemory[]): Promise<void> {
    // A batch of concurrent puts, then await all: group commit.
    const s = this.s;
    await Promise.all(recs.map((r) => s.put(r)));
  }
  async deleteBatch(ids: string[]): Promise<void> {
    const s = this.s;
    await Promise.all(ids.map((id) => s.delete(id)));
  }
  getSync(id: string): BenchMemory | undefined {
    return this.s.getSync(id);
  }
  get(id: string): Promise<BenchMemory | undefined> {
    return this.s.get(id);
  }
  async iterate(): Promise<number> {
    let n = 0;
    let bytes = 0;
    for await (const m of this.s.entries()) {
      n++;
      bytes += m.content === null ? 0 : m.content.length;
    }
    // Uses `bytes` so that reading the content cannot be optimized away.
    if (bytes < 0) throw new Error('unreachable');
    return n;
  }
  async recall(query: Float32Array, k: number): Promise<string[]> {
    return (await this.s.recall(query, { k })).map((r) => r.memory.id);
  }
  recordCount(): number {
    return this.s.size;
  }
  async settle(): Promise<void> {
    await this.s.checkpoint();
  }
  async compact(): Promise<CompactResult> {
    const s = this.s;
    // Time spent in each phase reported through onProgress (plan, copy, commit, checkpoint, ...).
    const phaseMs: Record<string, number> = {};
    // Longest synchronous step per phase, from the engine's own 'compactionPause' events.
    const maxPauseByPhase: Record<string, number> = {};
    let phase = 'start';
    let since = performance.now();
    const onPause = (ms: number): void => {
      maxPauseByPhase[phase] = Math.max(maxPauseByPhase[phase] ?? 0, Math.round(ms * 10) / 10);
    };
    s.on('compactionPause', onPause);
    // Event-loop stall per phase, measured from outside the engine.
    const eldByPhase: Record<string, number> = {};
    const eld = monitorEventLoopDelay({ resolution: 1 });
    eld.enable();
    const closePhase = (): void => {
      eldByPhase[phase] = Math.max(eldByPhase[phase] ?? 0, Math.round(eld.max / 1e5) / 10);
      eld.reset();
    };
    const stats = await s.compact({
      force: true,
      onProgress: (p) => {
        if (p.phase === phase) return;
        const t = performance.now();
        closePhase();
        phaseMs[phase] = (phaseMs[phase] ?? 0) + (t - since);
        phase = p.phase;
        since = t;
      },
    });
    phaseMs[phase] = (phaseMs[phase] ?? 0) + (performance.now() - since);
    closePhase();
    eld.disable();
    s.off('compactionPause', onPause);
    for (const k of Object.keys(phaseMs)) phaseMs[k] = Math.round(phaseMs[k]!);
    return { details: { ...stats, phaseMs, maxPauseByPhase, eldMaxMsByPhase: eldByPhase } };
  }
  async close(): Promise<void> {
    if (this.store && !this.store.closed) await this.store.close();
  }
  stats(): Record<string, unknown> {
    return { ...this.s.contentStorageStats() };
  }
}
