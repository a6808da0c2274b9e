/**
 * Store.history against a real SQLite store: bucket edges, gaps for empty and bad-only buckets,
 * values as stored (scaled integers, booleans, strings), `last`, several points, a point with two
 * units, an empty range, a full buffer after eviction checked against an aggregate computed here
 * from the readings left, and the span index (history.ts) across a reopen and a previous release's
 * writes. And the chart marks (Store.commandMarks) and the alarm spans (Store.alarmSpans).
 */
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ALARM_LIMITS, type HistorySeries } from '../../edge/store/api.js';
import { ALARM_SLICE_SEQS, SLICE_SEQS, SPAN_SEQS } from '../../edge/store/history.js';
import type { SqliteStore } from '../../edge/store/store.js';
import type { NewEvent, NewReading, Reading } from '../../edge/store/types.js';
import { Sandbox } from './helpers.js';

const T0 = Date.UTC(2026, 0, 5, 12);
const DEV = 'lamp-1';

let sb: Sandbox;
beforeEach(() => {
  sb = new Sandbox();
});
afterEach(() => sb.cleanup());

function reading(ts: number, point: string, value: NewReading['value'], extra: Partial<NewReading> = {}): NewReading {
  return { ts, device: DEV, point, value, unit: 'W', ...extra };
}

async function one(store: SqliteStore, point: string, from: number, to: number, buckets: number): Promise<HistorySeries> {
  const h = await store.history({ device: DEV, points: [point], from, to, buckets });
  expect(h.series).toHaveLength(1);
  return h.series[0]!;
}

/** Every reading left in the store, in seq order. */
function allReadings(store: SqliteStore): Reading[] {
  const out: Reading[] = [];
  for (let after = 0; ; ) {
    const page = store.readings({ after, limit: 10_000 });
    if (page.items.length === 0) return out;
    out.push(...page.items);
    after = page.next;
  }
}

/** The series of numbers the contract describes, computed here from the readings themselves. */
function expected(rows: readonly Reading[], from: number, to: number, buckets: number): Pick<HistorySeries, 'min' | 'max' | 'last' | 'count' | 'bad'> & { mean: (number | null)[] } {
  const step = Math.ceil((to - from) / buckets);
  const out = { min: [], mean: [], max: [], last: [], count: [], bad: [] } as { min: (number | null)[]; mean: (number | null)[]; max: (number | null)[]; last: (number | null)[]; count: number[]; bad: number[] };
  for (let i = 0; i < buckets; i++) {
    const inBucket = rows.filter((r) => r.ts >= from + i * step && r.ts < Math.min(to, from + (i + 1) * step));
    const good = inBucket.filter((r) => r.quality === 'good');
    const values = good.map((r) => r.value as number);
    const newest = [...good].sort((a, b) => b.ts - a.ts || b.seq - a.seq)[0];
    out.min.push(values.length ? Math.min(...values) : null);
    out.max.push(values.length ? Math.max(...values) : null);
    out.mean.push(values.length ? values.reduce((a, v) => a + v, 0) / values.length : null);
    out.last.push(newest ? (newest.value as number) : null);
    out.count.push(good.length);
    out.bad.push(inBucket.length - good.length);
  }
  return out;
}

function expectSeries(got: HistorySeries, want: ReturnType<typeof expected>): void {
  expect({ min: got.min, max: got.max, last: got.last, count: got.count, bad: got.bad }).toEqual({ min: want.min, max: want.max, last: want.last, count: want.count, bad: want.bad });
  got.mean.forEach((m, i) => (m === null ? expect(want.mean[i]).toBeNull() : expect(m).toBeCloseTo(want.mean[i]!, 9)));
}

