/**
 * JSON schemas of the HTTP API. They validate requests (400 naming the field), serialize responses
 * and feed the OpenAPI document. Shared shapes are registered once with an `$id` so the document
 * names them instead of inlining copies.
 */

import { METADATA_FIELDS } from '../types.js';
import { EMBEDDING_ENCODINGS, MEMORY_FIELDS } from './codec.js';

export const errorSchema = {
  $id: 'Error',
  type: 'object',
  required: ['error'],
  properties: {
    error: {
      type: 'object',
      required: ['code', 'message'],
      properties: {
        code: {
          type: 'string',
          description: 'Stable error code, e.g. INVALID_INPUT, COMPACTION_IN_PROGRESS.',
        },
        message: { type: 'string', description: 'Human-readable; may change between versions.' },
        field: { type: 'string', description: 'The request field that was refused (400 only).' },
      },
    },
  },
} as const;

export const memorySchema = {
  $id: 'Memory',
  type: 'object',
  description:
    'A stored memory. Every property is present unless `fields` chose fewer: `metadata` stands for ' +
    'confidence, activation, decayRate, createdAt, lastAccess and accessCount.',
  properties: {
    id: { type: 'string' },
    space: { type: 'string', description: "The memory space; 'default' unless one was named." },
    embedding: {
      type: ['array', 'string'],
      items: { type: 'number' },
      description: 'Numbers by default; base64 of little-endian float32 with encoding=base64.',
    },
    content: { type: ['string', 'null'], description: 'null when absent; "" is empty content.' },
    confidence: { type: 'number' },
    activation: { type: 'number' },
    decayRate: { type: 'number' },
    createdAt: { type: 'number', description: 'Milliseconds since the epoch.' },
    lastAccess: { type: 'number', description: 'Milliseconds since the epoch.' },
    accessCount: { type: 'integer' },
  },
} as const;

export const spaceInfoSchema = {
  $id: 'SpaceInfo',
  type: 'object',
  required: ['name', 'size'],
  properties: {
    name: { type: 'string', description: 'The memory space, 1..64 bytes of UTF-8.' },
    size: { type: 'integer', description: 'Number of memories in the space.' },
  },
} as const;

export const storageStatsSchema = {
  $id: 'StorageStats',
  type: 'object',
  required: [
    'totalBytes',
    'liveBytes',
    'deadBytes',
    'fragmentationRatio',
    'segments',
    'size',
    'isCompacting',
    'spaces',
  ],
  properties: {
    totalBytes: { type: 'number', description: 'Bytes of content entries in all segments, live and dead.' },
    liveBytes: { type: 'number' },
    deadBytes: { type: 'number' },
    fragmentationRatio: { type: 'number', description: 'deadBytes / totalBytes, 0 when empty.' },
    segments: { type: 'integer' },
    size: { type: 'integer', description: 'Number of memories, in every space.' },
    isCompacting: { type: 'boolean' },
    diskFull: {
      type: 'boolean',
      description: 'A write hit a full disk: new content is refused (507) until space returns.',
    },
    readOnly: { type: 'boolean', description: 'Every write is refused (405).' },
    spaces: {
      type: 'array',
      items: { $ref: 'SpaceInfo#' },
      description: "Every memory space with its size, by name ('default' always listed).",
    },
    index: {
      type: 'object',
      description:
        'The recall index: state (off, loading, building, ready, failed), vectors indexed, lag ' +
        '(written but not yet indexed; recall scans them exactly), rebuild progress, searches, ' +
        'vectors held in memory (the delta since the last merge; the rest is a file read through ' +
        'the page cache), merges since open, and the sampled recall of its answers (below 0.8 ' +
        'recall scans exactly).',
      properties: {
        state: { type: 'string', enum: ['off', 'loading', 'building', 'ready', 'failed'] },
        indexed: { type: 'integer' },
        tail: { type: 'integer' },
        built: { type: 'integer' },
        toBuild: { type: 'integer' },
        searches: { type: 'integer' },
        resident: { type: 'integer' },
        merges: { type: 'integer' },
        recallEstimate: { type: 'number' },
        error: { type: 'string' },
      },
    },
    scrub: {
      type: 'object',
      description:
        'The scrub, which reads every embedding and content entry back and checks its CRC32C: ' +
        'state (off, idle, running), the pass in progress (start, slots walked of the slot count), ' +
        'the last completed pass, the next one, and totals since open (memories checked, bytes ' +
        'read, damaged records found).',
      properties: {
        state: { type: 'string', enum: ['off', 'idle', 'running'] },
        passStartedAt: { type: 'number' },
        passSlotsDone: { type: 'integer' },
        passSlots: { type: 'integer' },
        lastPassCompletedAt: { type: 'number' },
        nextPassAt: { type: 'number' },
        passesCompleted: { type: 'integer' },
        slotsChecked: { type: 'integer' },
        bytesRead: { type: 'number' },
        corruptFound: { type: 'integer' },
        lastError: { type: 'string' },
      },
    },
  },
} as const;

