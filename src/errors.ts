/**
 * The one error class of warmstore. `code` is stable API; messages may change.
 */
export type WarmStoreErrorCode =
  | 'INVALID_INPUT'
  | 'CORRUPTION_DETECTED'
  | 'COMPACTION_IN_PROGRESS'
  | 'COMPACTION_FAILED'
  | 'INSUFFICIENT_RESOURCES'
  | 'UNSUPPORTED_VERSION'
  | 'STORE_LOCKED'
  | 'STORE_CLOSED'
  | 'IO_ERROR'
  | 'DISK_FULL'
  | 'READ_ONLY';

export const ERROR_CODES: readonly WarmStoreErrorCode[] = [
  'INVALID_INPUT',
  'CORRUPTION_DETECTED',
  'COMPACTION_IN_PROGRESS',
  'COMPACTION_FAILED',
  'INSUFFICIENT_RESOURCES',
  'UNSUPPORTED_VERSION',
  'STORE_LOCKED',
  'STORE_CLOSED',
  'IO_ERROR',
  'DISK_FULL',
  'READ_ONLY',
];

/** Extra structured context carried by an error (which field, which file, which id). */
export interface WarmStoreErrorDetails {
  /** The input field that was refused (INVALID_INPUT). */
  field?: string;
  /** The file involved (CORRUPTION_DETECTED, IO_ERROR, UNSUPPORTED_VERSION). */
  file?: string;
  /** The memory id involved, when known. */
  id?: string;
  /** Any other detail worth logging. */
  [key: string]: unknown;
}

export class WarmStoreError extends Error {
  override readonly name = 'WarmStoreError';
  readonly code: WarmStoreErrorCode;
  readonly details: WarmStoreErrorDetails;

  constructor(
    code: WarmStoreErrorCode,
    message: string,
    details: WarmStoreErrorDetails = {},
    cause?: unknown,
  ) {
    super(message, cause === undefined ? undefined : { cause });
    this.code = code;
    this.details = details;
  }

  static is(err: unknown, code?: WarmStoreErrorCode): err is WarmStoreError {
    return err instanceof WarmStoreError && (code === undefined || err.code === code);
  }
}

export function invalid(field: string, why: string): WarmStoreError {
  return new WarmStoreError('INVALID_INPUT', `invalid ${field}: ${why}`, { field });
}

export function corruption(what: string, details: WarmStoreErrorDetails): WarmStoreError {
  const where = [details.id !== undefined ? `id ${JSON.stringify(details.id)}` : '', details.file ?? '']
    .filter(Boolean)
    .join(' in ');
  return new WarmStoreError(
    'CORRUPTION_DETECTED',
    `corruption detected: ${what}${where ? ` (${where})` : ''}`,
    details,
  );
}

/** Wraps a raw Node I/O error so callers see one error class; the original stays as `cause`. */
export function ioError(op: string, file: string, cause: unknown): WarmStoreError {
  if (cause instanceof WarmStoreError) return cause;
  const code = (cause as NodeJS.ErrnoException | undefined)?.code ?? 'EIO';
  const msg = cause instanceof Error ? cause.message : String(cause);
  return new WarmStoreError('IO_ERROR', `${op} failed on ${file}: ${msg}`, { file, errno: code }, cause);
}
