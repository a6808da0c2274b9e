/**
 * Versioned schema migrations. Each module (the store itself is the module `store`) owns an
 * ordered list; `schema_version` records how many of them a database has applied, per module.
 * A migration is applied once, in order, each in its own transaction with its version bump.
 * Migrations are append-only: never edit or reorder one that has shipped.
 *
 * A rollback never meets a schema it cannot open (issue 17: the gateway's self-update switches
 * back to the previous release when the new one is not healthy). A migration that only adds
 * (new tables, new nullable or defaulted columns, new indexes; nothing renamed, dropped,
 * retyped or rewritten) is declared with `additive(…)`: a release that knows fewer of the
 * module's migrations can still read and write the result. `schema_compat` records per module
 * `readable_by`, the fewest migrations a release must know to open the database; a release that
 * knows at least that many opens a newer database as it is, without migrating it (a warning is
 * logged), and refuses it otherwise. Releases before this rule (16b44dc and older) refuse any
 * newer version: a module they know must get no migration while they are the previous release
 * (tests/firmware/previousRelease.test.ts runs one on a store of the current code).
 */
import { statfsSync } from 'node:fs';
import { dirname } from 'node:path';
import type BetterSqlite3 from 'better-sqlite3';
import type { Logger } from '../log.js';
import { MAX_COMPACT, SCALES, SCALE_SHIFT, TYPE_BOOLEAN, TYPE_MASK, TYPE_NUMBER } from './codec.js';
import { StoreError } from './errors.js';

/** A migration in code, for what SQL alone cannot do; `additive` when made by `additive()`. */
export interface MigrationFn {
  (db: BetterSqlite3.Database): void;
  readonly additive?: true;
}

/** SQL to run, or a function. */
export type Migration = string | MigrationFn;

/**
 * Declares a migration additive: a release that knows only the migrations before it can still
 * read and write its result (new tables, nullable or defaulted columns, indexes; nothing renamed,
 * dropped, retyped or rewritten). Still a plain Migration for code that runs the list itself.
 */
export function additive(step: Migration): MigrationFn {
  const fn = typeof step === 'string' ? (db: BetterSqlite3.Database) => void db.exec(step) : (db: BetterSqlite3.Database) => step(db);
  return Object.assign(fn, { additive: true as const });
}

export const STORE_MODULE = 'store';