export const compactionStatsSchema = {
  $id: 'CompactionStats',
  type: 'object',
  required: [
    'durationMs',
    'bytesBefore',
    'bytesAfter',
    'bytesReclaimed',
    'recordsMoved',
    'segmentsCompacted',
    'maxPauseMs',
    'resumed',
  ],
  properties: {
    durationMs: { type: 'number' },
    bytesBefore: { type: 'number' },
    bytesAfter: { type: 'number' },
    bytesReclaimed: { type: 'number' },
    recordsMoved: { type: 'integer' },
    segmentsCompacted: { type: 'integer' },
    maxPauseMs: { type: 'number', description: 'Longest synchronous step of this compaction.' },
    resumed: { type: 'boolean', description: 'True when this run continued an interrupted compaction.' },
    slotsMoved: {
      type: 'integer',
      description: 'Memories moved into free slots so the record files could shrink.',
    },
    recordBytesReclaimed: { type: 'number', description: 'Bytes cut off records.dat and vectors.dat.' },
  },
} as const;

export const sharedSchemas = [
  errorSchema,
  memorySchema,
  spaceInfoSchema,
  storageStatsSchema,
  compactionStatsSchema,
];

const ref = (id: string): { $ref: string } => ({ $ref: `${id}#` });

// 401 and 403 are listed on every route but the health check: they happen when the server has
// API keys.
const errorResponses = (...statuses: number[]): Record<number, { $ref: string }> =>
  Object.fromEntries(statuses.map((s) => [s, ref('Error')]));

/** The embedding of a request: exactly `dimension` numbers, or base64 of `dimension` LE float32. */
function embeddingSchema(dimension: number): object {
  return {
    type: ['array', 'string'],
    items: { type: 'number' },
    minItems: dimension,
    maxItems: dimension,
    description:
      `Exactly ${dimension} finite numbers, or a base64 string of ${dimension} little-endian float32 ` +
      `values (${dimension * 4} bytes).`,
  };
}

const spaceSchema = {
  type: 'string',
  minLength: 1,
  maxLength: 64,
  description:
    "Memory space, 1..64 bytes of UTF-8; default 'default'. The same id in two spaces is two memories.",
} as const;

const rangeSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    gt: { type: 'number' },
    gte: { type: 'number' },
    lt: { type: 'number' },
    lte: { type: 'number' },
  },
} as const;

const filterSchema = {
  type: 'object',
  additionalProperties: false,
  properties: Object.fromEntries(METADATA_FIELDS.map((f) => [f, rangeSchema])),
  description:
    'Only memories whose metadata fall in these ranges (every bound given must hold), e.g. ' +
    '{ "confidence": { "gte": 0.5 }, "createdAt": { "gte": 1700000000000, "lt": 1800000000000 } }. ' +
    'Results satisfy the filter exactly, and k of them come back whenever k memories match.',
} as const;

const encodingSchema = {
  type: 'string',
  enum: EMBEDDING_ENCODINGS,
  description:
    'How response embeddings are written: number arrays (default) or base64 of little-endian float32.',
} as const;

const fieldsQuery = {
  type: 'string',
  description: `Comma-separated parts of each memory to return, among ${MEMORY_FIELDS.join(', ')}; default all.`,
} as const;

const fieldsBody = (dflt: string): object => ({
  type: 'array',
  minItems: 1,
  items: { type: 'string', enum: MEMORY_FIELDS },
  description: `Parts of each memory to return; default ${dflt}.`,
});

