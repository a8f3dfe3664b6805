import { ERROR_CODES, WarmStoreError, invalid, type WarmStoreErrorCode } from '../errors.js';
import type {
  CompactionStats,
  ContentStorageStats,
  EntriesOptions,
  GetOptions,
  MaintenanceReport,
  VerifyReport,
  BackupResult,
  IndexStatus,
  ScrubStatus,
  MemoryRecord,
  RecallOptions,
  RecallResult,
  SpaceInfo,
  SpaceOptions,
  StoredMemory,
} from '../types.js';
import type { BatchDeleteResult, BatchGetResult, BatchPutResult } from '../server/batch.js';
import { WarmStoreClientError } from './errors.js';
import { HttpTransport, type CallOptions } from './transport.js';
import { checkId, checkSpace, embeddingToWire, memoryFromWire, recordToWire } from './wire.js';

/** Options of `WarmStoreClient`. */
export interface WarmStoreClientOptions {
  /**
   * Base URL of the server, e.g. `http://127.0.0.1:7432` (what `warmstore serve` logs). A path
   * prefix is kept, for a server behind a proxy at `https://host/warmstore/`.
   * @default none: required
   */
  url: string | URL;
  /**
   * Sent as `Authorization: Bearer <apiKey>`. Without it the server answers 401 when it requires
   * keys. The client never reads the environment; the CLI passes `WARMSTORE_API_KEY` itself.
   * @default undefined
   */
  apiKey?: string;
  /**
   * Time allowed for one attempt, from sending the request to the end of the response, in ms;
   * `false` for no limit. A timed-out request may still take effect on the server and is not
   * retried. `compact()` and `runMaintenance()` ignore this default (a compaction can take
   * minutes) and take a `timeoutMs` of their own.
   * @default 30000
   */
  timeoutMs?: number | false;
  /**
   * Retries after a 503 (the store is closed or the server is shutting down) or a connection
   * refused or reset, on top of the first attempt. 4xx answers are never retried.
   * @default 3
   */
  retries?: number;
  /**
   * First retry delay in ms; each retry doubles it, with jitter (half fixed, half random).
   * @default 100
   */
  backoffMs?: number;
  /** Ceiling of one retry delay in ms, also capping a server's `Retry-After`. @default 5000 */
  maxBackoffMs?: number;
  /**
   * Most records or ids sent in one batch request; `putMany`, `getMany` and `deleteMany` split
   * larger arrays. Match the server's `maxBatchItems` (a larger batch answers 413).
   * @default 1000
   */
  maxBatchItems?: number;
  /**
   * The fetch implementation, for a custom undici dispatcher (TLS options, connection limits) or
   * an instrumented fetch.
   * @default globalThis.fetch
   */
  fetch?: typeof globalThis.fetch;
}

/** `contentStorageStats()` over HTTP: the store's figures plus its size, compaction, disk state and spaces. */
export interface RemoteStorageStats extends ContentStorageStats {
  /** Number of memories, in every space. */
  size: number;
  isCompacting: boolean;
  /** A write hit a full disk: new content is refused until space returns. */
  diskFull: boolean;
  /** The server's store refuses every write. */
  readOnly: boolean;
  /** Every memory space with its size, by name. */
  spaces: SpaceInfo[];
  /** The recall index's state. */
  index: IndexStatus;
  /** The background scrub's progress and findings. */
  scrub: ScrubStatus;
}

/** Options of `compact()`: the store's, minus progress callbacks, which HTTP does not carry. */
export interface RemoteCompactOptions extends CallOptions {
  /** Compact every sealed segment holding dead bytes, whatever its ratio. @default false */
  force?: boolean;
}

const MEMORIES = 'api/v1/memories';

function nonNegativeInteger(value: unknown, field: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw invalid(field, 'must be an integer >= 0');
  }
  return value;
}

function positiveNumber(value: unknown, field: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw invalid(field, 'must be a finite number > 0');
  }
  return value;
}

function timeoutOption(value: unknown, field: string): number | false {
  return value === false ? false : positiveNumber(value, field);
}

