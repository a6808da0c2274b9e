/**
 * The day counter of the upstream bytes (cloud-sync/dailyBytes.ts) on a real buffer file with a
 * hand-moved clock: 40 days of traffic keep 31 days and a table of at most 32 rows, the month
 * estimate is the mean of the full days × 30 (the first, partial day and today left out), counts
 * reach the file within SAVE_MS, and a clock set back across midnight keeps the day it began.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { DailyBytes, SAVE_MS, SYNC_MIGRATIONS, SYNC_MODULE, localDay, readUpstreamBytes, shiftDay } from '../../cloud-sync/dailyBytes.js';
import { silentLogger } from '../../edge/log.js';
import { openStore, type SqliteStore } from '../../edge/store/index.js';
import { FakeClock } from '../support/fakeClock.js';
import { tempDir, type TempDir } from '../helpers/tmp.js';

const DAY_MS = 86_400_000;
const ZONE = 'Europe/Amsterdam';

let dir: TempDir | undefined;
let store: SqliteStore | undefined;
afterEach(() => {
  store?.close();
  dir?.remove();
  store = undefined;
  dir = undefined;
});

function buffer(): { store: SqliteStore; path: string } {
  dir = tempDir('streetbox-daily-bytes-');
  const path = dir.file('gw.db');
  store = openStore({ path, maxBytes: 10e6, durability: 'normal', log: silentLogger() });
  store.migrate(SYNC_MODULE, SYNC_MIGRATIONS);
  return { store, path };
}

describe('upstream bytes per day', () => {
  it('days of the gateway zone: 23:30 UTC is already tomorrow in Amsterdam', () => {
    const at = Date.UTC(2026, 11, 31, 23, 30);
    expect(localDay(at, 'UTC')).toBe('2026-12-31');
    expect(localDay(at, ZONE)).toBe('2027-01-01');
    expect(shiftDay('2026-03-01', -1)).toBe('2026-02-28');
    expect(shiftDay('2026-12-31', 1)).toBe('2027-01-01');
  });

  it('keeps 31 days of 40, at most 32 rows, and estimates a month from the full days', async () => {
    const { store: s, path } = buffer();
    const clock = new FakeClock(Date.UTC(2026, 0, 1, 15, 0)); // 16:00 in Amsterdam: the first day is partial
    const daily = new DailyBytes({ db: s.sqlite, zone: ZONE, clock, log: silentLogger() });
    daily.load();
    for (let d = 0; d < 40; d++) {
      daily.add(1000 * (d + 1));
      await clock.advance(DAY_MS);
    }
    // day 40 has begun: nothing sent yet
    const r = daily.report();
    daily.save();
    const today = localDay(clock.now(), ZONE);
    expect(r.bytesToday).toBe(0);
    expect(r.bytesPerDay).toHaveLength(31);
    expect(r.bytesPerDay[0]!.day).toBe(shiftDay(today, -30));
    expect(r.bytesPerDay.at(-1)).toEqual({ day: today, bytes: 0 });
    // the 30 days before today were counted whole: days 10..39, 11,000..40,000 bytes
    const full = Array.from({ length: 30 }, (_, i) => 1000 * (i + 11));
    expect(r.bytesPerDay.slice(0, 30).map((d) => d.bytes)).toEqual(full);
    expect(r.bytesPerMonthEstimate).toBe(Math.round((full.reduce((a, b) => a + b, 0) / 30) * 30));
    expect(s.sqlite.prepare('SELECT count(*) FROM sync_bytes_day').pluck().get()).toBeLessThanOrEqual(32);
    expect(readUpstreamBytes(path, ZONE, clock.now())).toEqual(r);
    daily.stop();
  });

  it('the first day is partial: no estimate until a day was counted from its start', async () => {
    const { store: s } = buffer();
    const clock = new FakeClock(Date.UTC(2026, 5, 10, 8, 0));
    const daily = new DailyBytes({ db: s.sqlite, zone: 'UTC', clock, log: silentLogger() });
    daily.load();
    daily.add(5000);
    expect(daily.report()).toEqual({ bytesToday: 5000, bytesPerDay: [{ day: '2026-06-10', bytes: 5000 }], bytesPerMonthEstimate: null });
    await clock.advance(DAY_MS); // 2026-06-11 08:00: counted from midnight on
    daily.add(700);
    expect(daily.report().bytesPerMonthEstimate).toBeNull();
    await clock.advance(DAY_MS);
    expect(daily.report().bytesPerMonthEstimate).toBe(700 * 30);
    daily.stop();
  });

  it('saves within SAVE_MS, and a restart the same day continues its count; one over midnight starts a partial day', async () => {
    const { store: s, path } = buffer();
    const clock = new FakeClock(Date.UTC(2026, 5, 10, 20, 0));
    const first = new DailyBytes({ db: s.sqlite, zone: 'UTC', clock, log: silentLogger() });
    first.load();
    first.add(300);
    expect(readUpstreamBytes(path, 'UTC', clock.now())?.bytesToday).toBe(0);
    await clock.advance(SAVE_MS);
    expect(readUpstreamBytes(path, 'UTC', clock.now())?.bytesToday).toBe(300);
    await clock.advance(DAY_MS); // 2026-06-11 20:00: a full day began at midnight
    first.add(40);
    first.save();
    first.stop();

    const second = new DailyBytes({ db: s.sqlite, zone: 'UTC', clock, log: silentLogger() });
    second.load();
    second.add(2);
    expect(second.report().bytesToday).toBe(42);
    second.save();
    second.stop();

    await clock.advance(DAY_MS); // stopped over midnight: 2026-06-12 is partial
    const third = new DailyBytes({ db: s.sqlite, zone: 'UTC', clock, log: silentLogger() });
    third.load();
    third.add(9);
    await clock.advance(DAY_MS);
    // only 2026-06-11 was counted whole
    expect(third.report().bytesPerMonthEstimate).toBe(42 * 30);
    third.stop();
  });

  it('a clock set back across midnight keeps the day it had begun', () => {
    const { store: s } = buffer();
    let now = Date.UTC(2026, 5, 11, 0, 5);
    const clock = Object.assign(new FakeClock(), { now: () => now });
    const daily = new DailyBytes({ db: s.sqlite, zone: 'UTC', clock, log: silentLogger() });
    daily.load();
    daily.add(10);
    now = Date.UTC(2026, 5, 10, 23, 55); // NTP sets the clock back ten minutes
    daily.add(1);
    now = Date.UTC(2026, 5, 11, 0, 6);
    daily.add(100);
    expect(daily.report().bytesPerDay).toEqual([
      { day: '2026-06-10', bytes: 1 },
      { day: '2026-06-11', bytes: 110 },
    ]);
    daily.stop();
  });
});
