/**
 * City safety as pure functions (edge/firmware/gates.ts): time windows (past midnight, days, time
 * zones), daylight at the gateway's position (the equator, both sides of the date line, polar day
 * and night, the margin), the verdict of a gate per kind of device, and a group's allowance.
 * Configurations come through the real schema (edge/config), so defaults are the gateway's own.
 */
import { describe, expect, it } from 'vitest';
import { firmwareSchema } from '../../edge/config/firmware.js';
import { gatewaySchema } from '../../edge/config/schema.js';
import { sunDay } from '../../edge/control/sun.js';
import { daylight, describeWindows, gate, groupAllowance, insideAny, insideWindow, type GatedDevice, type GateInputs } from '../../edge/firmware/gates.js';
import type { TimeWindow } from '../../edge/firmware/types.js';

const MIN = 60_000;
const H = 3_600_000;
const at = (iso: string) => Date.parse(iso);
const iso = (t: number) => new Date(t).toISOString();

// 2026-06-12 is a Friday, 06-13 a Saturday, 06-14 a Sunday, 06-15 a Monday

describe('insideWindow', () => {
  it('a window within a day: from inclusive, to exclusive', () => {
    const w: TimeWindow = { from: '08:00', to: '17:00' };
    expect(insideWindow(w, at('2026-06-12T07:59:59Z'), 'UTC')).toBe(false);
    expect(insideWindow(w, at('2026-06-12T08:00:00Z'), 'UTC')).toBe(true);
    expect(insideWindow(w, at('2026-06-12T16:59:59Z'), 'UTC')).toBe(true);
    expect(insideWindow(w, at('2026-06-12T17:00:00Z'), 'UTC')).toBe(false);
  });

  it('a window past midnight belongs to the day it starts on', () => {
    const fri: TimeWindow = { from: '22:00', to: '05:00', days: ['fri'] };
    expect(insideWindow(fri, at('2026-06-12T21:59:00Z'), 'UTC')).toBe(false);
    expect(insideWindow(fri, at('2026-06-12T22:00:00Z'), 'UTC')).toBe(true); // Friday evening
    expect(insideWindow(fri, at('2026-06-13T02:00:00Z'), 'UTC')).toBe(true); // Saturday morning: Friday's window
    expect(insideWindow(fri, at('2026-06-13T05:00:00Z'), 'UTC')).toBe(false);
    expect(insideWindow(fri, at('2026-06-13T23:00:00Z'), 'UTC')).toBe(false); // Saturday evening
    expect(insideWindow(fri, at('2026-06-12T02:00:00Z'), 'UTC')).toBe(false); // Friday morning: Thursday's
    expect(insideWindow(fri, at('2026-06-12T12:00:00Z'), 'UTC')).toBe(false);
    // the week wraps: a Saturday window's morning part is on Sunday
    expect(insideWindow({ from: '23:00', to: '01:00', days: ['sat'] }, at('2026-06-14T00:30:00Z'), 'UTC')).toBe(true);
    expect(insideWindow({ from: '23:00', to: '01:00', days: ['sun'] }, at('2026-06-14T00:30:00Z'), 'UTC')).toBe(false);
    expect(insideWindow({ from: '23:00', to: '01:00', days: ['sun'] }, at('2026-06-15T00:30:00Z'), 'UTC')).toBe(true);
  });

  it('days: only those listed; none or an empty list: every day', () => {
    const weekdays: TimeWindow = { from: '09:00', to: '10:00', days: ['mon', 'tue', 'wed', 'thu', 'fri'] };
    expect(insideWindow(weekdays, at('2026-06-12T09:30:00Z'), 'UTC')).toBe(true);
    expect(insideWindow(weekdays, at('2026-06-13T09:30:00Z'), 'UTC')).toBe(false);
    expect(insideWindow(weekdays, at('2026-06-14T09:30:00Z'), 'UTC')).toBe(false);
    expect(insideWindow(weekdays, at('2026-06-15T09:30:00Z'), 'UTC')).toBe(true);
    expect(insideWindow({ from: '09:00', to: '10:00', days: [] }, at('2026-06-14T09:30:00Z'), 'UTC')).toBe(true);
    expect(insideWindow({ from: '09:00', to: '10:00' }, at('2026-06-13T09:30:00Z'), 'UTC')).toBe(true);
  });

  it('local time and local day of the time zone', () => {
    // Berlin in June is UTC+2
    const w: TimeWindow = { from: '08:00', to: '09:00', days: ['fri'] };
    expect(insideWindow(w, at('2026-06-12T06:30:00Z'), 'Europe/Berlin')).toBe(true);
    expect(insideWindow(w, at('2026-06-12T08:30:00Z'), 'Europe/Berlin')).toBe(false);
    // Auckland in June is UTC+12: Monday 09:00 there is Sunday 21:00 UTC
    const mon: TimeWindow = { from: '08:00', to: '10:00', days: ['mon'] };
    expect(insideWindow(mon, at('2026-06-14T21:00:00Z'), 'Pacific/Auckland')).toBe(true);
    expect(insideWindow(mon, at('2026-06-15T09:00:00Z'), 'Pacific/Auckland')).toBe(false);
    // Los Angeles in June is UTC−7: Friday 23:30 there is Saturday 06:30 UTC, inside Friday's night window
    expect(insideWindow({ from: '23:00', to: '02:00', days: ['fri'] }, at('2026-06-13T06:30:00Z'), 'America/Los_Angeles')).toBe(true);
    expect(insideWindow({ from: '23:00', to: '02:00', days: ['sat'] }, at('2026-06-13T06:30:00Z'), 'America/Los_Angeles')).toBe(false);
  });

  it('from = to is the whole day (of the days listed)', () => {
    expect(insideWindow({ from: '06:00', to: '06:00' }, at('2026-06-12T03:00:00Z'), 'UTC')).toBe(true);
    expect(insideWindow({ from: '06:00', to: '06:00', days: ['sat'] }, at('2026-06-12T03:00:00Z'), 'UTC')).toBe(false);
  });

  it('insideAny and describeWindows', () => {
    const ws: TimeWindow[] = [
      { from: '01:00', to: '02:00' },
      { from: '22:00', to: '04:00', days: ['sat', 'sun'] },
    ];
    expect(insideAny(ws, at('2026-06-12T01:30:00Z'), 'UTC')).toBe(true);
    expect(insideAny(ws, at('2026-06-12T03:00:00Z'), 'UTC')).toBe(false);
    expect(insideAny(ws, at('2026-06-14T03:00:00Z'), 'UTC')).toBe(true);
    expect(insideAny([], at('2026-06-12T01:30:00Z'), 'UTC')).toBe(false);
    expect(describeWindows(ws)).toBe('01:00-02:00, 22:00-04:00 sat,sun');
  });
});

