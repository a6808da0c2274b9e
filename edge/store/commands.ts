/** The `command` table: one row per command, its status and result (DESIGN.md "Data model"). */
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

  constructor(db: BetterSqlite3.Database) {
    this.ins = db.prepare(
      `INSERT INTO command (id, ts, source, target_kind, target_id, action, params, priority, expires_at, status, result, updated_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    this.sel = db.prepare('SELECT * FROM command WHERE id = ?');
    this.upd = db.prepare('UPDATE command SET status = ?, result = ?, updated_at = ? WHERE id = ?');
    this.updKeep = db.prepare('UPDATE command SET status = ?, updated_at = ? WHERE id = ?');
    this.listAll = db.prepare('SELECT * FROM command WHERE ts > ? ORDER BY ts, rowid LIMIT ?');
    this.listStatus = db.prepare('SELECT * FROM command WHERE ts > ? AND status = ? ORDER BY ts, rowid LIMIT ?');
    this.cnt = db.prepare('SELECT count(*) FROM command').pluck();
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
