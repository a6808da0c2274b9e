/**
 * The duty-cycle ledger's transmissions in SQLite (lorawan_airtime), so a restarted gateway
 * knows the air time it used in the last hour. Rows are kept in wall-clock time and moved onto
 * the ledger's monotonic time line when loaded; rows older than the window are deleted on load
 * and every PRUNE_EVERY writes. A jump of the wall clock (clock.jumped) shifts this process's
 * rows with it. A failing read or write is reported and the ledger goes on in memory: the duty
 * cycle is still kept while the process runs.
 */
import type BetterSqlite3 from 'better-sqlite3';
import { wallOf, type Clock } from '../../../clock.js';
import type { AirtimeEntry, AirtimeJournal } from '../region/dutyCycle.js';

const PRUNE_EVERY = 200;

export class AirtimeTable implements AirtimeJournal {
  private readonly clock: Clock;
  private readonly onError: (err: unknown) => void;
  private readonly insert: BetterSqlite3.Statement;
  private readonly delete: BetterSqlite3.Statement;
  private readonly prune: BetterSqlite3.Statement;
  private readonly select: BetterSqlite3.Statement;
  private readonly clampFuture: BetterSqlite3.Statement;
  private readonly shiftRows: BetterSqlite3.Statement;
  /** the rows this process wrote: ids from firstId to lastId */
  private firstId: number | null = null;
  private lastId: number | null = null;
  private windowMs = 0;
  private writes = 0;

  /** The table, or null (reported) when the database cannot serve it. */
  static open(db: BetterSqlite3.Database, clock: Clock, onError: (err: unknown) => void): AirtimeTable | null {
    try {
      return new AirtimeTable(db, clock, onError);
    } catch (err) {
      onError(err);
      return null;
    }
  }

  private constructor(db: BetterSqlite3.Database, clock: Clock, onError: (err: unknown) => void) {
    this.clock = clock;
    this.onError = onError;
    this.insert = db.prepare('INSERT INTO lorawan_airtime (gateway, band, at, airtime_ms) VALUES (?, ?, ?, ?)');
    this.delete = db.prepare('DELETE FROM lorawan_airtime WHERE rowid = ?');
    this.prune = db.prepare('DELETE FROM lorawan_airtime WHERE at + airtime_ms <= ?');
    this.select = db.prepare('SELECT rowid AS id, gateway, band, at, airtime_ms AS airtimeMs FROM lorawan_airtime ORDER BY at');
    this.clampFuture = db.prepare('UPDATE lorawan_airtime SET at = ? WHERE at > ?');
    this.shiftRows = db.prepare('UPDATE lorawan_airtime SET at = at + ? WHERE rowid BETWEEN ? AND ?');
  }

  load(windowMs: number): (AirtimeEntry & { id: number })[] {
    this.windowMs = windowMs;
    return (
      this.write(() => {
        const wallNow = this.clock.now();
        // Rows "in the future" were written under a clock set back since: they count as sent now,
        // and are rewritten so, so that they leave the window an hour from now.
        this.clampFuture.run(wallNow, wallNow);
        this.prune.run(wallNow - windowMs);
        const offset = this.clock.monotonic() - wallNow;
        return (this.select.all() as (AirtimeEntry & { id: number })[]).map((r) => ({ ...r, at: r.at + offset }));
      }) ?? []
    );
  }

  /**
   * The wall clock jumped by `deltaMs` (NTP setting a clock that booted wrong): the rows this
   * process wrote before the jump move with it, so that they are neither pruned early nor kept late.
   */
  shift(deltaMs: number): void {
    if (this.firstId === null || this.lastId === null) return;
    const [from, to] = [this.firstId, this.lastId];
    this.write(() => this.shiftRows.run(Math.round(deltaMs), from, to));
  }

  add(e: AirtimeEntry): number | null {
    return this.write(() => {
      // the instant in wall-clock ms, as this process's clocks relate now
      const at = Math.round(wallOf(this.clock, e.at));
      const id = Number(this.insert.run(e.gateway, e.band, at, e.airtimeMs).lastInsertRowid);
      this.firstId ??= id;
      this.lastId = id;
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