/** The store's own schema (DESIGN.md "Data model"). */
export const STORE_MIGRATIONS: readonly Migration[] = [
  // 1: the data model
  `
  CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
  ) WITHOUT ROWID;
  INSERT INTO meta (key, value) VALUES ('last_seq', 0), ('latest_seq', 0), ('dropped_total', 0), ('evicted_total', 0);

  -- (device, point, unit) normalised out of the reading rows; ids are never reused
  CREATE TABLE point (
    id     INTEGER PRIMARY KEY,
    device TEXT NOT NULL,
    point  TEXT NOT NULL,
    unit   TEXT
  );
  CREATE UNIQUE INDEX point_key ON point (device, point, ifnull(unit, char(0)));

  -- flags: see codec.ts. No secondary index: inserts must stay fast.
  CREATE TABLE reading (
    seq      INTEGER PRIMARY KEY,
    ts       INTEGER NOT NULL,
    point_id INTEGER NOT NULL,
    value,
    flags    INTEGER NOT NULL
  );

  -- snapshot of the latest value per point, covering readings up to meta.latest_seq
  CREATE TABLE latest (
    point_id INTEGER PRIMARY KEY,
    seq      INTEGER NOT NULL,
    ts       INTEGER NOT NULL,
    value,
    flags    INTEGER NOT NULL
  );

  CREATE TABLE event (
    seq      INTEGER PRIMARY KEY,
    ts       INTEGER NOT NULL,
    device   TEXT,
    kind     TEXT NOT NULL,
    severity TEXT NOT NULL,
    detail   TEXT NOT NULL
  );

  CREATE TABLE command (
    id          TEXT PRIMARY KEY,
    ts          INTEGER NOT NULL,
    source      TEXT NOT NULL,
    target_kind TEXT NOT NULL,
    target_id   TEXT NOT NULL,
    action      TEXT NOT NULL,
    params      TEXT NOT NULL,
    priority    INTEGER NOT NULL,
    expires_at  INTEGER,
    status      TEXT NOT NULL,
    result      TEXT,
    updated_at  INTEGER NOT NULL
  );
  CREATE INDEX command_ts ON command (ts);
  CREATE INDEX command_status ON command (status);

  CREATE TABLE consumer (
    name       TEXT PRIMARY KEY,
    acked_seq  INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
  );
  `,
  // 2: the refusal share of the quota (quota.ts): commands refused at the door and the events
  // about them live in tables of their own, so the pages they take are counted apart, exactly,
  // and evicting them never frees or takes a page of the readings or of the audit trail.
  `
  CREATE TABLE refusal_event (
    seq      INTEGER PRIMARY KEY,
    ts       INTEGER NOT NULL,
    device   TEXT,
    kind     TEXT NOT NULL,
    severity TEXT NOT NULL,
    detail   TEXT NOT NULL
  );

  CREATE TABLE refusal_command (
    id          TEXT PRIMARY KEY,
    ts          INTEGER NOT NULL,
    source      TEXT NOT NULL,
    target_kind TEXT NOT NULL,
    target_id   TEXT NOT NULL,
    action      TEXT NOT NULL,
    params      TEXT NOT NULL,
    priority    INTEGER NOT NULL,
    expires_at  INTEGER,
    status      TEXT NOT NULL,
    result      TEXT,
    updated_at  INTEGER NOT NULL
  );
  CREATE INDEX refusal_command_ts ON refusal_command (ts);
  `,
  // 3: values in the compact form of codec.ts (integral numbers and booleans as INTEGER, numbers
  // of at most 3 decimals as a scaled INTEGER with the scale in the flags)
  (db) => compactValues(db),
  // 4: the span index of the history (history.ts): per block of 1024 seqs, the oldest and newest ts
  // of its readings. Filled by the store (at open for the readings already there, then as blocks
  // complete); a release that does not know it writes readings past its last block, which the next
  // open of this one summarises.
  additive(`
  CREATE TABLE reading_span (
    block  INTEGER PRIMARY KEY,
    min_ts INTEGER NOT NULL,
    max_ts INTEGER NOT NULL
  );
  `),
];

/**
 * The scale k of a row's value in the compact form (codec.ts `encodeInto`), in SQL over the
 * columns `value` and `flags` of a row in the plain form; NULL: the value stays as it is. The same
 * tests as the JS: an integer within ±2^53 but -0 (atan2 tells -0.0 from 0.0), else the first
 * k in 1..3 whose integer n gives back exactly the same double. Booleans (0.0/1.0) get k = 0.
 * (atan2 is one of SQLite's math functions, compiled into better-sqlite3's SQLite.)
 */
const COMPACT_SCALE = `CASE
    WHEN typeof(value) != 'real' THEN NULL
    WHEN flags & ${TYPE_MASK} = ${TYPE_BOOLEAN} THEN 0
    WHEN flags & ${TYPE_MASK} != ${TYPE_NUMBER} THEN NULL
    WHEN value = CAST(value AS INTEGER) THEN
      CASE WHEN abs(value) <= ${MAX_COMPACT}.0 AND (value != 0 OR atan2(value, -1) > 0) THEN 0 END
    WHEN abs(value) * 1000 > ${MAX_COMPACT}.0 THEN NULL
    ${[1, 2, 3].map((k) => `WHEN CAST(round(value * ${SCALES[k]}) AS INTEGER) / ${SCALES[k]}.0 = value THEN ${k}`).join('\n    ')}
  END`;

/** The compact value of a row whose scale (COMPACT_SCALE) is the column `k`. */
const COMPACT_VALUE = `CASE k
    WHEN 0 THEN CAST(value AS INTEGER)
    ${[1, 2, 3].map((k) => `WHEN ${k} THEN CAST(round(value * ${SCALES[k]}) AS INTEGER)`).join('\n    ')}
    ELSE value
  END`;

