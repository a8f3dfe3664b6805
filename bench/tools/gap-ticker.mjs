// Preload (`node --import ./bench/tools/gap-ticker.mjs ...`): a 1 ms ticker that records every
// event-loop gap longer than GAP_MS (default 30) as monotonic microseconds, the clock V8's
// .cpuprofile uses, and prints them at exit so cpuprofile-window.mjs can say what ran in them.
const GAP_MS = Number(process.env.GAP_MS ?? 30);
const gaps = [];
let last = process.hrtime.bigint();
setInterval(() => {
  const now = process.hrtime.bigint();
  const ms = Number(now - last) / 1e6;
  if (ms > GAP_MS) gaps.push({ startUs: Number(last / 1000n), endUs: Number(now / 1000n), ms });
  last = now;
}, 1).unref();
process.on('exit', () => {
  for (const g of gaps) process.stderr.write(`[gap] ${g.ms.toFixed(1)} ms ${g.startUs} ${g.endUs}\n`);
});
