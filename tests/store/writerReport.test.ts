/**
 * The report filter at the writer's door: which polled values become rows, what the others
 * become (the latest value of their point), and what goes out on the bus: `readings` = the
 * committed rows, `polled` = every valid value of the window in poll order, seq 0 when not stored.
 */
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { EventBus } from '../../edge/bus.js';
import { silentLogger } from '../../edge/log.js';
import { EVERY_POLL_STRATEGY, type ReportPolicy, type ReportStrategy } from '../../edge/report/strategy.js';
import type { SqliteStore } from '../../edge/store/store.js';
import type { NewReading, Reading, Value } from '../../edge/store/types.js';
import { BatchWriter, type BatchWriterOptions } from '../../edge/store/writer.js';
import { FakeClock } from '../support/fakeClock.js';
import { Sandbox, newBus } from './helpers.js';

let sb: Sandbox;
const writers: BatchWriter[] = [];

beforeEach(() => {
  sb = new Sandbox();
});
afterEach(async () => {
  for (const w of writers.splice(0)) await w.stop();
  sb.cleanup();
});

/** on change beyond ±1, no heartbeat: what is stored depends on the values alone */
const DEADBAND: ReportStrategy = { on: 'change', deadband: 1, deadbandPercent: 0, heartbeat: 0, minInterval: 0 };
const policy = (strategy: ReportStrategy = DEADBAND): ReportPolicy => ({ strategy: () => strategy });

interface Tap {
  polled: Reading[][];
  readings: Reading[][];
}

function tap(bus: EventBus): Tap {
  const t: Tap = { polled: [], readings: [] };
  bus.on('test', 'polled', (rs) => t.polled.push(rs));
  bus.on('test', 'readings', (rs) => t.readings.push(rs));
  return t;
}

function setup(opts: Partial<BatchWriterOptions> = {}): { store: SqliteStore; w: BatchWriter; t: Tap } {
  const bus = newBus();
  const t = tap(bus);
  const store = sb.open({ bus });
  const w = new BatchWriter({ store, bus, log: silentLogger(), flushIntervalMs: 60_000, flushRows: 1000, report: policy(), ...opts });
  writers.push(w);
  w.start();
  return { store, w, t };
}

/** a writer built as before report strategies: no `report` */
function setupDefault(opts: Partial<BatchWriterOptions>): { store: SqliteStore; w: BatchWriter; t: Tap } {
  const bus = newBus();
  const t = tap(bus);
  const store = sb.open({ bus });
  const w = new BatchWriter({ store, bus, log: silentLogger(), flushIntervalMs: 60_000, flushRows: 1000, ...opts });
  writers.push(w);
  w.start();
  return { store, w, t };
}

const power = (i: number, value: Value, quality?: 'good' | 'bad'): NewReading => ({ ts: 1000 + i * 100, device: 'cab-1', point: 'power', value, unit: 'W', ...(quality ? { quality } : {}) });