/** The `space` of a method's options, checked; undefined when absent (the server's default). */
function spaceOf(options: SpaceOptions | undefined): string | undefined {
  if (options === undefined || options.space === undefined) return undefined;
  return checkSpace(options.space, 'options.space');
}

/** `?space=NAME` to append to a query, or '' for the default space. */
function spaceQuery(space: string | undefined, sep: '?' | '&'): string {
  return space === undefined ? '' : `${sep}space=${encodeURIComponent(space)}`;
}

/** Only the call options of a method's options, so that a signal and a timeout pass through. */
function callOf(options: CallOptions | undefined, field = 'options'): CallOptions {
  if (options === undefined) return {};
  if (typeof options !== 'object' || options === null) throw invalid(field, 'must be an object');
  const call: CallOptions = {};
  if (options.signal !== undefined) {
    if (!(options.signal instanceof AbortSignal)) throw invalid(`${field}.signal`, 'must be an AbortSignal');
    call.signal = options.signal;
  }
  if (options.timeoutMs !== undefined)
    call.timeoutMs = timeoutOption(options.timeoutMs, `${field}.timeoutMs`);
  return call;
}

/**
 * A path segment for an id. The URL parser resolves `.` and `..` segments (even percent-encoded)
 * before the request leaves, so those two ids cannot travel in a path; they go through the batch
 * routes instead.
 */
function idPath(id: string): string | undefined {
  return isDotSegment(id) ? undefined : `${MEMORIES}/${encodeURIComponent(id)}`;
}

const isDotSegment = (s: string): boolean => s === '.' || s === '..';

/**
 * A warmstore server, with the method names of the embedded `WarmStore`. Embeddings travel as
 * base64 both ways and come back as `Float32Array`s bit for bit. Store errors arrive as
 * `WarmStoreError` with the library's codes (and `details.status`); failures of the HTTP
 * conversation itself as `WarmStoreClientError`.
 *
 * Every call is retried on 503 and on a connection refused or reset, which is safe because every
 * operation is idempotent: a put replaces, a delete of a deleted id changes nothing. One visible
 * consequence: a `delete` whose first attempt took effect before the connection broke answers
 * `false` on the retry. `touch: true` reads may count an access twice the same way.
 *
 * Every call on memories works in one memory space: `options.space`, or the server's `'default'`.
 */
export class WarmStoreClient {
  readonly #transport: HttpTransport;
  readonly #maxBatchItems: number;
  #closed = false;

  constructor(options: WarmStoreClientOptions) {
    if (typeof options !== 'object' || options === null) throw invalid('options', 'must be an object');
    let url: URL;
    try {
      url = new URL(options.url);
    } catch {
      throw invalid('url', `must be an absolute http(s) URL (got ${JSON.stringify(String(options.url))})`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw invalid('url', `must use http or https (got ${url.protocol})`);
    }
    if (url.search !== '' || url.hash !== '') throw invalid('url', 'must not carry a query or a fragment');
    // Relative paths resolve against the last '/', so the prefix must end with one.
    if (!url.pathname.endsWith('/')) url.pathname += '/';
    if (options.apiKey !== undefined && (typeof options.apiKey !== 'string' || options.apiKey === '')) {
      throw invalid('apiKey', 'must be a non-empty string');
    }
    if (options.fetch !== undefined && typeof options.fetch !== 'function') {
      throw invalid('fetch', 'must be a function');
    }
    this.#maxBatchItems =
      options.maxBatchItems === undefined ? 1000 : nonNegativeInteger(options.maxBatchItems, 'maxBatchItems');
    if (this.#maxBatchItems === 0) throw invalid('maxBatchItems', 'must be at least 1');
    this.#transport = new HttpTransport({
      baseUrl: url,
      apiKey: options.apiKey,
      timeoutMs: options.timeoutMs === undefined ? 30_000 : timeoutOption(options.timeoutMs, 'timeoutMs'),
      retries: options.retries === undefined ? 3 : nonNegativeInteger(options.retries, 'retries'),
      backoffMs: options.backoffMs === undefined ? 100 : positiveNumber(options.backoffMs, 'backoffMs'),
      maxBackoffMs:
        options.maxBackoffMs === undefined ? 5000 : positiveNumber(options.maxBackoffMs, 'maxBackoffMs'),
      fetch: options.fetch ?? globalThis.fetch,
    });
  }

