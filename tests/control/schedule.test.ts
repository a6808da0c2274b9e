import { describe, expect, it } from 'vitest';
import { ControlError } from '../../edge/control/errors.js';
import { createScheduler, formatPreview, Zone, type ScheduleConfig } from '../../edge/control/schedule.js';
import { sunDay } from '../../edge/control/sun.js';
import { almanacSunEvent } from './support/almanacSun.js';

const AMS = { lat: 52.37, lon: 4.9, timezone: 'Europe/Amsterdam' };
const TROMSO = { lat: 69.65, lon: 18.96, timezone: 'Europe/Oslo' };
const M = 60_000;
const utc = (y: number, mo: number, d: number, h = 0, mi = 0) => Date.UTC(y, mo - 1, d, h, mi);

const sched = (id: string, steps: [string, number][], extra: Partial<ScheduleConfig> = {}): ScheduleConfig => ({
  id,
  groups: ['main'],
  steps: steps.map(([at, level]) => ({ at, level })),
  ...extra,
});

describe('Zone: wall-clock time from Intl.DateTimeFormat', () => {
  const ams = new Zone('Europe/Amsterdam');
  it.each([
    // [date, HH:MM, expected UTC, dst flag]
    ['2026-03-28', 150, utc(2026, 3, 28, 1, 30), undefined], // the day before: CET
    ['2026-03-29', 90, utc(2026, 3, 29, 0, 30), undefined], // 01:30 CET, before the switch
    ['2026-03-29', 120, utc(2026, 3, 29, 1), 'gap'], // 02:00 does not exist: the switch, 03:00 CEST
    ['2026-03-29', 150, utc(2026, 3, 29, 1), 'gap'], // 02:30 does not exist: 03:00 CEST
    ['2026-03-29', 180, utc(2026, 3, 29, 1), undefined], // 03:00 CEST
    ['2026-10-25', 119, utc(2026, 10, 24, 23, 59), undefined], // 01:59 CEST happens once: the repeated hour is 02:00–02:59
    ['2026-10-25', 120, utc(2026, 10, 25, 0), 'overlap'], // 02:00 occurs twice: first, CEST
    ['2026-10-25', 150, utc(2026, 10, 25, 0, 30), 'overlap'], // 02:30 occurs twice: first, CEST
    ['2026-10-25', 180, utc(2026, 10, 25, 2), undefined], // 03:00 CET only
    ['2026-10-25', 1380, utc(2026, 10, 25, 22), undefined], // 23:00 CET
  ] as const)('%s %i min → the right instant', (date, minutes, expected, dst) => {
    const [y, mo, d] = date.split('-').map(Number) as [number, number, number];
    const r = ams.toUtc({ year: y, month: mo, day: d }, minutes);
    expect(r.at).toBe(expected);
    expect(r.dst).toBe(dst);
  });

  it('other zones: New York (1 h gap), Lord Howe (30 min gap), UTC', () => {
    expect(new Zone('America/New_York').toUtc({ year: 2026, month: 3, day: 8 }, 150)).toEqual({ at: utc(2026, 3, 8, 7), dst: 'gap' });
    // Lord Howe: +10:30 → +11:00 at 02:00 local on the first Sunday of October
    expect(new Zone('Australia/Lord_Howe').toUtc({ year: 2026, month: 10, day: 4 }, 135)).toEqual({ at: utc(2026, 10, 3, 15, 30), dst: 'gap' });
    expect(new Zone('UTC').toUtc({ year: 2026, month: 3, day: 29 }, 150)).toEqual({ at: utc(2026, 3, 29, 2, 30) });
  });
});

