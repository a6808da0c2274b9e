/**
 * Persistence of the arbiter's claims (overrides, dims with a duration) in the gateway's SQLite
 * file, so a restart or a power cut keeps every override with its expiry: the table
 * `control_claim` (module "control" of the store's migrations), one JSON row per claim.
 * A store without its own tables (another Store implementation) keeps them in memory only.
 */
import type BetterSqlite3 from 'better-sqlite3';
import type { Logger } from '../log.js';
import type { Store } from '../store/api.js';
import type { Migration } from '../store/migrations.js';
import { moduleDatabase } from '../store/modules.js';
import type { ClaimRow } from './arbiter.js';

export const CONTROL_MODULE = 'control';

export const CONTROL_MIGRATIONS: readonly Migration[] = [
  // 1: the arbiter's claims, as the JSON rows of Arbiter.toRows()
  `CREATE TABLE control_claim (
     id  TEXT PRIMARY KEY,
     seq INTEGER NOT NULL,
     row TEXT NOT NULL
   );`,
];

export class ClaimStore {
  private db: BetterSqlite3.Database | null = null;
  private memory: ClaimRow[] = [];
  private replaceAll: ((rows: readonly ClaimRow[]) => void) | null = null;

  constructor(
    private readonly store: Store,
    private readonly log: Logger,
  ) {}

  /** Creates the table when needed; idempotent. */
  open(): void {
    if (this.db) return;
    const db = moduleDatabase(this.store, CONTROL_MODULE, CONTROL_MIGRATIONS);
    if (db === null) {
      this.log.warn('control: the store keeps no module tables; claims are kept in memory only');
      return;
    }
    const del = db.prepare('DELETE FROM control_claim');
    const ins = db.prepare('INSERT INTO control_claim (id, seq, row) VALUES (?, ?, ?)');
    this.replaceAll = db.transaction((rows: readonly ClaimRow[]) => {
      del.run();
      for (const r of rows) ins.run(r.id, r.seq, JSON.stringify(r));
    });
    this.db = db;
  }

  /** The persisted rows, as plain JSON (the arbiter validates them on restore). */
  load(): unknown[] {
    if (!this.db) return [...this.memory];
    const rows = this.db.prepare('SELECT row FROM control_claim ORDER BY seq').pluck().all() as string[];
    const out: unknown[] = [];
    for (const text of rows) {
      try {
        out.push(JSON.parse(text) as unknown);
      } catch (err) {
        this.log.error({ err }, 'control: a stored claim is not JSON; dropped');
      }
    }
    return out;
  }

  /** Replaces the persisted claims with `rows` in one transaction. */
  save(rows: readonly ClaimRow[]): void {
    if (!this.replaceAll) {
      this.memory = rows.map((r) => ({ ...r }));
      return;
    }
    this.replaceAll(rows);
  }
}
