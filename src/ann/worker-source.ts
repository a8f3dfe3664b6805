/**
 * The index worker: the one thread that owns the usearch indexes a recall searches. Every binding
 * call is synchronous (it runs on the calling thread), so none may run on the store's event loop.
 *
 * The index is two parts, so that most of it stays out of process memory:
 * - the base, a saved file opened with `view()`: memory-mapped, read-only, paged in from the page
 *   cache as searches touch it (tens of bytes a vector resident, against about a kilobyte loaded);
 * - the delta, a small index in memory holding every vector added since the base was written, and
 *   the dead set, base keys since removed or replaced.
 * A search asks both and drops dead base keys. A merge (MERGE_SOURCE, another thread) writes a new
 * base from the old one, the dead set and the delta's current vectors; the swap then views it and
 * starts an empty delta, and hands back the keys written since the merge began, which the main
 * side sends again.
 *
 * Plain CommonJS from a string, like the vector verifier: no file to resolve whether warmstore
 * runs from dist/ or from its TypeScript sources. Messages are handled strictly in order, which
 * is what the main side relies on: a search sees every apply posted before it, and a save writes
 * exactly the applies posted before it.
 *
 * Messages in: `open` (view the base and load the delta and dead set if each file's size and
 * CRC32C match, else start empty; replies with the saved key aliases), `apply` (removes, then
 * upserts of float32 vectors, which the binding quantizes: a key already present is removed first), `search` (keys, not slots: the main side maps
 * them), `save` (the delta, the dead set and the main side's key aliases, each to a temp file,
 * fsync, rename, fsync of the directory; replies with each file's size and CRC32C), `snapshot` (what a merge
 * needs; from then on written keys are recorded), `swap` (view the merged base), `unrecord` (a
 * merge gave up), `promote` (no base yet: save the delta as the base and view it), `prune` (deletes
 * index files but the ones kept), `stop` (no reply: the thread ends). Every other message gets one
 * reply carrying its `id`; a failure replies `{ id, error }`.
 */
const COMMON = `
const { parentPort, workerData } = require('node:worker_threads');
const fs = require('node:fs');
const path = require('node:path');
const usearch = require(workerData.usearchModule);
const { crc32c } = require(workerData.crcModule);
const params = {
  dimensions: workerData.dim,
  metric: 'cos',
  quantization: 'i8',
  connectivity: 16,
  expansion_add: 128,
  expansion_search: 128,
};
const stopFlag = workerData.stopFlag;
const MAX_KEY = 9007199254740992n;
/**
 * Threads for one native add of \`n\` keys to \`index\`: one until the index holds MULTI_MIN
 * vectors or for adds under 64 keys; else ADD_THREADS, or BUILD_THREADS for a build's adds.
 * ADD_THREADS leaves one core to the event loop, which indexing beside live traffic would compete
 * with: on a 2-core machine it is one. A build (a lost or new index, recall scanning exactly until
 * it is done) takes every core: it is the only index work then, and the event loop still gets its
 * fair share of the cores from the scheduler (measured in docs/benchmarks.md, "Index build").
 *
 * The binding runs a multi-threaded add over the index's per-thread contexts, which number the
 * threads of its last reserve: a new, viewed or loaded index has one per hardware thread, and an
 * add that outgrows the capacity reserves for the threads it was given. More threads than contexts
 * share one and leave vectors unreachable, so an add never runs on more threads than the last
 * reserve made contexts for (\`contexts\` on the index object). Below MULTI_MIN, one thread keeps a
 * small index's graph the same from run to run: concurrent insertion missed 9 of 25,000 vectors'
 * own top-1 over five builds of 5,000, one thread none; at 100K both leave the same few
 * unreachable, and two threads build 2.1-2.4x faster.
 */
const MULTI_MIN = 100000;
const HW_THREADS = require('node:os').availableParallelism();
const ADD_THREADS = Math.max(1, HW_THREADS - 1);
const BUILD_THREADS = HW_THREADS;
function threadsFor(index, n, build) {
  const reserves = index.size() + n >= index.capacity();
  let threads = build ? BUILD_THREADS : ADD_THREADS;
  if (index.size() < MULTI_MIN || n < 64) threads = 1;
  else if (!reserves) threads = Math.min(threads, index.contexts === undefined ? HW_THREADS : index.contexts);
  if (reserves) index.contexts = threads;
  return threads;
}

function fileCrc(file) {
  const fd = fs.openSync(file, 'r');
  try {
    const buf = Buffer.allocUnsafe(4 << 20);
    let crc = 0;
    let pos = 0;
    for (;;) {
      const n = fs.readSync(fd, buf, 0, buf.length, pos);
      if (n === 0) break;
      crc = crc32c(buf.subarray(0, n), crc);
      pos += n;
    }
    return { bytes: pos, crc: crc >>> 0 };
  } finally {
    fs.closeSync(fd);
  }
}

function fsyncPath(p) {
  const fd = fs.openSync(p, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** Writes through \`write(tmp)\`, then fsync, rename and fsync of the directory; size and CRC32C. */
function durable(file, write) {
  const tmp = file + '.tmp';
  write(tmp);
  fsyncPath(tmp);
  const sum = fileCrc(tmp);
  fs.renameSync(tmp, file);
  fsyncPath(path.dirname(file));
  return { file: path.basename(file), bytes: sum.bytes, crc: sum.crc };
}
`;

