/** Exact top-10 recall against a plain JS loop over the same embeddings. */
import type { Engine } from '../engines/engine.ts';
import { type Dataset, rng } from '../lib/data.ts';
import { median, now } from '../lib/measure.ts';
import { type PhaseContext, log } from './context.ts';

/** Exact cosine top-k in a plain JS loop over the dataset: the figure an application gets without an engine. */
function jsExactTopK(ds: Dataset, q: Float32Array, k: number): string[] {
  const dim = ds.dim;
  const e = ds.embeddings;
  let qn = 0;
  for (let j = 0; j < dim; j++) qn += q[j]! * q[j]!;
  qn = Math.sqrt(qn);
  const topS: number[] = [];
  const topI: number[] = [];
  for (let i = 0; i < ds.n; i++) {
    let dot = 0;
    let nn = 0;
    const o = i * dim;
    for (let j = 0; j < dim; j++) {
      const x = e[o + j]!;
      dot += x * q[j]!;
      nn += x * x;
    }
    const s = dot / (Math.sqrt(nn) * qn);
    if (topS.length < k || s > topS[topS.length - 1]!) {
      let p = topS.length < k ? topS.length : k - 1;
      while (p > 0 && topS[p - 1]! < s) {
        if (p < k) {
          topS[p] = topS[p - 1]!;
          topI[p] = topI[p - 1]!;
        }
        p--;
      }
      topS[p] = s;
      topI[p] = i;
      if (topS.length > k) {
        topS.length = k;
        topI.length = k;
      }
    }
  }
  return topI.map((i) => ds.records[i]!.id);
}

/** Six random queries, the first a warm-up; runs only for engines that search vectors. */
export async function recallPhase(ctx: PhaseContext, recall: NonNullable<Engine['recall']>): Promise<void> {
  const { ds } = ctx;
  const r = rng(4242);
  const ms: number[] = [];
  const jsMs: number[] = [];
  let agree = 0;
  let total = 0;
  for (let qi = 0; qi < 6; qi++) {
    const q = new Float32Array(ds.dim);
    for (let j = 0; j < ds.dim; j++) q[j] = r() * 2 - 1;
    let t0 = now();
    const ids = await recall(q, 10);
    const dt = now() - t0;
    t0 = now();
    const want = jsExactTopK(ds, q, 10);
    const djs = now() - t0;
    if (qi === 0) continue; // warm-up
    ms.push(dt);
    jsMs.push(djs);
    const got = new Set(ids);
    for (const id of want) if (got.has(id)) agree++;
    total += want.length;
  }
  ctx.res.recall = { ms, jsBaselineMs: jsMs, top10Agreement: agree / total };
  log(
    `    recall top-10: ${median(ms).toFixed(1)} ms (plain JS loop ${median(jsMs).toFixed(1)} ms), ` +
      `agreement with exact ${(100 * (agree / total)).toFixed(1)}%`,
  );
}
