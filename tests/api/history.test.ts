/**
 * GET /api/v1/history over real HTTP with a real store: the contract's shape (series, buckets,
 * gaps, marks), times in ms or ISO 8601 with an offset and their defaults, permission `read` for
 * every role and 401 without a token, 400s naming the field, 404 for a device that is not
 * configured, and the chart marks: a dim sent to the device and one to its group, with who sent
 * them. And the alarms: spans from the alarm events, severity from the event or the profile.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { accessByCaller, startApi, type Api } from './support/http.js';

let a: Api;
const HOUR = 3_600_000;
// readings in the last two hours (the marks are commands sent now)
const T = Math.floor(Date.now() / HOUR) * HOUR - 2 * HOUR;

beforeAll(async () => {
  a = await startApi();
  a.t.store.appendReadings([
    { ts: T + 1000, device: 'lamp-1', point: 'power', value: 61.5, unit: 'W' },
    { ts: T + 2000, device: 'lamp-1', point: 'power', value: 62, unit: 'W' },
    { ts: T + 3000, device: 'lamp-1', point: 'power', value: null, unit: 'W', quality: 'bad' },
    { ts: T + HOUR + 10, device: 'lamp-1', point: 'power', value: null, unit: 'W', quality: 'stale' },
    { ts: T + 1000, device: 'lamp-1', point: 'lamp_on', value: true },
    { ts: T + 1000, device: 'lamp-2', point: 'power', value: 70, unit: 'W' },
    { ts: T + 1000, device: 'ghost', point: 'power', value: 1, unit: 'W' },
  ]);
});
afterAll(async () => a?.close());

const path = (params: Record<string, string | number>): string => `/api/v1/history?${new URLSearchParams(Object.entries(params).map(([k, v]): [string, string] => [k, String(v)]))}`;

describe('GET /api/v1/history', () => {
  it('answers the contract: a series per point, every bucket, gaps as null, bad and stale counted', async () => {
    const r = await a.call('GET', path({ device: 'lamp-1', point: 'power', from: T, to: T + 2 * HOUR, buckets: 2 }), { role: 'viewer' });
    expect(r.status).toBe(200);
    expect(r.json).toEqual({
      device: 'lamp-1',
      from: T,
      to: T + 2 * HOUR,
      step: HOUR,
      series: [
        {
          point: 'power',
          unit: 'W',
          type: 'number',
          t: [T, T + HOUR],
          min: [61.5, null],
          mean: [61.75, null],
          max: [62, null],
          last: [62, null],
          count: [2, 0],
          bad: [1, 1],
        },
      ],
      marks: [],
      alarms: [],
    });
  });

  it('takes ms or ISO 8601 with an offset; to defaults to now, from to a day before, buckets to 500', async () => {
    const iso = (ms: number, offsetH: number): string => new Date(ms + offsetH * HOUR).toISOString().replace('Z', `${offsetH < 0 ? '-' : '+'}${String(Math.abs(offsetH)).padStart(2, '0')}:00`);
    const byMs = await a.call('GET', path({ device: 'lamp-1', points: 'power,lamp_on', from: T, to: T + HOUR }), { role: 'viewer' });
    const byIso = await a.call('GET', path({ device: 'lamp-1', points: 'power,lamp_on', from: iso(T, 1), to: iso(T + HOUR, -5) }), { role: 'viewer' });
    expect(byIso.status).toBe(200);
    expect(byIso.json).toEqual(byMs.json);
    expect(byMs.json.series.map((s: { point: string; type: string }) => [s.point, s.type])).toEqual([
      ['power', 'number'],
      ['lamp_on', 'boolean'],
    ]);
    expect(byMs.json.series[0].t).toHaveLength(500);

    const before = Date.now();
    const d = await a.call('GET', path({ device: 'lamp-1' }), { role: 'viewer' });
    expect(d.status).toBe(200);
    expect(d.json.to).toBeGreaterThanOrEqual(before);
    expect(d.json.to - d.json.from).toBe(86_400_000);
    expect(d.json.step).toBe(172_800);
    // no point asked: every point of the device with readings, by name
    expect(d.json.series.map((s: { point: string }) => s.point)).toEqual(['lamp_on', 'power']);
  });

  it('permission read: every role may, no token is 401', async () => {
    const { got, want } = await accessByCaller(a, { method: 'GET', path: path({ device: 'lamp-1', point: 'power' }), may: 'TMCV', ok: 200 });
    expect(got).toEqual(want);
  });

  it('a bad parameter is 400 naming it; a device that is not configured is 404', async () => {
    const cases: [Record<string, string | number>, string][] = [
      [{}, 'device'],
      [{ device: 'bad id' }, 'device'],
      [{ device: 'lamp-1', limit: 5 }, 'limit'],
      [{ device: 'lamp-1', buckets: 0 }, 'buckets'],
      [{ device: 'lamp-1', buckets: 2001 }, 'buckets'],
      [{ device: 'lamp-1', buckets: 'many' }, 'buckets'],
      [{ device: 'lamp-1', from: 'yesterday' }, 'from'],
      [{ device: 'lamp-1', from: '2026-02-30T00:00:00Z' }, 'from'],
      [{ device: 'lamp-1', from: '2026-02-03T00:00:00' }, 'from'], // no offset
      [{ device: 'lamp-1', to: '-5' }, 'to'],
      [{ device: 'lamp-1', from: T, to: T }, 'to'],
      [{ device: 'lamp-1', from: T - 401 * 86_400_000, to: T }, 'from'],
      [{ device: 'lamp-1', point: 'power', points: 'power' }, 'points'],
      [{ device: 'lamp-1', points: '' }, 'points'],
      [{ device: 'lamp-1', points: Array.from({ length: 33 }, (_, i) => `p${i}`).join(',') }, 'points'],
      [{ device: 'lamp-1', point: 'nope' }, 'point'],
      [{ device: 'lamp-1', points: 'power,nope' }, 'points'],
    ];
    for (const [params, field] of cases) {
      const r = await a.call('GET', path(params), { role: 'viewer' });
      expect({ params, status: r.status, code: r.json.code }).toEqual({ params, status: 400, code: 'E_USAGE' });
      expect(r.json.error, JSON.stringify(params)).toMatch(new RegExp(`^${field}: `));
    }
    const ghost = await a.call('GET', path({ device: 'ghost' }), { role: 'viewer' });
    expect(ghost.status).toBe(404);
    expect(ghost.json).toMatchObject({ code: 'E_NOT_FOUND', error: 'no device ghost' });
  });

  it('marks the dims sent to the device and to its group, newest first, with who sent them', async () => {
    const from = Date.now();
    const own = await a.call('POST', '/api/v1/devices/lamp-1/commands', { role: 'maintenance', body: { action: 'dim', level: 40 } });
    const group = await a.call('POST', '/api/v1/groups/street-a/commands', { role: 'technician', body: { action: 'on' } });
    await a.call('POST', '/api/v1/devices/lamp-2/commands', { role: 'maintenance', body: { action: 'dim', level: 10 } });
    expect([own.status, group.status]).toEqual([202, 202]);
    a.commands.finish(own.json.id, 'verified', { level: 40 });
    const r = await a.call('GET', path({ device: 'lamp-1', point: 'power', from, to: Date.now() + 1000 }), { role: 'viewer' });
    expect(r.status).toBe(200);
    expect(r.json.marks).toEqual([
      { ts: expect.any(Number), id: group.json.id, action: 'on', level: null, status: 'queued', by: 'technician-token', role: 'technician', target: { kind: 'group', id: 'street-a' } },
      { ts: expect.any(Number), id: own.json.id, action: 'dim', level: 40, status: 'verified', by: 'maintenance-token', role: 'maintenance', target: { kind: 'device', id: 'lamp-1' } },
    ]);
    expect(r.json.marks[0].ts).toBeGreaterThanOrEqual(r.json.marks[1].ts);
    // outside [from, to): none
    const earlier = await a.call('GET', path({ device: 'lamp-1', point: 'power', from: from - HOUR, to: from }), { role: 'viewer' });
    expect(earlier.json.marks).toEqual([]);
  });

  it("gives the device's alarms as spans, end null while active at to; severity from the raise, else from the profile", async () => {
    const detail = (alarm: string, value: number) => ({ alarm, point: 'ch1_status', value, bit: 1 });
    a.t.store.appendEvent({ ts: T + 60_000, device: 'lamp-2', kind: 'alarm.raised', severity: 'critical', detail: detail('ch1_driver_fault', 2) });
    a.t.store.appendEvent({ ts: T + 120_000, device: 'lamp-2', kind: 'alarm.cleared', severity: 'info', detail: detail('ch1_driver_fault', 0) });
    a.t.store.appendEvent({ ts: T + 180_000, device: 'lamp-2', kind: 'alarm.raised', severity: 'critical', detail: detail('ch1_driver_fault', 2) });
    // its raise evicted: the profile says error
    a.t.store.appendEvent({ ts: T + 90_000, device: 'lamp-2', kind: 'alarm.cleared', severity: 'info', detail: detail('ch2_driver_fault', 0) });
    const r = await a.call('GET', path({ device: 'lamp-2', point: 'power', from: T, to: T + HOUR, buckets: 4 }), { role: 'viewer' });
    expect(r.status).toBe(200);
    expect(r.json.alarms).toEqual([
      {
        name: 'ch1_driver_fault',
        severity: 'critical',
        spans: [
          [T + 60_000, T + 120_000],
          [T + 180_000, null],
        ],
        dropped: 0,
      },
      { name: 'ch2_driver_fault', severity: 'error', spans: [[T, T + 90_000]], dropped: 0 },
    ]);
    const before = await a.call('GET', path({ device: 'lamp-2', point: 'power', from: T - HOUR, to: T }), { role: 'viewer' });
    expect(before.json.alarms).toEqual([]);
  });
});
