/**
 * The quota: `maxBytes` in two shares, each with its own high- and low-water marks.
 *
 * The refusal share (REFUSAL_SHARE of maxBytes, at least 64 KiB, at most a quarter): commands
 * refused at the door and the events about them (`refusal_command`, `refusal_event`; the command
 * pipeline bounds how many it records per principal, edge/control/refusals.ts). Refusal records
 * are the first thing evicted: the share is checked first, and past its HIGH_WATER its oldest
 * records go, down to LOW_WATER, and nothing else does. Its pages are counted apart and exactly
 * (the dbstat pages of its own b-trees), and the other share's budget excludes it, so no number of
 * refusals can evict a reading, an event or a genuine command: they only recycle their own share.
 *
 * The main share (the rest): readings and the audit trail (events and genuine command rows), in
 * DESIGN.md's order: acknowledged readings first, then the oldest unacknowledged readings (counted
 * exactly), the audit trail last. Routine readings cannot take the audit trail's share: a reading
 * is always evicted before any audit record, and an audit record goes only when, with no reading
 * left, the audit trail alone is still at the share's HIGH_WATER: then the oldest events, then
 * finished commands before pending ones, oldest first, down to LOW_WATER. So the audit trail is
 * only ever trimmed by its own growth, never to make room for readings or refusals.
 *
 * Used bytes are the database's data pages, (page_count - freelist_count) * page_size; the main
 * share's are those minus the refusal share's. Readings are deleted by seq range with a row count
 * estimated from bytes per row.
 */
import type BetterSqlite3 from 'better-sqlite3';
import { REFUSAL_BTREES } from './migrations.js';
import type { Consumer, NewEvent } from './types.js';

export const HIGH_WATER = 0.95;
export const LOW_WATER = 0.9;
/** the refusal share of maxBytes (see above), bounded by MIN_REFUSAL_BYTES and a quarter of maxBytes */
export const REFUSAL_SHARE = 0.05;
const MIN_REFUSAL_BYTES = 64 * 1024;
/** below this many readings a DELETE may free no whole page; evict at least this many per step */
const MIN_STEP_ROWS = 256;
/** events and commands are bigger and precious: smaller steps */
const MIN_STEP_RECORDS = 16;
const MAX_STEPS = 32;

/** The bytes of the refusal share for a quota of `maxBytes`. */
export function refusalShareBytes(maxBytes: number): number {
  return Math.floor(Math.min(maxBytes / 4, Math.max(MIN_REFUSAL_BYTES, maxBytes * REFUSAL_SHARE)));
}

/** The `storage.dropped` event of an eviction that deleted unacknowledged readings. */
export function droppedEvent(ev: Eviction): NewEvent {
  const { readings, unacknowledged, fromSeq, toSeq, consumers } = ev;
  return { kind: 'storage.dropped', severity: 'warning', detail: { readings, unacknowledged, fromSeq, toSeq, consumers, reason: 'quota' } };
}

