/**
 * Two builds of the server side by side: this checkout's and another's (say the branch point, in a
 * worktree of its own, built and with `npm install` done in its bench/), each the HTTP benchmark's
 * server process with its own preloaded memories, measured in turn: `/healthz` and the base64 GET
 * of one build, then of the other, a round at a time, the order turning each round. On a shared
 * machine the load drifts between two runs of `http.ts`; interleaved phases of a few seconds see
 * the same load. Prints the server's CPU time per request (and req/s) of each phase, then medians.
 *
 *   node --import tsx tools/http-pair.ts --other /work/wt-base [--rounds 8] [--duration 3]
 *        [--preload 10000] [--connections 10]
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { AutocannonRequest } from '../engines/peers.ts';
import { Dataset, rng } from '../lib/data.ts';
import { autocannonRun } from '../lib/http-load.ts';
import { BenchServer } from '../lib/http-server.ts';
import { median } from '../lib/measure.ts';
import { num, opt } from '../lib/options.ts';

const OTHER = opt('other', '');
const ROUNDS = Math.max(1, num('rounds', 8));
const DURATION = Math.min(num('duration', 3), 60);
const PRELOAD = num('preload', 10_000);
const CONNECTIONS = num('connections', 10);
const DIM = 768;
if (OTHER === '') throw new Error('--other: the root of the other checkout');
const otherModule = path.resolve(OTHER, 'bench/lib/http-server.ts');
if (!fs.existsSync(otherModule)) throw new Error(`--other: no ${otherModule}`);

const { BenchServer: OtherServer } = (await import(otherModule)) as { BenchServer: typeof BenchServer };
const builds = { this: BenchServer, other: OtherServer };
type Build = keyof typeof builds;
const servers = new Map<Build, BenchServer>();
const dirs: string[] = [];
try {
  for (const [name, Server] of Object.entries(builds) as Array<[Build, typeof BenchServer]>) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), `ws-http-pair-${name}-`));
    dirs.push(dir);
    servers.set(
      name,
      await Server.start({ dir, preload: PRELOAD, dim: DIM, durability: 'sync', cpuProfDir: undefined }),
    );
  }
  const ds = new Dataset(PRELOAD, DIM);
  const r = rng(31337);
  const phases: Record<'healthz' | 'base64', AutocannonRequest[]> = {
    healthz: [{ method: 'GET', path: '/healthz' }],
    base64: [
      {
        method: 'GET',
        setupRequest: (req) => {
          req.path = `/api/v1/memories/${encodeURIComponent(ds.records[Math.floor(r() * ds.n)]!.id)}?encoding=base64`;
          return req;
        },
      },
    ],
  };
  const cpu = new Map<string, number[]>();
  const rps = new Map<string, number[]>();
  const run = async (build: Build, phase: keyof typeof phases, seconds: number): Promise<string> => {
    const server = servers.get(build)!;
    const before = await server.ask<'stats'>({ cmd: 'stats' });
    const out = await autocannonRun({
      url: server.url,
      connections: CONNECTIONS,
      duration: seconds,
      requests: phases[phase],
    });
    const after = await server.ask<'stats'>({ cmd: 'stats' });
    if (out.failed > 0) throw new Error(`${build} ${phase}: ${out.failed} failed requests`);
    const key = `${build} ${phase}`;
    const us = (after.cpuUs - before.cpuUs) / out.ok;
    cpu.set(key, [...(cpu.get(key) ?? []), us]);
    rps.set(key, [...(rps.get(key) ?? []), out.reqPerSec]);
    return `${key} ${us.toFixed(1)} us ${out.reqPerSec.toFixed(0)}/s`;
  };
  // Warm-up, not counted.
  for (const build of servers.keys())
    for (const phase of ['healthz', 'base64'] as const) await run(build, phase, 1);
  cpu.clear();
  rps.clear();
  for (let i = 0; i < ROUNDS; i++) {
    const order: Build[] = i % 2 === 0 ? ['other', 'this'] : ['this', 'other'];
    const done: string[] = [];
    for (const build of order)
      for (const phase of i % 2 === 0 ? (['healthz', 'base64'] as const) : (['base64', 'healthz'] as const))
        done.push(await run(build, phase, DURATION));
    console.log(`round ${i + 1}/${ROUNDS}, load ${os.loadavg()[0]!.toFixed(2)}: ${done.join(', ')}`);
  }
  for (const build of ['other', 'this'] as const) {
    const h = cpu.get(`${build} healthz`)!;
    const g = cpu.get(`${build} base64`)!;
    const hr = rps.get(`${build} healthz`)!;
    const gr = rps.get(`${build} base64`)!;
    console.log(
      `${build}: CPU per request /healthz ${median(h).toFixed(1)} us, base64 GET ${median(g).toFixed(1)} us, ` +
        `CPU ratio ${(100 * median(h.map((x, i) => x / g[i]!))).toFixed(1)}%, ` +
        `req/s ratio ${(100 * median(gr.map((x, i) => x / hr[i]!))).toFixed(1)}%`,
    );
  }
  const diffs = cpu.get('this base64')!.map((x, i) => x - cpu.get('other base64')![i]!);
  console.log(
    `base64 GET, this minus other, per round: median ${median(diffs).toFixed(1)} us ` +
      `(${diffs.map((d) => d.toFixed(1)).join(' ')})`,
  );
} finally {
  for (const server of servers.values()) await server.stop();
  for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true });
}