describe('history', () => {
  it('bucket i covers [from + i·step, from + (i+1)·step): from is in, to is out, step rounds up', async () => {
    const store = sb.open();
    store.appendReadings([
      reading(T0 - 1, 'power', 1),
      reading(T0, 'power', 2),
      reading(T0 + 2499, 'power', 3),
      reading(T0 + 2500, 'power', 4),
      reading(T0 + 9999, 'power', 5),
      reading(T0 + 10_000, 'power', 6),
    ]);
    const h = await store.history({ device: DEV, points: ['power'], from: T0, to: T0 + 10_000, buckets: 4 });
    expect(h).toMatchObject({ device: DEV, from: T0, to: T0 + 10_000, step: 2500 });
    const s = h.series[0]!;
    expect(s).toMatchObject({ point: 'power', unit: 'W', type: 'number' });
    expect(s.t).toEqual([T0, T0 + 2500, T0 + 5000, T0 + 7500]);
    expect(s.count).toEqual([2, 1, 0, 1]);
    expect(s.min).toEqual([2, 4, null, 5]);
    expect(s.max).toEqual([3, 4, null, 5]);
    expect(s.last).toEqual([3, 4, null, 5]);

    const odd = await store.history({ device: DEV, points: ['power'], from: T0, to: T0 + 10, buckets: 3 });
    expect(odd.step).toBe(4);
    expect(odd.series[0]!.t).toEqual([T0, T0 + 4, T0 + 8]);
    expect(odd.series[0]!.count).toEqual([1, 0, 0]);
  });

  it('gaps, not zeros: an empty bucket and a bucket of bad and stale readings have no value, and count them as bad', async () => {
    const store = sb.open();
    store.appendReadings([
      reading(T0 + 100, 'power', 5),
      reading(T0 + 200, 'power', null, { quality: 'bad' }),
      reading(T0 + 2100, 'power', null, { quality: 'bad' }),
      reading(T0 + 2200, 'power', 7, { quality: 'stale' }),
    ]);
    const s = await one(store, 'power', T0, T0 + 3000, 3);
    expect(s).toMatchObject({
      min: [5, null, null],
      mean: [5, null, null],
      max: [5, null, null],
      last: [5, null, null],
      count: [1, 0, 0],
      bad: [1, 0, 2],
    });
  });

  it('numbers come back as they were stored: scaled integers of every scale, integers, fractions kept as REAL', async () => {
    const store = sb.open();
    const values = [230.1, 230, 229.95, 0.001, -1.5, 1 / 3, 2 ** 53];
    store.appendReadings(values.map((v, i) => reading(T0 + i, 'power', v)));
    store.appendReadings([reading(T0 + 1000, 'power', 12.5), reading(T0 + 1001, 'power', 12.25)]);
    const s = await one(store, 'power', T0, T0 + 2000, 2);
    expect(s.min).toEqual([-1.5, 12.25]);
    expect(s.max).toEqual([2 ** 53, 12.5]);
    expect(s.last).toEqual([2 ** 53, 12.25]);
    expect(s.count).toEqual([7, 2]);
    expect(s.mean[0]).toBeCloseTo(values.reduce((a, v) => a + v, 0) / values.length, 0);
    expect(s.mean[1]).toBe(12.375);
    // one scale only: the mean exactly as JS computes it
    store.appendReadings([230.1, 230.2, 230.4].map((v, i) => reading(T0 + 5000 + i, 'volts', v, { unit: 'V' })));
    const v = await one(store, 'volts', T0 + 5000, T0 + 5003, 1);
    expect(v).toMatchObject({ min: [230.1], max: [230.4], last: [230.4] });
    expect(v.mean[0]).toBeCloseTo((230.1 + 230.2 + 230.4) / 3, 12);
  });

  it('booleans: 0 and 1, the mean is the share of true', async () => {
    const store = sb.open();
    store.appendReadings([
      reading(T0, 'lamp_on', true, { unit: null }),
      reading(T0 + 1, 'lamp_on', false, { unit: null }),
      reading(T0 + 2, 'lamp_on', true, { unit: null }),
      reading(T0 + 3, 'lamp_on', true, { unit: null }),
      reading(T0 + 10, 'lamp_on', false, { unit: null }),
    ]);
    const s = await one(store, 'lamp_on', T0, T0 + 20, 2);
    expect(s).toMatchObject({ type: 'boolean', unit: null, min: [0, 0], max: [1, 0], mean: [0.75, 0], last: [1, 0], count: [4, 1] });
  });

  it('strings: only last, count and bad', async () => {
    const store = sb.open();
    store.appendReadings([
      reading(T0, 'mode', 'schedule', { unit: null }),
      reading(T0 + 1, 'mode', 'manual', { unit: null }),
      reading(T0 + 2, 'mode', null, { unit: null, quality: 'bad' }),
    ]);
    const s = await one(store, 'mode', T0, T0 + 10, 2);
    expect(s).toMatchObject({ type: 'string', min: [null, null], mean: [null, null], max: [null, null], last: ['manual', null], count: [2, 0], bad: [1, 0] });
  });

  it('last is the newest good reading by ts, then by seq: a late reading and a newer bad one do not win', async () => {
    const store = sb.open();
    store.appendReadings([reading(T0 + 1000, 'power', 1), reading(T0 + 3000, 'power', 3)]);
    // arrives later (a higher seq) with an older ts
    store.appendReadings([reading(T0 + 2000, 'power', 2)]);
    store.appendReadings([reading(T0 + 4000, 'power', null, { quality: 'bad' })]);
    // two readings at one ts: the one stored last
    store.appendReadings([reading(T0 + 15_000, 'power', 5), reading(T0 + 15_000, 'power', 6)]);
    const s = await one(store, 'power', T0, T0 + 20_000, 2);
    expect(s.last).toEqual([3, 6]);
    expect(s.count).toEqual([3, 2]);
    expect(s.bad).toEqual([1, 0]);
  });

  it('several points in one query, in the order asked; without points, every point of the device with readings, by name', async () => {
    const store = sb.open();
    store.appendReadings([
      reading(T0, 'power', 10),
      reading(T0, 'level', 40, { unit: '%' }),
      reading(T0, 'lamp_on', true, { unit: null }),
      { ts: T0, device: 'lamp-2', point: 'power', value: 99, unit: 'W' },
    ]);
    const asked = await store.history({ device: DEV, points: ['power', 'level'], from: T0, to: T0 + 10, buckets: 1 });
    expect(asked.series.map((s) => [s.point, s.unit, s.last[0]])).toEqual([
      ['power', 'W', 10],
      ['level', '%', 40],
    ]);
    const all = await store.history({ device: DEV, from: T0, to: T0 + 10, buckets: 1 });
    expect(all.series.map((s) => s.point)).toEqual(['lamp_on', 'level', 'power']);
    expect((await store.history({ device: 'nobody', from: T0, to: T0 + 10, buckets: 1 })).series).toEqual([]);
  });

  it('a point with rows for two units: the series is the newest unit, the other unit is left out, never mixed in', async () => {
    const store = sb.open();
    store.appendReadings([reading(T0, 'power', 1500, { unit: 'W' }), reading(T0 + 10, 'power', 1.6, { unit: 'kW' }), reading(T0 + 20, 'power', 1.7, { unit: 'kW' })]);
    const s = await one(store, 'power', T0, T0 + 30, 1);
    expect(s).toMatchObject({ unit: 'kW', min: [1.6], max: [1.7], count: [2] });
  });

  it('a range with no data: every bucket a gap', async () => {
    const store = sb.open();
    store.appendReadings([reading(T0, 'power', 1)]);
    const s = await one(store, 'power', T0 + 1000, T0 + 5000, 4);
    expect(s).toMatchObject({ min: [null, null, null, null], last: [null, null, null, null], count: [0, 0, 0, 0], bad: [0, 0, 0, 0] });
  });

  it('refuses a point the device has no readings of (E_NOT_FOUND) and a query past its bounds (E_USAGE)', async () => {
    const store = sb.open();
    store.appendReadings([reading(T0, 'power', 1)]);
    const q = { device: DEV, from: T0, to: T0 + 10, buckets: 1 };
    await expect(store.history({ ...q, points: ['nope'] })).rejects.toMatchObject({ code: 'E_NOT_FOUND', message: expect.stringContaining('"nope"') });
    await expect(store.history({ ...q, buckets: 0 })).rejects.toMatchObject({ code: 'E_USAGE' });
    await expect(store.history({ ...q, buckets: 2001 })).rejects.toMatchObject({ code: 'E_USAGE' });
    await expect(store.history({ ...q, to: T0 })).rejects.toMatchObject({ code: 'E_USAGE' });
    await expect(store.history({ ...q, to: T0 + 401 * 86_400_000 })).rejects.toMatchObject({ code: 'E_USAGE' });
    await expect(store.history({ ...q, points: Array.from({ length: 33 }, (_, i) => `p${i}`) })).rejects.toMatchObject({ code: 'E_USAGE' });
    store.close();
    await expect(store.history(q)).rejects.toMatchObject({ code: 'E_STORE' });
  });

  it('on a full buffer after eviction: the aggregate of the readings left, over many blocks and slices; the spans of evicted blocks are gone', async () => {
    const maxBytes = 2 * 1024 * 1024;
    const store = sb.open({ maxBytes });
    // 20 points polled every second, one in 50 readings bad
    for (let round = 0, n = 0; round < 8000; round += 50) {
      const batch: NewReading[] = [];
      for (let k = round; k < round + 50; k++) {
        for (let p = 0; p < 20; p++, n++) {
          batch.push(n % 50 === 7 ? reading(T0 + k * 1000, `p${p}`, null, { quality: 'bad' }) : reading(T0 + k * 1000, `p${p}`, 200 + ((k * 7 + p) % 300) / 10));
        }
      }
      store.appendReadings(batch);
      store.enforceQuota();
    }
    const stats = store.stats();
    expect(stats.droppedTotal).toBeGreaterThan(0); // it did evict
    expect(stats.usedBytes).toBeLessThan(maxBytes * 0.95);
    const left = allReadings(store);
    expect(left.length).toBeGreaterThan(2 * SLICE_SEQS);
    const firstBlock = Math.floor(left[0]!.seq / SPAN_SEQS);
    expect(store.sqlite.prepare('SELECT min(block) FROM reading_span').pluck().get()).toBe(firstBlock);

    const from = left[0]!.ts - 500; // the oldest second is partly evicted
    const to = T0 + 8000 * 1000;
    const h = await store.history({ device: DEV, points: ['p3', 'p17'], from, to, buckets: 37 });
    for (const s of h.series) expectSeries(s, expected(left.filter((r) => r.point === s.point), from, to, 37));
    expect(h.series[0]!.count.reduce((a, c) => a + c, 0) + h.series[0]!.bad.reduce((a, c) => a + c, 0)).toBe(left.filter((r) => r.point === 'p3').length);
  });

  it('the span index survives a reopen and catches up with readings a previous release wrote without it', async () => {
    const path = sb.file();
    let store = sb.open();
    const rows: NewReading[] = [];
    for (let i = 0; i < 5 * SPAN_SEQS; i++) rows.push(reading(T0 + i * 1000, 'power', i % 100));
    store.appendReadings(rows);
    const before = await one(store, 'power', T0, T0 + 5 * SPAN_SEQS * 1000, 10);
    store.close();

    // a previous release: it knows no reading_span, appends readings past the last block summarised
    // and evicts the oldest (its quota)
    const db = new Database(path);
    db.prepare('DELETE FROM reading WHERE seq < ?').run(2 * SPAN_SEQS);
    const last = db.prepare("SELECT value FROM meta WHERE key = 'last_seq'").pluck().get() as number;
    const ins = db.prepare('INSERT INTO reading (seq, ts, point_id, value, flags) VALUES (?, ?, 1, ?, 0)');
    const OLD = 10 * SPAN_SEQS; // more blocks than are summarised one by one
    for (let i = 1; i <= OLD; i++) ins.run(last + i, T0 - i * 1000, 50);
    db.prepare("UPDATE meta SET value = ? WHERE key = 'last_seq'").run(last + OLD);
    db.close();

    store = sb.open();
    const after = await one(store, 'power', T0, T0 + 5 * SPAN_SEQS * 1000, 10);
    // seqs 1..2047 evicted: the first four buckets of 512 but the last reading of the fourth
    expect(after.count).toEqual([0, 0, 0, 1, ...before.count.slice(4)]);
    expect(after.last).toEqual([null, null, null, before.last[3], ...before.last.slice(4)]);
    expect(store.sqlite.prepare('SELECT min(block) FROM reading_span').pluck().get()).toBe(2);
    // the old release's readings, older than all the others, are found through their spans
    const old = await one(store, 'power', T0 - OLD * 1000, T0, 10);
    expect(old.count).toEqual(new Array(10).fill(SPAN_SEQS));
    expect(old.min).toEqual(new Array(10).fill(50));
    const blocks = store.sqlite.prepare('SELECT count(*) FROM reading_span').pluck().get() as number;
    expect(blocks).toBe(Math.floor((last + OLD + 1) / SPAN_SEQS) - 2);
  });
});

