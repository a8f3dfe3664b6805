// Prints the top functions of a V8 .cpuprofile by self time (and by total time with --total).
//   node tools/cpuprofile-top.mjs FILE.cpuprofile [--top 30] [--total]
import * as fs from 'node:fs';

const file = process.argv[2];
if (!file) {
  console.error('usage: node tools/cpuprofile-top.mjs FILE.cpuprofile [--top N] [--total]');
  process.exit(2);
}
const topIdx = process.argv.indexOf('--top');
const TOP = topIdx > 0 ? Number(process.argv[topIdx + 1]) : 30;
const prof = JSON.parse(fs.readFileSync(file, 'utf8'));
const byId = new Map(prof.nodes.map((n) => [n.id, n]));
const dt = new Map();
for (let i = 0; i < prof.samples.length; i++) {
  const id = prof.samples[i];
  dt.set(id, (dt.get(id) ?? 0) + (prof.timeDeltas[i] ?? 0));
}
const total = [...dt.values()].reduce((a, b) => a + b, 0);
const key = (n) => {
  const f = n.callFrame;
  const url = f.url.replace(/^file:\/\//, '').replace(/.*\/(node_modules|dist|src|bench)\//, '$1/');
  return `${f.functionName || '(anonymous)'} ${url}:${f.lineNumber + 1}`;
};
const self = new Map();
for (const [id, t] of dt) {
  const k = key(byId.get(id));
  self.set(k, (self.get(k) ?? 0) + t);
}
// Inclusive time: walk parents.
const parent = new Map();
for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
const incl = new Map();
for (const [id, t] of dt) {
  const seen = new Set();
  for (let cur = id; cur !== undefined; cur = parent.get(cur)) {
    const k = key(byId.get(cur));
    if (seen.has(k)) continue;
    seen.add(k);
    incl.set(k, (incl.get(k) ?? 0) + t);
  }
}
const show = process.argv.includes('--total') ? incl : self;
console.log(`${file}: ${(total / 1000).toFixed(0)} ms sampled; by ${show === incl ? 'total' : 'self'} time`);
for (const [k, t] of [...show].sort((a, b) => b[1] - a[1]).slice(0, TOP)) {
  console.log(
    `${((100 * t) / total).toFixed(1).padStart(5)}%  ${(t / 1000).toFixed(1).padStart(8)} ms  ${k}`,
  );
}
