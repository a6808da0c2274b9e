/**
 * The configuration versions in the gateway's store (issue 16): every configuration the gateway
 * ran, or was asked to run and refused, as a row of `config_versions` (module "config" of the
 * store's migrations), numbered 1, 2, … and never renumbered (AUTOINCREMENT: a number is not
 * reused even after its row is gone). Which one runs is one row of `config_state`, moved in the
 * same transaction as the stage that makes a version run. The stage reports waiting for central
 * are rows of `config_outbox`, kept across restarts until the sync has delivered them.
 *
 * Bounded: rejected texts keep their content for the latest MAX_REJECTED_CONTENT of them only (a
 * script sending broken texts must not fill the disk; the row and its problems stay), delivered
 * reports beyond the latest MAX_DELIVERED are deleted, and a text over MAX_CONFIG_BYTES is never
 * stored (the doors refuse it before: E_CONFIG_TOO_LARGE).
 */
import type BetterSqlite3 from 'better-sqlite3';
import { StreetboxError } from '../errors.js';
import type { Logger } from '../log.js';
import type { Migration } from '../store/migrations.js';
import { moduleDatabase, statementCache } from '../store/modules.js';
import { sha256Hex } from './atomicFile.js';
import { MAX_CONFIG_BYTES, type ConfigProblem, type ConfigRefusalCode, type ConfigSource, type ConfigStage, type ConfigStageReport, type ConfigVersion, type NewConfigVersion } from './records.js';

export const CONFIG_MODULE = 'config';

/** The largest devices.yaml text kept (UTF-8 bytes). */
export { MAX_CONFIG_BYTES };
/** Rejected versions whose text is kept; older rejected rows keep their sha256, size and problems. */
export const MAX_REJECTED_CONTENT = 200;
/** rejected versions beyond this many (a flood of bad changes) lose their row too; events keep the count */
export const MAX_REJECTED_ROWS = 2000;
/** Delivered stage reports kept (for a look at what went upstream); older ones are deleted. */
export const MAX_DELIVERED = 500;
/** Rows a list() returns at most. */
export const MAX_LIST = 1000;
const DEFAULT_LIST = 50;

export const CONFIG_MIGRATIONS: readonly Migration[] = [
  // 1: versions, the running pointer, the reports for central
  `CREATE TABLE config_versions (
     version      INTEGER PRIMARY KEY AUTOINCREMENT,
     id           TEXT NOT NULL UNIQUE,
     sha256       TEXT NOT NULL,
     bytes        INTEGER NOT NULL,
     content      TEXT,
     source       TEXT NOT NULL,
     principal    TEXT NOT NULL,
     at           INTEGER NOT NULL,
     base_version INTEGER,
     stage        TEXT NOT NULL,
     reason       TEXT,
     code         TEXT,
     errors       TEXT NOT NULL DEFAULT '[]',
     components   TEXT NOT NULL DEFAULT '[]',
     applied_at   INTEGER,
     confirmed_at INTEGER,
     ended_at     INTEGER,
     rollback_of  INTEGER
   );
   CREATE INDEX config_versions_sha ON config_versions (sha256, version);
   CREATE INDEX config_versions_stage ON config_versions (stage, version);
   CREATE TABLE config_state (
     key   TEXT PRIMARY KEY,
     value
   ) WITHOUT ROWID;
   CREATE TABLE config_outbox (
     seq       INTEGER PRIMARY KEY AUTOINCREMENT,
     topic_id  TEXT NOT NULL,
     report    TEXT NOT NULL,
     delivered INTEGER NOT NULL DEFAULT 0
   );
   CREATE INDEX config_outbox_pending ON config_outbox (delivered, seq);`,
];

/** The stages each stage may move to: forward only. */
const NEXT_STAGES: Record<ConfigStage, readonly ConfigStage[]> = {
  staged: ['applied', 'rejected', 'rolledBack'],
  applied: ['confirmed', 'rolledBack'],
  rejected: [],
  confirmed: [],
  rolledBack: [],
};

