/**
 * The buffer's offline autonomy (autonomy.ts): bytes per reading measured on the reading table,
 * the load measured on the store's clock since it opened, days = what the quota holds at that
 * load; a full buffer does hold its readings that long. And the load of a read-only view, from
 * the readings' own timestamps.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DEFAULT_BYTES_PER_READING, MIN_ROWS, REFRESH_MS, measuredLoad, readingBytes } from '../../edge/store/autonomy.js';
import { openStoreReadOnly } from '../../edge/store/readOnly.js';
import type { SqliteStore } from '../../edge/store/store.js';
import type { NewReading } from '../../edge/store/types.js';
import { FakeClock } from '../support/fakeClock.js';
import { Sandbox } from './helpers.js';
import { sparseCommits } from './fixtures/valueMix.js';

const DAY = 86_400_000;

let sb: Sandbox;
beforeEach(() => {
  sb = new Sandbox();
});
afterEach(() => sb.cleanup());

/** `n` readings with timestamps spread evenly over the `ms` before now, as polls would have them. */
function recent(clock: FakeClock, n: number, ms: number, seed: number): NewReading[] {
  const rs = sparseCommits(n, 0, seed).flat();
  return rs.map((r, i) => ({ ...r, ts: clock.now() - ms + Math.floor(((i + 1) * ms) / n) }));
}

function oldestTs(store: SqliteStore): number {
  return store.sqlite.prepare('SELECT ts FROM reading ORDER BY seq LIMIT 1').pluck().get() as number;
}

describe('StoreStats.autonomy', () => {
  it('gives the load after 10 minutes, the measured bytes per reading past 10 000 rows, refreshed at most every minute', async () => {
    const clock = new FakeClock();
    const opened = clock.now();
    const store = sb.open({ clock, maxBytes: 64 * 1024 * 1024 });
    expect(store.stats().autonomy).toEqual({ bytesPerReading: DEFAULT_BYTES_PER_READING, readingsPerDay: null, days: null, measuredSinceMs: opened });

    // 100 readings every 10 s: 864 000 a day
    for (let step = 1; step <= 120; step++) {
      await clock.advance(10_000);
      store.appendReadings(recent(clock, 100, 10_000, step));
      const a = store.stats().autonomy;
      if (step < 60) expect(a.readingsPerDay).toBeNull();
      else expect(a.readingsPerDay).toBeCloseTo(864_000, 6);
      expect(a.days === null).toBe(a.readingsPerDay === null);
    }
    expect(store.stats().readings).toBeGreaterThanOrEqual(MIN_ROWS);
    await clock.advance(REFRESH_MS);
    const measured = readingBytes(store.sqlite).perReading as number;
    let a = store.stats().autonomy;
    expect(a.bytesPerReading).toBe(measured);
    expect(a.bytesPerReading).toBeLessThan(DEFAULT_BYTES_PER_READING);
    // the quota less the refusal share, at the low-water mark, less the other tables: within 90 % of maxBytes
    const held = (a.days as number) * (a.readingsPerDay as number) * a.bytesPerReading;
    expect(held).toBeLessThan(0.9 * 64 * 1024 * 1024);
    expect(held).toBeGreaterThan(0.8 * 64 * 1024 * 1024);

    // more rows, same minute: the pages are not measured again
    store.appendReadings(recent(clock, 5000, 1000, 999));
    expect(store.stats().autonomy.bytesPerReading).toBe(a.bytesPerReading);
    await clock.advance(REFRESH_MS);
    a = store.stats().autonomy;
    expect(a.bytesPerReading).toBe(readingBytes(store.sqlite).perReading);
    expect(a.bytesPerReading).not.toBe(measured);
  });

  it('predicts how long a full buffer holds its readings', async () => {
    const clock = new FakeClock();
    const store = sb.open({ clock, maxBytes: 2 * 1024 * 1024, latestPersistMs: DAY });
    const ratios: number[] = [];
    // a reading a second, a thousand at a time, until the quota has turned the buffer over twice
    for (let step = 1; step <= 250; step++) {
      await clock.advance(1_000_000);
      store.appendReadings(recent(clock, 1000, 1_000_000, step));
      store.enforceQuota();
      if (store.evicted === 0) continue;
      const a = store.stats().autonomy;
      ratios.push((clock.now() - oldestTs(store)) / ((a.days as number) * DAY));
    }
    expect(store.evicted).toBeGreaterThan(2 * store.stats().readings);
    // the buffer holds from the low-water mark (right after an eviction) to the high-water mark
    const min = Math.min(...ratios);
    const max = Math.max(...ratios);
    process.stdout.write(`full 2 MB buffer: held / predicted between ${min.toFixed(3)} and ${max.toFixed(3)}\n`);
    expect(min).toBeGreaterThan(0.97);
    expect(max).toBeLessThan(1.1);
  });
});