/** What evicting the refusal share deleted. */
export interface RefusalEviction {
  usedBefore: number;
  usedAfter: number;
  events: number;
  commands: number;
}

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
  /** the refusal share; the main share is maxBytes - refusalMax */
  readonly refusalMax: number;
  readonly mainMax: number;
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
  private readonly refusalPages: Stmt;
  private readonly refusalCount: Stmt;
  private readonly nthRefusalEvent: Stmt;
  private readonly deleteRefusalEvents: Stmt;
  private readonly deleteOldestRefusalCommands: Stmt;
  /** the refusal share's bytes as last measured; null when its tables changed since */
  private refusalCache: number | null = null;

  constructor(db: BetterSqlite3.Database, maxBytes: number) {
    this.maxBytes = maxBytes;
    this.refusalMax = refusalShareBytes(maxBytes);
    this.mainMax = maxBytes - this.refusalMax;
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
    // dbstat with name = … walks only those b-trees (a few ms for a full share of 12 MiB)
    this.refusalPages = db
      .prepare(`SELECT coalesce(sum(pgsize), 0) FROM dbstat WHERE aggregate = 1 AND name IN (${REFUSAL_BTREES.map(() => '?').join(', ')})`)
      .pluck();
    this.refusalCount = db.prepare('SELECT (SELECT count(*) FROM refusal_event) + (SELECT count(*) FROM refusal_command)').pluck();
    this.nthRefusalEvent = db.prepare('SELECT seq FROM refusal_event ORDER BY seq LIMIT 1 OFFSET ?').pluck();
    this.deleteRefusalEvents = db.prepare('DELETE FROM refusal_event WHERE seq <= ?');
    this.deleteOldestRefusalCommands = db.prepare('DELETE FROM refusal_command WHERE rowid IN (SELECT rowid FROM refusal_command ORDER BY ts, rowid LIMIT ?)');
  }

  /** All data pages in use, both shares. */
  usedBytes(): number {
    return ((this.pageCount.get() as number) - (this.freelistCount.get() as number)) * this.pageSize;
  }

  /** The pages of the refusal share's b-trees, measured again only after they changed. */
  refusalBytes(): number {
    this.refusalCache ??= this.refusalPages.get(...REFUSAL_BTREES) as number;
    return this.refusalCache;
  }

  /** The store wrote to (or rolled back) the refusal tables: measure them again. */
  refusalsChanged(): void {
    this.refusalCache = null;
  }

  /** The main share: readings, events, genuine commands and everything else but refusals. */
  mainBytes(): number {
    return this.usedBytes() - this.refusalBytes();
  }

  overQuota(): boolean {
    return this.refusalBytes() >= this.refusalMax * HIGH_WATER || this.mainBytes() >= this.mainMax * HIGH_WATER;
  }

  /**
   * The refusal share, first: past its HIGH_WATER its oldest records (events by seq, commands
   * by ts) go until it is at LOW_WATER. Touches nothing else. Call inside a transaction; null when
   * the share is under its mark.
   */
  evictRefusals(): RefusalEviction | null {
    const usedBefore = this.refusalBytes();
    if (usedBefore < this.refusalMax * HIGH_WATER) return null;
    const target = this.refusalMax * LOW_WATER;
    const ev: RefusalEviction = { usedBefore, usedAfter: usedBefore, events: 0, commands: 0 };
    let used = usedBefore;
    const bytesPerRecord = used / Math.max(1, this.refusalCount.get() as number);
    for (let step = 0; step < MAX_STEPS && used > target; step++) {
      const rows = Math.max(MIN_STEP_RECORDS, Math.ceil((used - target) / bytesPerRecord / 2));
      const cut = (this.nthRefusalEvent.get(rows - 1) as number | undefined) ?? Number.MAX_SAFE_INTEGER;
      const events = this.deleteRefusalEvents.run(cut).changes;
      const commands = this.deleteOldestRefusalCommands.run(rows).changes;
      ev.events += events;
      ev.commands += commands;
      this.refusalCache = null;
      used = this.refusalBytes();
      if (events + commands === 0) break; // only the empty b-trees' root pages are left
    }
    ev.usedAfter = used;
    return ev;
  }

  /**
   * The main share: deletes until its bytes are at LOW_WATER. Call inside a transaction, after
   * evictRefusals; `rowsHint` is the number of readings and events (for the first bytes-per-row
   * estimate). Null when the share is under its HIGH_WATER. `usedBefore`/`usedAfter` are the main
   * share's bytes.
   */
  evict(consumers: readonly Consumer[], rowsHint: number): Eviction | null {
    const usedBefore = this.mainBytes();
    if (usedBefore < this.mainMax * HIGH_WATER) return null;
    const target = this.mainMax * LOW_WATER;
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
      const now = this.mainBytes();
      if (deleted > 0 && used - now > 0) bytesPerRow = (used - now) / deleted;
      used = now;
    }

    // The audit trail only when, with no reading left, it alone is still at the high-water mark:
    // a reading never evicts an audit record.
    if (used >= this.mainMax * HIGH_WATER && this.firstReading.get() === undefined) {
      for (let step = 0; step < MAX_STEPS && used > target; step++) {
        const rows = Math.max(MIN_STEP_RECORDS, Math.ceil((used - target) / bytesPerRow));
        const cut = (this.nthEvent.get(rows - 1) as number | undefined) ?? Number.MAX_SAFE_INTEGER;
        const deleted = this.deleteEvents.run(cut).changes;
        ev.events += deleted;
        const now = this.mainBytes();
        if (deleted > 0 && used - now > 0) bytesPerRow = (used - now) / deleted;
        used = now;
        if (deleted === 0) break;
      }
      for (let step = 0; step < MAX_STEPS && used > target; step++) {
        const ids = this.oldestCommands.all(Math.max(MIN_STEP_RECORDS, Math.ceil((used - target) / bytesPerRow))) as string[];
        if (ids.length === 0) break;
        for (const id of ids) ev.commands += this.deleteCommand.run(id).changes;
        used = this.mainBytes();
      }
    }
    ev.usedAfter = used;
    return ev;
  }
}