describe('the span index over gaps in the seqs', () => {
  it('blocks of events only, and a jump of the seqs (a file moved aside is continued after), are stepped over', async () => {
    const path = sb.file();
    let store = sb.open();
    store.appendReadings([reading(T0, 'power', 1)]);
    for (let i = 0; i < 3 * SPAN_SEQS; i++) store.appendEvent({ kind: 'comms.lost', severity: 'warning', device: DEV, detail: { bus: 'tcp-1', unit: 1, error: 'timeout' } });
    store.appendReadings([reading(T0 + 1, 'power', 2)]);
    store.close();
    const db = new Database(path);
    const jump = 1e12;
    const ins = db.prepare('INSERT INTO reading (seq, ts, point_id, value, flags) VALUES (?, ?, 1, ?, 0)');
    for (let i = 0; i < 2 * SPAN_SEQS; i++) ins.run(jump + i, T0 + 10 + i, 3);
    db.prepare("UPDATE meta SET value = ? WHERE key = 'last_seq'").run(jump + 2 * SPAN_SEQS - 1);
    db.close();

    store = sb.open();
    const s = await one(store, 'power', T0, T0 + 10 + 2 * SPAN_SEQS, 1);
    expect(s.count).toEqual([2 + 2 * SPAN_SEQS]);
    // spans of the blocks with readings only: seq 1, seq 3074 (after 3072 events), the two after the jump
    const blocks = store.sqlite.prepare('SELECT block FROM reading_span ORDER BY block').pluck().all();
    expect(blocks).toEqual([0, 3, jump / SPAN_SEQS, jump / SPAN_SEQS + 1]);
  });
});