export interface TransitionFields {
  /** when the stage was reached, ms UTC */
  at: number;
  reason?: string | undefined;
  code?: ConfigRefusalCode | undefined;
  errors?: ConfigProblem[] | undefined;
  components?: string[] | undefined;
  /** the version runs from now on (set in the same transaction as the stage) */
  running?: boolean | undefined;
}

export interface PendingReport {
  seq: number;
  topicId: string;
  report: ConfigStageReport;
}

interface VersionRow {
  version: number;
  id: string;
  sha256: string;
  bytes: number;
  source: string;
  principal: string;
  at: number;
  base_version: number | null;
  stage: string;
  reason: string | null;
  code: string | null;
  errors: string;
  components: string;
  applied_at: number | null;
  confirmed_at: number | null;
  ended_at: number | null;
  rollback_of: number | null;
}

/** Every column but the content: a list never reads the texts. */
const COLUMNS =
  'version, id, sha256, bytes, source, principal, at, base_version, stage, reason, code, errors, components, applied_at, confirmed_at, ended_at, rollback_of';

export class ConfigVersions {
  private readonly stmt: (sql: string) => BetterSqlite3.Statement;
  /** the read-only view found the tables (a file the gateway has not run this version on has none) */
  private tablesSeen: boolean;

  private constructor(
    private readonly db: BetterSqlite3.Database,
    private readonly writable: boolean,
    private readonly log: Logger | undefined,
  ) {
    this.tablesSeen = writable;
    this.stmt = statementCache(db);
  }

  /** The versions in the gateway's store, its tables migrated; null for a store without module tables. */
  static open(store: unknown, log?: Logger): ConfigVersions | null {
    const db = moduleDatabase(store, CONFIG_MODULE, CONFIG_MIGRATIONS);
    return db === null ? null : new ConfigVersions(db, true, log);
  }

  /**
   * The versions in a data file opened read-only (the CLI beside a running gateway): never
   * migrates; a file without the tables reads as having no versions. Writing throws.
   */
  static readOnly(db: BetterSqlite3.Database): ConfigVersions {
    return new ConfigVersions(db, false, undefined);
  }

  // ───────────────────────────── writing ─────────────────────────────

