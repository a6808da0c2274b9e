/**
 * Upstream bytes per day, for a gateway on a metered (cellular) plan: the payload bytes of the
 * batches the sync publishes (what SyncStatus.sentBytes counts; MQTT and TLS framing and the
 * retained state and status messages come on top), summed per calendar day of the gateway's
 * time zone (`gateway.timezone`: the day a technician at the cabinet means by "today"). The
 * last 31 days are kept across restarts in a table of the sync's own in the store's database
 * (module `sync`, edge/store/migrations.ts), saved at most every SAVE_MS and at stop: a kill -9
 * forgets at most that much of the count.
 *
 * A day is *full* when the sync counted it from its start: the day it first ran on this buffer
 * and a day it came back after being stopped over midnight are partial. The month estimate is
 * the mean of the full days × 30.
 */
import Database from 'better-sqlite3';
import type BetterSqlite3 from 'better-sqlite3';
import type { Clock, Timer } from '../edge/clock.js';
import type { Logger } from '../edge/log.js';
import { schemaVersion, type Migration } from '../edge/store/migrations.js';
import { isoLocal } from '../edge/timeFormat.js';

export const SYNC_MODULE = 'sync';

/** Append-only: never edit or reorder a migration that has shipped. */
export const SYNC_MIGRATIONS: readonly Migration[] = [
  // 1: payload bytes published per day (YYYY-MM-DD in the gateway's zone); at most 32 rows
  `
  CREATE TABLE sync_bytes_day (
    day     TEXT PRIMARY KEY,
    bytes   INTEGER NOT NULL,
    -- 1: the sync began counting during this day (not a full day for the month estimate)
    partial INTEGER NOT NULL
  ) WITHOUT ROWID;
  `,
];

/** days reported: today and the 30 before it */
export const DAYS_KEPT = 31;
/** how often counted bytes are written to the database at most */
export const SAVE_MS = 10_000;

export interface DayBytes {
  /** YYYY-MM-DD in the gateway's time zone */
  day: string;
  bytes: number;
}

export interface UpstreamBytes {
  /** payload bytes published today (the gateway's time zone) */
  bytesToday: number;
  /** the last 31 days that have a count (today included), oldest first */
  bytesPerDay: DayBytes[];
  /** the mean of the full days × 30; null before the first full day */
  bytesPerMonthEstimate: number | null;
}

interface DayCount {
  bytes: number;
  partial: boolean;
}

/** The calendar day of an instant in a zone: `2026-12-04`. */
export function localDay(at: number, zone: string): string {
  return isoLocal(at, zone).slice(0, 10);
}

/** A calendar day `n` days after `day` (before it when negative). */
export function shiftDay(day: string, n: number): string {
  const [y, m, d] = day.split('-').map(Number) as [number, number, number];
  return new Date(Date.UTC(y, m - 1, d + n)).toISOString().slice(0, 10);
}

/** The figures of the counts kept, as seen on `today`. */
export function summarize(days: ReadonlyMap<string, DayCount>, today: string): UpstreamBytes {
  const from = shiftDay(today, -(DAYS_KEPT - 1));
  const inWindow = [...days].filter(([day]) => day >= from && day <= today).sort(([a], [b]) => (a < b ? -1 : 1));
  const full = inWindow.filter(([day, c]) => day < today && !c.partial);
  const sum = full.reduce((s, [, c]) => s + c.bytes, 0);
  return {
    bytesToday: days.get(today)?.bytes ?? 0,
    bytesPerDay: inWindow.map(([day, c]) => ({ day, bytes: c.bytes })),
    bytesPerMonthEstimate: full.length === 0 ? null : Math.round((sum / full.length) * 30),
  };
}

export interface DailyBytesOptions {
  /** the store's database with the sync's migrations applied; null: counted in memory only */
  db: BetterSqlite3.Database | null;
  zone: string;
  clock: Clock;
  log: Logger;
}

/** The sync's day counter: add() at each publish, report() for its status, save() at stop. */
export class DailyBytes {
  private readonly days = new Map<string, DayCount>();
  private readonly dirty = new Set<string>();
  private today = '';
  private saveTimer: Timer | undefined;
  private stopped = false;