/** Rows of the reading table copied per step of migration 3. */
const COMPACT_CHUNK = 50_000;

/**
 * Migration 3: rewrites the reading and latest rows to the compact form. Rewriting rows in place
 * would leave the pages as they are (SQLite rebalances a page only when it is two thirds empty),
 * so the readings are copied, oldest first, into a new table packed full, a chunk at a time,
 * each chunk deleted from the old table right after: the pages it frees take the next chunks and
 * the file grows by about one chunk, not by a second copy. The WAL still holds every page
 * written, about the size of the old table, until the transaction commits and is checkpointed
 * (measured on a 2-CPU x86: 8.5 M readings in a 231 MB file, 25 s, WAL 233 MB, file +1 MB; hence
 * MAX_COMPACT_ROWS).
 */
function compactValues(db: BetterSqlite3.Database): void {
  if (compactReadings(db)) copyCompact(db);
  // one row per point: in place
  db.exec(`
    UPDATE latest SET value = ${COMPACT_VALUE}, flags = latest.flags | (c.k << ${SCALE_SHIFT})
    FROM (SELECT point_id AS id, ${COMPACT_SCALE} AS k FROM latest) AS c
    WHERE latest.point_id = c.id AND c.k IS NOT NULL`);
}

/**
 * At most this many readings are rewritten at start (about a second on a 2-CPU x86, a few on an
 * SD card). A bigger buffer keeps its rows as they are: the compact form is a superset of the
 * plain one (k = 0), so they read back the same and leave with the quota's eviction, while a
 * rewrite of 256 MB would hold the start, and a SIGTERM, for minutes on a gateway's SD card.
 */
const MAX_COMPACT_ROWS = 250_000;

/** Whether migration 3 rewrites the readings: few enough of them, and room on the disk for the WAL of the copy. */
function compactReadings(db: BetterSqlite3.Database): boolean {
  const span = db.prepare('SELECT max(seq) - min(seq) + 1 FROM reading').pluck().get() as number | null;
  if (span === null) return false;
  if (span > MAX_COMPACT_ROWS) return false;
  if (db.memory) return true;
  const pageBytes = (db.pragma('page_size', { simple: true }) as number) * (db.pragma('page_count', { simple: true }) as number);
  try {
    const fs = statfsSync(dirname(db.name));
    return fs.bavail * fs.bsize > 2 * pageBytes;
  } catch {
    return false;
  }
}

function copyCompact(db: BetterSqlite3.Database): void {
  db.exec(`
  -- flags: see codec.ts. No secondary index: inserts must stay fast.
  CREATE TABLE reading_compact (
    seq      INTEGER PRIMARY KEY,
    ts       INTEGER NOT NULL,
    point_id INTEGER NOT NULL,
    value,
    flags    INTEGER NOT NULL
  );`);
  const nth = db.prepare('SELECT seq FROM reading ORDER BY seq LIMIT 1 OFFSET ?').pluck();
  const copy = db.prepare(`
    INSERT INTO reading_compact (seq, ts, point_id, value, flags)
    SELECT seq, ts, point_id, ${COMPACT_VALUE}, flags | (ifnull(k, 0) << ${SCALE_SHIFT})
    FROM (SELECT seq, ts, point_id, value, flags, ${COMPACT_SCALE} AS k FROM reading WHERE seq <= ?)
    ORDER BY seq`);
  const drop = db.prepare('DELETE FROM reading WHERE seq <= ?');
  // each step deletes COMPACT_CHUNK rows, the last one fewer
  for (;;) {
    const cut = (nth.get(COMPACT_CHUNK - 1) as number | undefined) ?? Number.MAX_SAFE_INTEGER;
    copy.run(cut);
    if (drop.run(cut).changes < COMPACT_CHUNK) break;
  }
  db.exec('DROP TABLE reading; ALTER TABLE reading_compact RENAME TO reading;');
}

/** The b-trees (tables and indexes) of the refusal share, as dbstat names them. */
export const REFUSAL_BTREES = ['refusal_event', 'refusal_command', 'sqlite_autoindex_refusal_command_1', 'refusal_command_ts'] as const;

