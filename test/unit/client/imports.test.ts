/**
 * `warmstore/client` runs in applications that have no store: nothing it loads may reach the
 * engine or the server's dependencies (Fastify, pino), and the core must not load the client.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const SRC = resolve(dirname(fileURLToPath(import.meta.url)), '../../../src');

/** Runtime imports only: `import type` and `export type` vanish from the emitted JavaScript. */
function runtimeImports(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const out: string[] = [];
  const re = /^\s*(?:import|export)\s+(?!type\b)(?:[^'";]*?\sfrom\s+)?['"]([^'"]+)['"]/gm;
  for (let m = re.exec(text); m !== null; m = re.exec(text)) out.push(m[1]!);
  return out;
}

/** Every file and package reachable from `entry` through runtime imports. */
function closure(entry: string): { files: Set<string>; packages: Set<string> } {
  const files = new Set<string>();
  const packages = new Set<string>();
  const queue = [entry];
  while (queue.length > 0) {
    const file = queue.pop()!;
    if (files.has(file)) continue;
    files.add(file);
    for (const spec of runtimeImports(file)) {
      if (spec.startsWith('.')) queue.push(resolve(dirname(file), spec.replace(/\.js$/, '.ts')));
      else packages.add(spec);
    }
  }
  return { files, packages };
}

describe('warmstore/client import graph', () => {
  it('loads neither the engine nor the server framework', () => {
    const { files, packages } = closure(join(SRC, 'client/index.ts'));
    const names = [...files].map((f) => relative(SRC, f)).sort();
    assert.ok(names.includes('client/client.ts'), names.join(', '));
    for (const name of names) {
      assert.ok(!name.startsWith('engine/'), `the client loads ${name}`);
      assert.ok(!['server/index.ts', 'index.ts'].includes(name), `the client loads ${name}`);
    }
    for (const pkg of packages) assert.ok(pkg.startsWith('node:'), `the client loads the package ${pkg}`);
  });

  it('the core entry point does not load the client', () => {
    const { files } = closure(join(SRC, 'index.ts'));
    const names = [...files].map((f) => relative(SRC, f));
    assert.ok(names.includes('engine/store.ts'));
    assert.deepEqual(
      names.filter((n) => n.startsWith('client/')),
      [],
    );
  });
});
