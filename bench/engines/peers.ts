/**
 * The peers' packages as the bench uses them. They live in bench/node_modules, which only a
 * benchmark run installs: the root install (and so `npm run lint` in a fresh clone) does not have
 * them. So nothing here names their modules to the compiler; each is loaded by a name the compiler
 * does not resolve, and typed by the small interface below that says what the bench calls.
 * `require` keeps the CommonJS entry points the published figures were measured with.
 */
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

export type PeerPackage = 'lmdb' | 'classic-level' | 'better-sqlite3' | 'autocannon';

export function loadPeer<T>(pkg: PeerPackage): T {
  return require(pkg) as T;
}

/** Absolute path of a peer package's entry point (a worker thread loads it by path). */
export function resolvePeer(pkg: PeerPackage): string {
  return require.resolve(pkg);
}

// ---------------------------------------------------------------- lmdb-js

export interface LmdbDatabase {
  put(key: string, value: Buffer): Promise<boolean>;
  remove(key: string): Promise<boolean>;
  get(key: string): Buffer | undefined;
  getRange(): Iterable<{ key: string; value: Buffer }>;
  /** Runs `fn` in one write transaction; resolves once it has committed. */
  transaction<T>(fn: () => T): Promise<T>;
  /** Resolves once every committed write is on disk. */
  readonly flushed: Promise<boolean>;
  /** Copies the environment to `path`, compacting it when `compact` (MDB_CP_COMPACT). */
  backup(path: string, compact: boolean): Promise<void>;
  close(): Promise<void>;
}

export interface LmdbModule {
  open(options: { path: string; encoding: 'binary'; compression: boolean }): LmdbDatabase;
}

// ---------------------------------------------------------------- classic-level

export type LevelBatchOp = { type: 'put'; key: string; value: Buffer } | { type: 'del'; key: string };

export interface ClassicLevelDatabase {
  open(): Promise<void>;
  batch(ops: LevelBatchOp[], options: { sync: boolean }): Promise<void>;
  getSync(key: string): Buffer | undefined;
  get(key: string): Promise<Buffer | undefined>;
  iterator(): AsyncIterable<[string, Buffer]>;
  compactRange(start: string, end: string): Promise<void>;
  close(): Promise<void>;
}

export interface ClassicLevelModule {
  ClassicLevel: new (
    location: string,
    options: { keyEncoding: 'utf8'; valueEncoding: 'buffer' },
  ) => ClassicLevelDatabase;
}

// ---------------------------------------------------------------- better-sqlite3

export interface SqliteStatement<Row> {
  run(...params: unknown[]): unknown;
  get(...params: unknown[]): Row | undefined;
  iterate(...params: unknown[]): IterableIterator<Row>;
}

export interface SqliteDatabase {
  pragma(source: string): unknown;
  exec(sql: string): void;
  prepare<Row = unknown>(sql: string): SqliteStatement<Row>;
  /** Wraps `fn` so that each call runs in one transaction. */
  transaction<A extends unknown[]>(fn: (...args: A) => void): (...args: A) => void;
  close(): void;
}

export type SqliteModule = new (file: string) => SqliteDatabase;

// ---------------------------------------------------------------- autocannon

export interface AutocannonRequest {
  method?: string;
  path?: string;
  headers?: Record<string, string>;
  body?: string;
  setupRequest?: (req: Record<string, unknown>) => Record<string, unknown>;
}

export interface AutocannonOptions {
  url: string;
  connections: number;
  pipelining: number;
  /** Seconds. */
  duration: number;
  requests: AutocannonRequest[];
  /** Seconds. */
  timeout: number;
}

export interface AutocannonResult {
  requests: { average: number; total: number };
  /** Milliseconds. */
  latency: { p50: number; p99: number };
  /** Bytes per second. */
  throughput: { average: number };
  non2xx: number;
  errors: number;
  timeouts: number;
}

export interface AutocannonInstance {
  on(
    event: 'response',
    listener: (client: unknown, statusCode: number, resBytes: number, responseTimeMs: number) => void,
  ): void;
}

export type Autocannon = (
  options: AutocannonOptions,
  done: (err: Error | null, result: AutocannonResult) => void,
) => AutocannonInstance;