export const WORKER_SOURCE = `${COMMON}
let base = null;
let delta = new usearch.Index(params);
/** Keys in the delta (the binding cannot list them; a merge needs them). */
let deltaKeys = new Set();
/** Base keys removed or replaced since the base was written. */
let dead = new Set();
/** Keys written since a merge's snapshot, or null when no merge runs. */
let recording = null;

function matches(file, want) {
  if (!fs.existsSync(file)) return 'missing';
  const got = fileCrc(file);
  return got.bytes === want.bytes && got.crc === want.crc ? '' : 'damaged';
}

function open(m) {
  if (!m.expect) return { loaded: false, reason: 'not recorded' };
  let alias = null;
  const parts = [
    ['base', m.base],
    ['delta', m.delta],
    ['delta keys', m.delta && m.delta.keys],
    ['dead', m.dead],
    ['aliases', m.alias],
  ];
  for (const [name, want] of parts) {
    if (!want) continue;
    const why = matches(path.join(m.dir, want.file), want);
    if (why) return { loaded: false, reason: name + ' ' + why };
  }
  try {
    if (m.base) {
      base = new usearch.Index(params);
      base.view(path.join(m.dir, m.base.file));
    }
    if (m.delta) {
      delta.load(path.join(m.dir, m.delta.file));
      const raw = fs.readFileSync(path.join(m.dir, m.delta.keys.file));
      for (const k of new BigUint64Array(raw.buffer, raw.byteOffset, raw.length / 8)) deltaKeys.add(k);
    }
    if (m.dead) {
      const raw = fs.readFileSync(path.join(m.dir, m.dead.file));
      for (const k of new BigUint64Array(raw.buffer, raw.byteOffset, raw.length / 8)) dead.add(k);
    }
    if (m.alias) {
      const raw = fs.readFileSync(path.join(m.dir, m.alias.file));
      alias = BigUint64Array.from(new BigUint64Array(raw.buffer, raw.byteOffset, raw.length / 8));
    }
  } catch (err) {
    base = null;
    delta = new usearch.Index(params);
    deltaKeys = new Set();
    dead = new Set();
    return { loaded: false, reason: 'damaged: ' + err.message };
  }
  return sizes({ loaded: true, alias });
}

function sizes(r) {
  r.base = base ? base.size() : 0;
  r.delta = delta.size();
  r.dead = dead.size;
  r.size = r.base - r.dead + r.delta;
  return r;
}

function drop(key) {
  if (deltaKeys.has(key)) {
    delta.remove(key);
    deltaKeys.delete(key);
  }
  if (base !== null && !dead.has(key) && base.contains(key)) dead.add(key);
  if (recording !== null) recording.add(key);
}

function apply(m) {
  for (const key of m.removes) drop(key);
  const keys = m.keys;
  for (const key of keys) drop(key);
  if (keys.length > 0) {
    delta.add(keys, m.vectors, threadsFor(delta, keys.length, m.build === true));
    for (const key of keys) deltaKeys.add(key);
  }
  return sizes({});
}

function search(m) {
  const out = [];
  // Key 2^64-1 marks an unfilled result; every real key is below 2^53 (the main side maps keys to
  // slots).
  if (base !== null && base.size() > 0) {
    // Dead keys take places in the base's answer: ask for more the more there are.
    const want = Math.min(base.size(), m.k + Math.min(dead.size, m.k));
    const r = base.search(m.query, want, 1);
    for (const key of r.keys) if (key < MAX_KEY && !dead.has(key)) out.push(Number(key));
  }
  const n = delta.size();
  if (n > 0) {
    const r = delta.search(m.query, Math.min(m.k, n), 1);
    for (const key of r.keys) if (key < MAX_KEY) out.push(Number(key));
  }
  return { keys: Float64Array.from(out) };
}

function save(m) {
  const r = {};
  if (delta.size() > 0) {
    // The keys beside the index: the binding cannot list a loaded index's keys.
    const keys = BigUint64Array.from(deltaKeys);
    const k = durable(m.delta + '.keys', (tmp) => fs.writeFileSync(tmp, Buffer.from(keys.buffer, 0, keys.byteLength)));
    r.delta = durable(m.delta, (tmp) => delta.save(tmp));
    r.delta.keys = k;
  }
  if (dead.size > 0) {
    const keys = BigUint64Array.from(dead);
    r.dead = durable(m.dead, (tmp) => fs.writeFileSync(tmp, Buffer.from(keys.buffer, 0, keys.byteLength)));
  }
  if (m.alias) {
    const a = m.alias.keys;
    r.alias = durable(m.alias.file, (tmp) => fs.writeFileSync(tmp, Buffer.from(a.buffer, a.byteOffset, a.byteLength)));
  }
  return r;
}

/**
 * What a merge starts from. With \`m.deltaFile\`, the delta is also saved there: a delta larger
 * than the base's live part is the cheaper start (the merge then adds the base's memories to it).
 */
function snapshot(m) {
  recording = new Set();
  const r = { dead: BigUint64Array.from(dead), deltaKeys: BigUint64Array.from(deltaKeys) };
  if (m.deltaFile) durable(m.deltaFile, (tmp) => delta.save(tmp));
  return r;
}

function swap(m) {
  // Viewing again on the same object unmaps the old file at once (view resets the index first);
  // a fresh object would keep the old mapping, and the deleted file's space, until a GC that a
  // worker this quiet may never run.
  if (base === null) base = new usearch.Index(params);
  base.view(m.file);
  delta = new usearch.Index(params);
  deltaKeys = new Set();
  dead = new Set();
  // As numbers (every key is below 2^53): the main side reads them on every recall while they wait,
  // and a BigInt read allocates.
  const changed = Float64Array.from(recording || [], Number);
  recording = null;
  return sizes({ changed });
}

/** With no base yet, the delta becomes the base as it is: saved, then viewed instead of held. */
function promote(m) {
  if (base !== null) throw new Error('promote with a base');
  const sum = durable(m.file, (tmp) => delta.save(tmp));
  const next = new usearch.Index(params);
  next.view(m.file);
  base = next;
  delta = new usearch.Index(params);
  deltaKeys = new Set();
  return sizes(sum);
}

function unrecord() {
  recording = null;
  return {};
}

function prune(m) {
  const keep = new Set(m.keep);
  for (const name of fs.readdirSync(m.dir)) {
    if (name.startsWith(m.prefix) && !keep.has(name)) fs.rmSync(path.join(m.dir, name), { force: true });
  }
  return {};
}

parentPort.on('message', (m) => {
  if (m.t === 'apply' && Atomics.load(stopFlag, 0) === 1) {
    // Closing: what is still queued is not worth indexing now (the next open catches up).
    parentPort.postMessage({ id: m.id, skipped: true });
    return;
  }
  if (m.t === 'stop') {
    // Ends the thread once every message before this one is done. Terminating it instead could
    // interrupt a native call, and the binding aborts the whole process when that happens.
    parentPort.close();
    return;
  }
  let r;
  try {
    if (m.t === 'open') r = open(m);
    else if (m.t === 'apply') r = apply(m);
    else if (m.t === 'search') r = search(m);
    else if (m.t === 'save') r = save(m);
    else if (m.t === 'snapshot') r = snapshot(m);
    else if (m.t === 'swap') r = swap(m);
    else if (m.t === 'unrecord') r = unrecord();
    else if (m.t === 'promote') r = promote(m);
    else if (m.t === 'prune') r = prune(m);
    else throw new Error('unknown message ' + m.t);
  } catch (err) {
    parentPort.postMessage({ id: m.id, error: String(err && err.message ? err.message : err) });
    return;
  }
  r.id = m.id;
  if (m.t === 'apply' && m.vectors) {
    // The index holds its own copy now: the buffer goes back to be filled again.
    r.vectors = m.vectors;
    parentPort.postMessage(r, [m.vectors.buffer]);
  } else parentPort.postMessage(r);
});
`;

