import { spawn, type ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root, so children resolve `tsx` and `src/` whatever the test's cwd. */
export const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

export interface ChildExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface SpawnedChild {
  readonly proc: ChildProcess;
  /** Complete stdout lines received so far (a trailing partial line is kept until it ends). */
  readonly lines: string[];
  /** Everything the child wrote to stderr so far. */
  stderr(): string;
  /** Resolves once a line satisfies `pred` (checking lines already received first). */
  waitForLine(pred: (line: string, index: number) => boolean, timeoutMs?: number): Promise<string>;
  /** Resolves once `count` lines satisfy `pred`. */
  waitForCount(pred: (line: string) => boolean, count: number, timeoutMs?: number): Promise<void>;
  /** Sends `signal` (SIGKILL by default) and waits until the child is gone and stdout is drained. */
  kill(signal?: NodeJS.Signals): Promise<ChildExit>;
  /** Settles when the process has exited and its stdio is closed (every line received). */
  readonly exited: Promise<ChildExit>;
  /** For `waitForGo` children: sends this round's env settings, which starts the child. */
  go(settings: Record<string, string>): void;
}

export interface SpawnOptions {
  env?: Record<string, string>;
  args?: string[];
  /** Echo the child's stderr to ours as it arrives (debugging). */
  echoStderr?: boolean;
  /**
   * Spawn ahead of time: the child loads, prints `loaded` and waits for `go(settings)` before it
   * starts (see test/crash/child-io.ts awaitGo).
   */
  waitForGo?: boolean;
}

/**
 * Starts `node --import tsx <script>` (a path relative to the repo root) and collects its stdout
 * line by line. Lines written by the child with a synchronous write before a SIGKILL are still
 * received: the kernel keeps the pipe's contents after the writer dies.
 */
export function spawnWriter(script: string, options: SpawnOptions = {}): SpawnedChild {
  const proc = spawn(
    process.execPath,
    ['--import', 'tsx', join(REPO_ROOT, script), ...(options.args ?? [])],
    {
      cwd: REPO_ROOT,
      env: { ...process.env, ...options.env, ...(options.waitForGo === true ? { WAIT_GO: '1' } : {}) },
      stdio: [options.waitForGo === true ? 'pipe' : 'ignore', 'pipe', 'pipe'],
    },
  );
  const lines: string[] = [];
  let partial = '';
  let err = '';
  const waiters = new Set<() => void>();
  const notify = (): void => {
    for (const w of [...waiters]) w();
  };
  proc.stdout?.setEncoding('utf8');
  proc.stdout?.on('data', (chunk: string) => {
    const parts = (partial + chunk).split('\n');
    partial = parts.pop() ?? '';
    if (parts.length > 0) {
      lines.push(...parts);
      notify();
    }
  });
  proc.stderr?.setEncoding('utf8');
  proc.stderr?.on('data', (chunk: string) => {
    err += chunk;
    if (options.echoStderr === true) process.stderr.write(chunk);
  });
  let done = false;
  const exited = new Promise<ChildExit>((resolve) => {
    proc.on('close', (code, signal) => {
      // A line cut short by the kill is dropped: the child never finished printing it.
      done = true;
      notify();
      resolve({ code, signal });
    });
  });

  const waitUntil = (check: () => string | undefined, what: string, timeoutMs: number): Promise<string> =>
    new Promise((resolve, reject) => {
      const first = check();
      if (first !== undefined) return resolve(first);
      const timer = setTimeout(() => {
        waiters.delete(waiter);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; stderr: ${err.slice(-2000)}`));
      }, timeoutMs);
      const waiter = (): void => {
        const hit = check();
        if (hit !== undefined || done) {
          clearTimeout(timer);
          waiters.delete(waiter);
          if (hit !== undefined) resolve(hit);
          else reject(new Error(`child exited while waiting for ${what}; stderr: ${err.slice(-2000)}`));
        }
      };
      waiters.add(waiter);
    });

  return {
    proc,
    lines,
    stderr: () => err,
    exited,
    waitForLine(pred, timeoutMs = 20_000) {
      let from = 0;
      return waitUntil(
        () => {
          for (; from < lines.length; from++) {
            const line = lines[from] as string;
            if (pred(line, from)) return line;
          }
          return undefined;
        },
        'a matching line',
        timeoutMs,
      );
    },
    async waitForCount(pred, count, timeoutMs = 20_000) {
      let from = 0;
      let seen = 0;
      await waitUntil(
        () => {
          for (; from < lines.length; from++) if (pred(lines[from] as string)) seen++;
          return seen >= count ? 'ok' : undefined;
        },
        `${count} matching lines`,
        timeoutMs,
      );
    },
    go(settings) {
      if (proc.stdin === null) throw new Error('go() needs a child spawned with waitForGo');
      proc.stdin.end(`${JSON.stringify(settings)}\n`);
    },
    async kill(signal = 'SIGKILL') {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      return exited;
    },
  };
}

/**
 * Keeps one child of `script` loaded and waiting, so that its start-up (TypeScript, the engine)
 * overlaps with whatever the test does between rounds. `start(settings)` hands over the waiting
 * child, sends it its settings and spawns the next spare.
 */
export class PrespawnedChildren {
  readonly #script: string;
  readonly #options: SpawnOptions;
  #spare: SpawnedChild | undefined;

  constructor(script: string, options: SpawnOptions = {}) {
    this.#script = script;
    this.#options = { ...options, waitForGo: true };
    this.#spare = spawnWriter(this.#script, this.#options);
  }

  async start(settings: Record<string, string>): Promise<SpawnedChild> {
    const child = this.#spare ?? spawnWriter(this.#script, this.#options);
    this.#spare = undefined;
    await child.waitForLine((l) => l === 'loaded', 60_000);
    child.go(settings);
    this.#spare = spawnWriter(this.#script, this.#options);
    return child;
  }

  /** Kills the spare; call at the end of the test. */
  async dispose(): Promise<void> {
    const spare = this.#spare;
    this.#spare = undefined;
    if (spare !== undefined) await spare.kill('SIGKILL');
  }
}
