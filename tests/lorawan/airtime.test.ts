/**
 * The duty cycle survives a restart: the air time a gateway used in the last hour is in the
 * store (lorawan_airtime), so a restarted gateway, or one in a restart loop, does not get a fresh
 * budget. Real SQLite store on a temp file; the restart is a new store, table and ledger on the
 * same file, with a monotonic clock that starts again from zero as a new process's does.
 */
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { DutyCycleLedger, DUTY_CYCLE_WINDOW_MS } from '../../edge/drivers/lorawan/region/dutyCycle.js';
import { AirtimeTable } from '../../edge/drivers/lorawan/storage/airtime.js';
import { lorawanDatabase } from '../../edge/drivers/lorawan/storage/db.js';
import { silentLogger } from '../../edge/log.js';
import { openStore, type SqliteStore } from '../../edge/store/index.js';
import { FakeClock } from '../support/fakeClock.js';
import { tempDir } from '../helpers/tmp.js';

const GW = 'aa555a0000000101';
const dir = tempDir('streetbox-airtime-');
const stores: SqliteStore[] = [];
afterEach(() => {
  for (const s of stores.splice(0)) s.close();
});
afterAll(() => dir.remove());

/** One gateway process: a store on the shared file, its LoRaWAN tables and a persisted ledger. */
function boot(clock: FakeClock, errors: unknown[] = [], file = 'streetbox.db'): { ledger: DutyCycleLedger; journal: AirtimeTable; rows: () => number } {
  const store = openStore({ path: join(dir.path, file), maxBytes: 64 * 1024 * 1024, durability: 'normal', log: silentLogger(), clock });
  stores.push(store);
  const db = lorawanDatabase(store, silentLogger());
  const journal = AirtimeTable.open(db, clock, (err) => errors.push(err))!;
  const ledger = new DutyCycleLedger(DUTY_CYCLE_WINDOW_MS, journal);
  return { ledger, journal, rows: () => db.prepare('SELECT count(*) FROM lorawan_airtime').pluck().get() as number };
}

const HOUR = 3_600_000;

describe('duty-cycle ledger across restarts', () => {
  it('a restarted gateway keeps the last hour of air time, refunds included, and forgets what left the window', async () => {
    const t0 = Date.UTC(2026, 10, 24, 12, 0);
    const first = new FakeClock(t0);
    await first.advance(5_000); // the first process has run a while: its monotonic clock is at 5 s
    const a = boot(first);
    // 36 s of 868.1 MHz (g1, 1 %: the whole hour's budget) in 36 transmissions, one refunded
    for (let i = 0; i < 36; i++) a.ledger.record(GW, 868.1, 1000, first.monotonic() + i);
    a.ledger.record(GW, 868.1, 1000, first.monotonic() + 100);
    a.ledger.refund(GW, 868.1, 1000, first.monotonic() + 100);
    expect(a.rows()).toBe(36);
    expect(a.ledger.check(GW, 868.1, 500, first.monotonic() + 200).ok).toBe(false);
    stores.pop()!.close();

    // 10 minutes later a new process: its monotonic clock starts at 0 again
    const second = new FakeClock(t0 + 10 * 60_000);
    const b = boot(second);
    const verdict = b.ledger.check(GW, 868.1, 500, second.monotonic());
    expect(verdict).toMatchObject({ ok: false, reason: 'duty_cycle', usedMs: 36_000, budgetMs: 36_000 });
    // the first transmission (at t0 + 5 s, 1 s long) leaves the window an hour later: 50 min 6 s from now
    expect((verdict as { retryAt: number }).retryAt - second.monotonic()).toBeCloseTo(50 * 60_000 + 6_000, -1);
    // other bands and gateways are untouched
    expect(b.ledger.check(GW, 869.525, 1000, second.monotonic()).ok).toBe(true);
    expect(b.ledger.check('aa555a0000000102', 868.1, 1000, second.monotonic()).ok).toBe(true);
    stores.pop()!.close();

    // past the hour: the budget is back and the old rows are gone from the file
    const third = new FakeClock(t0 + 61 * 60_000);
    const c = boot(third);
    expect(c.rows()).toBe(0);
    expect(c.ledger.check(GW, 868.1, 1000, third.monotonic()).ok).toBe(true);
  });

  it('air time written under a clock that was ahead counts as sent at the next start, and leaves the window an hour later', () => {
    const t0 = Date.UTC(2026, 10, 24, 12, 0);
    const ahead = new FakeClock(t0 + 24 * HOUR);
    boot(ahead, [], 'ahead.db').ledger.record(GW, 868.1, 36_000, ahead.monotonic());
    stores.pop()!.close();
    const fixed = new FakeClock(t0 + 2 * HOUR);
    expect(boot(fixed, [], 'ahead.db').ledger.check(GW, 868.1, 1000, fixed.monotonic()).ok).toBe(false);
    stores.pop()!.close();
    const later = new FakeClock(t0 + 3 * HOUR + 60_000);
    const g = boot(later, [], 'ahead.db');
    expect(g.ledger.check(GW, 868.1, 1000, later.monotonic()).ok).toBe(true);
    expect(g.rows()).toBe(0);
  });

  it('a clock that booted behind and was set forward (clock.jumped) moves the rows written before the jump with it', () => {
    const t0 = Date.UTC(2026, 10, 24, 12, 0);
    const behind = new FakeClock(t0 - 2 * HOUR);
    const g = boot(behind, [], 'behind.db');
    g.ledger.record(GW, 868.1, 36_000, behind.monotonic());
    g.journal.shift(2 * HOUR); // NTP: the clock watch reports a jump of +2 h
    stores.pop()!.close();
    const restarted = new FakeClock(t0 + 60_000);
    expect(boot(restarted, [], 'behind.db').ledger.check(GW, 868.1, 1000, restarted.monotonic()).ok).toBe(false);
  });

  it('a failing write is reported and the ledger still keeps the duty cycle in memory', () => {
    const clock = new FakeClock();
    const errors: unknown[] = [];
    const g = boot(clock, errors);
    stores[0]!.sqlite.exec('DROP TABLE lorawan_airtime');
    g.ledger.record(GW, 868.1, 36_000, clock.monotonic());
    expect(errors).toHaveLength(1);
    expect(g.ledger.check(GW, 868.1, 1, clock.monotonic()).ok).toBe(false);
  });
});
