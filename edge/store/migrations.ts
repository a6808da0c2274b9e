/**
 * Versioned schema migrations. Each module (the store itself is the module `store`) owns an
 * ordered list; `schema_version` records how many of them a database has applied, per module.
 * A migration is applied once, in order, each in its own transaction with its version bump.
 * Migrations are append-only: never edit or reorder one that has shipped.
 */
import type BetterSqlite3 from 'better-sqlite3';
import { StoreError } from './errors.js';

export type Migration = string | ((db: BetterSqlite3.Database) => void);

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
];

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
 * applied. A database newer than the code (more versions than migrations) is refused.
 */
export function applyMigrations(db: BetterSqlite3.Database, module: string, migrations: readonly Migration[], now: number = Date.now()): number {
  ensureVersionTable(db);
  const current = schemaVersion(db, module);
  if (current > migrations.length) {
    throw new StoreError(
      'E_STORE',
      `database schema of "${module}" is version ${current}, this streetbox knows ${migrations.length}: refusing to downgrade`,
    );
  }
  const bump = db.prepare(
    `INSERT INTO schema_version (module, version, updated_at) VALUES (?, ?, ?)
     ON CONFLICT (module) DO UPDATE SET version = excluded.version, updated_at = excluded.updated_at`,
  );
  let applied = 0;
  for (let v = current; v < migrations.length; v++) {
    const m = migrations[v];
    db.transaction(() => {
      if (typeof m === 'string') db.exec(m);
      else if (m) m(db);
      bump.run(module, v + 1, now);
    }).immediate();
    applied++;
  }
  return applied;
}
