/**
 * The command rows (DESIGN.md "Data model"): one row per command, its status and result. Genuine
 * commands are in `command`; commands refused at the door are in `refusal_command`, the refusal
 * share of the quota (quota.ts). `CommandRows` reads both as one.
 */
import type BetterSqlite3 from 'better-sqlite3';
import type { CommandRecord, CommandSource, CommandStatus } from './types.js';

interface CommandRow {
  id: string;
  ts: number;
  source: string;
  target_kind: string;
  target_id: string;
  action: string;
  params: string;
  priority: number;
  expires_at: number | null;
  status: string;
  result: string | null;
  updated_at: number;
}

type Stmt = BetterSqlite3.Statement<unknown[], unknown>;

export class CommandTable {
  private readonly ins: Stmt;
  private readonly sel: Stmt;
  private readonly upd: Stmt;
  private readonly updKeep: Stmt;
  private readonly listAll: Stmt;
  private readonly listStatus: Stmt;
  private readonly cnt: Stmt;

  constructor(db: BetterSqlite3.Database, table: 'command' | 'refusal_command' = 'command') {
    this.ins = db.prepare(
      `INSERT INTO ${table} (id, ts, source, target_kind, target_id, action, params, priority, expires_at, status, result, updated_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    this.sel = db.prepare(`SELECT * FROM ${table} WHERE id = ?`);
    this.upd = db.prepare(`UPDATE ${table} SET status = ?, result = ?, updated_at = ? WHERE id = ?`);
    this.updKeep = db.prepare(`UPDATE ${table} SET status = ?, updated_at = ? WHERE id = ?`);
    this.listAll = db.prepare(`SELECT * FROM ${table} WHERE ts > ? ORDER BY ts, rowid LIMIT ?`);
    this.listStatus = db.prepare(`SELECT * FROM ${table} WHERE ts > ? AND status = ? ORDER BY ts, rowid LIMIT ?`);
    this.cnt = db.prepare(`SELECT count(*) FROM ${table}`).pluck();
  }

  insert(c: CommandRecord): void {
    this.ins.run(
      c.id,
      c.ts,
      JSON.stringify(c.source),
      c.target.kind,
      c.target.id,
      c.action,
      JSON.stringify(c.params),
      c.priority,
      c.expiresAt,
      c.status,
      c.result === null || c.result === undefined ? null : JSON.stringify(c.result),
      c.updatedAt,
    );
  }

  /** Null when there is no such command. `result` undefined keeps the stored one. */
  update(id: string, status: CommandStatus, result: unknown, now: number): CommandRecord | null {
    const changes =
      result === undefined ? this.updKeep.run(status, now, id).changes : this.upd.run(status, result === null ? null : JSON.stringify(result), now, id).changes;
    return changes > 0 ? (this.get(id) ?? null) : null;
  }

  get(id: string): CommandRecord | undefined {
    const row = this.sel.get(id) as CommandRow | undefined;
    return row && toRecord(row);
  }

  list(after: number, limit: number, status: CommandStatus | undefined): CommandRecord[] {
    const rows = (status === undefined ? this.listAll.all(after, limit) : this.listStatus.all(after, status, limit)) as CommandRow[];
    return rows.map(toRecord);
  }

  count(): number {
    return this.cnt.get() as number;
  }
}

/**
 * Genuine and refused commands read as one table: a refused command is found by its id and
 * listed among the others (GET /api/v1/commands/:id answers for it as before), only its pages are
 * counted in the refusal share. `refusals` is null for a database of schema 1 (a read-only view).
 */
export class CommandRows {
  readonly main: CommandTable;
  readonly refusals: CommandTable | null;

  constructor(db: BetterSqlite3.Database, withRefusals: boolean) {
    this.main = new CommandTable(db, 'command');
    this.refusals = withRefusals ? new CommandTable(db, 'refusal_command') : null;
  }

  insert(c: CommandRecord, refusal: boolean): void {
    if (refusal && this.refusals) this.refusals.insert(c);
    else this.main.insert(c);
  }

  update(id: string, status: CommandStatus, result: unknown, now: number): CommandRecord | null {
    return this.main.update(id, status, result, now) ?? this.refusals?.update(id, status, result, now) ?? null;
  }

  get(id: string): CommandRecord | undefined {
    return this.main.get(id) ?? this.refusals?.get(id);
  }

  /** Both tables by ts, oldest first; at the same ts a genuine command before a refusal. */
  list(after: number, limit: number, status: CommandStatus | undefined): CommandRecord[] {
    const main = this.main.list(after, limit, status);
    // refusal rows are all `rejected`
    if (!this.refusals || (status !== undefined && status !== 'rejected')) return main;
    const refused = this.refusals.list(after, limit, status);
    if (refused.length === 0) return main;
    const out: CommandRecord[] = [];
    let i = 0;
    let j = 0;
    while (out.length < limit && (i < main.length || j < refused.length)) {
      const a = main[i];
      const b = refused[j];
      if (a !== undefined && (b === undefined || a.ts <= b.ts)) {
        out.push(a);
        i++;
      } else if (b !== undefined) {
        out.push(b);
        j++;
      }
    }
    return out;
  }

  count(): number {
    return this.main.count() + (this.refusals?.count() ?? 0);
  }
}

function toRecord(r: CommandRow): CommandRecord {
  return {
    id: r.id,
    ts: r.ts,
    source: JSON.parse(r.source) as CommandSource,
    target: { kind: r.target_kind === 'group' ? 'group' : 'device', id: r.target_id },
    action: r.action,
    params: JSON.parse(r.params) as Record<string, unknown>,
    priority: r.priority,
    expiresAt: r.expires_at,
    status: r.status as CommandStatus,
    result: r.result === null ? null : (JSON.parse(r.result) as unknown),
    updatedAt: r.updated_at,
  };
}