const idParams = {
  type: 'object',
  required: ['id'],
  additionalProperties: false,
  properties: { id: { type: 'string', minLength: 1, maxLength: 255, description: '1..255 bytes of UTF-8.' } },
} as const;

/** A memory as a request carries it: the body of a put and each item of a batch put. */
export function memoryInputSchema(dimension: number) {
  return {
    type: 'object',
    required: ['id', 'embedding'],
    additionalProperties: false,
    properties: {
      id: { type: 'string', minLength: 1, maxLength: 255, description: '1..255 bytes of UTF-8.' },
      space: spaceSchema,
      embedding: embeddingSchema(dimension),
      content: { type: ['string', 'null'], description: 'null or omitted = absent; "" = empty.' },
      confidence: { type: 'number', minimum: 0, maximum: 1 },
      activation: { type: 'number' },
      decayRate: { type: 'number', minimum: 0 },
      createdAt: { type: 'number', description: 'Milliseconds since the epoch; default now.' },
      lastAccess: { type: 'number', description: 'Milliseconds since the epoch; default createdAt.' },
      accessCount: { type: 'integer', minimum: 0 },
    },
  } as const;
}

/** Limits of the batch routes, shown in the OpenAPI document. */
export interface BatchLimits {
  maxItems: number;
  bodyLimit: number;
}

const batchIds = (maxItems: number): object => ({
  type: 'array',
  items: { type: 'string', minLength: 1, maxLength: 255 },
  description: `1..${maxItems} ids; more answer 413. Results come in the same order, duplicates included.`,
});

const itemError = {
  type: 'object',
  required: ['code', 'message'],
  properties: {
    code: { type: 'string', description: 'INVALID_INPUT, or the store error that refused the item.' },
    message: { type: 'string' },
    field: { type: 'string', description: 'The refused field, e.g. memories[3].embedding.' },
  },
} as const;

