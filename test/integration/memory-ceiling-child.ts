/**
 * Child of memory-ceiling.test.ts: builds a store of N memories x 768 in STORE_DIR, closes it,
 * opens it again and reads every memory back, then reports the process's resident anonymous
 * memory (RssAnon) after the open and after the reads, as one JSON line on stdout.
 *
 * Embeddings and content are recomputed from (SEED, index) when they are checked, so the child
 * itself holds nothing per memory: what RssAnon grows by is what the store keeps.
 *
 * INDEX=1 keeps the recall index (built once the store holds `annMinMemories`) and waits, before
 * each close and before the approximate recalls, until it is ready: a store closed in the middle of
 * a build reopens with the partial index in memory until the build ends. Otherwise the store keeps
 * no index and every recall scans.
 *   STORE_DIR=/tmp/x N=40000 SEED=1 node --import tsx --max-old-space-size=64 --expose-gc <this>
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { WarmStore, type WarmStoreOptions } from '../../src/index.js';
import { envInt, envStr } from '../crash/child-io.js';
import { Rng, hashSeed } from '../helpers/random.js';

const DIM = 768;
const BATCH = 500;
const RECALLS = 20;
const K = 10;

const dir = envStr('STORE_DIR');
const n = envInt('N', 40_000);
const seed = envInt('SEED', 1);
const withIndex = process.env.INDEX === '1';

const options: WarmStoreOptions = {
  dimension: DIM,
  durability: 'sync',
  maintenanceIntervalMs: false,
  // The reserve is zero bytes kept against a full disk, not data: left out, the store's files are
  // its records, vectors, content, log and index alone.
  diskReserveBytes: 0,
  // Building the index inserts every vector into a graph: minutes at this size on a busy machine.
  ...(withIndex ? {} : { annMinMemories: 2 ** 32 }),
};

/** Memory i's embedding: a uniformly random direction (Gaussian values, normalized). */
function embeddingOf(i: number): Float32Array {
  const r = new Rng(hashSeed('memory-ceiling', seed, i));
  const v = new Float32Array(DIM);
  let norm = 0;
  for (let d = 0; d < DIM; d += 2) {
    const radius = Math.sqrt(-2 * Math.log(1 - r.next()));
    const angle = 2 * Math.PI * r.next();
    const a = radius * Math.cos(angle);
    const b = radius * Math.sin(angle);
    v[d] = a;
    v[d + 1] = b;
    norm += a * a + b * b;
  }
  const scale = 1 / Math.sqrt(norm);
  for (let d = 0; d < DIM; d++) v[d] = (v[d] as number) * scale;
  return v;
}

const idOf = (i: number): string => `m${i}`;
const contentOf = (i: number): string => `memory ${i} of seed ${seed}`;

/** RssAnon from /proc/self/status, in bytes, after a full garbage collection. */
function rssAnon(): number {
  // Garbage left by the build (the generated records, settled promises) is not what the store
  // keeps; collecting it first lets V8 give its free pages back before the reading.
  (globalThis as { gc?: () => void }).gc?.();
  const status = readFileSync('/proc/self/status', 'utf8');
  const kb = /RssAnon:\s+(\d+)\s+kB/.exec(status)?.[1];
  if (kb === undefined) throw new Error('no RssAnon in /proc/self/status');
  return Number(kb) * 1024;
}

function dirBytes(path: string): number {
  let total = 0;
  for (const entry of readdirSync(path, { withFileTypes: true })) {
    const p = join(path, entry.name);
    total += entry.isDirectory() ? dirBytes(p) : statSync(p).size;
  }
  return total;
}

function sameVector(a: Float32Array, b: Float32Array): boolean {
  if (a.length !== b.length) return false;
  for (let d = 0; d < a.length; d++) if (!Object.is(a[d], b[d])) return false;
  return true;
}

function fail(message: string): never {
  throw new Error(message);
}

/** Waits until the index holds every memory (a store below `annMinMemories` has none: 'off'). */
async function indexReady(store: WarmStore): Promise<void> {
  for (;;) {
    const s = store.indexStatus;
    if (s.state === 'off' || (s.state === 'ready' && s.tail === 0)) return;
    if (s.state === 'failed') fail(`recall index failed: ${s.error ?? 'no reason given'}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

const writer = await WarmStore.open(dir, options);
for (let i = 0; i < n; i += BATCH) {
  const puts: Promise<void>[] = [];
  for (let j = i; j < Math.min(n, i + BATCH); j++)
    puts.push(writer.put({ id: idOf(j), embedding: embeddingOf(j), content: contentOf(j) }));
  await Promise.all(puts);
}
if (withIndex) await indexReady(writer);
await writer.close();

const store = await WarmStore.open(dir, options);
const rssAnonOpen = rssAnon();
if (store.size !== n) fail(`reopened store holds ${store.size} memories, wrote ${n}`);

let got = 0;
for (let i = 0; i < n; i++) {
  const m = await store.get(idOf(i));
  if (m === undefined) fail(`${idOf(i)} is missing`);
  if (!sameVector(m.embedding, embeddingOf(i))) fail(`${idOf(i)}: embedding differs from what was put`);
  if (m.content !== contentOf(i)) fail(`${idOf(i)}: content differs from what was put`);
  got++;
}

// Queries are stored memories' own vectors, so the exact answer's first hit is that memory.
const queries = new Rng(hashSeed('queries', seed));
let recalls = 0;
let exactSelfHits = 0;
let approxSelfHits = 0;
for (const exact of [true, false]) {
  if (!exact && withIndex) await indexReady(store);
  for (let q = 0; q < RECALLS && n > 0; q++) {
    const i = queries.int(n);
    const hits = await store.recall(embeddingOf(i), { k: K, exact });
    if (hits.length !== Math.min(K, n)) fail(`recall (exact ${exact}) returned ${hits.length} of ${K}`);
    for (let h = 1; h < hits.length; h++)
      if ((hits[h] as { score: number }).score > (hits[h - 1] as { score: number }).score)
        fail(`recall (exact ${exact}) results are not sorted by score`);
    if (hits[0]?.memory.id === idOf(i)) {
      if (exact) exactSelfHits++;
      else approxSelfHits++;
    }
    recalls++;
  }
}

// One byte per memory marks the ids seen, so a memory visited twice fails without a set of ids.
const seen = new Uint8Array(n);
let entries = 0;
for await (const m of store.entries()) {
  const i = Number(m.id.slice(1));
  if (idOf(i) !== m.id || i < 0 || i >= n) fail(`entries() visited an unknown id ${m.id}`);
  if (seen[i] === 1) fail(`entries() visited ${m.id} twice`);
  seen[i] = 1;
  if (m.embedding.length !== DIM) fail(`${m.id}: entry embedding has ${m.embedding.length} values`);
  entries++;
}

const rssAnonAfter = rssAnon();
const fileBytes = dirBytes(dir);
const heapUsed = process.memoryUsage().heapUsed;
const indexSearches = store.indexStatus.searches;
await store.close();

process.stdout.write(
  `${JSON.stringify({ n, got, entries, recalls, exactSelfHits, approxSelfHits, indexSearches, fileBytes, rssAnonOpen, rssAnonAfter, heapUsed })}\n`,
);
