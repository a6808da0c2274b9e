/**
 * The buffer's offline autonomy: how many days of readings the quota holds at the load measured
 * (issue 15). Days = the bytes readings may take / (bytes per stored reading × readings per day).
 *
 * - Bytes readings may take: the main share of the quota at its low-water mark (what is left
 *   right after an eviction, so the oldest reading is at least that old), less the pages of
 *   everything else in that share (events, commands, points, latest values, other modules' tables).
 *   The refusal share is never the readings'.
 * - Bytes per reading: the pages of the reading table (interior pages and slack included) per
 *   row, as dbstat counts them; DEFAULT_BYTES_PER_READING until the table has MIN_ROWS rows.
 * - Readings per day: in the gateway, the readings stored since the store opened, over the store
 *   clock's time since (null for the first MIN_LOAD_MS); in a read-only view (`doctor` without the
 *   gateway), the readings' own timestamps over the last day of the buffer (`measuredLoad`).
 *
 * The reading table's pages are measured as the used pages less the pages of every other b-tree:
 * dbstat walks only the b-trees it is asked for, and those are small, where the reading table is
 * most of the file (a full walk of it reads the whole file: 0.7 s for 231 MB from the page cache
 * on a 2-CPU x86, seconds from an SD card; this way, 2 ms).
 */
import type BetterSqlite3 from 'better-sqlite3';
import type { Clock } from '../clock.js';
import { REFUSAL_BTREES } from './migrations.js';
import { LOW_WATER, refusalShareBytes } from './quota.js';
import type { Autonomy } from './types.js';

/** bytes per stored reading assumed until the reading table has MIN_ROWS rows (the compact form, codec.ts, on a realistic mix) */
export const DEFAULT_BYTES_PER_READING = 24;
/** rows of the reading table before its bytes per row are trusted */
export const MIN_ROWS = 10_000;
/** time measured before a load is given */
export const MIN_LOAD_MS = 10 * 60_000;
/** the gateway measures the pages again at most this often (stats() is called by /metrics and the status page) */
export const REFRESH_MS = 60_000;
const DAY_MS = 86_400_000;

export interface ReadingBytes {
  /** rows of the reading table */
  rows: number;
  /** pages of the reading table, in bytes */
  bytes: number;
  /** bytes / rows; null without rows */
  perReading: number | null;
}

/** The pages of the database by share: the reading table, the refusal share, the rest. */
export interface SpaceUse {
  reading: ReadingBytes;
  /** pages of the refusal tables (none in a file of schema 1) */
  refusalBytes: number;
  /** pages of every other b-tree: events, commands, points, latest values, schema, other modules */
  otherBytes: number;
}

/**
 * Measures the pages of the reading table and of the rest, in one read transaction. `rows`: the
 * reading table's row count when the caller knows it (the store does); counted otherwise, which
 * reads the whole table.
 */
export function spaceUse(db: BetterSqlite3.Database, rows?: number): SpaceUse {
  return db.transaction((): SpaceUse => {
    const one = (sql: string): number => Number(db.prepare(sql).pluck().get() ?? 0);
    const used = (one('PRAGMA page_count') - one('PRAGMA freelist_count')) * one('PRAGMA page_size');
    const names = db.prepare("SELECT name FROM sqlite_schema WHERE rootpage > 0 AND name != 'reading'").pluck().all() as string[];
    const refusal = new Set<string>(REFUSAL_BTREES);
    const pages = (list: string[]): number =>
      list.length === 0
        ? 0
        : Number(
            db.prepare(`SELECT coalesce(sum(pgsize), 0) FROM dbstat WHERE aggregate = 1 AND name IN (${list.map(() => '?').join(', ')})`).pluck().get(...list),
          );
    const refusalBytes = pages(names.filter((n) => refusal.has(n)));
    const otherBytes = pages(['sqlite_schema', ...names.filter((n) => !refusal.has(n))]);
    const n = rows ?? one('SELECT count(*) FROM reading');
    const bytes = Math.max(0, used - refusalBytes - otherBytes);
    return { reading: { rows: n, bytes, perReading: n > 0 ? bytes / n : null }, refusalBytes, otherBytes };
  })();
}

/** The reading table's rows and pages (see `spaceUse`). */
export function readingBytes(db: BetterSqlite3.Database, rows?: number): ReadingBytes {
  return spaceUse(db, rows).reading;
}