describe('the span index and a commit that fails', () => {
  it('a rolled back commit leaves no block unsummarised: the readings written again are all found', async () => {
    const store = sb.open();
    const rows: NewReading[] = [];
    for (let i = 0; i < 2 * SPAN_SEQS + 10; i++) rows.push(reading(T0 + i, 'power', 1));
    // the commit fails after the spans were written in its transaction (here: at last_seq)
    store.sqlite.exec("CREATE TEMP TRIGGER fail_commit BEFORE UPDATE ON meta WHEN NEW.key = 'last_seq' BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END");
    expect(() => store.appendReadings(rows)).toThrow(/disk I\/O error/);
    store.sqlite.exec('DROP TRIGGER fail_commit');
    store.appendReadings(rows);
    const s = await one(store, 'power', T0, T0 + rows.length, 1);
    expect(s.count).toEqual([rows.length]);
    expect(store.sqlite.prepare('SELECT count(*) FROM reading_span').pluck().get()).toBe(2);
  });
});

describe('command marks', () => {
  it("the device's and its groups' commands in [from, to), newest first, at most 200; refusals left out", () => {
    const store = sb.open();
    const who = { role: 'maintenance', principal: 'demo-technician' } as const;
    const mk = (ts: number, kind: 'device' | 'group', id: string, level: number): string =>
      store.createCommand({ ts, source: who, target: { kind, id }, action: 'dim', params: { level } }).id;
    const a = mk(T0 + 1, 'device', DEV, 10);
    const b = mk(T0 + 2, 'group', 'street-a', 20);
    mk(T0 + 3, 'device', 'lamp-2', 30);
    mk(T0 + 4, 'group', 'street-b', 40);
    mk(T0 - 1, 'device', DEV, 50);
    mk(T0 + 100, 'device', DEV, 60);
    store.createCommand({ ts: T0 + 5, source: who, target: { kind: 'device', id: DEV }, action: 'dim', status: 'rejected' }, { refusal: true });
    const marks = store.commandMarks({ device: DEV, groups: ['street-a'], from: T0, to: T0 + 100 });
    expect(marks.map((m) => m.id)).toEqual([b, a]);
    expect(marks[0]).toMatchObject({ source: who, target: { kind: 'group', id: 'street-a' }, params: { level: 20 } });

    for (let i = 0; i < 250; i++) mk(T0 + 10 + i, 'device', DEV, i % 100);
    const many = store.commandMarks({ device: DEV, groups: [], from: T0, to: T0 + 1000 });
    expect(many).toHaveLength(200);
    expect(many[0]!.ts).toBe(T0 + 259);
    expect(many.every((m, i) => i === 0 || m.ts <= many[i - 1]!.ts)).toBe(true);
    expect(store.commandMarks({ device: DEV, groups: [], from: T0, to: T0 + 1000, limit: 3 })).toHaveLength(3);
  });
});

