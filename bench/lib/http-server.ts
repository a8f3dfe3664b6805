/**
 * The HTTP benchmark's server, seen from the load generator: a child process (so that the load
 * generator and the server each get a core) running `lib/http-server-child.ts`, and the messages
 * the two exchange.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** What the parent asks the server process. */
export type ChildRequest =
  | { id: number; cmd: 'recall'; query: string; k: number }
  | { id: number; cmd: 'stats' }
  | { id: number; cmd: 'settle' }
  | { id: number; cmd: 'stop' };

/** What the server process answers (`ready` once, unasked). */
export type ChildReply =
  | { type: 'ready'; url: string; preloadMs: number; size: number }
  | { type: 'recall'; id: number; ms: number; ids: string[] }
  | {
      type: 'stats';
      id: number;
      size: number;
      rss: number;
      /** user + system CPU time, microseconds */ cpuUs: number;
    }
  | { type: 'settled'; id: number; ms: number }
  | { type: 'stopped'; id: number; closeMs: number };

type Answer<C extends ChildRequest['cmd']> = Extract<
  ChildReply,
  { type: { recall: 'recall'; stats: 'stats'; settle: 'settled'; stop: 'stopped' }[C] }
>;

/** Little-endian float32 as base64, the wire form of an embedding. */
export function encodeBase64Embedding(e: Float32Array): string {
  const b = Buffer.allocUnsafe(e.length * 4);
  for (let i = 0; i < e.length; i++) b.writeFloatLE(e[i]!, i * 4);
  return b.toString('base64');
}

/** The inverse of `encodeBase64Embedding`, whatever the machine's byte order. */
export function decodeBase64Embedding(s: string): Float32Array {
  const b = Buffer.from(s, 'base64');
  const out = new Float32Array(b.length >> 2);
  for (let i = 0; i < out.length; i++) out[i] = b.readFloatLE(i * 4);
  return out;
}

export interface ServerOptions {
  dir: string;
  preload: number;
  dim: number;
  durability: string;
  /** Directory for a V8 CPU profile of the server process, or undefined for none. */
  cpuProfDir: string | undefined;
}

export class BenchServer {
  readonly #child: ChildProcess;
  readonly #pending = new Map<number, (m: ChildReply) => void>();
  #next = 1;
  url = '';
  preloadMs = NaN;
  size = NaN;

  private constructor(child: ChildProcess) {
    this.#child = child;
    child.on('message', (m: ChildReply) => {
      if (m.type === 'ready') return;
      const done = this.#pending.get(m.id);
      this.#pending.delete(m.id);
      done?.(m);
    });
  }

  /** Starts the server process and waits until it listens with the dataset loaded. */
  static async start(o: ServerOptions): Promise<BenchServer> {
    const entry = fileURLToPath(new URL('./http-server-child.ts', import.meta.url));
    const args = ['--dir', o.dir, '--preload', String(o.preload), '--dim', String(o.dim)];
    const child = fork(entry, [...args, '--durability', o.durability], {
      execArgv: [
        '--import',
        'tsx',
        ...(o.cpuProfDir === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', o.cpuProfDir]),
      ],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const s = new BenchServer(child);
    const ready = await new Promise<Extract<ChildReply, { type: 'ready' }>>((resolve, reject) => {
      const onExit = (code: number | null): void => reject(new Error(`server exited with ${code}`));
      child.once('exit', onExit);
      child.on('message', (m: ChildReply) => {
        if (m.type !== 'ready') return;
        child.off('exit', onExit);
        resolve(m);
      });
    });
    // The benchmark sends no key: it only ever talks to a server on loopback.
    if (!/^http:\/\/127\.0\.0\.1:\d+$/.test(ready.url)) {
      child.kill('SIGKILL');
      throw new Error(`refusing a server that is not on 127.0.0.1: ${ready.url}`);
    }
    s.url = ready.url;
    s.preloadMs = ready.preloadMs;
    s.size = ready.size;
    return s;
  }

  ask<C extends ChildRequest['cmd']>(req: Omit<Extract<ChildRequest, { cmd: C }>, 'id'>): Promise<Answer<C>> {
    const id = this.#next++;
    return new Promise((resolve, reject) => {
      if (this.#child.exitCode !== null) {
        reject(new Error('server process has exited'));
        return;
      }
      this.#pending.set(id, (m) => resolve(m as Answer<C>));
      this.#child.send({ ...req, id });
    });
  }

  /** Closes the server (its close time, or undefined when it took over 30 s and was killed). */
  async stop(): Promise<number | undefined> {
    if (this.#child.exitCode !== null || this.#child.signalCode !== null) return undefined;
    const exited = new Promise((r) => this.#child.once('exit', r));
    const timeout = (ms: number): Promise<undefined> =>
      new Promise((r) => setTimeout(() => r(undefined), ms).unref());
    const stopped = await Promise.race([this.ask<'stop'>({ cmd: 'stop' }), timeout(30_000)]);
    await Promise.race([exited, timeout(30_000)]);
    if (this.#child.exitCode === null && this.#child.signalCode === null) {
      console.error('server did not exit within 30 s; killing it');
      this.#child.kill('SIGKILL');
    }
    return stopped?.closeMs;
  }
}