/**
 * The merge thread: loads a saved index into memory (the one time a whole index is resident, in
 * this thread only), removes the keys it is told to, then adds what the main side sends a batch at
 * a time (current vectors, asked for with `more`) until it says it is done, and saves the new base
 * (temp file, fsync, rename, fsync of the directory). The stop flag ends it between two steps
 * without a file.
 *
 * In: workerData { load (path or ''), remove (keys), out }; messages { keys, vectors, done }.
 * Out: `more`, then `done` { file, bytes, crc, size } or `failed` { error } or `stopped`.
 */
export const MERGE_SOURCE = `${COMMON}
const index = new usearch.Index(params);

function stopped() {
  if (Atomics.load(stopFlag, 0) !== 1) return false;
  parentPort.postMessage({ t: 'stopped' });
  parentPort.close();
  return true;
}

function fail(err) {
  parentPort.postMessage({ t: 'failed', error: String(err && err.message ? err.message : err) });
  parentPort.close();
}

try {
  if (workerData.load) index.load(workerData.load);
  const gone = [];
  for (const key of workerData.remove) if (index.contains(key)) gone.push(key);
  if (gone.length > 0) index.remove(BigUint64Array.from(gone));
  parentPort.on('message', (m) => {
    try {
      if (stopped()) return;
      if (m.keys.length > 0) {
        // A key the loaded index still holds (written again since) is replaced.
        const again = [];
        for (const key of m.keys) if (index.contains(key)) again.push(key);
        if (again.length > 0) index.remove(BigUint64Array.from(again));
        index.add(m.keys, m.vectors, threadsFor(index, m.keys.length, false));
      }
      if (!m.done) {
        parentPort.postMessage({ t: 'more' });
        return;
      }
      const sum = durable(workerData.out, (tmp) => index.save(tmp));
      parentPort.postMessage({ t: 'done', file: sum.file, bytes: sum.bytes, crc: sum.crc, size: index.size() });
      parentPort.close();
    } catch (err) {
      fail(err);
    }
  });
  if (!stopped()) parentPort.postMessage({ t: 'more' });
} catch (err) {
  fail(err);
}
`;
