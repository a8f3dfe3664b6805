import { join } from 'node:path';
import { corruption, ioError } from '../errors.js';
import type { WsFile, WsFileSystem } from '../fs/types.js';
import { crc32c } from '../format/crc.js';
import { HEADER_BYTES, decodeHeader, encodeHeader } from '../format/header.js';
import { readFully, readFullySync, writeFullySync } from '../fs/io.js';

/**
 * A content segment: header, then entries appended back to back:
 *   0 crc32c u32 (of bytes 4..end)  4 content length u32  8 id length u8  9 flags u8  10 reserved u16
 *   12 id bytes  then content bytes
 * The owner id in each entry lets compaction and verify check liveness and catch a reference that
 * points at someone else's bytes.
 */
export const ENTRY_HEADER_BYTES = 12;

export function segmentFileName(id: number): string {
  return `seg-${String(id).padStart(8, '0')}.dat`;
}

export function parseSegmentFileName(name: string): number | undefined {
  const m = /^seg-(\d{8,})\.dat$/.exec(name);
  return m ? Number(m[1]) : undefined;
}

export function entryBytes(idLen: number, contentLen: number): number {
  return ENTRY_HEADER_BYTES + idLen + contentLen;
}

/** Writes one entry into `target` at `pos`; returns its size. */
export function encodeEntry(target: Buffer, pos: number, idBytes: Buffer, content: Buffer): number {
  const size = entryBytes(idBytes.length, content.length);
  target.writeUInt32LE(content.length, pos + 4);
  target[pos + 8] = idBytes.length;
  target[pos + 9] = 0;
  target.writeUInt16LE(0, pos + 10);
  idBytes.copy(target, pos + ENTRY_HEADER_BYTES);
  content.copy(target, pos + ENTRY_HEADER_BYTES + idBytes.length);
  target.writeUInt32LE(crc32c(target.subarray(pos + 4, pos + size)), pos);
  return size;
}

/**
 * Checks a whole entry read back from disk against the reference that led to it. Returns the
 * content bytes (a view into `buf`). Any mismatch is corruption, never "absent".
 */
export function verifyEntry(
  buf: Buffer,
  idBytes: Buffer,
  contentLen: number,
  file: string,
  id: string,
  offset: number,
): Buffer {
  const size = entryBytes(idBytes.length, contentLen);
  if (buf.length < size) throw corruption(`content entry at ${offset} is truncated`, { file, id, offset });
  if (buf.readUInt32LE(4) !== contentLen || buf[8] !== idBytes.length) {
    throw corruption(`content entry at ${offset} has the wrong length`, { file, id, offset });
  }
  if (crc32c(buf.subarray(4, size)) !== buf.readUInt32LE(0)) {
    throw corruption(`content checksum mismatch at ${offset}`, { file, id, offset });
  }
  if (!buf.subarray(ENTRY_HEADER_BYTES, ENTRY_HEADER_BYTES + idBytes.length).equals(idBytes)) {
    throw corruption(`content entry at ${offset} belongs to another id`, { file, id, offset });
  }
  return buf.subarray(ENTRY_HEADER_BYTES + idBytes.length, size);
}

export class Segment {
  readonly id: number;
  readonly path: string;
  readonly file: WsFile;
  /** Logical end: the next entry goes here. Bytes past it are garbage from failed writes. */
  end: number;
  /** Bytes of entries still referenced by a record. */
  live = 0;
  /** In-flight async reads; the file is closed and deleted only at zero. */
  pins = 0;
  /**
   * No longer the target of appends by puts. A compaction's output segment is sealed from its
   * creation but still written by that run (and cut back if the run fails): only a sealed segment
   * that is not an output of the run in flight is immutable.
   */
  sealed = false;
  /** Emptied by compaction (or churn); deleted once unpinned and checkpointed. */
  retired = false;
  /** Unsynced bytes were written since the last fsync. */
  dirty = false;

  private constructor(id: number, path: string, file: WsFile, end: number) {
    this.id = id;
    this.path = path;
    this.file = file;
    this.end = end;
  }

  get totalBytes(): number {
    return this.end - HEADER_BYTES;
  }

  get dead(): number {
    return this.totalBytes - this.live;
  }

  /** Creates the file with its header; the caller makes the directory entry durable. */
  static create(fs: WsFileSystem, dir: string, id: number): Segment {
    const path = join(dir, segmentFileName(id));
    let file: WsFile | undefined;
    try {
      file = fs.open(path, 'excl');
      // A short write is completed, like every other write of a commit (a rotation is one).
      writeFullySync(file, encodeHeader('SEGM', [id, 0, 0, 0]), 0);
    } catch (err) {
      file?.closeSync();
      throw ioError('create segment', path, err);
    }
    const s = new Segment(id, path, file, HEADER_BYTES);
    s.dirty = true;
    return s;
  }

  /** Opens segment `id`; `readOnly` opens the file for reading only (a read-only store). */
  static open(fs: WsFileSystem, dir: string, id: number, readOnly = false): Segment {
    const path = join(dir, segmentFileName(id));
    let file: WsFile;
    try {
      file = fs.open(path, readOnly ? 'r' : 'rw');
    } catch (err) {
      throw ioError('open segment', path, err);
    }
    try {
      const h = Buffer.alloc(HEADER_BYTES);
      const n = file.readSync(h, 0, HEADER_BYTES, 0);
      const header = decodeHeader(h.subarray(0, n), 'SEGM', path);
      if (header.fields[0] !== id)
        throw corruption(`segment header names segment ${header.fields[0]}`, { file: path });
      return new Segment(id, path, file, Math.max(HEADER_BYTES, file.size()));
    } catch (err) {
      file.closeSync();
      throw err;
    }
  }

  readSync(offset: number, size: number, into?: Buffer): Buffer {
    const buf = into && into.length >= size ? into.subarray(0, size) : Buffer.allocUnsafe(size);
    let got: number;
    try {
      got = readFullySync(this.file, buf, 0, size, offset);
    } catch (err) {
      throw ioError('read', this.path, err);
    }
    return got === size ? buf : buf.subarray(0, got);
  }

  async read(offset: number, size: number, into?: Buffer): Promise<Buffer> {
    const buf = into && into.length >= size ? into.subarray(0, size) : Buffer.allocUnsafe(size);
    let got: number;
    try {
      got = await readFully(this.file, buf, 0, size, offset);
    } catch (err) {
      throw ioError('read', this.path, err);
    }
    return got === size ? buf : buf.subarray(0, got);
  }
}
