/**
 * Tables a module keeps in the gateway's store (the LoRaWAN sessions, the control claims, the
 * sync's bytes per day): the store's own database, with the module's migrations applied and
 * versioned like the store's (migrations.ts). A store without module tables (a test double of
 * the Store interface) answers null, and the module keeps its state in memory.
 */
import type BetterSqlite3 from 'better-sqlite3';
import type { Migration } from './migrations.js';

/** What SqliteStore exposes to module-owned tables (store.ts `sqlite`, `migrate`). */
export interface ModuleDatabase {
  readonly sqlite: BetterSqlite3.Database;
  migrate(module: string, migrations: readonly Migration[]): number;
}

function hasModuleTables(store: unknown): store is ModuleDatabase {
  const s = store as Partial<ModuleDatabase> | null;
  return typeof s === 'object' && s !== null && typeof s.migrate === 'function' && typeof s.sqlite === 'object' && s.sqlite !== null;
}

/** The store's database with `module`'s tables migrated; null for a store without module tables. */
export function moduleDatabase(store: unknown, module: string, migrations: readonly Migration[]): BetterSqlite3.Database | null {
  if (!hasModuleTables(store)) return null;
  store.migrate(module, migrations);
  return store.sqlite;
}

/** `db.prepare(sql)`, each SQL text prepared once and the statement kept (a module's hot paths run the same few). */
export function statementCache(db: BetterSqlite3.Database): (sql: string) => BetterSqlite3.Statement {
  const statements = new Map<string, BetterSqlite3.Statement>();
  return (sql) => {
    let s = statements.get(sql);
    if (s === undefined) {
      s = db.prepare(sql);
      statements.set(sql, s);
    }
    return s;
  };
}