  /** The server's base URL, ending with `/`. */
  get url(): string {
    return this.#transport.baseUrl.href;
  }

  /** True after `close()`. */
  get closed(): boolean {
    return this.#closed;
  }

  #checkOpen(): void {
    if (this.#closed) throw new WarmStoreError('STORE_CLOSED', 'the client is closed');
  }

  /** Stores a memory, replacing one with the same id; durable on the server when it resolves. */
  async put(record: MemoryRecord, options?: CallOptions): Promise<void> {
    this.#checkOpen();
    const body = recordToWire(record);
    await this.#transport.json('POST', MEMORIES, body, callOf(options));
  }

  /**
   * Stores many memories, `maxBatchItems` per request. Unlike the embedded store's `putMany`,
   * which writes all or nothing, the server writes every valid record of a batch and refuses the
   * others one by one: when any is refused this rejects, after every request was sent, with a
   * `WarmStoreError` (`INVALID_INPUT`) naming the first one (`details.field` such as
   * `records[3].content`, `details.index`, `details.id`) and listing all of them in
   * `details.refused`. Records the client itself cannot encode are refused before anything is sent.
   */
  async putMany(records: readonly MemoryRecord[], options?: CallOptions): Promise<void> {
    this.#checkOpen();
    if (!Array.isArray(records)) throw invalid('records', 'must be an array');
    const call = callOf(options);
    const memories = records.map((r, i) => recordToWire(r, `records[${i}]`));
    const refused: RefusedRecord[] = [];
    for (let offset = 0; offset < memories.length; offset += this.#maxBatchItems) {
      const chunk = memories.slice(offset, offset + this.#maxBatchItems);
      const res = await this.#transport.json('POST', `${MEMORIES}/batch`, { memories: chunk }, call);
      batchResults<BatchPutResult>(res.body, chunk.length).forEach((r, k) => {
        if (r.ok === true) return;
        refused.push(refusedRecord(r.error, offset + k, k, records[offset + k]?.id));
      });
    }
    const first = refused[0];
    if (first === undefined) return;
    const message =
      `${refused.length} of ${records.length} records refused (the others were written); ` +
      `first: ${first.message}`;
    const details = {
      field: first.field,
      index: first.index,
      ...(first.id === undefined ? {} : { id: first.id }),
      refused,
      status: 200,
    };
    if (STORE_CODES.has(first.code)) {
      throw new WarmStoreError(first.code as WarmStoreErrorCode, message, details);
    }
    throw new WarmStoreClientError(first.code, message, 200, details);
  }

  /** The memory stored under `id`, or undefined. */
  async get(id: string, options?: GetOptions & CallOptions): Promise<StoredMemory | undefined> {
    this.#checkOpen();
    checkId(id);
    const call = callOf(options);
    const space = spaceOf(options);
    const touch = options?.touch;
    if (touch !== undefined && typeof touch !== 'boolean')
      throw invalid('options.touch', 'must be a boolean');
    const path = idPath(id);
    if (path === undefined) {
      if (touch === true) throw invalid('options.touch', `cannot be sent for the id ${JSON.stringify(id)}`);
      return (await this.#getMany([id], space, call))[0];
    }
    const query = `?encoding=base64${touch === true ? '&touch=true' : ''}${spaceQuery(space, '&')}`;
    const res = await this.#transport.json('GET', path + query, undefined, call, [404]);
    if (res.status === 404) return this.#notFound(res.body, undefined);
    return memoryFromWire(res.body);
  }

  /**
   * The memories stored under `ids` in one space, in order, undefined for those missing;
   * `maxBatchItems` ids per request. Batch reads do not touch.
   */
  async getMany(
    ids: readonly string[],
    options?: SpaceOptions & CallOptions,
  ): Promise<Array<StoredMemory | undefined>> {
    this.#checkOpen();
    if (!Array.isArray(ids)) throw invalid('ids', 'must be an array');
    ids.forEach((id, i) => checkId(id, `ids[${i}]`));
    return this.#getMany(ids, spaceOf(options), callOf(options));
  }

  async #getMany(
    ids: readonly string[],
    space: string | undefined,
    call: CallOptions,
  ): Promise<Array<StoredMemory | undefined>> {
    const out: Array<StoredMemory | undefined> = [];
    for (let offset = 0; offset < ids.length; offset += this.#maxBatchItems) {
      const chunk = ids.slice(offset, offset + this.#maxBatchItems);
      const body = { ids: chunk, encoding: 'base64', ...(space === undefined ? {} : { space }) };
      const res = await this.#transport.json('POST', `${MEMORIES}/batch/get`, body, call);
      batchResults<BatchGetResult>(res.body, chunk.length).forEach((r, k) => {
        const what = `memory ${offset + k} of the batch`;
        out.push(r.found === true ? memoryFromWire(r.memory, what) : undefined);
      });
    }
    return out;
  }

  /** True when a memory is stored under `id` (a read of the id alone, without content). */
  async has(id: string, options?: SpaceOptions & CallOptions): Promise<boolean> {
    this.#checkOpen();
    checkId(id);
    const call = callOf(options);
    const space = spaceOf(options);
    const path = idPath(id);
    if (path === undefined) return (await this.#getMany([id], space, call))[0] !== undefined;
    const query = `?fields=id${spaceQuery(space, '&')}`;
    const res = await this.#transport.json('GET', path + query, undefined, call, [404]);
    if (res.status === 404) return this.#notFound(res.body, false);
    return true;
  }

  /**
   * Deletes a memory; resolves true if it existed. A retry after a connection broke may find the
   * memory already deleted by the first attempt and resolve false.
   */
  async delete(id: string, options?: SpaceOptions & CallOptions): Promise<boolean> {
    this.#checkOpen();
    checkId(id);
    const call = callOf(options);
    const space = spaceOf(options);
    const path = idPath(id);
    if (path === undefined) return (await this.#deleteMany([id], space, call))[0] === true;
    const res = await this.#transport.json('DELETE', path + spaceQuery(space, '?'), undefined, call, [404]);
    if (res.status === 404) return this.#notFound(res.body, false);
    return true;
  }

  /**
   * Deletes many memories of one space, `maxBatchItems` ids per request; one boolean per id, true
   * when it existed.
   */
  async deleteMany(ids: readonly string[], options?: SpaceOptions & CallOptions): Promise<boolean[]> {
    this.#checkOpen();
    if (!Array.isArray(ids)) throw invalid('ids', 'must be an array');
    ids.forEach((id, i) => checkId(id, `ids[${i}]`));
    return this.#deleteMany(ids, spaceOf(options), callOf(options));
  }

  async #deleteMany(
    ids: readonly string[],
    space: string | undefined,
    call: CallOptions,
  ): Promise<boolean[]> {
    const out: boolean[] = [];
    for (let offset = 0; offset < ids.length; offset += this.#maxBatchItems) {
      const chunk = ids.slice(offset, offset + this.#maxBatchItems);
      const body = { ids: chunk, ...(space === undefined ? {} : { space }) };
      const res = await this.#transport.json('POST', `${MEMORIES}/batch/delete`, body, call);
      for (const r of batchResults<BatchDeleteResult>(res.body, chunk.length)) out.push(r.deleted === true);
    }
    return out;
  }

  /**
   * A 404 is "no such memory" only when the route exists; a 404 for the route itself (a wrong
   * base URL, a server without the route) must not read as a missing memory.
   */
  #notFound<T>(body: unknown, value: T): T {
    const error = (body as { error?: { code?: unknown; message?: unknown } } | undefined)?.error;
    if (
      error?.code === 'NOT_FOUND' &&
      typeof error.message === 'string' &&
      !error.message.startsWith('no route')
    ) {
      return value;
    }
    throw new WarmStoreClientError(
      'NOT_FOUND',
      typeof error?.message === 'string' ? error.message : 'the server has no such route',
      404,
      {},
    );
  }

  /**
   * The memories of one space most similar to `embedding` (cosine), best first, each with its
   * embedding; with `filter`, only those whose metadata fall in its ranges. The server checks
   * `filter` and names a refused field (`filter.confidence.gte`).
   */
  async recall(
    embedding: Float32Array | number[],
    options?: RecallOptions & CallOptions,
  ): Promise<RecallResult[]> {
    this.#checkOpen();
    const body: Record<string, unknown> = {
      embedding: embeddingToWire(embedding),
      encoding: 'base64',
      fields: ['id', 'space', 'content', 'embedding', 'metadata'],
    };
    if (options !== undefined) {
      if (typeof options !== 'object' || options === null) throw invalid('options', 'must be an object');
      if (options.k !== undefined) body['k'] = options.k;
      if (options.minScore !== undefined) body['minScore'] = options.minScore;
      if (options.touch !== undefined) body['touch'] = options.touch;
      const space = spaceOf(options);
      if (space !== undefined) body['space'] = space;
      if (options.filter !== undefined) body['filter'] = options.filter;
      if (options.exact !== undefined) body['exact'] = options.exact;
    }
    const res = await this.#transport.json('POST', 'api/v1/recall', body, callOf(options));
    const results = (res.body as { results?: unknown } | undefined)?.results;
    if (!Array.isArray(results)) throw badShape('recall', 'has no results array');
    return results.map((r: unknown, i) => {
      const score = (r as { score?: unknown } | null)?.score;
      if (typeof score !== 'number') throw badShape('recall', `has no score for result ${i}`);
      return { memory: memoryFromWire((r as { memory?: unknown }).memory, `recall result ${i}`), score };
    });
  }

  /** Content storage figures, with the number of memories and whether a compaction is running. */
  async contentStorageStats(options?: CallOptions): Promise<RemoteStorageStats> {
    this.#checkOpen();
    const res = await this.#transport.json('GET', 'api/v1/metrics/storage', undefined, callOf(options));
    const s = res.body as Partial<RemoteStorageStats> | undefined;
    for (const f of [
      'totalBytes',
      'liveBytes',
      'deadBytes',
      'fragmentationRatio',
      'segments',
      'size',
    ] as const) {
      if (typeof s?.[f] !== 'number') throw badShape('storage stats', `have no ${f}`);
    }
    const stats = s as RemoteStorageStats;
    stats.spaces = spaceList(stats.spaces, 'storage stats');
    return stats;
  }

  /**
   * The memory spaces and their sizes, by name. With an API key that does not cover every space,
   * only the spaces it covers.
   */
  async spaces(options?: CallOptions): Promise<SpaceInfo[]> {
    this.#checkOpen();
    const res = await this.#transport.json('GET', 'api/v1/spaces', undefined, callOf(options));
    return spaceList((res.body as { spaces?: unknown } | undefined)?.spaces, 'spaces');
  }

  /**
   * Deletes a memory space and every memory in it; resolves with how many it held (0 for a space
   * that does not exist, so a retry is safe). The names `.` and `..` cannot travel in a URL path
   * and are refused here.
   */
  async deleteSpace(space: string, options?: CallOptions): Promise<number> {
    this.#checkOpen();
    checkSpace(space, 'space');
    if (isDotSegment(space)) {
      throw invalid('space', `${JSON.stringify(space)} cannot be named in a URL path; delete it locally`);
    }
    const call = callOf(options);
    const res = await this.#transport.json(
      'DELETE',
      `api/v1/spaces/${encodeURIComponent(space)}`,
      undefined,
      call,
    );
    const deleted = (res.body as { deleted?: unknown } | undefined)?.deleted;
    if (typeof deleted !== 'number') throw badShape('delete space', 'has no deleted count');
    return deleted;
  }

  /**
   * Compacts now and resolves with the run's figures. 409 arrives as `COMPACTION_IN_PROGRESS`, 507
   * as `INSUFFICIENT_RESOURCES`. No timeout unless `timeoutMs` is given. Aborting the signal drops
   * the request; the server's compaction runs on (it is safe either way).
   */
  async compact(options?: RemoteCompactOptions): Promise<CompactionStats> {
    this.#checkOpen();
    const call = callOf(options);
    call.timeoutMs ??= false;
    const force = options?.force;
    if (force !== undefined && typeof force !== 'boolean')
      throw invalid('options.force', 'must be a boolean');
    const res = await this.#transport.json(
      'POST',
      'api/v1/maintenance/compact',
      force ? { force } : {},
      call,
    );
    return res.body as CompactionStats;
  }

  /** One pass of the maintenance loop now. No timeout unless `timeoutMs` is given. */
  async runMaintenance(options?: CallOptions): Promise<MaintenanceReport> {
    this.#checkOpen();
    const call = callOf(options);
    call.timeoutMs ??= false;
    const res = await this.#transport.json('POST', 'api/v1/maintenance/run', {}, call);
    return res.body as MaintenanceReport;
  }

  /**
   * An online backup of the server's store into `name` under the directory the server was started
   * with (`--backup-dir`); resolves with where it went and as of which LSN. No timeout unless
   * `timeoutMs` is given.
   */
  async backup(name?: string, options?: CallOptions & { link?: boolean }): Promise<BackupResult> {
    this.#checkOpen();
    if (name !== undefined && (typeof name !== 'string' || name.length === 0))
      throw invalid('name', 'must be a non-empty string');
    const link = options?.link;
    if (link !== undefined && typeof link !== 'boolean') throw invalid('options.link', 'must be a boolean');
    const call = callOf(options);
    call.timeoutMs ??= false;
    const body: { name?: string; link?: boolean } = {};
    if (name !== undefined) body.name = name;
    if (link !== undefined) body.link = link;
    const res = await this.#transport.json('POST', 'api/v1/maintenance/backup', body, call);
    const r = res.body as Partial<BackupResult> | undefined;
    if (typeof r?.dir !== 'string' || typeof r.lsn !== 'number')
      throw badShape('backup result', 'has no dir/lsn');
    return r as BackupResult;
  }

  /**
   * fsck on the server: every record, content checksum and garbage count. Resolves with the report
   * whether or not the store is clean (`ok`). No timeout unless `timeoutMs` is given.
   */
  async verify(options?: CallOptions): Promise<VerifyReport> {
    this.#checkOpen();
    const call = callOf(options);
    call.timeoutMs ??= false;
    const res = await this.#transport.json('POST', 'api/v1/maintenance/verify', {}, call);
    const r = res.body as Partial<VerifyReport> | undefined;
    if (typeof r?.ok !== 'boolean' || !Array.isArray(r.problems))
      throw badShape('verify report', 'has no ok/problems');
    return r as VerifyReport;
  }

  /**
   * The memories of one space (`options.space`), or of every space the API key covers, streamed
   * from the server in one response (JSON Lines, base64 embeddings), with backpressure: memory
   * stays flat whatever the store's size. A memory written meanwhile may or may not appear. Stop
   * early with `break`. A connection broken mid-stream is not retried (the iteration could not
   * resume where it stopped): it rejects with `CONNECTION_FAILED`.
   */
  async *entries(options?: EntriesOptions & CallOptions): AsyncGenerator<StoredMemory> {
    this.#checkOpen();
    const call = callOf(options);
    const path = `api/v1/export?encoding=base64${spaceQuery(spaceOf(options), '&')}`;
    const res = await this.#transport.stream('GET', path, call);
    if (res.body === null) return;
    const decoder = new TextDecoder('utf-8', { fatal: true });
    let pending = '';
    let count = 0;
    try {
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        pending += decoder.decode(chunk, { stream: true });
        let start = 0;
        for (let nl = pending.indexOf('\n'); nl !== -1; nl = pending.indexOf('\n', start)) {
          const line = pending.slice(start, nl);
          start = nl + 1;
          if (line === '') continue;
          yield lineToMemory(line, count);
          count++;
        }
        pending = pending.slice(start);
      }
      pending += decoder.decode();
    } catch (err) {
      if (call.signal?.aborted) throw call.signal.reason;
      if (err instanceof WarmStoreError || err instanceof WarmStoreClientError) throw err;
      throw new WarmStoreClientError(
        'CONNECTION_FAILED',
        `the export was cut short after ${count} memories: ${(err as Error).message}`,
        res.status,
        { request: 'GET /api/v1/export', received: count },
        err,
      );
    }
    // Every line ends with a newline: text after the last one is a line cut short.
    if (pending !== '') throw badShape('export', `ends with an incomplete line after ${count} memories`);
  }

