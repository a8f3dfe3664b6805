/**
 * The index worker: the one thread that owns the usearch `Index`. Every binding call is
 * synchronous (it runs on the calling thread), so none may run on the store's event loop.
 *
 * Plain CommonJS from a string, like the vector verifier: no file to resolve whether warmstore
 * runs from dist/ or from its TypeScript sources. Messages are handled strictly in order, which
 * is what the main side relies on: a search sees every apply posted before it, and a save writes
 * exactly the applies posted before it.
 *
 * Messages in: `open` (load the file if its size and CRC32C match, else start empty), `apply`
 * (removes, then upserts: a key already present is removed first), `search`, `save` (temp file,
 * fsync, rename, fsync of the directory; replies with the file's size and CRC32C), `prune` (deletes
 * index files but the one kept), `stop` (no reply: the thread ends). Every other message
 * gets one reply carrying its `id`; a failure replies `{ id, error }`.
 */
export const WORKER_SOURCE = `
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
let index = new usearch.Index(params);

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

function open(m) {
  const want = m.expect;
  if (!want || !want.file || !fs.existsSync(m.file)) return { loaded: false, reason: want ? 'missing' : 'not recorded' };
  const got = fileCrc(m.file);
  if (got.bytes !== want.bytes || got.crc !== want.crc) return { loaded: false, reason: 'damaged' };
  try {
    index.load(m.file);
  } catch (err) {
    index = new usearch.Index(params);
    return { loaded: false, reason: 'damaged: ' + err.message };
  }
  return { loaded: true, size: index.size() };
}

function apply(m) {
  if (m.removes.length > 0) index.remove(m.removes);
  const keys = m.keys;
  for (let j = 0; j < keys.length; j++) if (index.contains(keys[j])) index.remove(keys[j]);
  if (keys.length > 0) index.add(keys, m.codes, 1);
  return { size: index.size() };
}

function search(m) {
  const size = index.size();
  if (size === 0) return { slots: new Float64Array(0) };
  const r = index.search(m.query, Math.min(m.k, size), 1);
  const slots = new Float64Array(r.keys.length);
  let n = 0;
  // Key 2^64-1 marks an unfilled result; slot keys are below 2^32.
  for (const key of r.keys) if (key < 4294967296n) slots[n++] = Number(key);
  return { slots: slots.subarray(0, n) };
}

function save(m) {
  const tmp = m.file + '.tmp';
  index.save(tmp);
  fsyncPath(tmp);
  const sum = fileCrc(tmp);
  fs.renameSync(tmp, m.file);
  fsyncPath(path.dirname(m.file));
  return sum;
}

function prune(m) {
  for (const name of fs.readdirSync(m.dir)) {
    if (name.startsWith(m.prefix) && name !== m.keep) fs.rmSync(path.join(m.dir, name), { force: true });
  }
  return {};
}

const stopFlag = workerData.stopFlag;
parentPort.on('message', (m) => {
  if (m.t === 'apply' && Atomics.load(stopFlag, 0) === 1) {
    // Closing: what is still queued is not worth indexing now (the next open catches up).
    parentPort.postMessage({ id: m.id, size: index.size(), skipped: true });
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
    else if (m.t === 'prune') r = prune(m);
    else throw new Error('unknown message ' + m.t);
  } catch (err) {
    parentPort.postMessage({ id: m.id, error: String(err && err.message ? err.message : err) });
    return;
  }
  r.id = m.id;
  parentPort.postMessage(r);
});
`;