describe('BatchWriter with a report policy', () => {
  it('stores the changes beyond the deadband and quality changes; the rest become latest() and go out on polled with seq 0', () => {
    const { store, w, t } = setup();
    const values = [100, 100.5, 100.2, 102, 102.3, 101.9, 99];
    w.pushMany(values.map((v, i) => power(i, v)));
    w.flush();
    // stored: the first value, then each one more than 1 W from the last stored
    expect(store.readings({ after: 0, limit: 100 }).items.map((r) => [r.ts, r.value])).toEqual([
      [1000, 100],
      [1300, 102],
      [1600, 99],
    ]);
    expect(t.readings.flat().map((r) => r.value)).toEqual([100, 102, 99]);
    // polled: every value in poll order; a stored one carries its seq on both keys
    const polled = t.polled.flat();
    expect(polled.map((r) => r.value)).toEqual(values);
    const stored = new Map(t.readings.flat().map((r) => [r.ts, r.seq]));
    for (const r of polled) expect(r.seq).toBe(stored.get(r.ts) ?? 0);
    expect(polled.filter((r) => r.seq > 0)).toHaveLength(3);
    expect(polled[1]).toEqual({ seq: 0, ts: 1100, device: 'cab-1', point: 'power', value: 100.5, unit: 'W', quality: 'good' });

    // a small change after the last stored value: not a row, but the latest value (ts, value, quality), seq the stored one's
    w.push(power(7, 99.4));
    w.flush();
    expect(store.stats().readings).toBe(3);
    expect(store.latest('cab-1').get('power')).toEqual({ seq: stored.get(1600), ts: 1700, value: 99.4, unit: 'W', quality: 'good' });

    // quality changes are stored whatever the deadband: bad (null), then good again at a value inside it
    w.pushMany([power(8, null, 'bad'), power(9, null, 'bad'), power(10, 99.2), power(11, 99.3)]);
    w.flush();
    expect(store.readings({ after: 0, limit: 100 }).items.slice(3).map((r) => [r.ts, r.value, r.quality])).toEqual([
      [1800, null, 'bad'],
      [2000, 99.2, 'good'],
    ]);
    expect(store.latest('cab-1').get('power')).toMatchObject({ ts: 2100, value: 99.3, quality: 'good' });
    expect(t.polled.at(-1)?.map((r) => r.seq > 0)).toEqual([true, false, true, false]);
    expect(w.polled).toBe(12);
    expect(w.kept).toBe(5);
  });

  it('a skipped value becomes latest only when it is not older, and never for a point with nothing stored', () => {
    const { store } = setup();
    const seq = store.appendReadings([power(5, 100)]).firstSeq;
    store.observe([power(4, 50)]); // older than the stored one
    expect(store.latest('cab-1').get('power')).toMatchObject({ seq, ts: 1500, value: 100 });
    store.observe([power(6, true), { ts: 1600, device: 'cab-1', point: 'other', value: 1 }]);
    expect(store.latest('cab-1').get('power')).toMatchObject({ seq, ts: 1600, value: true });
    expect(store.latest('cab-1').has('other')).toBe(false);
    store.observe([{ ts: 1700, device: 'cab-1', point: 'power', value: 7, unit: 'kW' }]); // another unit: another point entry, none stored
    expect(store.latest('cab-1').get('power')).toMatchObject({ ts: 1600, unit: 'W' });
  });

  it('latest() chooses between the units of a point by time, not by seq', () => {
    const { store } = setup();
    store.appendReadings([{ ts: 2000, device: 'cab-1', point: 'temp', value: 21, unit: 'C' }]);
    store.appendReadings([{ ts: 1000, device: 'cab-1', point: 'temp', value: 68, unit: 'F' }]); // a late one, stored after
    expect(store.latest('cab-1').get('temp')).toMatchObject({ value: 21, unit: 'C' });
    store.observe([{ ts: 3000, device: 'cab-1', point: 'temp', value: 70, unit: 'F' }]);
    expect(store.latest('cab-1').get('temp')).toMatchObject({ value: 70, unit: 'F', ts: 3000 });
  });

  it('values the filter skips trigger the flush on their own: after flushRows values, and flushIntervalMs after the first', async () => {
    const clock = new FakeClock();
    const { store, w, t } = setup({ flushRows: 5, flushIntervalMs: 100, clock });
    w.push(power(0, 100));
    w.flush();
    const rows = store.stats().readings;
    // five unchanged values: nothing to store, the window closes at once
    for (let i = 1; i <= 5; i++) w.push(power(i, 100));
    expect(w.pending).toBe(0);
    expect(t.polled.at(-1)?.map((r) => [r.ts, r.seq])).toEqual([1100, 1200, 1300, 1400, 1500].map((ts) => [ts, 0]));
    expect(store.latest('cab-1').get('power')?.ts).toBe(1500);
    // one more: out flushIntervalMs later, no row
    const windows = t.polled.length;
    w.push(power(6, 100.1));
    await clock.advance(99);
    expect(t.polled).toHaveLength(windows);
    await clock.advance(1);
    expect(t.polled).toHaveLength(windows + 1);
    expect(t.polled.at(-1)?.map((r) => r.value)).toEqual([100.1]);
    expect(store.latest('cab-1').get('power')).toMatchObject({ ts: 1600, value: 100.1 });
    expect(store.stats().readings).toBe(rows);
  });

  it('a failing commit still emits polled (seq 0) and observes; its rows stay buffered and come on readings once committed', async () => {
    const clock = new FakeClock();
    const { store, w, t } = setup({ flushIntervalMs: 100, maxRetryMs: 10_000, clock });
    w.push(power(0, 100));
    const first = w.flush();
    expect(first?.count).toBe(1);
    store.sqlite.pragma('busy_timeout = 0');
    const other = new Database(store.path);
    other.exec('BEGIN IMMEDIATE'); // every commit fails with SQLITE_BUSY
    try {
      w.pushMany([power(1, 100.4), power(2, 105), power(3, 105.2)]);
      expect(w.flush()).toBeNull();
      expect(w.pending).toBe(1); // 105
      expect(t.polled.at(-1)?.map((r) => [r.value, r.seq])).toEqual([
        [100.4, 0],
        [105, 0],
        [105.2, 0],
      ]);
      expect(store.latest('cab-1').get('power')).toMatchObject({ seq: first?.firstSeq, ts: 1300, value: 105.2 });
      // the retry is 200 ms away (backoff): polled values keep going out every flushIntervalMs meanwhile
      const windows = t.polled.length;
      w.push(power(4, 105.3));
      await clock.advance(100);
      expect(w.failedFlushes).toBe(1);
      expect(t.polled).toHaveLength(windows + 1);
      expect(t.polled.at(-1)?.map((r) => [r.value, r.seq])).toEqual([[105.3, 0]]);
      expect(store.latest('cab-1').get('power')?.ts).toBe(1400);
      await clock.advance(100); // the retry, failing again
      expect(w.failedFlushes).toBe(2);
      expect(store.stats().readings).toBe(1);
    } finally {
      other.exec('COMMIT');
      other.close();
    }
    const readings = t.readings.length;
    w.pushMany([power(5, 110), power(6, 110.5)]); // stored behind the row kept for retry, and skipped
    expect(w.flush()?.count).toBe(2); // the store is back: both rows in one commit
    expect(w.pending).toBe(0);
    expect(t.readings).toHaveLength(readings + 1);
    const seq = first!.lastSeq;
    expect(t.readings.at(-1)?.map((r) => [r.seq, r.ts, r.value])).toEqual([
      [seq + 1, 1200, 105],
      [seq + 2, 1500, 110],
    ]);
    // this window's stored value carries its seq; the one of the failed window went out before, with 0
    expect(t.polled.at(-1)?.map((r) => [r.seq, r.value])).toEqual([
      [seq + 2, 110],
      [0, 110.5],
    ]);
    expect(t.polled.at(-1)?.[0]).toBe(t.readings.at(-1)?.[1]);
    expect(store.readings({ after: 0, limit: 10 }).items.map((r) => r.value)).toEqual([100, 105, 110]);
    expect(store.latest('cab-1').get('power')).toMatchObject({ seq: seq + 2, ts: 1600, value: 110.5 });
  });

  it('stop() flushes the rows and the window of skipped values', async () => {
    const { store, w, t } = setup();
    w.pushMany([power(0, 100), power(1, 100.1), power(2, 100.2)]);
    await w.stop();
    expect(store.stats().readings).toBe(1);
    expect(t.polled.flat().map((r) => r.value)).toEqual([100, 100.1, 100.2]);
    expect(store.latest('cab-1').get('power')).toMatchObject({ ts: 1200, value: 100.2 });
    w.push(power(3, 100.3)); // after stop: only stop() again flushes it
    await w.stop();
    expect(t.polled.at(-1)?.map((r) => r.value)).toEqual([100.3]);
  });
});