describe('measuredLoad', () => {
  it('counts the readings of the last day of the buffer by their timestamps, events between them left out', () => {
    const store = sb.open();
    const t0 = Date.UTC(2026, 0, 1);
    // two days at a reading every 20 s, then a day at one every 10 s, with events between them
    let ts = t0;
    const batch: NewReading[] = [];
    const flush = (): void => {
      store.appendReadings(batch.splice(0));
      store.appendEvent({ kind: 'gateway.started', severity: 'info', detail: { pid: 1, config: 'test' } });
    };
    for (; ts < t0 + 2 * DAY; ts += 20_000) if (batch.push({ ts, device: 'd', point: 'p', value: ts % 7 }) >= 500) flush();
    for (; ts < t0 + 3 * DAY; ts += 10_000) if (batch.push({ ts, device: 'd', point: 'p', value: ts % 7 }) >= 500) flush();
    flush();
    const last = ts - 10_000;
    const count = (from: number): number => store.sqlite.prepare('SELECT count(*) FROM reading WHERE ts >= ?').pluck().get(from) as number;

    const load = measuredLoad(store.sqlite, last + 3_600_000);
    expect(load).toMatchObject({ readings: count(last - DAY), fromMs: last - DAY, toMs: last });
    expect(load?.readingsPerDay).toBeCloseTo(count(last - DAY), 6);
    expect(load?.readingsPerDay).toBeCloseTo(8640, -1);

    // a window that ends at `now`, before the newest readings
    const earlier = measuredLoad(store.sqlite, t0 + DAY);
    expect(earlier?.toMs).toBe(t0 + DAY);
    expect(earlier?.readingsPerDay).toBeCloseTo(4320, -1);

    // the view without the gateway shows the same
    const view = openStoreReadOnly(store.path);
    try {
      const a = view.stats().autonomy;
      expect(a.readingsPerDay).toBe(load?.readingsPerDay);
      expect(a.measuredSinceMs).toBe(last - DAY);
      expect(a.bytesPerReading).toBe(readingBytes(store.sqlite).perReading);
      expect(a.days).toBeGreaterThan(0);
    } finally {
      view.close();
    }
  });

  it('gives no load for an empty buffer or less than 10 minutes of readings', () => {
    const store = sb.open();
    expect(measuredLoad(store.sqlite, Date.now())).toBeNull();
    store.appendReadings([
      { ts: 1_000_000, device: 'd', point: 'p', value: 1 },
      { ts: 1_000_000 + 9 * 60_000, device: 'd', point: 'p', value: 2 },
    ]);
    expect(measuredLoad(store.sqlite, Date.now())).toMatchObject({ readingsPerDay: null, readings: 2 });
    const view = openStoreReadOnly(store.path);
    try {
      expect(view.stats().autonomy).toMatchObject({ bytesPerReading: DEFAULT_BYTES_PER_READING, readingsPerDay: null, days: null });
    } finally {
      view.close();
    }
  });
});
