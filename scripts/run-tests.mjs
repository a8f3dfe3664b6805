#!/usr/bin/env node
// Runs node:test over TypeScript test files through tsx. Node 20's --test has no glob support,
// so the file list is gathered here. Usage: node scripts/run-tests.mjs [dir ...]
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

const roots = process.argv.slice(2);
// test/slow runs its small-scale case by default; its 100K and 1M runs need WARMSTORE_SLOW=1.
const dirs = roots.length > 0 ? roots : ['test/unit', 'test/integration', 'test/crash', 'test/slow'];
const files = [];
function walk(dir) {
  let names;
  try {
    names = readdirSync(dir).sort();
  } catch {
    return;
  }
  for (const name of names) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p);
    else if (name.endsWith('.test.ts')) files.push(p);
  }
}
dirs.forEach(walk);
if (files.length === 0) {
  console.error('no test files found in', dirs.join(', '));
  process.exit(1);
}
const concurrency = process.env.WARMSTORE_TEST_CONCURRENCY ?? '2';
const r = spawnSync(
  process.execPath,
  ['--import', 'tsx', '--test', `--test-concurrency=${concurrency}`, '--test-reporter=spec', ...files],
  { stdio: 'inherit' },
);
process.exit(r.status ?? 1);