describe('daylight', () => {
  const M = 30 * MIN;

  it('unknown position: null', () => {
    expect(daylight(undefined, 10, at('2026-03-20T12:00:00Z'), M)).toBeNull();
    expect(daylight(48, undefined, at('2026-03-20T12:00:00Z'), M)).toBeNull();
  });

  it('the equator at the equinox: day from sunrise + margin to sunset − margin; at night, when the next one begins', () => {
    const day = sunDay(0, 0, { year: 2026, month: 3, day: 20 });
    const next = sunDay(0, 0, { year: 2026, month: 3, day: 21 });
    if (day.sunrise.kind !== 'event' || day.sunset.kind !== 'event' || next.sunrise.kind !== 'event') throw new Error('no sunrise/sunset at the equator');
    const rise = day.sunrise.at;
    const set = day.sunset.at;
    expect(iso(rise)).toMatch(/^2026-03-20T06:0/);
    expect(daylight(0, 0, at('2026-03-20T12:00:00Z'), M)).toEqual({ ok: true, next: null });
    expect(daylight(0, 0, at('2026-03-20T00:00:00Z'), M)).toEqual({ ok: false, next: rise + M });
    // the margin: 10 min after sunrise is not yet day
    expect(daylight(0, 0, rise + 10 * MIN, M)).toEqual({ ok: false, next: rise + M });
    expect(daylight(0, 0, rise + M, M)).toEqual({ ok: true, next: null });
    expect(daylight(0, 0, set - M - 1, M)).toEqual({ ok: true, next: null });
    // from sunset − margin on: the next morning
    expect(daylight(0, 0, set - M, M)).toEqual({ ok: false, next: next.sunrise.at + M });
    expect(daylight(0, 0, set + H, M)).toEqual({ ok: false, next: next.sunrise.at + M });
    // no margin: sunrise itself
    expect(daylight(0, 0, rise, 0)).toEqual({ ok: true, next: null });
  });

  it('east of the date line (Wellington in winter): local noon is about 00:20 UTC, its sunrise on the UTC day before', () => {
    expect(daylight(-41.29, 174.78, at('2026-06-21T00:20:00Z'), M)).toEqual({ ok: true, next: null });
    const local = daylight(-41.29, 174.78, at('2026-06-21T12:00:00Z'), M)!;
    expect(local.ok).toBe(false);
    // sunrise about 07:47 local (19:47 UTC), plus the margin
    const tomorrow = sunDay(-41.29, 174.78, { year: 2026, month: 6, day: 22 });
    if (tomorrow.sunrise.kind !== 'event') throw new Error('no sunrise in Wellington');
    expect(local.next).toBe(tomorrow.sunrise.at + M);
    expect(iso(local.next!)).toMatch(/^2026-06-21T20:1/);
  });

  it('west (Honolulu): local noon is about 22:30 UTC, its sunset on the next UTC day', () => {
    expect(daylight(21.3, -157.86, at('2026-06-10T22:30:00Z'), M)).toEqual({ ok: true, next: null });
    expect(daylight(21.3, -157.86, at('2026-06-11T03:00:00Z'), M)).toEqual({ ok: true, next: null }); // 17:00 local
    const night = daylight(21.3, -157.86, at('2026-06-11T10:00:00Z'), M)!; // midnight local
    expect(night.ok).toBe(false);
    expect(iso(night.next!)).toMatch(/^2026-06-11T16:1/); // 05:48 local + 30 min
  });

  it('polar day: daylight at any hour; polar night: none, and no time it begins', () => {
    // Longyearbyen (78.2 N): midnight sun in June, polar night in December
    for (const t of ['2026-06-21T00:00:00Z', '2026-06-21T11:00:00Z', '2026-06-21T23:00:00Z']) {
      expect(daylight(78.2, 15.6, at(t), M)).toEqual({ ok: true, next: null });
    }
    for (const t of ['2026-12-21T00:00:00Z', '2026-12-21T11:00:00Z']) {
      expect(daylight(78.2, 15.6, at(t), M)).toEqual({ ok: false, next: null });
    }
    // the other hemisphere, the other way round (McMurdo, 77.8 S)
    expect(daylight(-77.8, 166.7, at('2026-12-21T12:00:00Z'), M)).toEqual({ ok: true, next: null });
    expect(daylight(-77.8, 166.7, at('2026-06-21T00:00:00Z'), M)).toEqual({ ok: false, next: null });
  });

  it('the day the midnight sun begins or ends: the real sunset and sunrise, and the margin, still count', () => {
    // Tromsø (69.65 N): on 2026-05-18 the sun rises (22:51 UTC the evening before) and does not set;
    // on 2026-07-25 it does not rise (it has not set) and sets at 22:37 UTC, rising again at 23:04
    const lat = 69.65;
    const lon = 18.96;
    const may17 = sunDay(lat, lon, { year: 2026, month: 5, day: 17 });
    const may18 = sunDay(lat, lon, { year: 2026, month: 5, day: 18 });
    const jul25 = sunDay(lat, lon, { year: 2026, month: 7, day: 25 });
    const jul26 = sunDay(lat, lon, { year: 2026, month: 7, day: 26 });
    if (may17.sunset.kind !== 'event' || may18.sunrise.kind !== 'event' || may18.sunset.kind !== 'polarDay') throw new Error('expected the midnight sun to begin on 2026-05-18');
    if (jul25.sunrise.kind !== 'polarDay' || jul25.sunset.kind !== 'event' || jul26.sunrise.kind !== 'event') throw new Error('expected the midnight sun to end on 2026-07-25');
    // the sun down, a few minutes after the last sunset before the midnight sun or the first after it: not day
    expect.soft(daylight(lat, lon, may18.sunrise.at - 5 * MIN, 0)).toEqual({ ok: false, next: may18.sunrise.at });
    expect.soft(daylight(lat, lon, jul25.sunset.at + 5 * MIN, 0)).toEqual({ ok: false, next: jul26.sunrise.at });
    // within the margin of the sunrise that begins the midnight sun, of the sunset that ends it: not yet, no longer
    expect.soft(daylight(lat, lon, may18.sunrise.at + 10 * MIN, M)).toEqual({ ok: false, next: may18.sunrise.at + M });
    expect.soft(daylight(lat, lon, jul25.sunset.at - 10 * MIN, M)).toEqual({ ok: false, next: jul26.sunrise.at + M });
    // the midnight sun itself, well inside it
    expect(daylight(lat, lon, may18.sunrise.at + 2 * H, M)).toEqual({ ok: true, next: null });
  });

  it('a day shorter than twice the margin has no daylight to update in', () => {
    // 66 N near the winter solstice: the sun is up for about 2.5 h
    const short = sunDay(66, 0, { year: 2026, month: 12, day: 21 });
    if (short.sunrise.kind !== 'event' || short.sunset.kind !== 'event') throw new Error('expected a sunrise at 66 N');
    const len = short.sunset.at - short.sunrise.at;
    expect(len).toBeLessThan(4 * H);
    expect(daylight(66, 0, short.solarNoon, len / 2 + MIN)?.ok).toBe(false);
    expect(daylight(66, 0, short.solarNoon, 30 * MIN)).toEqual({ ok: true, next: null });
  });
});