  /** Resolves when the server answers its health check with 200. */
  async health(options?: CallOptions): Promise<void> {
    this.#checkOpen();
    await this.#transport.json('GET', 'healthz', undefined, callOf(options));
  }

  /**
   * Marks the client closed: later calls reject with `STORE_CLOSED`, as the embedded store's do.
   * The server and its store stay up; connections are pooled by fetch and need no closing.
   */
  async close(): Promise<void> {
    this.#closed = true;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/** A record a batch put refused, as `putMany` reports it in `details.refused`. */
export interface RefusedRecord {
  /** Position in the array given to `putMany`. */
  index: number;
  id: string | undefined;
  code: string;
  message: string;
  /** The refused field, named from the caller's array: `records[3].content`. */
  field: string;
}

const STORE_CODES = new Set<string>(ERROR_CODES);

/**
 * The server names fields inside the request it received (`memories[k].content`, k within the
 * chunk); the caller knows them as `records[i].content` in the array it passed.
 */
function refusedRecord(error: unknown, index: number, k: number, id: string | undefined): RefusedRecord {
  const e = (typeof error === 'object' && error !== null ? error : {}) as Record<string, unknown>;
  const code = typeof e['code'] === 'string' ? e['code'] : 'INVALID_INPUT';
  const from = `memories[${k}]`;
  const to = `records[${index}]`;
  const rename = (s: string): string => s.split(from).join(to);
  const field = typeof e['field'] === 'string' ? rename(e['field']) : to;
  const message = typeof e['message'] === 'string' ? rename(e['message']) : `invalid ${field}`;
  return { index, id, code, message, field };
}

/** A list of `{ name, size }` from a response, checked. */
function spaceList(value: unknown, what: string): SpaceInfo[] {
  if (!Array.isArray(value)) throw badShape(what, 'have no spaces list');
  return value.map((s: unknown, i): SpaceInfo => {
    const o = (typeof s === 'object' && s !== null ? s : {}) as Record<string, unknown>;
    if (typeof o['name'] !== 'string' || typeof o['size'] !== 'number') {
      throw badShape(what, `have no name and size for space ${i}`);
    }
    return { name: o['name'], size: o['size'] };
  });
}

function badShape(what: string, why: string): WarmStoreClientError {
  return new WarmStoreClientError('BAD_RESPONSE', `the ${what} response ${why}`, undefined, {});
}

function lineToMemory(line: string, index: number): StoredMemory {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    throw badShape('export', `line ${index + 1} is not JSON`);
  }
  return memoryFromWire(value, `export line ${index + 1}`);
}

/**
 * The per-item results of a batch response, one per request item. Only their count and that each
 * is an object are checked here; every field is checked where it is read.
 */
function batchResults<T>(body: unknown, expected: number): T[] {
  const results = (body as { results?: unknown } | undefined)?.results;
  if (!Array.isArray(results) || results.length !== expected) {
    throw badShape('batch', `does not hold ${expected} results`);
  }
  return results.map((r: unknown, i) => {
    if (typeof r !== 'object' || r === null) throw badShape('batch', `result ${i} is not an object`);
    return r as T;
  });
}
