import { getPosition } from 'suncalc';
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

/**
 * An independent reference near the poles, where the almanac algorithm is too coarse: suncalc's
 * getPosition (its own Meeus ch. 25 series, sidereal time and ΔT) gives the sun's altitude, and a
 * bisection finds where it crosses −0.833°. getPosition returns the apparent altitude, refracted by
 * its formula 1.02′/tan(h + 10.26/(h + 5.10)) clamped at h = 0 for negative h: below the horizon
 * apparent = geometric + R0. (suncalc's own getTimes is not the reference: it decides both events
 * from the noon declination and its refinement fails on grazing days, off by up to 100 minutes.)
 */
const R0 = 1.02 / 60 / Math.tan(((10.26 / 5.1) * Math.PI) / 180);
const HALF_DAY = 43_200_000;

function referenceEvent(kind: 'rise' | 'set', lat: number, lon: number, noon: number): SunEvent {
  const above = (ms: number) => getPosition(new Date(ms), lat, lon).altitude - R0 > -0.833;
  const low = noon + (kind === 'rise' ? -HALF_DAY : HALF_DAY);
  if (!above(noon)) return { kind: 'polarNight' };
  if (above(low)) return { kind: 'polarDay' };
  let [dark, light] = [low, noon];
  while (Math.abs(light - dark) > 1000) {
    const mid = (dark + light) / 2;
    if (above(mid)) light = mid;
    else dark = mid;
  }
  return { kind: 'event', at: (dark + light) / 2 };
}

describe('sun: every day of 2026 near and beyond the polar circles against an independent position model', () => {
  it.each([
    ['Rovaniemi', 66.5, 25.73],
    ['Tromsø', TROMSO.lat, TROMSO.lon],
    ['Hammerfest', 70.66, 23.68],
    ['Pevek', 69.7, 170.31],
    ['Utqiaġvik', 71.29, -156.79],
    ['Longyearbyen', 78.22, 15.65],
    ['McMurdo', -77.85, 166.67],
  ])('%s: each sunrise and sunset of the right kind and within 2 minutes, the grazing days around the midnight sun included', (_name, lat, lon) => {
    let events = 0;
    for (let i = 0; i < 365; i++) {
      const d = new Date(Date.UTC(2026, 0, 1 + i));
      const day = sunDay(lat, lon, { year: 2026, month: d.getUTCMonth() + 1, day: d.getUTCDate() });
      for (const [kind, e] of [['rise', day.sunrise], ['set', day.sunset]] as const) {
        const ref = referenceEvent(kind, lat, lon, day.solarNoon);
        const where = `${d.toISOString().slice(0, 10)} ${kind}`;
        expect(e.kind, where).toBe(ref.kind);
        if (e.kind === 'event' && ref.kind === 'event') {
          expect(Math.abs(e.at - ref.at), where).toBeLessThan(TWO_MIN);
          events++;
        }
      }
    }
    expect(events).toBeGreaterThan(200);
  });

  it('Tromsø: the last short night before the midnight sun and the first after it are kept (a day with one event)', () => {
    const day = (m: number, d: number) => sunDay(TROMSO.lat, TROMSO.lon, { year: 2026, month: m, day: d });
    // 17 May sets at 22:29 UTC and 18 May rises at 22:51 UTC the evening before: a 22-minute night,
    // then no sunset until 25 July; a calculator judging both events by the noon sun loses both nights
    const set17 = at(day(5, 17).sunset);
    const may18 = day(5, 18);
    expect(may18.sunset).toEqual({ kind: 'polarDay' });
    const rise18 = at(may18.sunrise);
    expect((rise18 - set17) / 60_000).toBeGreaterThan(10);
    expect((rise18 - set17) / 60_000).toBeLessThan(40);
    expect(day(5, 19).sunrise).toEqual({ kind: 'polarDay' });
    const jul25 = day(7, 25);
    expect(jul25.sunrise).toEqual({ kind: 'polarDay' });
    expect(at(jul25.sunset)).toBeGreaterThan(jul25.solarNoon + 11 * 3_600_000);
    expect(at(day(7, 26).sunrise)).toBeGreaterThan(at(jul25.sunset));
  });
});