describe('gate', () => {
  const light: GatedDevice = { id: 'l1', kind: 'lighting', groups: ['street'] };
  const traffic: GatedDevice = { id: 'tc-1', kind: 'traffic', groups: [] };
  const other: GatedDevice = { id: 'meter-1', kind: 'other', groups: [] };
  const NOON = at('2026-03-20T12:00:00Z');
  const MIDNIGHT = at('2026-03-20T00:00:00Z');

  function inputs(o: { now: number; lat?: number | undefined; lon?: number | undefined; timezone?: string; firmware?: Record<string, unknown>; windows?: TimeWindow[]; hold?: string | null }): GateInputs {
    return {
      now: o.now,
      config: {
        gateway: gatewaySchema.parse({ id: 'gw', timezone: o.timezone ?? 'UTC', lat: 'lat' in o ? o.lat : 0, lon: 'lon' in o ? o.lon : 0 }),
        firmware: firmwareSchema.parse(o.firmware ?? {}),
      },
      windows: o.windows ?? [],
      hold: o.hold ?? null,
    };
  }

  it('a light by day goes; at night it waits, naming when daylight begins (retryAt)', () => {
    expect(gate(light, inputs({ now: NOON }))).toEqual({ ok: true });
    const v = gate(light, inputs({ now: MIDNIGHT }));
    const rise = sunDay(0, 0, { year: 2026, month: 3, day: 20 }).sunrise;
    if (rise.kind !== 'event') throw new Error('no sunrise');
    expect(v).toEqual({ ok: false, waiting: `night: lights update by day (from ${iso(rise.at + 30 * MIN)})`, retryAt: rise.at + 30 * MIN });
  });

  it('a light at night goes inside one of firmware.lights.windows; outside them the waiting names them', () => {
    const lights = (windows: unknown[]) => ({ lights: { windows } });
    expect(gate(light, inputs({ now: MIDNIGHT, firmware: lights([{ from: '23:00', to: '01:00' }]) }))).toEqual({ ok: true });
    const v = gate(light, inputs({ now: MIDNIGHT, firmware: lights([{ from: '01:00', to: '02:00', days: ['mon'] }]) }));
    expect(v.ok).toBe(false);
    expect(!v.ok && v.waiting).toMatch(/^night: lights update by day \(from 2026-03-20T06:\d\d:\d\d\.\d{3}Z\) or in 01:00-02:00 mon$/);
  });

  it('a light by day with no position: a waiting that says to set it', () => {
    const v = gate(light, inputs({ now: NOON, lat: undefined, lon: undefined }));
    expect(v).toEqual({ ok: false, waiting: 'lights update by day, but gateway.lat/lon are not set: set them, or give firmware.lights.windows' });
    // a window is enough without a position
    expect(gate(light, inputs({ now: NOON, lat: undefined, lon: undefined, firmware: { lights: { windows: [{ from: '11:00', to: '13:00' }] } } }))).toEqual({ ok: true });
  });

  it('byDay off: only the windows; none: never', () => {
    expect(gate(light, inputs({ now: NOON, firmware: { lights: { byDay: false } } }))).toEqual({
      ok: false,
      waiting: 'lights may not update: firmware.lights.byDay is off and no firmware.lights.windows are set',
    });
    const v = gate(light, inputs({ now: NOON, timezone: 'Europe/Berlin', firmware: { lights: { byDay: false, windows: [{ from: '02:00', to: '04:00', days: ['sat', 'sun'] }] } } }));
    expect(v).toEqual({ ok: false, waiting: 'outside firmware.lights.windows (02:00-04:00 sat,sun, Europe/Berlin)' });
    // 2026-03-21 is a Saturday; 02:30 in Berlin (UTC+1 in March) is 01:30 UTC
    expect(gate(light, inputs({ now: at('2026-03-21T01:30:00Z'), timezone: 'Europe/Berlin', firmware: { lights: { byDay: false, windows: [{ from: '02:00', to: '04:00', days: ['sat', 'sun'] }] } } }))).toEqual({ ok: true });
  });

  it("a hold (a technician's override, a program request) keeps any device back, even by day and inside its windows", () => {
    const hold = 'held by an override of technician tech (testing)';
    expect(gate(light, inputs({ now: NOON, hold }))).toEqual({ ok: false, waiting: hold });
    const tcHold = 'a program request of this gateway is active';
    expect(gate(traffic, inputs({ now: NOON, hold: tcHold, firmware: { traffic: { windows: [{ from: '00:00', to: '12:00' }, { from: '12:00', to: '00:00' }] } } }))).toEqual({ ok: false, waiting: tcHold });
    expect(gate(other, inputs({ now: NOON, hold: 'x' }))).toEqual({ ok: false, waiting: 'x' });
  });

  it("the deployment's maintenance windows come first, for every kind", () => {
    const windows: TimeWindow[] = [{ from: '02:00', to: '03:00' }];
    for (const dev of [light, traffic, other]) {
      const v = gate(dev, inputs({ now: NOON, windows, hold: 'held' }));
      expect(v).toEqual({ ok: false, waiting: "outside the deployment's maintenance windows (02:00-03:00, UTC)" });
    }
    // inside them, the other gates still apply: a light at night waits
    const night = gate(light, inputs({ now: at('2026-03-20T02:30:00Z'), windows }));
    expect(!night.ok && night.waiting).toMatch(/^night: /);
    expect(gate(other, inputs({ now: at('2026-03-20T02:30:00Z'), windows }))).toEqual({ ok: true });
  });

  it('traffic controllers: only inside firmware.traffic.windows (none: never), by day or by night', () => {
    expect(gate(traffic, inputs({ now: NOON }))).toEqual({ ok: false, waiting: 'traffic controllers update only inside firmware.traffic.windows, and none is set' });
    const fw = { traffic: { windows: [{ from: '22:00', to: '04:00' }] } };
    expect(gate(traffic, inputs({ now: NOON, firmware: fw }))).toEqual({ ok: false, waiting: 'outside firmware.traffic.windows (22:00-04:00 mon,tue,wed,thu,fri,sat,sun, UTC)' });
    expect(gate(traffic, inputs({ now: MIDNIGHT, firmware: fw }))).toEqual({ ok: true });
    // the lights' windows and daylight are not theirs
    expect(gate(traffic, inputs({ now: NOON, firmware: { lights: { windows: [{ from: '11:00', to: '13:00' }] } } })).ok).toBe(false);
  });

  it('other devices: no time-of-day gate', () => {
    expect(gate(other, inputs({ now: MIDNIGHT }))).toEqual({ ok: true });
    expect(gate(other, inputs({ now: NOON, lat: undefined, lon: undefined }))).toEqual({ ok: true });
  });

  it('polar night: a light waits with no time it begins (no retryAt)', () => {
    expect(gate(light, inputs({ now: at('2026-12-21T11:00:00Z'), lat: 78.2, lon: 15.6 }))).toEqual({ ok: false, waiting: 'night: lights update by day' });
    expect(gate(light, inputs({ now: at('2026-06-21T00:00:00Z'), lat: 78.2, lon: 15.6 }))).toEqual({ ok: true });
  });
});

describe('groupAllowance', () => {
  it('the share of the group, rounded down, at least one light', () => {
    expect(groupAllowance(8, 0.25)).toBe(2);
    expect(groupAllowance(10, 0.25)).toBe(2);
    expect(groupAllowance(7, 0.5)).toBe(3);
    expect(groupAllowance(10, 1)).toBe(10);
    expect(groupAllowance(3, 0.25)).toBe(1);
    expect(groupAllowance(1, 0.01)).toBe(1);
    expect(groupAllowance(0, 0.25)).toBe(1);
  });
});
