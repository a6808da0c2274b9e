/**
 * The quota: past `maxBytes` data is evicted in DESIGN.md's order: acknowledged readings,
 * then the oldest unacknowledged readings (counted exactly), and events and commands last of
 * all, only when no reading is left. Used bytes are the database's data pages,
 * (page_count - freelist_count) * page_size; eviction starts at HIGH_WATER of the quota and
 * goes down to LOW_WATER, deleting by seq range with a row count estimated from bytes per row.
 */
import type BetterSqlite3 from 'better-sqlite3';
import type { Consumer } from './types.js';

export const HIGH_WATER = 0.95;
export const LOW_WATER = 0.9;
/** below this many readings a DELETE may free no whole page; evict at least this many per step */
const MIN_STEP_ROWS = 256;
/** events and commands are bigger and precious: smaller steps */
const MIN_STEP_RECORDS = 16;
const MAX_STEPS = 32;

export interface Eviction {
  usedBefore: number;
  usedAfter: number;
  /** readings deleted, acknowledged or not */
  readings: number;
  /** readings deleted that not every consumer had acknowledged */
  unacknowledged: number;
  /** seq range of the unacknowledged readings deleted (0 when none) */
  fromSeq: number;
  toSeq: number;
  /** per consumer: how many of its unacknowledged readings were deleted */
  consumers: Record<string, number>;
  events: number;
  commands: number;
}

type Stmt = BetterSqlite3.Statement<unknown[], unknown>;

export class Quota {
  readonly maxBytes: number;
  private readonly pageCount: Stmt;
  private readonly freelistCount: Stmt;
  private readonly pageSize: number;
  private readonly firstReading: Stmt;
  private readonly lastReading: Stmt;
  private readonly nthReading: Stmt;
  private readonly countRange: Stmt;
  private readonly deleteReadings: Stmt;
  private readonly nthEvent: Stmt;
  private readonly deleteEvents: Stmt;
  private readonly oldestCommands: Stmt;
  private readonly deleteCommand: Stmt;

  constructor(db: BetterSqlite3.Database, maxBytes: number) {
    this.maxBytes = maxBytes;
    this.pageCount = db.prepare('PRAGMA page_count').pluck();
    this.freelistCount = db.prepare('PRAGMA freelist_count').pluck();
    this.pageSize = Number(db.pragma('page_size', { simple: true })) || 4096;
    this.firstReading = db.prepare('SELECT seq FROM reading ORDER BY seq LIMIT 1').pluck();
    this.lastReading = db.prepare('SELECT seq FROM reading ORDER BY seq DESC LIMIT 1').pluck();
    this.nthReading = db.prepare('SELECT seq FROM reading WHERE seq <= ? ORDER BY seq LIMIT 1 OFFSET ?').pluck();
    this.countRange = db.prepare('SELECT count(*) FROM reading WHERE seq > ? AND seq <= ?').pluck();
    this.deleteReadings = db.prepare('DELETE FROM reading WHERE seq <= ?');
    this.nthEvent = db.prepare('SELECT seq FROM event ORDER BY seq LIMIT 1 OFFSET ?').pluck();
    this.deleteEvents = db.prepare('DELETE FROM event WHERE seq <= ?');
    // finished commands before pending ones, oldest first
    this.oldestCommands = db
      .prepare(
        `SELECT id FROM command ORDER BY CASE WHEN status IN ('queued', 'sent') THEN 1 ELSE 0 END, ts, rowid LIMIT ?`,
      )
      .pluck();
    this.deleteCommand = db.prepare('DELETE FROM command WHERE id = ?');
  }

  usedBytes(): number {
    return ((this.pageCount.get() as number) - (this.freelistCount.get() as number)) * this.pageSize;
  }

  overQuota(): boolean {
    return this.usedBytes() >= this.maxBytes * HIGH_WATER;
  }

  /**
   * Deletes until used bytes are at LOW_WATER. Call inside a transaction; `rowsHint` is the
   * number of rows in the database (for the first bytes-per-row estimate). Null when under quota.
   */
  evict(consumers: readonly Consumer[], rowsHint: number): Eviction | null {
    const usedBefore = this.usedBytes();
    if (usedBefore < this.maxBytes * HIGH_WATER) return null;
    const target = this.maxBytes * LOW_WATER;
    const ev: Eviction = {
      usedBefore,
      usedAfter: usedBefore,
      readings: 0,
      unacknowledged: 0,
      fromSeq: 0,
      toSeq: 0,
      consumers: {},
      events: 0,
      commands: 0,
    };
    // No consumer registered: nothing counts as acknowledged (seqs start at 1).
    const minAcked = consumers.length === 0 ? 0 : Math.min(...consumers.map((c) => c.ackedSeq));
    for (const c of consumers) ev.consumers[c.name] = 0;
    let used = usedBefore;
    let bytesPerRow = usedBefore / Math.max(1, rowsHint);

    for (let step = 0; step < MAX_STEPS && used > target; step++) {
      const first = this.firstReading.get() as number | undefined;
      if (first === undefined) break;
      const rows = Math.max(MIN_STEP_ROWS, Math.ceil((used - target) / bytesPerRow));
      const acked = first <= minAcked;
      const bound = acked ? minAcked : Number.MAX_SAFE_INTEGER;
      const nth = this.nthReading.get(bound, rows - 1) as number | undefined;
      const cut = nth ?? (acked ? minAcked : (this.lastReading.get() as number));
      if (!acked) {
        for (const c of consumers) {
          ev.consumers[c.name] = (ev.consumers[c.name] ?? 0) + (this.countRange.get(Math.max(first - 1, c.ackedSeq), cut) as number);
        }
      }
      const deleted = this.deleteReadings.run(cut).changes;
      ev.readings += deleted;
      if (!acked && deleted > 0) {
        if (ev.fromSeq === 0) ev.fromSeq = first;
        ev.toSeq = cut;
        ev.unacknowledged += deleted;
      }
      const now = this.usedBytes();
      if (deleted > 0 && used - now > 0) bytesPerRow = (used - now) / deleted;
      used = now;
    }

    // Events and commands only once no reading is left.
    if (used > target && this.firstReading.get() === undefined) {
      for (let step = 0; step < MAX_STEPS && used > target; step++) {
        const rows = Math.max(MIN_STEP_RECORDS, Math.ceil((used - target) / bytesPerRow));
        const cut = (this.nthEvent.get(rows - 1) as number | undefined) ?? Number.MAX_SAFE_INTEGER;
        const deleted = this.deleteEvents.run(cut).changes;
        ev.events += deleted;
        const now = this.usedBytes();
        if (deleted > 0 && used - now > 0) bytesPerRow = (used - now) / deleted;
        used = now;
        if (deleted === 0) break;
      }
      for (let step = 0; step < MAX_STEPS && used > target; step++) {
        const ids = this.oldestCommands.all(Math.max(MIN_STEP_RECORDS, Math.ceil((used - target) / bytesPerRow))) as string[];
        if (ids.length === 0) break;
        for (const id of ids) ev.commands += this.deleteCommand.run(id).changes;
        used = this.usedBytes();
      }
    }
    ev.usedAfter = used;
    return ev;
  }
}
