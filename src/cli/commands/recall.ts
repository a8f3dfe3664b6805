import { invalid } from '../../errors.js';
import { decodeEmbedding } from '../../server/codec.js';
import type { MetadataFilter, RecallOptions, RecallResult, StoredMemory } from '../../types.js';
import {
  CliError,
  openCliClient,
  openCliStore,
  printJson,
  withStore,
  type RemoteCliOptions,
} from '../common.js';

export interface RecallCliOptions extends RemoteCliOptions {
  data: string;
  json?: boolean;
  /** Recall with the embedding of this stored memory instead of a given one. */
  like?: string;
  k: number;
  minScore?: number;
  /** The memory space to recall from (and to find `--like` in). */
  space?: string;
  /** A JSON object of ranges over the metadata numbers, e.g. `{"confidence":{"gte":0.5}}`. */
  filter?: string;
  /** Scan every vector of the space instead of using an index. */
  exact?: boolean;
}

/**
 * Recall from the command line: the query is an embedding (a JSON array of numbers, or base64 of
 * little-endian float32, as the HTTP API takes it) or the embedding of a stored memory (`--like`).
 */
export async function recall(embeddingArg: string | undefined, opts: RecallCliOptions): Promise<void> {
  if (embeddingArg !== undefined && opts.like !== undefined) {
    throw new CliError('INVALID_INPUT', 'give an embedding or --like <id>, not both');
  }
  if (embeddingArg === undefined && opts.like === undefined) {
    throw new CliError('INVALID_INPUT', 'give an embedding (JSON array or base64) or --like <id>');
  }
  const given = embeddingArg === undefined ? undefined : parseEmbedding(embeddingArg);
  const space = opts.space === undefined ? {} : { space: opts.space };
  const options: RecallOptions = {
    k: opts.k,
    ...space,
    ...(opts.minScore === undefined ? {} : { minScore: opts.minScore }),
    ...(opts.filter === undefined ? {} : { filter: parseFilter(opts.filter) }),
    ...(opts.exact === true ? { exact: true } : {}),
  };
  const like = opts.like as string;
  let results: RecallResult[];
  if (opts.url !== undefined) {
    const client = openCliClient({ ...opts, url: opts.url });
    const query = given ?? embeddingOf(await client.get(like, space), like);
    results = await client.recall(query, options);
  } else {
    const store = await openCliStore(opts.data, { mustExist: true });
    results = await withStore(store, async () => {
      const query = given ?? embeddingOf(await store.get(like, space), like);
      return store.recall(query, options);
    });
  }
  if (opts.json) {
    printJson({
      results: results.map(({ memory: { embedding: _embedding, ...rest }, score }) => ({ score, ...rest })),
    });
    return;
  }
  if (results.length === 0) {
    process.stdout.write('no memories match\n');
    return;
  }
  for (const { memory, score } of results) {
    process.stdout.write(`${score.toFixed(4)}  ${JSON.stringify(memory.id)}  ${preview(memory.content)}\n`);
  }
}

function parseEmbedding(arg: string): Float32Array {
  const text = arg.trim();
  if (!text.startsWith('[')) return decodeEmbedding(text);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw invalid('embedding', `is not a JSON array (${(err as Error).message})`);
  }
  return decodeEmbedding(value);
}

/** `--filter` as JSON; its shape and values are checked by the store (or the server), naming the field. */
function parseFilter(text: string): MetadataFilter {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new CliError(
      'INVALID_INPUT',
      `--filter is not JSON (${(err as Error).message}); e.g. '{"confidence":{"gte":0.5}}'`,
    );
  }
  return value as MetadataFilter;
}

function embeddingOf(memory: StoredMemory | undefined, id: string): Float32Array {
  if (memory === undefined) throw new CliError('NOT_FOUND', `no memory with id ${JSON.stringify(id)}`);
  return memory.embedding;
}

/** One line of content for a terminal: newlines shown as \n, long text cut. */
function preview(content: string | null): string {
  if (content === null) return '(no content)';
  const line = JSON.stringify(content).slice(1, -1);
  return line.length > 80 ? `${line.slice(0, 79)}…` : line;
}
