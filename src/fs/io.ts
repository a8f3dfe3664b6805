import type { WsFile, WsFileSystem } from './types.js';

/**
 * Whole-buffer reads and writes over a `WsFile`, whose calls may return short counts. Every loop
 * over short reads and writes lives here.
 */

function shortWrite(n: number): Error {
  return Object.assign(new Error(`write returned ${n}`), { code: 'EIO' });
}

/** Reads up to `length` bytes at `position` into `buf[offset..]`; short only at end of file. */
export async function readFully(
  file: WsFile,
  buf: Uint8Array,
  offset: number,
  length: number,
  position: number,
): Promise<number> {
  let got = 0;
  while (got < length) {
    const n = await file.read(buf, offset + got, length - got, position + got);
    if (n === 0) break;
    got += n;
  }
  return got;
}

/** `readFully` on the calling thread (a page-cached pread costs ~2 us, a pool hop far more). */
export function readFullySync(
  file: WsFile,
  buf: Uint8Array,
  offset: number,
  length: number,
  position: number,
): number {
  let got = 0;
  while (got < length) {
    const n = file.readSync(buf, offset + got, length - got, position + got);
    if (n === 0) break;
    got += n;
  }
  return got;
}

/** Writes all of `buf` at `position`, looping over short writes. */
export async function writeFully(file: WsFile, buf: Uint8Array, position: number): Promise<void> {
  let off = 0;
  while (off < buf.length) {
    const n = await file.write(buf, off, buf.length - off, position + off);
    if (n <= 0) throw shortWrite(n);
    off += n;
  }
}

/**
 * One durable positioned write (see `WsFile.writeDurable`); a file layer without one gets `write`
 * then `sync`, which is as durable in two calls.
 */
export async function writeDurable(
  file: WsFile,
  buf: Uint8Array,
  offset: number,
  length: number,
  position: number,
): Promise<number> {
  if (file.writeDurable) return file.writeDurable(buf, offset, length, position);
  const n = await file.write(buf, offset, length, position);
  await file.sync();
  return n;
}

/**
 * Writes all of `buf` at `position`, on stable storage when it resolves: usually one durable write
 * (a short one is followed by another for the rest). Only these bytes are made durable, not what
 * other writes left in the file's cache.
 */
export async function writeFullyDurable(file: WsFile, buf: Uint8Array, position: number): Promise<void> {
  let off = 0;
  while (off < buf.length) {
    const n = await writeDurable(file, buf, off, buf.length - off, position + off);
    if (n <= 0) throw shortWrite(n);
    off += n;
  }
}

/**
 * Writes `bufs` back to back from `position`, durable when it resolves if `durable` (as
 * `writeFullyDurable`): one pwritev where the file layer has it, so the pieces need not be copied
 * into one buffer first; the rest of a short write, and a layer without `writev`, take that copy.
 */
export async function writevFully(
  file: WsFile,
  bufs: readonly Uint8Array[],
  position: number,
  durable: boolean,
): Promise<void> {
  let total = 0;
  for (const b of bufs) total += b.length;
  let done = 0;
  if (file.writev) {
    done = await file.writev(bufs, position, durable);
    if (done === total) return;
    if (done <= 0) throw shortWrite(done);
  }
  const rest = Buffer.concat(bufs, total).subarray(done);
  if (durable) await writeFullyDurable(file, rest, position + done);
  else await writeFully(file, rest, position + done);
}

export function writeFullySync(file: WsFile, buf: Uint8Array, position: number): void {
  let off = 0;
  while (off < buf.length) {
    const n = file.writeSync(buf, off, buf.length - off, position + off);
    if (n <= 0) throw shortWrite(n);
    off += n;
  }
}

/**
 * Waits for every promise, then throws the first failure: a failed step's cleanup must not start
 * while one of its writes or syncs is still in flight.
 */
export async function settleAll(ps: Promise<unknown>[]): Promise<void> {
  const rs = await Promise.allSettled(ps);
  for (const r of rs) if (r.status === 'rejected') throw r.reason;
}

/**
 * Creates `path` exclusively, replacing a leftover of that name (a crash between a create and what
 * was to follow it). The leftover is rare, so it is found by the exclusive create rather than
 * looked for first: one await fewer, and each await is a turn of a busy event loop.
 */
export async function createReplacing(fs: WsFileSystem, path: string): Promise<WsFile> {
  try {
    return fs.open(path, 'excl');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    await fs.unlink(path);
    return fs.open(path, 'excl');
  }
}
