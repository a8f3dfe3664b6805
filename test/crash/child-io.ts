import { writeSync } from 'node:fs';

/**
 * Writes one line to stdout synchronously, so that it is in the pipe before the next statement
 * runs: a line printed after an op resolved is then never lost to a SIGKILL that follows.
 */
export function out(line: string): void {
  const buf = Buffer.from(`${line}\n`, 'utf8');
  let off = 0;
  while (off < buf.length) {
    try {
      off += writeSync(1, buf, off, buf.length - off);
    } catch (err) {
      // A non-blocking pipe that is full: the parent drains it continuously, so just retry.
      if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') throw err;
    }
  }
}

export function envInt(name: string, fallback: number): number {
  const v = process.env[name];
  if (v === undefined || v === '') return fallback;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new Error(`${name} must be a number, got ${v}`);
  return n;
}

export function envStr(name: string): string {
  const v = process.env[name];
  if (v === undefined || v === '') throw new Error(`${name} is required`);
  return v;
}

/** Reports a failure the parent must see (it fails the test on any `error` line) and exits. */
export function die(what: string, err: unknown): never {
  const e = err as { code?: string; message?: string; stack?: string };
  out(`error ${what} ${e.code ?? ''} ${(e.message ?? String(err)).replace(/\n/g, ' ')}`);
  process.stderr.write(`${e.stack ?? String(err)}\n`);
  process.exit(2);
}

/**
 * With WAIT_GO=1 the parent spawned this child ahead of time, so that loading TypeScript and the
 * engine overlaps with the parent's verification of the previous round. The child says `loaded`,
 * then waits for one stdin line: a JSON object of env settings for this round.
 */
export async function awaitGo(): Promise<void> {
  if (process.env.WAIT_GO !== '1') return;
  out('loaded');
  const line = await new Promise<string>((resolve, reject) => {
    let buf = '';
    const onData = (chunk: Buffer): void => {
      buf += chunk.toString('utf8');
      const nl = buf.indexOf('\n');
      if (nl >= 0) {
        process.stdin.off('data', onData);
        process.stdin.pause();
        resolve(buf.slice(0, nl));
      }
    };
    process.stdin.on('data', onData);
    process.stdin.once('end', () => reject(new Error('stdin closed before go')));
  });
  const settings = JSON.parse(line) as Record<string, string>;
  Object.assign(process.env, settings);
}
