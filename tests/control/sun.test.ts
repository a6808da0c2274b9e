import { describe, expect, it } from 'vitest';
import { sunDay, type SunEvent } from '../../edge/control/sun.js';
import { almanacSunEvent } from './support/almanacSun.js';

const AMSTERDAM = { lat: 52.37, lon: 4.9 };
const TROMSO = { lat: 69.65, lon: 18.96 };
const TWO_MIN = 2 * 60_000;

function at(e: SunEvent): number {
  if (e.kind !== 'event') throw new Error(`expected an event, got ${e.kind}`);
  return e.at;
}

/** Local wall-clock "HH:MM" of an instant in Europe/Amsterdam. */
function amsterdamClock(ms: number): string {
  return new Intl.DateTimeFormat('en-GB', { timeZone: 'Europe/Amsterdam', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' }).format(ms);
}

describe('sun: Amsterdam against the USNO Almanac for Computers algorithm (tests/control/support/almanacSun.ts)', () => {
  // both 2026 daylight-saving switches (29 March, 25 October), the days around them, solstices, equinoxes
  const dates: [number, number, number][] = [
    [2026, 1, 1],
    [2026, 3, 20],
    [2026, 3, 28],
    [2026, 3, 29],
    [2026, 3, 30],
    [2026, 6, 21],
    [2026, 9, 23],
    [2026, 10, 24],
    [2026, 10, 25],
    [2026, 10, 26],
    [2026, 12, 21],
  ];
  it.each(dates)('%i-%i-%i: sunrise and sunset within 2 minutes', (y, m, d) => {
    const day = sunDay(AMSTERDAM.lat, AMSTERDAM.lon, { year: y, month: m, day: d });
    const rise = almanacSunEvent('rise', AMSTERDAM.lat, AMSTERDAM.lon, y, m, d)!;
    const set = almanacSunEvent('set', AMSTERDAM.lat, AMSTERDAM.lon, y, m, d)!;
    expect(Math.abs(at(day.sunrise) - rise)).toBeLessThan(TWO_MIN);
    expect(Math.abs(at(day.sunset) - set)).toBeLessThan(TWO_MIN);
    // the instants are UTC: both events fall on that UTC date in Amsterdam, noon between them
    expect(new Date(at(day.sunrise)).getUTCDate()).toBe(d);
    expect(at(day.sunrise)).toBeLessThan(day.solarNoon);
    expect(day.solarNoon).toBeLessThan(at(day.sunset));
  });

  it('the daylight-saving switch moves the local clock time by an hour, not the sun', () => {
    const sat = sunDay(AMSTERDAM.lat, AMSTERDAM.lon, { year: 2026, month: 3, day: 28 });
    const sun = sunDay(AMSTERDAM.lat, AMSTERDAM.lon, { year: 2026, month: 3, day: 29 });
    // in UTC the sunrise is ~2.3 minutes earlier each day around the equinox
    const earlier = (at(sat.sunrise) + 86_400_000 - at(sun.sunrise)) / 60_000;
    expect(earlier).toBeGreaterThan(1.5);
    expect(earlier).toBeLessThan(3);
    expect(amsterdamClock(at(sat.sunrise))).toBe('06:24');
    expect(amsterdamClock(at(sun.sunrise))).toBe('07:22');
  });

  // Almanac values for Amsterdam as published for these dates by timeanddate.com (rounded to the
  // minute; they change by seconds from year to year): summer solstice sunrise 05:18, sunset 22:06
  // (CEST); winter solstice sunrise 08:48, sunset 16:29 (CET).
  it.each([
    [2026, 6, 21, '05:18', '22:06'],
    [2026, 12, 21, '08:48', '16:29'],
  ] as const)('%i-%i-%i: the published almanac values (%s, %s) within 2 minutes', (y, m, d, rise, set) => {
    const day = sunDay(AMSTERDAM.lat, AMSTERDAM.lon, { year: y, month: m, day: d });
    const local = (hhmm: string, offsetH: number) => Date.UTC(y, m - 1, d, Number(hhmm.slice(0, 2)) - offsetH, Number(hhmm.slice(3)));
    const offset = m === 6 ? 2 : 1;
    expect(Math.abs(at(day.sunrise) - local(rise, offset))).toBeLessThanOrEqual(TWO_MIN);
    expect(Math.abs(at(day.sunset) - local(set, offset))).toBeLessThanOrEqual(TWO_MIN);
  });
});

describe('sun: Tromsø (69.65 N) polar night and midnight sun', () => {
  it.each([
    [2026, 12, 21],
    [2027, 1, 1],
    [2026, 12, 5],
  ])('%i-%i-%i: polar night, no sunrise and no sunset (typed, not NaN)', (y, m, d) => {
    const day = sunDay(TROMSO.lat, TROMSO.lon, { year: y, month: m, day: d });
    expect(day.sunrise).toEqual({ kind: 'polarNight' });
    expect(day.sunset).toEqual({ kind: 'polarNight' });
    expect(Number.isFinite(day.solarNoon)).toBe(true);
  });

  it.each([
    [2026, 6, 21],
    [2026, 6, 1],
    [2026, 7, 15],
  ])('%i-%i-%i: midnight sun, no sunset and no sunrise', (y, m, d) => {
    const day = sunDay(TROMSO.lat, TROMSO.lon, { year: y, month: m, day: d });
    expect(day.sunrise).toEqual({ kind: 'polarDay' });
    expect(day.sunset).toEqual({ kind: 'polarDay' });
  });

  it.each([
    [2026, 3, 20],
    [2026, 9, 23],
    [2026, 11, 15],
    [2027, 1, 25],
  ])('%i-%i-%i: an ordinary day has both events, within 3 minutes of the almanac algorithm', (y, m, d) => {
    const day = sunDay(TROMSO.lat, TROMSO.lon, { year: y, month: m, day: d });
    // the USNO approximation is less precise this far north, hence 3 rather than 2 minutes
    expect(Math.abs(at(day.sunrise) - almanacSunEvent('rise', TROMSO.lat, TROMSO.lon, y, m, d)!)).toBeLessThan(3 * 60_000);
    expect(Math.abs(at(day.sunset) - almanacSunEvent('set', TROMSO.lat, TROMSO.lon, y, m, d)!)).toBeLessThan(3 * 60_000);
  });

  it('the season boundaries fall where the almanacs put them (late November, mid January, late May, late July)', () => {
    const kind = (m: number, d: number, y = 2026) => sunDay(TROMSO.lat, TROMSO.lon, { year: y, month: m, day: d }).sunrise.kind;
    expect(kind(11, 20)).toBe('event');
    expect(kind(11, 30)).toBe('polarNight');
    expect(kind(1, 12, 2027)).toBe('polarNight');
    expect(kind(1, 20, 2027)).toBe('event');
    expect(kind(5, 10)).toBe('event');
    expect(kind(5, 25)).toBe('polarDay');
    expect(kind(7, 20)).toBe('polarDay');
    expect(kind(7, 30)).toBe('event');
  });

  it.each([
    ['Tromsø', TROMSO.lat, TROMSO.lon],
    ['Amsterdam', AMSTERDAM.lat, AMSTERDAM.lon],
    ['McMurdo', -77.85, 166.67],
    ['Longyearbyen', 78.22, 15.65],
  ])('%s: over a whole year sunrises and sunsets alternate (no night lost at the edge of the midnight sun)', (_name, lat, lon) => {
    const events: { at: number; kind: 'rise' | 'set' }[] = [];
    for (let i = 0; i < 366; i++) {
      const d = new Date(Date.UTC(2026, 0, 1 + i));
      const day = sunDay(lat, lon, { year: d.getUTCFullYear(), month: d.getUTCMonth() + 1, day: d.getUTCDate() });
      if (day.sunrise.kind === 'event') events.push({ at: day.sunrise.at, kind: 'rise' });
      if (day.sunset.kind === 'event') events.push({ at: day.sunset.at, kind: 'set' });
    }
    events.sort((a, b) => a.at - b.at);
    expect(events.length).toBeGreaterThan(100);
    for (let i = 1; i < events.length; i++) {
      expect(events[i]!.kind, new Date(events[i]!.at).toISOString()).not.toBe(events[i - 1]!.kind);
      expect(events[i]!.at).toBeGreaterThan(events[i - 1]!.at);
    }
  });

  it('southern hemisphere: the seasons are reversed (78 S, McMurdo)', () => {
    expect(sunDay(-77.85, 166.67, { year: 2026, month: 6, day: 21 }).sunset.kind).toBe('polarNight');
    expect(sunDay(-77.85, 166.67, { year: 2026, month: 12, day: 21 }).sunset.kind).toBe('polarDay');
  });
});