/** Days of readings in the quota `maxBytes` with the space used as measured and the load given. */
export function autonomyOf(space: SpaceUse, maxBytes: number, readingsPerDay: number | null, measuredSinceMs: number): Autonomy {
  const measured = space.reading.rows >= MIN_ROWS ? space.reading.perReading : null;
  const bytesPerReading = measured ?? DEFAULT_BYTES_PER_READING;
  const capacity = Math.max(0, (maxBytes - refusalShareBytes(maxBytes)) * LOW_WATER - space.otherBytes);
  // no load (no device reporting): no number of days to give
  const days = readingsPerDay !== null && readingsPerDay > 0 ? capacity / (bytesPerReading * readingsPerDay) : null;
  return { bytesPerReading, readingsPerDay, days, measuredSinceMs };
}

/**
 * The gateway's meter: counts the readings stored since the store opened and measures the pages
 * again at most every REFRESH_MS, so `measure` is cheap enough for every stats() call.
 */
export class AutonomyMeter {
  private readonly db: BetterSqlite3.Database;
  private readonly clock: Clock;
  private readonly maxBytes: number;
  private readonly openedAt: number;
  private stored = 0;
  private space: SpaceUse | undefined;
  private measuredAt = 0;

  constructor(db: BetterSqlite3.Database, clock: Clock, maxBytes: number) {
    this.db = db;
    this.clock = clock;
    this.maxBytes = maxBytes;
    this.openedAt = clock.now();
  }

  /** `n` readings were committed. */
  add(n: number): void {
    this.stored += n;
  }

  /** The autonomy now; `rows`: the reading table's row count. */
  measure(rows: number): Autonomy {
    const mono = this.clock.monotonic();
    if (!this.space || mono - this.measuredAt >= REFRESH_MS) {
      this.space = spaceUse(this.db, rows);
      this.measuredAt = mono;
    }
    const elapsed = this.clock.now() - this.openedAt;
    const perDay = elapsed >= MIN_LOAD_MS ? (this.stored / elapsed) * DAY_MS : null;
    return autonomyOf(this.space, this.maxBytes, perDay, this.openedAt);
  }
}

export interface MeasuredLoad {
  /** readings per day over the window; null when it spans less than MIN_LOAD_MS */
  readingsPerDay: number | null;
  /** readings in the window */
  readings: number;
  /** the window: the last day up to the newest reading (not after `now`), or less when the buffer holds less */
  fromMs: number;
  toMs: number;
}

/**
 * The load the buffer's readings show, by their own timestamps, for a view without the gateway:
 * the readings of the day up to the newest one (or up to `now`, when readings are stamped later).
 * The seqs that bound that day are found by binary search (timestamps grow with seq, near enough)
 * and the readings counted from seqs less the events between them (readings and events share the
 * seq space; eviction only takes the oldest), so nothing is scanned.
 */
export function measuredLoad(db: BetterSqlite3.Database, now: number): MeasuredLoad | null {
  return db.transaction((): MeasuredLoad | null => {
    type Row = { seq: number; ts: number };
    const first = db.prepare('SELECT seq, ts FROM reading ORDER BY seq LIMIT 1').get() as Row | undefined;
    const last = db.prepare('SELECT seq, ts FROM reading ORDER BY seq DESC LIMIT 1').get() as Row | undefined;
    if (!first || !last) return null;
    const at = db.prepare('SELECT seq, ts FROM reading WHERE seq >= ? ORDER BY seq LIMIT 1');
    /** the first seq whose reading is stamped at or after `t` (last.seq + 1 when none is) */
    const seqFrom = (t: number): number => {
      if (last.ts < t) return last.seq + 1;
      // invariant: the first reading at or after hi is stamped at or after t; each step moves lo up or hi down
      let lo = first.seq;
      let hi = last.seq;
      while (lo < hi) {
        const mid = Math.floor((lo + hi) / 2);
        const r = at.get(mid) as Row;
        if (r.ts >= t) hi = mid;
        else lo = r.seq + 1;
      }
      return (at.get(lo) as Row).seq;
    };
    const toMs = Math.min(now, last.ts);
    const start = toMs - DAY_MS;
    const fromMs = first.ts >= start ? Math.min(first.ts, toMs) : start;
    const fromSeq = seqFrom(start);
    const toSeq = seqFrom(toMs + 1) - 1;
    const between = (table: string): number => Number(db.prepare(`SELECT count(*) FROM ${table} WHERE seq BETWEEN ? AND ?`).pluck().get(fromSeq, toSeq));
    const hasRefusals = db.prepare("SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'refusal_event'").get() !== undefined;
    const readings = Math.max(0, toSeq - fromSeq + 1 - between('event') - (hasRefusals ? between('refusal_event') : 0));
    const span = toMs - fromMs;
    return { readingsPerDay: span >= MIN_LOAD_MS ? (readings / span) * DAY_MS : null, readings, fromMs, toMs };
  })();
}