  /** A new version, `staged` or `rejected` (then ended at once). Throws E_CONFIG_DUPLICATE for an id already recorded. */
  add(v: NewConfigVersion): ConfigVersion {
    this.assertWritable();
    const bytes = v.content === null ? 0 : Buffer.byteLength(v.content, 'utf8');
    if (bytes > MAX_CONFIG_BYTES) {
      throw new StreetboxError('E_CONFIG_TOO_LARGE', `a configuration of ${bytes} bytes is not stored (at most ${MAX_CONFIG_BYTES}); the door refuses it before`);
    }
    const insert = this.db.transaction((): number => {
      const info = this.stmt(
        `INSERT INTO config_versions (id, sha256, bytes, content, source, principal, at, base_version, stage, reason, code, errors, ended_at, rollback_of)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      ).run(
        v.id,
        v.content === null ? '' : sha256Hex(v.content),
        bytes,
        v.content,
        v.source,
        v.principal,
        v.at,
        v.baseVersion,
        v.stage,
        v.reason ?? null,
        v.code ?? null,
        JSON.stringify(v.errors ?? []),
        v.stage === 'rejected' ? v.at : null,
        v.rollbackOf ?? null,
      );
      if (v.stage === 'rejected') this.pruneRejectedContent();
      return Number(info.lastInsertRowid);
    });
    let version: number;
    try {
      version = insert();
    } catch (err) {
      if ((err as { code?: string }).code === 'SQLITE_CONSTRAINT_UNIQUE') {
        throw new StreetboxError('E_CONFIG_DUPLICATE', `a change with id "${v.id}" is recorded already`, { cause: err });
      }
      throw err;
    }
    return this.get(version)!;
  }

  /**
   * Moves a version to `stage`, forward only (staged → applied → confirmed | rolledBack,
   * staged → rejected | rolledBack); anything else throws E_STORE. Sets applied_at,
   * confirmed_at or ended_at as the stage implies; `running` makes it the running version in
   * the same transaction, ending the one that ran before.
   */
  transition(version: number, stage: ConfigStage, fields: TransitionFields): ConfigVersion {
    this.assertWritable();
    this.db.transaction(() => {
      const row = this.row(version);
      if (row === undefined) throw new StreetboxError('E_STORE', `no configuration version ${version}`);
      const from = row.stage as ConfigStage;
      if (!NEXT_STAGES[from]?.includes(stage)) {
        throw new StreetboxError('E_STORE', `configuration version ${version} cannot go from ${from} to ${stage} (stages only move forward)`);
      }
      if (fields.running === true && stage === 'rejected') throw new StreetboxError('E_STORE', `a rejected version (${version}) cannot run`);
      this.stmt(
        `UPDATE config_versions SET
           stage = ?,
           reason = coalesce(?, reason),
           code = coalesce(?, code),
           errors = coalesce(?, errors),
           components = coalesce(?, components),
           applied_at = CASE WHEN ? = 'applied' THEN ? ELSE applied_at END,
           confirmed_at = CASE WHEN ? = 'confirmed' THEN ? ELSE confirmed_at END,
           ended_at = CASE WHEN ? IN ('rejected', 'rolledBack') THEN ? ELSE ended_at END
         WHERE version = ?`,
      ).run(
        stage,
        fields.reason ?? null,
        fields.code ?? null,
        fields.errors === undefined ? null : JSON.stringify(fields.errors),
        fields.components === undefined ? null : JSON.stringify(fields.components),
        stage,
        fields.at,
        stage,
        fields.at,
        stage,
        fields.at,
        version,
      );
      if (fields.running === true) this.moveRunning(version, fields.at);
      if (stage === 'rejected') this.pruneRejectedContent();
    })();
    return this.get(version)!;
  }

  /**
   * Makes `version` the running one (a rollback puts the previous version back): the version
   * that ran before ends at `at`, and this one's end is cleared, since it runs again.
   */
  setRunning(version: number, at: number = Date.now()): void {
    this.assertWritable();
    this.db.transaction(() => {
      const row = this.row(version);
      if (row === undefined) throw new StreetboxError('E_STORE', `no configuration version ${version}`);
      if (row.stage === 'rejected') throw new StreetboxError('E_STORE', `a rejected version (${version}) cannot run`);
      this.moveRunning(version, at);
    })();
  }

  /** Runs `fn` in one transaction (a rollback: the stage and the running pointer together). */
  atomically<T>(fn: () => T): T {
    this.assertWritable();
    return this.db.transaction(fn)();
  }

  /** A value kept beside the versions (the manager's commit-confirm deadline), JSON; null removes it. */
  setState(key: string, value: unknown): void {
    this.assertWritable();
    if (key === 'running') throw new StreetboxError('E_STORE', 'the running version moves with setRunning or transition');
    if (value === null) this.stmt('DELETE FROM config_state WHERE key = ?').run(key);
    else this.stmt('INSERT INTO config_state (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value').run(key, JSON.stringify(value));
  }

  state(key: string): unknown {
    if (!this.hasTables()) return undefined;
    const v = this.stmt('SELECT value FROM config_state WHERE key = ?').pluck().get(key) as string | undefined;
    if (v === undefined) return undefined;
    try {
      return JSON.parse(v) as unknown;
    } catch {
      return undefined;
    }
  }

  /** The refusal code recorded with a version's last stage (rejected, rolled back), if any. */
  code(version: number): ConfigRefusalCode | undefined {
    return (this.row(version)?.code ?? undefined) as ConfigRefusalCode | undefined;
  }

  // ───────────────────────────── reading ─────────────────────────────

  get(version: number): ConfigVersion | undefined {
    const row = this.row(version);
    return row === undefined ? undefined : this.toVersion(row, this.runningVersion());
  }

  byId(id: string): ConfigVersion | undefined {
    if (!this.hasTables()) return undefined;
    const row = this.stmt(`SELECT ${COLUMNS} FROM config_versions WHERE id = ?`).get(id) as VersionRow | undefined;
    return row === undefined ? undefined : this.toVersion(row, this.runningVersion());
  }

  /** The text of a version; undefined when there is no such version or its text was not kept. */
  content(version: number): string | undefined {
    if (!this.hasTables()) return undefined;
    const text = this.stmt('SELECT content FROM config_versions WHERE version = ?').pluck().get(version) as string | null | undefined;
    return text ?? undefined;
  }

  /** Newest first: `limit` (default 50, at most 1000) versions numbered below `before`. */
  list(q: { limit?: number | undefined; before?: number | undefined } = {}): ConfigVersion[] {
    if (!this.hasTables()) return [];
    const limit = listLimit(q.limit);
    const before = q.before !== undefined && Number.isFinite(q.before) ? q.before : Number.MAX_SAFE_INTEGER;
    const rows = this.stmt(`SELECT ${COLUMNS} FROM config_versions WHERE version < ? ORDER BY version DESC LIMIT ?`).all(before, limit) as VersionRow[];
    const running = this.runningVersion();
    return rows.map((r) => this.toVersion(r, running));
  }

  /** The version the gateway runs; undefined before the first one. */
  running(): ConfigVersion | undefined {
    const v = this.runningVersion();
    return v === null ? undefined : this.get(v);
  }

  /** Versions left staged or applied (the gateway stopped in the middle of a change), oldest first. */
  unfinished(): ConfigVersion[] {
    if (!this.hasTables()) return [];
    const rows = this.stmt(`SELECT ${COLUMNS} FROM config_versions WHERE stage IN ('staged', 'applied') ORDER BY version`).all() as VersionRow[];
    const running = this.runningVersion();
    return rows.map((r) => this.toVersion(r, running));
  }

  /** The latest version with this text that was applied or confirmed. */
  findBySha(sha: string): ConfigVersion | undefined {
    if (!this.hasTables()) return undefined;
    const row = this.stmt(`SELECT ${COLUMNS} FROM config_versions WHERE sha256 = ? AND stage IN ('confirmed', 'applied') ORDER BY version DESC LIMIT 1`).get(sha) as
      | VersionRow
      | undefined;
    return row === undefined ? undefined : this.toVersion(row, this.runningVersion());
  }

  // ───────────────────────────── the outbox ─────────────────────────────

  /** Keeps a report for `up/config/<id>` until delivered; its seq. */
  queueReport(report: ConfigStageReport): number {
    this.assertWritable();
    const info = this.stmt('INSERT INTO config_outbox (topic_id, report) VALUES (?, ?)').run(report.id, JSON.stringify(report));
    return Number(info.lastInsertRowid);
  }

  /** The reports not delivered yet, oldest first. A row that is not JSON any more is dropped (said in the log). */
  pendingReports(limit: number): PendingReport[] {
    if (!this.hasTables()) return [];
    const n = Math.max(0, Math.min(MAX_LIST, Math.floor(Number.isFinite(limit) ? limit : 0)));
    const rows = this.stmt('SELECT seq, topic_id, report FROM config_outbox WHERE delivered = 0 ORDER BY seq LIMIT ?').all(n) as { seq: number; topic_id: string; report: string }[];
    const out: PendingReport[] = [];
    for (const r of rows) {
      const report = parseJson(r.report);
      if (report !== undefined && typeof report === 'object' && report !== null) {
        out.push({ seq: r.seq, topicId: r.topic_id, report: report as ConfigStageReport });
      } else if (this.writable) {
        this.log?.error({ seq: r.seq, id: r.topic_id }, 'config: a queued stage report is not JSON; dropped');
        this.stmt('DELETE FROM config_outbox WHERE seq = ?').run(r.seq);
      }
    }
    return out;
  }

  /** The report `seq` reached central's broker; delivered ones beyond the latest MAX_DELIVERED are deleted. */
  markDelivered(seq: number): void {
    this.assertWritable();
    this.db.transaction(() => {
      this.stmt('UPDATE config_outbox SET delivered = 1 WHERE seq = ?').run(seq);
      this.stmt(
        `DELETE FROM config_outbox WHERE delivered = 1 AND seq < (
           SELECT seq FROM config_outbox WHERE delivered = 1 ORDER BY seq DESC LIMIT 1 OFFSET ${MAX_DELIVERED - 1})`,
      ).run();
    })();
  }

  // ───────────────────────────── inside ─────────────────────────────

  private row(version: number): VersionRow | undefined {
    if (!this.hasTables()) return undefined;
    return this.stmt(`SELECT ${COLUMNS} FROM config_versions WHERE version = ?`).get(version) as VersionRow | undefined;
  }

  private runningVersion(): number | null {
    if (!this.hasTables()) return null;
    const v = this.stmt("SELECT value FROM config_state WHERE key = 'running'").pluck().get() as number | null | undefined;
    return typeof v === 'number' ? v : null;
  }

  /** Inside a transaction: the pointer on `version`; the one it leaves ends at `at`, this one no longer has ended. */
  private moveRunning(version: number, at: number): void {
    const previous = this.runningVersion();
    if (previous !== null && previous !== version) {
      this.stmt('UPDATE config_versions SET ended_at = coalesce(ended_at, ?) WHERE version = ?').run(at, previous);
    }
    if (previous !== version) this.stmt('UPDATE config_versions SET ended_at = NULL WHERE version = ? AND stage IN (\'applied\', \'confirmed\')').run(version);
    this.stmt("INSERT INTO config_state (key, value) VALUES ('running', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value").run(version);
  }

  /** Only the latest MAX_REJECTED_CONTENT rejected versions keep their text, and the latest MAX_REJECTED_ROWS their row. */
  private pruneRejectedContent(): void {
    this.stmt(
      `DELETE FROM config_versions
       WHERE stage = 'rejected' AND version < (
         SELECT version FROM config_versions WHERE stage = 'rejected' ORDER BY version DESC LIMIT 1 OFFSET ${MAX_REJECTED_ROWS - 1})`,
    ).run();
    this.stmt(
      `UPDATE config_versions SET content = NULL
       WHERE stage = 'rejected' AND content IS NOT NULL AND version < (
         SELECT version FROM config_versions WHERE stage = 'rejected' ORDER BY version DESC LIMIT 1 OFFSET ${MAX_REJECTED_CONTENT - 1})`,
    ).run();
  }

  private toVersion(r: VersionRow, running: number | null): ConfigVersion {
    return {
      version: r.version,
      id: r.id,
      sha256: r.sha256,
      bytes: r.bytes,
      source: r.source as ConfigSource,
      principal: r.principal,
      at: r.at,
      baseVersion: r.base_version,
      stage: r.stage as ConfigStage,
      reason: r.reason,
      errors: jsonArray(r.errors) as ConfigProblem[],
      components: jsonArray(r.components).filter((c): c is string => typeof c === 'string'),
      appliedAt: r.applied_at,
      confirmedAt: r.confirmed_at,
      endedAt: r.ended_at,
      rollbackOf: r.rollback_of,
      running: r.version === running,
    };
  }

  /** The read-only view checks until the gateway has made the tables; the store's own view has them from open(). */
  private hasTables(): boolean {
    if (this.tablesSeen) return true;
    const n = this.db.prepare("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN ('config_versions', 'config_state', 'config_outbox')").pluck().get() as number;
    this.tablesSeen = n === 3;
    return this.tablesSeen;
  }

  private assertWritable(): void {
    if (!this.writable) throw new StreetboxError('E_STORE', 'the configuration versions are open read-only');
  }
}

function listLimit(limit: number | undefined): number {
  if (limit === undefined || !Number.isFinite(limit)) return DEFAULT_LIST;
  return Math.max(0, Math.min(MAX_LIST, Math.floor(limit)));
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

function jsonArray(text: string): unknown[] {
  const v = parseJson(text);
  return Array.isArray(v) ? v : [];
}