describe('schedules across the daylight-saving switches (Europe/Amsterdam)', () => {
  const s = createScheduler(
    [sched('night', [['sunset', 100], ['23:00', 50], ['02:30', 30], ['sunrise+15m', 0]])],
    AMS,
  );

  it('spring forward (29 March 2026): 02:30 fires once, at 03:00 CEST; 23:00 moves an hour in UTC', () => {
    const ts = s.transitions('main', utc(2026, 3, 28), utc(2026, 3, 30));
    const thirty = ts.filter((t) => t.stepAt === '02:30');
    expect(thirty.map((t) => t.at)).toEqual([utc(2026, 3, 28, 1, 30), utc(2026, 3, 29, 1)]);
    expect(thirty[1]!.dst).toBe('gap');
    expect(ts.filter((t) => t.stepAt === '23:00').map((t) => t.at)).toEqual([utc(2026, 3, 28, 22), utc(2026, 3, 29, 21)]);
    expect(ts).toHaveLength(8);
    // in order, each with its schedule and step index
    expect(ts.map((t) => t.at)).toEqual([...ts.map((t) => t.at)].sort((a, b) => a - b));
    expect(ts[0]).toMatchObject({ schedule: 'night', step: 2, level: 30 });
  });

  it('fall back (25 October 2026): 02:30 occurs twice and fires once, at the first (CEST)', () => {
    const ts = s.transitions('main', utc(2026, 10, 24, 12), utc(2026, 10, 26, 12));
    const thirty = ts.filter((t) => t.stepAt === '02:30');
    expect(thirty.map((t) => [t.at, t.dst])).toEqual([
      [utc(2026, 10, 25, 0, 30), 'overlap'],
      [utc(2026, 10, 26, 1, 30), undefined],
    ]);
    expect(ts.filter((t) => t.stepAt === '23:00').map((t) => t.at)).toEqual([utc(2026, 10, 24, 21), utc(2026, 10, 25, 22)]);
    // the level does not change when the clock passes 02:30 again (01:30 UTC)
    expect(s.levelAt('main', utc(2026, 10, 25, 1, 45))).toMatchObject({ level: 30, since: utc(2026, 10, 25, 0, 30) });
  });

  it.each([
    [2026, 3, 28],
    [2026, 3, 29],
    [2026, 3, 30],
    [2026, 10, 24],
    [2026, 10, 25],
    [2026, 10, 26],
  ])('%i-%i-%i: the sunset and sunrise steps fire within 2 minutes of the almanac algorithm', (y, mo, d) => {
    const ts = s.transitions('main', utc(y, mo, d), utc(y, mo, d + 1));
    const sunset = ts.find((t) => t.stepAt === 'sunset')!;
    const sunrise = ts.find((t) => t.stepAt === 'sunrise+15m')!;
    expect(Math.abs(sunset.at - almanacSunEvent('set', AMS.lat, AMS.lon, y, mo, d)!)).toBeLessThan(2 * M);
    expect(Math.abs(sunrise.at - 15 * M - almanacSunEvent('rise', AMS.lat, AMS.lon, y, mo, d)!)).toBeLessThan(2 * M);
  });

  it('levelAt: the latest step at or before the instant, looking back into the previous day', () => {
    const sunset = sunDay(AMS.lat, AMS.lon, { year: 2026, month: 3, day: 29 }).sunset;
    if (sunset.kind !== 'event') throw new Error('no sunset');
    // 00:30 CET on the 29th: yesterday's 23:00 step is in force
    expect(s.levelAt('main', utc(2026, 3, 28, 23, 30))).toEqual({ level: 50, source: { schedule: 'night', step: 1 }, since: utc(2026, 3, 28, 22) });
    // exactly at the (shifted) 02:30 firing, and just before it
    expect(s.levelAt('main', utc(2026, 3, 29, 1))?.level).toBe(30);
    expect(s.levelAt('main', utc(2026, 3, 29, 1) - 1)?.level).toBe(50);
    // at sunset
    expect(s.levelAt('main', sunset.at)).toMatchObject({ level: 100, source: { step: 0 } });
    expect(s.levelAt('main', sunset.at - 1)).toMatchObject({ level: 0, source: { step: 3 } });
    expect(s.levelAt('other', utc(2026, 3, 29))).toBeNull();
  });

  it('nextTransition gives the next firing strictly after the instant (for the scheduler timer)', () => {
    expect(s.nextTransition('main', utc(2026, 3, 29, 0))).toMatchObject({ at: utc(2026, 3, 29, 1), stepAt: '02:30', dst: 'gap' });
    expect(s.nextTransition('main', utc(2026, 3, 29, 1))?.stepAt).toBe('sunrise+15m');
    expect(s.nextTransition('other', utc(2026, 3, 29))).toBeNull();
  });

  it('the preview shows sunrise, sunset, the switches and the shifted steps in local time', () => {
    const spring = formatPreview(s, 'main', utc(2026, 3, 27, 23), 3);
    expect(spring).toContain('Sun 2026-03-29   sunrise 07:22 +02:00   sunset 20:09 +02:00   clocks go forward at 02:00 (+01:00 → +02:00)');
    expect(spring).toMatch(/03:00 \+02:00 +30 % +night\.steps\[2\] 02:30 +\(02:30 does not exist today/);
    expect(spring).toContain('In force at start: 50 % (night.steps[1], since Fri 2026-03-27 23:00 +01:00)');
    const autumn = formatPreview(s, 'main', utc(2026, 10, 24, 12), 2);
    expect(autumn).toContain('clocks go back at 03:00 (+02:00 → +01:00)');
    expect(autumn).toMatch(/02:30 \+02:00 +30 % +night\.steps\[2\] 02:30 +\(02:30 occurs twice today: fires once, at the first\)/);
    expect(autumn.match(/steps\[2\] 02:30/g)).toHaveLength(1);
  });
});

describe('days of the week and several schedules', () => {
  // 2026-11-27 is a Friday
  const s = createScheduler(
    [
      sched('weekdays', [['18:00', 100], ['23:00', 40], ['07:00', 0]], { days: ['mon', 'tue', 'wed', 'thu', 'fri'] }),
      sched('weekend', [['18:00', 100], ['01:00', 60], ['08:00', 0]], { days: ['sat', 'sun'] }),
    ],
    { timezone: 'Europe/Amsterdam' },
  );

  it('a step belongs to its anchor date: Saturday 00:30 is still under Friday 23:00', () => {
    expect(s.levelAt('main', utc(2026, 11, 27, 23, 30))).toMatchObject({ level: 40, source: { schedule: 'weekdays', step: 1 } });
    expect(s.levelAt('main', utc(2026, 11, 28, 0, 30))).toMatchObject({ level: 60, source: { schedule: 'weekend', step: 1 } });
    const sat = s.transitions('main', utc(2026, 11, 27, 23), utc(2026, 11, 28, 23));
    expect(sat.map((t) => `${t.schedule}:${t.stepAt}`)).toEqual(['weekend:01:00', 'weekend:08:00', 'weekend:18:00']);
  });

  it('Monday 06:00 is still under Sunday 18:00 (no weekday step fired yet)', () => {
    expect(s.levelAt('main', utc(2026, 11, 30, 5))).toMatchObject({ level: 100, source: { schedule: 'weekend', step: 0 } });
  });

  it('clock-only schedules need no lat/lon; a sun step without them is a config error', () => {
    expect(() => createScheduler([sched('x', [['sunset-30m', 100]])], { timezone: 'UTC' })).toThrow(ControlError);
    expect(() => createScheduler([sched('x', [['sunset-30m', 100]])], { timezone: 'UTC' })).toThrow(/schedules\[0\]\.steps\[0\]\.at: "sunset-30m" needs gateway.lat and gateway.lon/);
  });

  it('two steps at the same instant: the later schedule in the config wins', () => {
    const t = createScheduler([sched('a', [['20:00', 10]]), sched('b', [['20:00', 90]])], { timezone: 'UTC' });
    expect(t.levelAt('main', utc(2026, 1, 1, 21))).toMatchObject({ level: 90, source: { schedule: 'b' } });
  });
});

describe('places with no sunset (Tromsø, 69.65 N)', () => {
  const s = createScheduler([sched('sun', [['sunset', 100], ['sunrise', 0]]), sched('late', [['01:00', 40]], { groups: ['late'] })], TROMSO);

  it('in the polar night sun steps are skipped and the last sunset step stays in force', () => {
    expect(s.transitions('main', utc(2026, 12, 10), utc(2026, 12, 31))).toEqual([]);
    expect(s.levelAt('main', utc(2026, 12, 21, 12))).toMatchObject({ level: 100, source: { schedule: 'sun', step: 0 } });
    expect(s.skippedOn('main', { year: 2026, month: 12, day: 21 })).toEqual([
      { schedule: 'sun', step: 0, stepAt: 'sunset', reason: 'polarNight' },
      { schedule: 'sun', step: 1, stepAt: 'sunrise', reason: 'polarNight' },
    ]);
    // the next firing is the first sunrise of January
    const next = s.nextTransition('main', utc(2026, 12, 21))!;
    expect(next.stepAt).toBe('sunrise');
    expect(next.at).toBeGreaterThan(utc(2027, 1, 10));
    expect(next.at).toBeLessThan(utc(2027, 1, 20));
  });

  it('under the midnight sun the last sunrise step stays in force; clock steps still fire', () => {
    expect(s.levelAt('main', utc(2026, 6, 21, 23))).toMatchObject({ level: 0, source: { step: 1 } });
    // 01:00 CEST is 23:00 UTC the day before
    expect(s.transitions('late', utc(2026, 6, 20), utc(2026, 6, 22)).map((t) => t.at)).toEqual([utc(2026, 6, 20, 23), utc(2026, 6, 21, 23)]);
  });

  it('the preview says there is no sunset and which steps are skipped', () => {
    const out = formatPreview(s, 'main', utc(2026, 6, 20, 12), 2);
    expect(out).toContain('Sun 2026-06-21   no sunrise (midnight sun)   no sunset (midnight sun)');
    expect(out).toContain('sun.steps[0] sunset   (midnight sun: no sunrise or sunset today)');
    const night = formatPreview(s, 'main', utc(2026, 12, 20, 12), 1);
    expect(night).toContain('no sunset (polar night)');
    expect(night).toContain('sun.steps[1] sunrise   (polar night: no sunrise or sunset today)');
    expect(formatPreview(s, 'nobody', utc(2026, 6, 20), 1)).toContain('No schedule covers this group');
  });
});
