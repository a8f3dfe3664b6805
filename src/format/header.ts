import { WarmStoreError, corruption } from '../errors.js';
import { crc32c } from './crc.js';

/**
 * Every warmstore file starts with this 32-byte header:
 *   0  magic "WMST"        4  kind (4 ASCII chars)   8  format version u32
 *   12 four u32 kind-specific fields (28 bytes total so far)  28 CRC32C of bytes 0..28
 * The version is per file kind so one kind can move on without rewriting the others.
 */
export const HEADER_BYTES = 32;
export const MAGIC = 'WMST';

export type FileKind = 'SEGM' | 'WALG' | 'RECS' | 'VECS' | 'MANI';

/** Current format version of each file kind. */
export const FORMAT_VERSION: Record<FileKind, number> = { SEGM: 1, WALG: 4, RECS: 3, VECS: 1, MANI: 1 };

export interface FileHeader {
  kind: FileKind;
  version: number;
  fields: [number, number, number, number];
}

/**
 * Upgrades an older header's kind-specific fields (and, through `migrateBody`, whatever else the
 * file needs) to the current version. Registered per (kind, fromVersion). RECS 1 -> 2 (records
 * split from their vectors) is registered by src/records/migrate.ts, whose body conversion the
 * store runs at open because it streams a second file; tests register fabricated ones too.
 */
export interface Migration {
  kind: FileKind;
  fromVersion: number;
  toVersion: number;
  migrateFields(fields: [number, number, number, number]): [number, number, number, number];
  /** Rewrites the bytes after the header, when the body changed shape. */
  migrateBody?(body: Buffer): Buffer;
}

const migrations = new Map<string, Migration>();

export function registerMigration(m: Migration): () => void {
  const key = `${m.kind}:${m.fromVersion}`;
  migrations.set(key, m);
  return () => migrations.delete(key);
}

export function findMigration(kind: FileKind, fromVersion: number): Migration | undefined {
  return migrations.get(`${kind}:${fromVersion}`);
}

export function encodeHeader(
  kind: FileKind,
  fields: [number, number, number, number] = [0, 0, 0, 0],
): Buffer {
  const b = Buffer.alloc(HEADER_BYTES);
  b.write(MAGIC, 0, 'latin1');
  b.write(kind, 4, 'latin1');
  b.writeUInt32LE(FORMAT_VERSION[kind], 8);
  for (let i = 0; i < 4; i++) b.writeUInt32LE((fields[i] ?? 0) >>> 0, 12 + i * 4);
  b.writeUInt32LE(crc32c(b.subarray(0, 28)), 28);
  return b;
}

/**
 * Parses and checks a header. Returns the header at its *stored* version together with the chain
 * of migrations needed; refuses a version it cannot read with UNSUPPORTED_VERSION.
 */
export function decodeHeader(
  buf: Uint8Array,
  expected: FileKind,
  file: string,
): FileHeader & { migrations: Migration[] } {
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  if (b.length < HEADER_BYTES)
    throw corruption(`file shorter than its ${HEADER_BYTES}-byte header`, { file });
  if (b.toString('latin1', 0, 4) !== MAGIC) throw corruption('bad magic number', { file });
  const kind = b.toString('latin1', 4, 8);
  if (kind !== expected)
    throw corruption(`expected a ${expected} file, found ${JSON.stringify(kind)}`, { file });
  if (b.readUInt32LE(28) !== crc32c(b.subarray(0, 28)))
    throw corruption('header checksum mismatch', { file });
  const version = b.readUInt32LE(8);
  const fields: [number, number, number, number] = [
    b.readUInt32LE(12),
    b.readUInt32LE(16),
    b.readUInt32LE(20),
    b.readUInt32LE(24),
  ];
  const current = FORMAT_VERSION[expected];
  if (version === current) return { kind: expected, version, fields, migrations: [] };
  if (version > current) {
    throw new WarmStoreError(
      'UNSUPPORTED_VERSION',
      `${file} has format version ${version}; this warmstore reads up to ${current}`,
      { file, version, supported: current },
    );
  }
  const chain: Migration[] = [];
  let v = version;
  let f = fields;
  while (v < current) {
    const m = findMigration(expected, v);
    if (!m) {
      throw new WarmStoreError(
        'UNSUPPORTED_VERSION',
        `${file} has format version ${version} and no migration from version ${v} exists`,
        { file, version, supported: current },
      );
    }
    chain.push(m);
    f = m.migrateFields(f);
    v = m.toVersion;
  }
  return { kind: expected, version, fields: f, migrations: chain };
}