/** An alarm event of the device, as the Modbus driver writes it. */
function alarmEvent(ts: number, alarm: string, raised: boolean, device = DEV): NewEvent {
  return { ts, device, kind: raised ? 'alarm.raised' : 'alarm.cleared', severity: raised ? 'error' : 'info', detail: { alarm, point: 'ch1_status', value: raised ? 2 : 0, bit: 1 } };
}

describe('alarm spans', () => {
  it('per alarm its active spans clipped to [from, to): raised before from starts at from, still active at to ends null', async () => {
    const store = sb.open();
    const events: NewEvent[] = [
      alarmEvent(T0 - 500, 'door_open', true), // before the range, cleared inside it
      alarmEvent(T0 - 400, 'old', true), // raised and cleared before the range: not in it
      alarmEvent(T0 - 300, 'old', false),
      alarmEvent(T0 - 200, 'stuck', true), // raised before the range, never cleared
      alarmEvent(T0 + 100, 'door_open', false),
      alarmEvent(T0 + 200, 'door_open', true),
      alarmEvent(T0 + 250, 'door_open', true), // raised again (a restart): the span keeps its start
      alarmEvent(T0 + 300, 'door_open', false),
      alarmEvent(T0 + 400, 'door_open', false), // cleared again: nothing
      alarmEvent(T0 + 500, 'door_open', true), // active at to
      alarmEvent(T0 + 600, 'late', true, 'lamp-2'), // another device
      alarmEvent(T0 + 700, 'after', true), // at or after to: not in the range
      { ts: T0 + 10, device: DEV, kind: 'comms.error', severity: 'warning', detail: { error: 'timeout' } } as unknown as NewEvent,
    ];
    for (const e of events) store.appendEvent(e);
    expect(await store.alarmSpans(DEV, T0, T0 + 700)).toEqual([
      {
        name: 'door_open',
        severity: 'error',
        spans: [
          [T0, T0 + 100],
          [T0 + 200, T0 + 300],
          [T0 + 500, null],
        ],
        dropped: 0,
      },
      { name: 'stuck', severity: 'error', spans: [[T0, null]], dropped: 0 },
    ]);
    // a clear whose raise is gone (evicted): active from `from` until it, severity unknown
    store.appendEvent(alarmEvent(T0 + 800, 'orphan', false));
    expect((await store.alarmSpans(DEV, T0 + 700, T0 + 900)).find((a) => a.name === 'orphan')).toEqual({ name: 'orphan', severity: null, spans: [[T0 + 700, T0 + 800]], dropped: 0 });
    await expect(store.alarmSpans(DEV, T0, T0)).rejects.toMatchObject({ code: 'E_USAGE' });
  });

  it('bounded: at most 50 alarms (the first by name) and 200 spans each (the oldest dropped and counted), across slices of the scan', async () => {
    const store = sb.open();
    const rows: NewEvent[] = [];
    for (let i = 0; i < 260; i++) rows.push(alarmEvent(T0 + 10 * i, 'flapping', true), alarmEvent(T0 + 10 * i + 5, 'flapping', false));
    for (let k = 0; k < 60; k++) rows.push(alarmEvent(T0 + 5000, `a${String(k).padStart(2, '0')}`, true), alarmEvent(T0 + 5500, `a${String(k).padStart(2, '0')}`, false));
    for (const e of rows) store.appendEvent(e);
    // readings between the events: the scan runs over more than one slice of seqs
    store.appendReadings(Array.from({ length: ALARM_SLICE_SEQS + 10 }, (_, i) => reading(T0 + 6000 + i, 'power', i)));
    store.appendEvent(alarmEvent(T0 + 7000, 'flapping', true));
    // 61 alarms in the range: the first 50 by name ('flapping' is after 'a59')
    const alarms = await store.alarmSpans(DEV, T0, T0 + 10_000);
    expect(alarms.map((a) => a.name)).toEqual(Array.from({ length: ALARM_LIMITS.alarms }, (_, k) => `a${String(k).padStart(2, '0')}`));
    // before them: 'flapping' alone, its 260 spans cut to the newest 200
    const [flapping] = await store.alarmSpans(DEV, T0, T0 + 5000);
    expect(flapping?.spans).toHaveLength(ALARM_LIMITS.spans);
    expect(flapping?.dropped).toBe(60);
    expect(flapping?.spans[0]).toEqual([T0 + 600, T0 + 605]);
    expect(flapping?.spans.at(-1)).toEqual([T0 + 2590, T0 + 2595]);
    // the raise after the readings (another slice of the scan) is found
    expect(await store.alarmSpans(DEV, T0 + 6000, T0 + 10_000)).toEqual([{ name: 'flapping', severity: 'error', spans: [[T0 + 7000, null]], dropped: 0 }]);
  });
});
