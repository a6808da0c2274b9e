/**
 * The duty-cycle ledger's transmissions in SQLite (lorawan_airtime), so a restarted gateway
 * knows the air time it used in the last hour. Rows are kept in wall-clock time and moved onto
 * the ledger's monotonic time line when loaded; rows older than the window are deleted on load
 * and every PRUNE_EVERY writes. A failing write is reported and the ledger goes on in memory:
 * the duty cycle is still kept while the process runs.
 */
import type BetterSqlite3 from 'better-sqlite3';
import type { Clock } from '../../../clock.js';
import type { AirtimeEntry, AirtimeJournal } from '../region/dutyCycle.js';

const PRUNE_EVERY = 200;

export class AirtimeTable implements AirtimeJournal {
  private readonly clock: Clock;
  private readonly onError: (err: unknown) => void;
  private readonly insert: BetterSqlite3.Statement;
  private readonly delete: BetterSqlite3.Statement;
  private readonly prune: BetterSqlite3.Statement;
  private readonly select: BetterSqlite3.Statement;
  private windowMs = 0;
  private writes = 0;

  constructor(db: BetterSqlite3.Database, clock: Clock, onError: (err: unknown) => void) {
    this.clock = clock;
    this.onError = onError;
    this.insert = db.prepare('INSERT INTO lorawan_airtime (gateway, band, at, airtime_ms) VALUES (?, ?, ?, ?)');
    this.delete = db.prepare('DELETE FROM lorawan_airtime WHERE rowid = ?');
    this.prune = db.prepare('DELETE FROM lorawan_airtime WHERE at + airtime_ms <= ?');
    this.select = db.prepare('SELECT rowid AS id, gateway, band, at, airtime_ms AS airtimeMs FROM lorawan_airtime ORDER BY at');
  }

  load(windowMs: number): (AirtimeEntry & { id: number })[] {
    this.windowMs = windowMs;
    const wallNow = this.clock.now();
    this.prune.run(wallNow - windowMs);
    const offset = this.clock.monotonic() - wallNow;
    // A wall clock set back after the rows were written leaves them "in the future": clamp to now.
    return (this.select.all() as (AirtimeEntry & { id: number })[]).map((r) => ({ ...r, at: Math.min(r.at, wallNow) + offset }));
  }

  add(e: AirtimeEntry): number | null {
    return this.write(() => {
      // the instant in wall-clock ms, as this process's clocks relate now
      const at = Math.round(this.clock.now() - (this.clock.monotonic() - e.at));
      const id = Number(this.insert.run(e.gateway, e.band, at, e.airtimeMs).lastInsertRowid);
      if (++this.writes % PRUNE_EVERY === 0) this.prune.run(this.clock.now() - this.windowMs);
      return id;
    });
  }

  remove(id: number): void {
    this.write(() => this.delete.run(id));
  }

  private write<T>(fn: () => T): T | null {
    try {
      return fn();
    } catch (err) {
      this.onError(err);
      return null;
    }
  }
}
