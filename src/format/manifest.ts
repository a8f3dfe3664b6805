import { join } from 'node:path';
import { corruption, ioError } from '../errors.js';
import { createReplacing, writeFullyDurable } from '../fs/io.js';
import type { WsFileSystem } from '../fs/types.js';
import { crc32c } from './crc.js';
import { HEADER_BYTES, decodeHeader, encodeHeader } from './header.js';

export const MANIFEST_FILE = 'MANIFEST';
const MANIFEST_TMP = 'MANIFEST.tmp';

/** Durable compaction progress, so a crash mid-run can be reported and resumed. */
/** A file of the saved recall index, with the size and CRC32C it must have (usearch files carry none). */
export interface IndexFile {
  /** File name in the store directory. */
  file: string;
  bytes: number;
  crc: number;
}

/**
 * What the MANIFEST records of the saved recall index: the base file (viewed, not loaded; `file`
 * is '' while there is none), the delta written since (with its keys) and the base keys since
 * removed, and the LSN they cover together: every put and delete at or below `lsn` is in them.
 * The index is derived data: a file that does not match its size and CRC32C is rebuilt.
 */
export interface IndexCoverage extends IndexFile {
  lsn: number;
  /** Saved mid-build: slots from here up were never added (every slot below was). */
  builtTo?: number;
  delta?: IndexFile & { keys: IndexFile };
  dead?: IndexFile;
  /**
   * Keys re-pointed to other slots (memories compaction moved): the next fresh key, then pairs of
   * slot and key, as little-endian u64.
   */
  alias?: IndexFile;
  /** The index's recall as last sampled (shares of the exact top k found, oldest first). */
  recall?: number[];
}

export interface ManifestCompaction {
  runId: number;
  victims: number[];
  victimsDone: number[];
  /** Output segment id -> committed end offset (bytes past it are uncommitted copies). */
  outputs: Record<string, number>;
  committedChunks: number;
}

/**
 * The root of a store: which WAL file replay starts at, the checkpoint LSN, segment numbering.
 * Replaced atomically (temp file, fsync, rename, fsync directory), so it is never torn.
 */
export interface Manifest {
  dimension: number;
  slotBytes: number;
  /** First WAL file to replay. */
  walFileNo: number;
  /** Every mutation with an LSN <= this is in the records file. */
  checkpointLsn: number;
  nextSegmentId: number;
  activeSegment: number;
  nextCompactionRunId: number;
  compaction: ManifestCompaction | null;
  createdAt: number;
  /**
   * Slots records.dat and vectors.dat hold as of the checkpoint, so that a file cut short is
   * detected instead of its missing records reading as absent. Absent in stores written before it
   * was kept (checked from their next checkpoint on).
   */
  slots?: number;
  /**
   * Live memory spaces by name -> number, and the next number to hand out. Absent in stores
   * written before spaces existed: every memory there is in 'default' (number 0).
   */
  spaces?: Record<string, number>;
  nextSpaceId?: number;
  /** The recall index as last saved (absent when none was: open builds it from the table). */
  annIndex?: IndexCoverage;
}

export function encodeManifest(m: Manifest): Buffer {
  const body = Buffer.from(JSON.stringify(m), 'utf8');
  const header = encodeHeader('MANI', [body.length, crc32c(body), 0, 0]);
  return Buffer.concat([header, body]);
}

export function decodeManifest(buf: Buffer, file: string): Manifest {
  const h = decodeHeader(buf.subarray(0, HEADER_BYTES), 'MANI', file);
  let body = buf.subarray(HEADER_BYTES);
  const [len, crc] = h.fields;
  if (h.migrations.length === 0) {
    if (body.length !== len)
      throw corruption(`manifest body is ${body.length} bytes, header says ${len}`, { file });
    if (crc32c(body) !== crc) throw corruption('manifest checksum mismatch', { file });
  }
  for (const m of h.migrations) if (m.migrateBody) body = m.migrateBody(body);
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch (err) {
    throw corruption(`manifest is not valid JSON (${(err as Error).message})`, { file });
  }
  const m = parsed as Partial<Manifest>;
  for (const k of [
    'dimension',
    'slotBytes',
    'walFileNo',
    'checkpointLsn',
    'nextSegmentId',
    'activeSegment',
  ] as const) {
    if (typeof m[k] !== 'number' || !Number.isFinite(m[k]))
      throw corruption(`manifest field ${k} missing`, { file });
  }
  return {
    nextCompactionRunId: 1,
    compaction: null,
    createdAt: 0,
    ...m,
  } as Manifest;
}

export async function readManifest(fs: WsFileSystem, dir: string): Promise<Manifest | undefined> {
  const path = join(dir, MANIFEST_FILE);
  if (!(await fs.exists(path))) return undefined;
  let buf: Buffer;
  try {
    buf = await fs.readFile(path);
  } catch (err) {
    throw ioError('read', path, err);
  }
  return decodeManifest(buf, path);
}

export async function writeManifest(fs: WsFileSystem, dir: string, m: Manifest): Promise<void> {
  const tmp = join(dir, MANIFEST_TMP);
  const path = join(dir, MANIFEST_FILE);
  const bytes = encodeManifest(m);
  try {
    const f = await createReplacing(fs, tmp);
    try {
      await writeFullyDurable(f, bytes, 0);
    } finally {
      f.closeSync();
    }
    await fs.rename(tmp, path);
    await fs.syncDir(dir);
  } catch (err) {
    throw ioError('manifest write', path, err);
  }
}
