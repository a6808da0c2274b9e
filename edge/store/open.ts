/**
 * Opening the database file: create the directory, open, check integrity, set the pragmas.
 * A corrupt or unreadable file (and its -wal/-shm) is moved aside, never deleted, and a fresh
 * database is created in its place; the caller records a `storage.corrupt` event in it.
 */
import { closeSync, existsSync, mkdirSync, openSync, readSync, renameSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import type BetterSqlite3 from 'better-sqlite3';
import { errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import { StoreError, isCorruptionError } from './errors.js';

export interface OpenedDatabase {
  db: BetterSqlite3.Database;
  /** set when the file at `path` was corrupt and has been moved aside */
  corrupt?: {
    movedTo: string;
    reason: string;
    /** the highest seq found in the moved file, or null when it could not be read */
    oldMaxSeq: number | null;
  };
}

export interface DatabaseTuning {
  durability: 'full' | 'normal';
  maxBytes: number;
}

const BUSY_TIMEOUT_MS = 2000;

export function openDatabase(path: string, tuning: DatabaseTuning, log: Logger, now: () => number): OpenedDatabase {
  mkdirSync(dirname(path), { recursive: true });
  let db: BetterSqlite3.Database | undefined;
  try {
    // Checked before SQLite sees the file: opening a non-database would discard its -wal on close.
    const bad = badHeader(path);
    if (bad) throw new StoreError('E_STORE_CORRUPT', bad);
    db = new Database(path, { timeout: BUSY_TIMEOUT_MS });
    configure(db, tuning);
    const check = db.pragma('quick_check', { simple: true });
    if (check !== 'ok') throw new StoreError('E_STORE_CORRUPT', `quick_check: ${String(check)}`);
    return { db };
  } catch (err) {
    closeQuietly(db);
    if (!isCorruptionError(err)) {
      throw new StoreError('E_STORE', `cannot open the database ${path}: ${errorMessage(err)}`, { cause: err });
    }
    const reason = errorMessage(err);
    const movedTo = moveAside(path, now());
    const oldMaxSeq = readMaxSeq(movedTo);
    log.error({ path, movedTo, reason, oldMaxSeq }, 'database is corrupt: moved aside, starting a fresh one');
    const fresh = new Database(path, { timeout: BUSY_TIMEOUT_MS });
    configure(fresh, tuning);
    return { db: fresh, corrupt: { movedTo, reason, oldMaxSeq } };
  }
}

/**
 * WAL mode; synchronous FULL survives power loss, NORMAL survives a crash of the process.
 * The WAL is checkpointed and truncated early enough that the file plus its WAL stay within
 * the quota: ~3 % of maxBytes, at least 64 KiB, at most 16 MiB.
 */
function configure(db: BetterSqlite3.Database, tuning: DatabaseTuning): void {
  const mode = db.pragma('journal_mode = WAL', { simple: true });
  if (mode !== 'wal') throw new StoreError('E_STORE', `cannot switch to WAL mode (got ${String(mode)})`);
  db.pragma(`synchronous = ${tuning.durability === 'full' ? 'FULL' : 'NORMAL'}`);
  const pageSize = Number(db.pragma('page_size', { simple: true })) || 4096;
  const walBytes = Math.min(16 * 1024 * 1024, Math.max(64 * 1024, Math.floor(tuning.maxBytes * 0.03)));
  db.pragma(`wal_autocheckpoint = ${Math.max(16, Math.floor(walBytes / pageSize))}`);
  db.pragma(`journal_size_limit = ${walBytes}`);
  db.pragma('temp_store = MEMORY');
}

// SQLite file format §1.3: every database file begins with the 16 bytes "SQLite format 3\0"; the header is 100 bytes.
const MAGIC = Buffer.from('SQLite format 3\0', 'latin1');

/** Why the file at `path` is not a SQLite database, or null (also when it is missing or empty: a new one). */
function badHeader(path: string): string | null {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return null; // missing: created fresh; unreadable: SQLite reports it
  }
  try {
    const head = Buffer.alloc(100);
    const n = readSync(fd, head, 0, 100, 0);
    if (n === 0) return null;
    if (n < 100 || !head.subarray(0, 16).equals(MAGIC)) return 'file is not a database (bad header)';
    return null;
  } finally {
    closeSync(fd);
  }
}

function closeQuietly(db: BetterSqlite3.Database | undefined): void {
  try {
    db?.close();
  } catch {
    // already broken; the file is moved aside next
  }
}

/** Moves the file and its -wal/-shm to `<path>.corrupt-<timestamp>[-wal|-shm]`; returns the new path. */
function moveAside(path: string, now: number): string {
  const stamp = new Date(now).toISOString().replace(/[:.]/g, '-');
  let target = `${path}.corrupt-${stamp}`;
  for (let n = 1; existsSync(target); n++) target = `${path}.corrupt-${stamp}-${n}`;
  renameSync(path, target);
  for (const suffix of ['-wal', '-shm']) {
    if (existsSync(path + suffix)) renameSync(path + suffix, target + suffix);
  }
  return target;
}

/**
 * The highest seq the moved file handed out, so the fresh database continues after it. Null
 * unless meta.last_seq can be read (it covers every seq ever handed out).
 */
function readMaxSeq(path: string): number | null {
  let db: BetterSqlite3.Database | undefined;
  try {
    db = new Database(path, { readonly: true, fileMustExist: true });
    const meta = db.prepare("SELECT value FROM meta WHERE key = 'last_seq'").pluck().get();
    if (typeof meta !== 'number') return null;
    let max = meta;
    for (const sql of ['SELECT max(seq) FROM reading', 'SELECT max(seq) FROM event', 'SELECT max(seq) FROM refusal_event']) {
      try {
        const v = db.prepare(sql).pluck().get();
        if (typeof v === 'number' && v > max) max = v;
      } catch {
        // a damaged (or, before schema 2, missing) table: meta.last_seq alone is enough
      }
    }
    return max;
  } catch {
    return null;
  } finally {
    closeQuietly(db);
  }
}
