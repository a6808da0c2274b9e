/**
 * The rule that keeps a rollback's store readable (edge/store/migrations.ts): additive
 * migrations, `schema_compat.readable_by`, and a release that opens a newer but readable
 * database as it is (with a warning) and still refuses one it cannot read. SQLite files in a
 * temp dir; "releases" are lists of migrations of different lengths.
 */
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../edge/log.js';
import { additive, applyMigrations, readableBy, readableByOf, schemaVersion, type Migration } from '../../edge/store/migrations.js';
import { openStore } from '../../edge/store/store.js';
import { openStoreReadOnly } from '../../edge/store/readOnly.js';
import { tempDir, type TempDir } from '../helpers/tmp.js';
import { loggerToLines } from '../helpers/logLines.js';

const WARN = 40; // pino's level number

function logLines(): { log: ReturnType<typeof loggerToLines>; lines: () => Record<string, unknown>[] } {
  const raw: string[] = [];
  return { log: loggerToLines(raw, 'info'), lines: () => raw.map((l) => JSON.parse(l) as Record<string, unknown>) };
}

const V1 = 'CREATE TABLE thing (id INTEGER PRIMARY KEY, name TEXT NOT NULL)';
const V2 = additive('ALTER TABLE thing ADD COLUMN colour TEXT');
const V3 = additive((db) => db.exec('CREATE TABLE extra (id INTEGER PRIMARY KEY)'));
const V4 = 'ALTER TABLE thing RENAME COLUMN name TO label';

let dir: TempDir | undefined;
afterEach(() => dir?.remove());

function database(): Database.Database {
  dir = tempDir('streetbox-compat-');
  return new Database(dir.file('x.db'));
}

describe('schema compatibility', () => {
  it('readable_by: the version less the additive migrations at its end', () => {
    const all: Migration[] = [V1, V2, V3, V4];
    expect([0, 1, 2, 3, 4].map((v) => readableByOf(all, v))).toEqual([0, 1, 1, 1, 4]);
    expect(readableByOf([V2, V3], 2)).toBe(0);
  });

  it('a release that knows fewer migrations opens a database made newer by additive ones, as it is, with a warning', () => {
    const db = database();
    expect(applyMigrations(db, 'm', [V1, V2, V3])).toBe(3);
    expect(readableBy(db, 'm')).toBe(1);
    db.prepare("INSERT INTO thing (name, colour) VALUES ('a', 'red')").run();

    const { log, lines } = logLines();
    expect(applyMigrations(db, 'm', [V1], Date.now(), log)).toBe(0);
    expect(schemaVersion(db, 'm')).toBe(3); // not downgraded, not migrated
    expect(lines()).toEqual([expect.objectContaining({ level: WARN, schema: 'm', version: 3, known: 1, readableBy: 1 })]);
    // and the old release's statements work on it
    db.prepare("INSERT INTO thing (name) VALUES ('b')").run();
    expect(db.prepare('SELECT name FROM thing ORDER BY id').pluck().all()).toEqual(['a', 'b']);
    // the newer release carries on from where it was
    expect(applyMigrations(db, 'm', [V1, V2, V3, V4])).toBe(1);
    expect(readableBy(db, 'm')).toBe(4);
    db.close();
  });

  it('refuses a database a release cannot read: past a migration that is not additive, or with no readable_by recorded', () => {
    const db = database();
    applyMigrations(db, 'm', [V1, V2, V3, V4]);
    expect(() => applyMigrations(db, 'm', [V1, V2, V3])).toThrow(/version 4, this streetbox knows 3 and a release must know 4 to read it: refusing to downgrade/);
    db.prepare("DELETE FROM schema_compat WHERE module = 'm'").run();
    expect(() => applyMigrations(db, 'm', [V1, V2, V3])).toThrow(/version 4, this streetbox knows 3: refusing to downgrade/);
    db.close();
  });

  it('records readable_by for a database migrated before the rule, and still writes schema_version as old releases read it', () => {
    const db = database();
    // as a release before the rule left it: schema_version only
    db.exec('CREATE TABLE schema_version (module TEXT PRIMARY KEY, version INTEGER NOT NULL, updated_at INTEGER NOT NULL)');
    db.exec(V1);
    db.prepare("INSERT INTO schema_version (module, version, updated_at) VALUES ('m', 1, 0)").run();
    expect(readableBy(db, 'm')).toBeNull();
    expect(applyMigrations(db, 'm', [V1])).toBe(0);
    expect(readableBy(db, 'm')).toBe(1);
    expect(applyMigrations(db, 'm', [V1, V2])).toBe(1);
    expect(db.prepare("SELECT version FROM schema_version WHERE module = 'm'").pluck().get()).toBe(2);
    expect(readableBy(db, 'm')).toBe(1);
    db.close();
  });

  it('an additive migration is still a plain migration for code that runs a list itself', () => {
    const db = database();
    for (const m of [V1, V2, V3]) {
      if (typeof m === 'string') db.exec(m);
      else m(db);
    }
    expect(db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").pluck().all()).toEqual(['extra', 'thing']);
    db.close();
  });

  it('the store, written and read-only, opens a file whose store schema is newer but readable', () => {
    dir = tempDir('streetbox-compat-');
    const path = dir.file('gw.db');
    const log = createLogger({ level: 'silent' });
    const store = openStore({ path, maxBytes: 16 * 1024 * 1024, durability: 'normal', log });
    store.appendReadings([{ ts: 1_700_000_000_000, device: 'd', point: 'p', value: 1 }]);
    store.close();
    // a later release added an additive store migration
    const db = new Database(path);
    db.prepare("UPDATE schema_version SET version = version + 1 WHERE module = 'store'").run();
    const known = db.prepare("SELECT version FROM schema_version WHERE module = 'store'").pluck().get() as number;
    db.prepare("UPDATE schema_compat SET readable_by = ? WHERE module = 'store'").run(known - 1);
    db.close();
    const { log: warned, lines } = logLines();
    const again = openStore({ path, maxBytes: 16 * 1024 * 1024, durability: 'normal', log: warned });
    expect(again.readings({ after: 0, limit: 10 }).items.map((r) => r.value)).toEqual([1]);
    again.close();
    expect(lines().some((l) => l.level === WARN && l.schema === 'store')).toBe(true);
    const view = openStoreReadOnly(path);
    expect(view.readings({ after: 0, limit: 10 }).items).toHaveLength(1);
    view.close();
    // not readable: refused by both
    const d2 = new Database(path);
    d2.prepare("UPDATE schema_compat SET readable_by = ? WHERE module = 'store'").run(known + 1);
    d2.close();
    expect(() => openStore({ path, maxBytes: 16 * 1024 * 1024, durability: 'normal', log })).toThrow(/refusing to downgrade/);
    expect(() => openStoreReadOnly(path)).toThrow(/store schema version/);
  });
});
