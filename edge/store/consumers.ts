/** The `consumer` table: each reader of the buffer (upstream sync, each pulling central system) and how far it acknowledged. */
import type BetterSqlite3 from 'better-sqlite3';
import { StoreError } from './errors.js';
import type { Consumer } from './types.js';

interface ConsumerRow {
  name: string;
  acked_seq: number;
  updated_at: number;
}

type Stmt = BetterSqlite3.Statement<unknown[], unknown>;

export class ConsumerTable {
  private readonly ins: Stmt;
  private readonly sel: Stmt;
  private readonly all: Stmt;
  private readonly ack: Stmt;
  private readonly del: Stmt;

  constructor(db: BetterSqlite3.Database) {
    this.ins = db.prepare('INSERT INTO consumer (name, acked_seq, updated_at) VALUES (?, ?, ?)');
    this.sel = db.prepare('SELECT * FROM consumer WHERE name = ?');
    this.all = db.prepare('SELECT * FROM consumer ORDER BY name');
    this.ack = db.prepare('UPDATE consumer SET acked_seq = ?, updated_at = ? WHERE name = ? AND acked_seq < ?');
    this.del = db.prepare('DELETE FROM consumer WHERE name = ?');
  }

  /** Creates the consumer at `startAt` (clamped to 0..lastSeq) unless it exists. */
  register(name: string, startAt: number, lastSeq: number, now: number): Consumer {
    const existing = this.get(name);
    if (existing) return existing;
    const acked = Math.max(0, Math.min(startAt, lastSeq));
    this.ins.run(name, acked, now);
    return { name, ackedSeq: acked, updatedAt: now };
  }

  /** Moves the cursor forward, never backward, never past the last seq handed out. */
  acknowledge(name: string, seq: number, lastSeq: number, now: number): Consumer {
    if (!Number.isSafeInteger(seq) || seq < 0) throw new StoreError('E_USAGE', `ack of consumer ${name}: seq must be an integer >= 0, got ${seq}`);
    if (seq > lastSeq) throw new StoreError('E_USAGE', `ack of consumer ${name}: seq ${seq} is past the last seq ${lastSeq}`);
    const current = this.get(name);
    if (!current) throw new StoreError('E_NOT_FOUND', `no consumer ${name}`);
    if (seq <= current.ackedSeq) return current;
    this.ack.run(seq, now, name, seq);
    return { name, ackedSeq: seq, updatedAt: now };
  }

  get(name: string): Consumer | undefined {
    const row = this.sel.get(name) as ConsumerRow | undefined;
    return row && toConsumer(row);
  }

  list(): Consumer[] {
    return (this.all.all() as ConsumerRow[]).map(toConsumer);
  }

  remove(name: string): boolean {
    return this.del.run(name).changes > 0;
  }
}

function toConsumer(r: ConsumerRow): Consumer {
  return { name: r.name, ackedSeq: r.acked_seq, updatedAt: r.updated_at };
}