  constructor(private readonly opts: DailyBytesOptions) {}

  /** Reads the days kept; today, when it has no count yet, starts as a partial day. */
  load(): void {
    const { db } = this.opts;
    if (db) {
      for (const r of db.prepare('SELECT day, bytes, partial FROM sync_bytes_day').all() as { day: string; bytes: number; partial: number }[]) {
        this.days.set(r.day, { bytes: r.bytes, partial: r.partial === 1 });
      }
    }
    this.roll(true);
  }

  add(bytes: number): void {
    this.roll(false);
    this.days.get(this.today)!.bytes += bytes;
    this.touch(this.today);
  }

  report(): UpstreamBytes {
    this.roll(false);
    return summarize(this.days, this.today);
  }

  /** Writes the counts changed since the last save and forgets the days out of the window. */
  save(): void {
    if (this.saveTimer) this.opts.clock.clearTimeout(this.saveTimer);
    this.saveTimer = undefined;
    const { db } = this.opts;
    if (!db || !db.open || this.dirty.size === 0) return;
    const upsert = db.prepare('INSERT INTO sync_bytes_day (day, bytes, partial) VALUES (?, ?, ?) ON CONFLICT (day) DO UPDATE SET bytes = excluded.bytes, partial = excluded.partial');
    const [from, to] = this.window();
    db.transaction(() => {
      for (const day of this.dirty) {
        const c = this.days.get(day);
        if (c) upsert.run(day, c.bytes, c.partial ? 1 : 0);
      }
      db.prepare('DELETE FROM sync_bytes_day WHERE day < ? OR day > ?').run(from, to);
    })();
    this.dirty.clear();
  }

  /** Stops saving: no timer from now on (call save() first to keep the counts). */
  stop(): void {
    this.stopped = true;
    if (this.saveTimer) this.opts.clock.clearTimeout(this.saveTimer);
    this.saveTimer = undefined;
  }

  /**
   * Follows the calendar: a new day gets its count (partial when the sync begins during it),
   * and days out of the window are forgotten. The window reaches one day ahead, so a clock set
   * back across midnight keeps the day it had begun.
   */
  private roll(starting: boolean): void {
    const today = localDay(this.opts.clock.now(), this.opts.zone);
    if (today === this.today) return;
    this.today = today;
    if (!this.days.has(today)) {
      this.days.set(today, { bytes: 0, partial: starting });
      this.touch(today);
    }
    const [from, to] = this.window();
    for (const day of [...this.days.keys()]) {
      if (day < from || day > to) {
        this.days.delete(day);
        this.touch(day);
      }
    }
  }

  private window(): [string, string] {
    return [shiftDay(this.today, -(DAYS_KEPT - 1)), shiftDay(this.today, 1)];
  }

  private touch(day: string): void {
    this.dirty.add(day);
    if (this.saveTimer || !this.opts.db || this.stopped) return;
    this.saveTimer = this.opts.clock.setTimeout(() => {
      this.saveTimer = undefined;
      try {
        this.save();
      } catch (err) {
        // the store closing or failing: the counts stay in memory and go with the next save
        this.opts.log.warn({ err }, 'saving the upstream bytes per day failed');
      }
    }, SAVE_MS);
    this.saveTimer.unref?.();
  }
}

/**
 * The upstream bytes per day as a buffer file holds them (the CLI, beside a running gateway or
 * without it: as of the sync's last save); null when no sync has run on it.
 */
export function readUpstreamBytes(path: string, zone: string, now: number): UpstreamBytes | null {
  const db = new Database(path, { readonly: true, fileMustExist: true });
  try {
    if (schemaVersion(db, SYNC_MODULE) < 1) return null;
    const days = new Map<string, DayCount>();
    for (const r of db.prepare('SELECT day, bytes, partial FROM sync_bytes_day').all() as { day: string; bytes: number; partial: number }[]) {
      days.set(r.day, { bytes: r.bytes, partial: r.partial === 1 });
    }
    return summarize(days, localDay(now, zone));
  } finally {
    db.close();
  }
}