/** Whether this database has the refusal tables (a read-only view may open a file of schema 1). */
export function hasRefusalTables(db: BetterSqlite3.Database): boolean {
  return db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'refusal_event'").get() !== undefined;
}

function ensureVersionTable(db: BetterSqlite3.Database): void {
  db.exec(`CREATE TABLE IF NOT EXISTS schema_version (
    module     TEXT PRIMARY KEY,
    version    INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
  )`);
  // beside schema_version, not a column of it: releases before the rule write schema_version
  // with a plain INSERT of (module, version, updated_at) and must keep doing so
  db.exec(`CREATE TABLE IF NOT EXISTS schema_compat (
    module      TEXT PRIMARY KEY,
    readable_by INTEGER NOT NULL
  )`);
}

function isAdditive(m: Migration | undefined): boolean {
  return typeof m === 'function' && m.additive === true;
}

/**
 * The fewest of `migrations` a release must know to read a database at `version`: the version
 * itself, less the additive migrations at its end.
 */
export function readableByOf(migrations: readonly Migration[], version: number): number {
  let v = version;
  while (v > 0 && isAdditive(migrations[v - 1])) v--;
  return v;
}

/** What this database says the fewest migrations of `module` are that read it; null when not recorded (a release before the rule wrote it). Reads only. */
export function readableBy(db: BetterSqlite3.Database, module: string): number | null {
  const exists = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_compat'").get();
  if (!exists) return null;
  const row = db.prepare('SELECT readable_by FROM schema_compat WHERE module = ?').get(module) as { readable_by: number } | undefined;
  return row?.readable_by ?? null;
}

/** The version of `module` in this database, 0 when never migrated. Reads only. */
export function schemaVersion(db: BetterSqlite3.Database, module: string): number {
  const exists = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'").get();
  if (!exists) return 0;
  const row = db.prepare('SELECT version FROM schema_version WHERE module = ?').get(module) as { version: number } | undefined;
  return row?.version ?? 0;
}

/**
 * Applies the migrations of `module` that this database has not seen yet; returns the number
 * applied. A database newer than the code (more versions than migrations) is opened as it is
 * when its `readable_by` allows (a rollback to a previous release; `log` hears a warning), and
 * refused otherwise.
 */
export function applyMigrations(
  db: BetterSqlite3.Database,
  module: string,
  migrations: readonly Migration[],
  now: number = Date.now(),
  log?: Pick<Logger, 'warn'>,
): number {
  ensureVersionTable(db);
  const current = schemaVersion(db, module);
  if (current > migrations.length) {
    const readable = readableBy(db, module);
    if (readable === null || readable > migrations.length) {
      throw new StoreError(
        'E_STORE',
        `database schema of "${module}" is version ${current}, this streetbox knows ${migrations.length}` +
          (readable === null ? '' : ` and a release must know ${readable} to read it`) +
          ': refusing to downgrade',
      );
    }
    log?.warn(
      { schema: module, version: current, known: migrations.length, readableBy: readable },
      'database schema is newer than this release (a rollback?): opened as it is, not migrated',
    );
    return 0;
  }
  const bump = db.prepare(
    `INSERT INTO schema_version (module, version, updated_at) VALUES (?, ?, ?)
     ON CONFLICT (module) DO UPDATE SET version = excluded.version, updated_at = excluded.updated_at`,
  );
  const compat = db.prepare(
    `INSERT INTO schema_compat (module, readable_by) VALUES (?, ?)
     ON CONFLICT (module) DO UPDATE SET readable_by = excluded.readable_by`,
  );
  const record = (version: number): void => {
    compat.run(module, readableByOf(migrations, version));
  };
  // a database migrated before the rule: its readable_by, once
  if (current > 0 && readableBy(db, module) === null) db.transaction(() => record(current)).immediate();
  let applied = 0;
  for (let v = current; v < migrations.length; v++) {
    const m = migrations[v];
    db.transaction(() => {
      if (typeof m === 'string') db.exec(m);
      else if (m) m(db);
      bump.run(module, v + 1, now);
      record(v + 1);
    }).immediate();
    applied++;
  }
  return applied;
}
