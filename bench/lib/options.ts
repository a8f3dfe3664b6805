/**
 * Command-line options of the bench scripts. Every option also reads from the environment, upper
 * case with dashes as underscores (`--get-ops` is also `BENCH_GET_OPS`), so that a run can be
 * configured from `npm run bench` without `--` plumbing.
 */

/** `--name value`, else `BENCH_NAME`, else `def`. A `--name` with no value after it reads as 'true'. */
export function opt(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  if (i >= 0) {
    const v = process.argv[i + 1];
    return v === undefined || v.startsWith('--') ? 'true' : v;
  }
  return process.env[`BENCH_${name.toUpperCase().replace(/-/g, '_')}`] ?? def;
}

/** `--name` present, or `BENCH_NAME=1`. */
export function flag(name: string): boolean {
  return process.argv.includes(`--${name}`) || opt(name, '') === '1';
}

/** A comma-separated option as a list; empty items and `none` are dropped. */
export function list(name: string, def: string): string[] {
  return opt(name, def)
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '' && s !== 'none');
}

/** A numeric option; anything but a finite number is an error naming the option. */
export function num(name: string, def: number): number {
  const raw = opt(name, String(def));
  const n = Number(raw);
  if (!Number.isFinite(n)) throw new Error(`--${name} must be a number, got '${raw}'`);
  return n;
}
