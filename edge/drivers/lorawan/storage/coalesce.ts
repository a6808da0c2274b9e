/**
 * Coalesced writes to SQLite: what changed within `delayMs` is written in one transaction
 * (and everything on flush()), so a busy radio does not write a row per frame; a crash loses at
 * most that window. A failing write (a full or failing disk) is reported, kept and tried again
 * after `retryMs`, never thrown from a timer.
 */
import type BetterSqlite3 from 'better-sqlite3';

export interface CoalescedWritesOptions<T> {
  db: BetterSqlite3.Database;
  /** writes one item (inside the transaction) */
  write: (item: T) => void;
  delayMs: number;
  retryMs: number;
  /** a write failed; it is tried again after retryMs */
  onError: (err: unknown) => void;
}

export class CoalescedWrites<T> {
  private readonly o: CoalescedWritesOptions<T>;
  private readonly dirty = new Set<T>();
  private timer: NodeJS.Timeout | null = null;

  constructor(opts: CoalescedWritesOptions<T>) {
    this.o = opts;
  }

  /** `item` changed: written within delayMs. */
  touch(item: T): void {
    this.dirty.add(item);
    this.schedule(this.o.delayMs);
  }

  /** `item` was replaced or removed: its pending write is dropped. */
  forget(item: T): void {
    this.dirty.delete(item);
  }

  /** Writes everything changed now; throws when the database does (the items stay dirty). */
  flush(): void {
    if (this.dirty.size === 0 || !this.o.db.open) return;
    const list = [...this.dirty];
    this.dirty.clear();
    try {
      this.o.db.transaction(() => {
        for (const item of list) this.o.write(item);
      })();
    } catch (err) {
      for (const item of list) this.dirty.add(item);
      throw err;
    }
  }

  private schedule(ms: number): void {
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      try {
        this.flush();
      } catch (err) {
        this.o.onError(err);
        this.schedule(this.o.retryMs);
      }
    }, ms);
    this.timer.unref();
  }
}
