// What the main thread ran inside given windows of a V8 .cpuprofile.
//   node tools/cpuprofile-window.mjs FILE.cpuprofile START_US END_US [START_US END_US ...]
// Windows are monotonic microseconds (as printed by gap-ticker.mjs). Prints, per window, the
// sampled time by leaf function and the five heaviest full stacks.
import * as fs from 'node:fs';

const [file, ...rest] = process.argv.slice(2);
if (!file || rest.length < 2) {
  console.error('usage: node tools/cpuprofile-window.mjs FILE.cpuprofile START_US END_US ...');
  process.exit(2);
}
const prof = JSON.parse(fs.readFileSync(file, 'utf8'));
const byId = new Map(prof.nodes.map((n) => [n.id, n]));
const parent = new Map();
for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
const name = (n) => {
  const f = n.callFrame;
  const url = f.url.replace(/^file:\/\//, '').replace(/.*\/(node_modules|dist|src|bench|test)\//, '$1/');
  return `${f.functionName || '(anonymous)'}${url ? ` ${url}:${f.lineNumber + 1}` : ''}`;
};
const stackOf = (id) => {
  const out = [];
  for (let cur = id; cur !== undefined; cur = parent.get(cur)) out.push(name(byId.get(cur)));
  return out.slice(0, 12).join(' < ');
};
const times = [];
let t = prof.startTime;
for (let i = 0; i < prof.samples.length; i++) {
  t += prof.timeDeltas[i] ?? 0;
  times.push(t);
}
console.log(`profile ${prof.startTime}..${prof.endTime} us, ${prof.samples.length} samples`);
for (let w = 0; w + 1 < rest.length; w += 2) {
  const a = Number(rest[w]);
  const b = Number(rest[w + 1]);
  const leaf = new Map();
  const stacks = new Map();
  let n = 0;
  for (let i = 0; i < times.length; i++) {
    if (times[i] < a || times[i] > b) continue;
    n++;
    const id = prof.samples[i];
    const k = name(byId.get(id));
    leaf.set(k, (leaf.get(k) ?? 0) + 1);
    const s = stackOf(id);
    stacks.set(s, (stacks.get(s) ?? 0) + 1);
  }
  console.log(`\nwindow ${a}..${b} (${((b - a) / 1000).toFixed(1)} ms): ${n} samples`);
  for (const [k, c] of [...leaf].sort((x, y) => y[1] - x[1]).slice(0, 12))
    console.log(`  ${String(c).padStart(5)}  ${k}`);
  for (const [k, c] of [...stacks].sort((x, y) => y[1] - x[1]).slice(0, 5)) console.log(`  stack ${c}: ${k}`);
}
