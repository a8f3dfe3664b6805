/**
 * `POST /api/v1/maintenance/backup`: an online backup of the served store into a subdirectory of
 * the server's backup directory. The client names the subdirectory, never a path: a key that may
 * write memories must not be able to make the server create files anywhere it can write.
 */
import { join } from 'node:path';
import { WarmStoreError } from '../errors.js';
import type { BackupResult } from '../types.js';
import { WRITE_STORE } from './auth.js';
import { HttpError } from './errors.js';
import type { RouteContext } from './memory-routes.js';

/** A backup name: one path component of letters, digits, `.`, `_` and `-`, not `.` or `..`. */
const NAME = /^(?!\.{1,2}$)[A-Za-z0-9._-]{1,128}$/;

export const backupSchema = {
  tags: ['maintenance'],
  summary: 'Back the store up while it serves',
  description:
    'Writes a consistent copy of the store, as of one moment between two write batches, into ' +
    '`name` under the directory the server was started with (`--backup-dir`). Every write ' +
    'acknowledged before the request is in it. Needs a write key covering every space ("*") when ' +
    'the server has API keys. 400 when the server has no backup directory or `name` exists and ' +
    'is not empty.',
  body: {
    type: 'object',
    additionalProperties: false,
    properties: {
      name: {
        type: 'string',
        pattern: NAME.source,
        description: 'Subdirectory of the backup directory. Default: `backup-<ISO time>`.',
      },
      link: {
        type: 'boolean',
        description: 'Hard-link sealed segments instead of copying them (default true).',
      },
    },
  },
  response: {
    200: {
      type: 'object',
      required: ['dir', 'lsn', 'checkpointLsn', 'files', 'bytesCopied', 'bytesLinked', 'durationMs'],
      properties: {
        dir: { type: 'string' },
        lsn: { type: 'number', description: 'Every write acknowledged up to this LSN is in the backup.' },
        checkpointLsn: { type: 'number' },
        files: { type: 'number' },
        bytesCopied: { type: 'number' },
        bytesLinked: { type: 'number' },
        durationMs: { type: 'number' },
      },
    },
    ...Object.fromEntries([400, 401, 403, 500, 503].map((s) => [s, { $ref: 'Error#' }])),
  },
} as const;

export function registerBackupRoute(
  ctx: Pick<RouteContext, 'app' | 'store' | 'op'> & { backupDir: string | undefined },
): void {
  const { app, store, op, backupDir } = ctx;
  app.post<{ Body: { name?: string; link?: boolean } }>(
    '/api/v1/maintenance/backup',
    {
      schema: backupSchema,
      preValidation: async (request: { body: unknown }) => {
        request.body ??= {};
      },
      config: { auth: WRITE_STORE },
    },
    async (request): Promise<BackupResult> => {
      if (backupDir === undefined) {
        throw new HttpError(
          400,
          'BAD_REQUEST',
          'backups are disabled: the server was started without a backup directory (--backup-dir)',
        );
      }
      const name = request.body.name ?? `backup-${new Date().toISOString().replace(/[:.]/g, '-')}`;
      const dir = join(backupDir, name);
      try {
        return await op('warmstore.backup', { 'warmstore.backup_dir': dir }, () =>
          store.backup(dir, request.body.link === undefined ? {} : { link: request.body.link }),
        );
      } catch (err) {
        if (WarmStoreError.is(err, 'INVALID_INPUT') && err.details.field === 'dir') {
          throw new HttpError(400, 'INVALID_INPUT', err.message, 'name');
        }
        throw err;
      }
    },
  );
}
