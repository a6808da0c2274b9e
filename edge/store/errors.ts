import { StreetboxError, type ErrorCode } from '../errors.js';

/** Errors of the store: E_STORE (I/O, misuse of a closed store, a newer schema), E_STORE_CORRUPT, E_NOT_FOUND, E_USAGE. */
export class StoreError extends StreetboxError {
  constructor(code: Extract<ErrorCode, 'E_STORE' | 'E_STORE_CORRUPT' | 'E_NOT_FOUND' | 'E_USAGE'>, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}

/** SQLite result codes (better-sqlite3 puts them on `err.code`) that mean the file is not a usable database. */
const CORRUPT_CODES = new Set(['SQLITE_NOTADB', 'SQLITE_CORRUPT', 'SQLITE_CORRUPT_VTAB', 'SQLITE_CORRUPT_SEQUENCE', 'SQLITE_CORRUPT_INDEX']);

export function isCorruptionError(err: unknown): boolean {
  if (err instanceof StreetboxError) return err.code === 'E_STORE_CORRUPT';
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && CORRUPT_CODES.has(code);
}