describe('BatchWriter without a report policy (EVERY_POLL)', () => {
  it('stores every valid value, in order, and polled carries the same readings as readings', () => {
    const { store, w, t } = setupDefault({ flushRows: 7 });
    const pushed: NewReading[] = [];
    for (let i = 0; i < 20; i++) {
      const r: NewReading = { ts: 1000 + i, device: `lamp-${i % 3}`, point: i % 2 ? 'level' : 'on', value: i % 2 ? 50 : true };
      pushed.push(r);
      w.push(r);
    }
    w.push({ ts: Number.NaN, device: 'lamp-0', point: 'level', value: 1 }); // invalid: neither stored nor polled
    w.flush();
    expect(w.rejected).toBe(1);
    const rows = store.readings({ after: 0, limit: 100 }).items;
    expect(rows.map((r) => [r.ts, r.device, r.point, r.value])).toEqual(pushed.map((r) => [r.ts, r.device, r.point, r.value]));
    expect(t.polled.flat()).toEqual(t.readings.flat());
    expect(t.polled.flat()).toEqual(rows);
    expect(t.polled.map((b) => b.length)).toEqual([7, 7, 6]);
  });

  it('every poll is stored when the policy says poll, whatever the values', () => {
    const { store, w, t } = setup({ report: policy(EVERY_POLL_STRATEGY) });
    w.pushMany([power(0, 1), power(1, 1), power(2, 1)]);
    w.flush();
    expect(store.stats().readings).toBe(3);
    expect(t.polled.flat().map((r) => r.seq)).toEqual([1, 2, 3]);
  });
});