/** Route schemas, built for the store's dimension so that a wrong length is refused by validation. */
export function routeSchemas(dimension: number, batch: BatchLimits) {
  const embedding = embeddingSchema(dimension);
  const memoryInput = memoryInputSchema(dimension);
  const tooLarge = `More than ${batch.maxItems} items or a body over ${batch.bodyLimit} bytes answer 413.`;
  return {
    putMemory: {
      tags: ['memories'],
      summary: 'Create or replace a memory',
      description:
        'Durable when the response is sent (under the default sync durability). 201 when the id was new, ' +
        '200 when an existing memory was replaced.',
      body: memoryInput,
      response: {
        200: {
          type: 'object',
          required: ['id', 'created'],
          properties: { id: { type: 'string' }, created: { type: 'boolean' } },
        },
        201: {
          type: 'object',
          required: ['id', 'created'],
          properties: { id: { type: 'string' }, created: { type: 'boolean' } },
        },
        ...errorResponses(400, 401, 403, 413, 500, 503),
      },
    },
    getMemory: {
      tags: ['memories'],
      summary: 'Read a memory by id',
      params: idParams,
      querystring: {
        type: 'object',
        additionalProperties: false,
        properties: {
          touch: {
            type: 'string',
            enum: ['true', 'false', '1', '0'],
            description: 'Bump lastAccess and accessCount (a small metadata write).',
          },
          space: spaceSchema,
          fields: fieldsQuery,
          encoding: encodingSchema,
        },
      },
      response: { 200: ref('Memory'), ...errorResponses(400, 401, 403, 404, 500, 503) },
    },
    deleteMemory: {
      tags: ['memories'],
      summary: 'Delete a memory by id',
      params: idParams,
      querystring: {
        type: 'object',
        additionalProperties: false,
        properties: { space: spaceSchema },
      },
      response: {
        200: {
          type: 'object',
          required: ['deleted'],
          properties: { deleted: { type: 'boolean' } },
        },
        ...errorResponses(400, 401, 403, 404, 500, 503),
      },
    },
    recall: {
      tags: ['memories'],
      summary: 'Recall the memories most similar to an embedding (cosine similarity, best first)',
      description: 'Hits carry every part of the memory but its embedding unless `fields` asks for it.',
      body: {
        type: 'object',
        required: ['embedding'],
        additionalProperties: false,
        properties: {
          embedding,
          k: {
            type: 'integer',
            minimum: 1,
            maximum: 10000,
            description: 'At most this many results; default 10.',
          },
          minScore: { type: 'number', description: 'Drop results below this similarity.' },
          touch: { type: 'boolean', description: 'Bump lastAccess/accessCount of the returned memories.' },
          space: spaceSchema,
          filter: filterSchema,
          exact: {
            type: 'boolean',
            description: 'Scan every vector of the space (the ground truth) instead of using an index.',
          },
          fields: fieldsBody('all but embedding'),
          encoding: encodingSchema,
        },
      },
      response: {
        200: {
          type: 'object',
          required: ['results'],
          properties: {
            results: {
              type: 'array',
              items: {
                type: 'object',
                required: ['id', 'score', 'memory'],
                properties: { id: { type: 'string' }, score: { type: 'number' }, memory: ref('Memory') },
              },
            },
          },
        },
        ...errorResponses(400, 401, 403, 413, 500, 503),
      },
    },
    batchPut: {
      tags: ['memories'],
      summary: 'Create or replace many memories',
      description:
        'Each item is validated on its own: valid items are written (durable when the response is ' +
        'sent) even when others are refused, and each result says which. A batch is not a ' +
        'transaction. A store failure (5xx) fails the whole request; some items may then be ' +
        'written, and repeating the request is safe because puts replace. ' +
        tooLarge,
      body: {
        type: 'object',
        required: ['memories'],
        additionalProperties: false,
        properties: {
          memories: {
            type: 'array',
            // Items are checked one by one in the handler, so that one bad item does not refuse
            // the others; the OpenAPI document shows the item schema (see the swagger transform).
            items: {},
            description: `1..${batch.maxItems} memories, each shaped like the body of POST /api/v1/memories.`,
          },
        },
      },
      response: {
        200: {
          type: 'object',
          required: ['results'],
          properties: {
            results: {
              type: 'array',
              items: {
                type: 'object',
                required: ['index', 'ok'],
                properties: {
                  index: { type: 'integer', description: 'Position of the item in `memories`.' },
                  id: { type: 'string', description: 'The id of the item, when it had a string id.' },
                  ok: { type: 'boolean', description: 'True when the memory was written.' },
                  created: { type: 'boolean', description: 'With ok: true when the id was new.' },
                  error: itemError,
                },
              },
            },
          },
        },
        ...errorResponses(400, 401, 403, 413, 500, 503),
      },
    },
    batchGet: {
      tags: ['memories'],
      summary: 'Read many memories by id',
      description: tooLarge,
      body: {
        type: 'object',
        required: ['ids'],
        additionalProperties: false,
        properties: {
          ids: batchIds(batch.maxItems),
          space: spaceSchema,
          fields: fieldsBody('all'),
          encoding: encodingSchema,
        },
      },
      response: {
        200: {
          type: 'object',
          required: ['results'],
          properties: {
            results: {
              type: 'array',
              items: {
                type: 'object',
                required: ['id', 'found'],
                properties: {
                  id: { type: 'string' },
                  found: { type: 'boolean' },
                  memory: { ...ref('Memory'), description: 'Present when found.' },
                },
              },
            },
          },
        },
        ...errorResponses(400, 401, 403, 413, 500, 503),
      },
    },
    batchDelete: {
      tags: ['memories'],
      summary: 'Delete many memories by id',
      description: tooLarge,
      body: {
        type: 'object',
        required: ['ids'],
        additionalProperties: false,
        properties: { ids: batchIds(batch.maxItems), space: spaceSchema },
      },
      response: {
        200: {
          type: 'object',
          required: ['results'],
          properties: {
            results: {
              type: 'array',
              items: {
                type: 'object',
                required: ['id', 'deleted'],
                properties: {
                  id: { type: 'string' },
                  deleted: { type: 'boolean', description: 'False when there was no such memory.' },
                },
              },
            },
          },
        },
        ...errorResponses(400, 401, 403, 413, 500, 503),
      },
    },
    compact: {
      tags: ['maintenance'],
      summary: 'Compact content segments now',
      description:
        'Needs a write key covering every space ("*") when the server has API keys. 409 when a compaction is already running, 507 when disk space or the memory budget is ' +
        'insufficient, 500 when compaction failed (the store stays consistent).',
      body: {
        type: 'object',
        additionalProperties: false,
        properties: {
          force: {
            type: 'boolean',
            description: 'Compact every sealed segment holding dead bytes, whatever its ratio.',
          },
        },
      },
      response: { 200: ref('CompactionStats'), ...errorResponses(400, 401, 403, 409, 500, 503, 507) },
    },
    runMaintenance: {
      tags: ['maintenance'],
      summary: 'Run one pass of the maintenance loop now',
      description: 'Checks the fragmentation thresholds and compacts when they are exceeded.',
      body: { type: 'object', additionalProperties: false, properties: {} },
      response: {
        200: {
          type: 'object',
          additionalProperties: true,
          properties: {
            at: { type: 'number' },
            decision: { type: 'string', enum: ['compacted', 'skipped', 'failed', 'busy'] },
            reason: { type: 'string' },
            checkpointed: { type: 'boolean' },
          },
        },
        ...errorResponses(400, 401, 403, 500, 503),
      },
    },
    verify: {
      tags: ['maintenance'],
      summary: 'Check every record, content checksum and garbage count (fsck)',
      description:
        'Checkpoints, then reads every record and content entry and cross-checks the live-byte ' +
        'counts. Reads and writes go on meanwhile; a record written during the check is compared ' +
        'with disk only once a checkpoint holds it. 200 with the report whether or not it is clean.',
      body: { type: 'object', additionalProperties: false, properties: {} },
      response: {
        200: {
          type: 'object',
          additionalProperties: false,
          required: ['ok', 'records', 'segments', 'bytesChecked', 'problems'],
          properties: {
            ok: { type: 'boolean' },
            records: { type: 'integer' },
            segments: { type: 'integer' },
            bytesChecked: { type: 'number' },
            problems: {
              type: 'array',
              items: {
                type: 'object',
                additionalProperties: false,
                required: ['kind', 'message'],
                properties: {
                  kind: { type: 'string' },
                  id: { type: 'string' },
                  file: { type: 'string' },
                  message: { type: 'string' },
                },
              },
            },
          },
        },
        ...errorResponses(400, 401, 403, 500, 503),
      },
    },
    listSpaces: {
      tags: ['spaces'],
      summary: 'The memory spaces and their sizes',
      description:
        'Every space, by name, on a server without keys or for a key covering every space ("*"); ' +
        'otherwise only the spaces the API key covers.',
      response: {
        200: {
          type: 'object',
          required: ['spaces'],
          properties: { spaces: { type: 'array', items: ref('SpaceInfo') } },
        },
        ...errorResponses(401, 403, 500, 503),
      },
    },
    deleteSpace: {
      tags: ['spaces'],
      summary: 'Delete a memory space and every memory in it',
      description:
        'Durable when the response is sent; the memories vanish at once and their content becomes ' +
        'dead bytes for compaction. Deleting a space that does not exist deletes nothing (0), so a ' +
        "retry is safe. 'default' can be emptied this way and stays listed. Needs a write key " +
        'covering the space.',
      params: {
        type: 'object',
        required: ['space'],
        additionalProperties: false,
        properties: { space: spaceSchema },
      },
      response: {
        200: {
          type: 'object',
          required: ['space', 'deleted'],
          properties: {
            space: { type: 'string' },
            deleted: { type: 'integer', description: 'How many memories the space held.' },
          },
        },
        ...errorResponses(400, 401, 403, 500, 503),
      },
    },
    storageStats: {
      tags: ['metrics'],
      summary: 'Content storage statistics (JSON)',
      response: { 200: ref('StorageStats'), ...errorResponses(401, 403, 500, 503) },
    },
    prometheus: {
      tags: ['metrics'],
      summary: 'Prometheus metrics (text exposition format)',
      description: 'Needs a read key covering every space ("*") when the server has API keys.',
    },
    health: {
      tags: ['health'],
      summary: 'Liveness and readiness',
      security: [],
      response: {
        200: {
          type: 'object',
          required: ['status'],
          properties: {
            status: {
              type: 'string',
              enum: ['ok', 'degraded'],
              description: '`degraded`: reads work, some writes are refused (see `reasons`).',
            },
            reasons: { type: 'array', items: { type: 'string' } },
          },
        },
        ...errorResponses(503),
      },
    },
  };
}
