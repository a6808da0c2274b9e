/**
 * Zone offsets read from the system's tz database (Debian's tzdata, /usr/share/zoneinfo) must
 * agree with ICU's (Node's Intl) for every zone a city might run in: the schedules dim and switch
 * lights at local times computed from them. ICU is the independent reference here.
 */
import { mkdtempSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Zone } from '../../edge/control/schedule.js';
import { ZONEINFO_DIR, loadZoneRules, parsePosixTz, parseTzif } from '../../edge/zoneinfo.js';

const formatters = new Map<string, Intl.DateTimeFormat>();

function icuOffset(zone: string, at: number): number {
  let fmt = formatters.get(zone);
  if (!fmt) formatters.set(zone, (fmt = new Intl.DateTimeFormat('en-US', { timeZone: zone, hourCycle: 'h23', year: 'numeric', month: 'numeric', day: 'numeric', hour: 'numeric', minute: 'numeric', second: 'numeric' })));
  const f: Record<string, number> = {};
  for (const p of fmt.formatToParts(at)) if (p.type !== 'literal') f[p.type] = Number(p.value);
  return Date.UTC(f.year!, f.month! - 1, f.day!, f.hour!, f.minute!, f.second!) - Math.floor(at / 1000) * 1000;
}

// northern and southern DST, half and quarter hours, no DST, negative DST (Dublin), DST abolished
const ZONES = [
  'Europe/Amsterdam',
  'Europe/London',
  'Europe/Dublin',
  'America/New_York',
  'America/Sao_Paulo',
  'America/St_Johns',
  'Australia/Sydney',
  'Australia/Lord_Howe',
  'Asia/Kolkata',
  'Asia/Kathmandu',
  'Pacific/Chatham',
  'Africa/Casablanca',
  'Antarctica/Troll',
  'UTC',
];

const HOUR = 3_600_000;

describe('zone offsets from the tz database', () => {
  it('agree with ICU every 3 hours of 2024–2027 and at every hour around each change', () => {
    for (const zone of ZONES) {
      const rules = loadZoneRules(zone);
      expect(rules, zone).not.toBeNull();
      const from = Date.UTC(2024, 0, 1);
      const to = Date.UTC(2028, 0, 1);
      let changes = 0;
      let last = rules!.offsetAt(from);
      for (let at = from; at < to; at += 3 * HOUR) {
        const ours = rules!.offsetAt(at);
        expect(ours, `${zone} at ${new Date(at).toISOString()}`).toBe(icuOffset(zone, at));
        if (ours !== last) {
          changes++;
          // the switch itself, to the minute
          for (let m = at - 3 * HOUR; m <= at; m += 60_000) expect(rules!.offsetAt(m), `${zone} at ${new Date(m).toISOString()}`).toBe(icuOffset(zone, m));
        }
        last = ours;
      }
      if (zone === 'Europe/Amsterdam' || zone === 'Australia/Sydney') expect(changes, zone).toBe(8);
    }
  });

  it('agree with ICU past the last transition of the file, where the POSIX footer rule applies (2040–2045)', () => {
    for (const zone of ['Europe/Amsterdam', 'America/New_York', 'Australia/Sydney', 'Australia/Lord_Howe', 'Pacific/Chatham']) {
      const rules = loadZoneRules(zone)!;
      for (let at = Date.UTC(2040, 0, 1); at < Date.UTC(2046, 0, 1); at += 5 * HOUR) {
        expect(rules.offsetAt(at), `${zone} at ${new Date(at).toISOString()}`).toBe(icuOffset(zone, at));
      }
    }
  });

  it('agree with ICU on historical dates (1970–2023), sampled', () => {
    for (const zone of ZONES) {
      const rules = loadZoneRules(zone)!;
      for (let at = Date.UTC(1970, 0, 1); at < Date.UTC(2024, 0, 1); at += 97 * HOUR + 1234) {
        expect(rules.offsetAt(at), `${zone} at ${new Date(at).toISOString()}`).toBe(icuOffset(zone, at));
      }
    }
  });

  it('Zone gives local fields and DST gaps as before, without ICU', () => {
    const z = new Zone('Europe/Amsterdam');
    expect(z.fields(Date.UTC(2026, 6, 1, 12, 30, 15))).toEqual({ year: 2026, month: 7, day: 1, hour: 14, minute: 30, second: 15 });
    // spring forward 2026-03-29: 02:30 does not exist, the switch (01:00 UTC) is used
    expect(z.toUtc({ year: 2026, month: 3, day: 29 }, 150)).toEqual({ at: Date.UTC(2026, 2, 29, 1, 0), dst: 'gap' });
    // fall back 2026-10-25: 02:30 occurs twice, the first one (00:30 UTC) is used
    expect(z.toUtc({ year: 2026, month: 10, day: 25 }, 150)).toEqual({ at: Date.UTC(2026, 9, 25, 0, 30), dst: 'overlap' });
  });

  it('parses POSIX TZ rules of every form', () => {
    const cet = parsePosixTz('CET-1CEST,M3.5.0,M10.5.0/3');
    expect(cet.std).toBe(3600);
    expect(cet.dst).toBe(7200);
    // 2041-03-31 is the last Sunday of March: DST from 01:00 UTC
    expect(cet.offsetAt(Date.UTC(2041, 2, 31, 0, 59) / 1000)).toBe(3600);
    expect(cet.offsetAt(Date.UTC(2041, 2, 31, 1, 0) / 1000)).toBe(7200);
    expect(parsePosixTz('<+0530>-5:30').offsetAt(0)).toBe(19_800);
    expect(parsePosixTz('EST5').offsetAt(0)).toBe(-18_000);
    // Julian day forms: J60 is March 1 every year; zero-based 59 is Feb 29 in a leap year, March 1 otherwise
    const j = parsePosixTz('XXX0YYY,J60/0,J300/0');
    expect(j.offsetAt(Date.UTC(2040, 1, 29, 12) / 1000)).toBe(0);
    expect(j.offsetAt(Date.UTC(2040, 2, 1, 0) / 1000)).toBe(3600);
    const n = parsePosixTz('XXX0YYY,59/0,299/0');
    expect(n.offsetAt(Date.UTC(2040, 1, 28, 23) / 1000)).toBe(0);
    expect(n.offsetAt(Date.UTC(2040, 1, 29, 0) / 1000)).toBe(3600);
    expect(n.offsetAt(Date.UTC(2041, 1, 28, 23) / 1000)).toBe(0);
    expect(n.offsetAt(Date.UTC(2041, 2, 1, 0) / 1000)).toBe(3600);
    // RFC 8536 extension: times past 24 h and negative ones (Greenland, Jerusalem-style rules)
    const ext = parsePosixTz('<-02>2<-01>,M3.5.0/-1,M10.5.0/0');
    // -1:00 on Sunday 2041-03-31 is 23:00 local (-02) on the 30th: 01:00 UTC on the 31st
    expect(ext.offsetAt(Date.UTC(2041, 2, 31, 0, 59) / 1000)).toBe(-7200);
    expect(ext.offsetAt(Date.UTC(2041, 2, 31, 1, 0) / 1000)).toBe(-3600);
    expect(ext.offsetAt(Date.UTC(2041, 2, 31, 1, 0) / 1000)).toBe(icuOffset('America/Nuuk', Date.UTC(2041, 2, 31, 1, 0)) / 1000);
    // a change one year's rule puts in the neighbouring year: DST from 02:00 UTC on Jan 1 (−1:00 on Jan 1, local standard time)
    const early = parsePosixTz('AAA3BBB,J1/-1,J300');
    expect(early.offsetAt(Date.UTC(2023, 0, 1, 1, 59) / 1000)).toBe(-10_800);
    expect(early.offsetAt(Date.UTC(2023, 0, 1, 2, 0) / 1000)).toBe(-7200);
    // RFC 8536 §3.3.1: daylight time all year
    const permanent = parsePosixTz('EST5EDT,0/0,J365/25');
    for (const at of [Date.UTC(2030, 0, 1, 5, 0), Date.UTC(2030, 6, 1), Date.UTC(2030, 11, 31, 23)]) expect(permanent.offsetAt(at / 1000)).toBe(-14_400);
    for (const bad of ['', 'C', 'CET-1CEST,M13.1.0,M10.5.0', 'CET-1CEST,M3.5.0', 'CET-1CEST,M3.5.0,M10.5.0 trailing', 'CET-1CEST,J0,J5']) {
      expect(() => parsePosixTz(bad), bad).toThrow(/POSIX TZ rule/);
    }
  });

  it('refuses names outside the zone directory and files that are not TZif; Zone then falls back to ICU', () => {
    expect(loadZoneRules('../../etc/passwd')).toBeNull();
    expect(loadZoneRules('/etc/passwd')).toBeNull();
    expect(loadZoneRules('Europe/..')).toBeNull();
    expect(loadZoneRules('Not/A_Zone')).toBeNull();
    // files of the directory that are not zones: leap-second and POSIX variants, the host's localtime
    for (const name of ['right/Europe/Amsterdam', 'posix/Europe/Amsterdam', 'localtime', 'posixrules', 'Factory']) expect(loadZoneRules(name), name).toBeNull();
    const dir = mkdtempSync(join(tmpdir(), 'zoneinfo-'));
    writeFileSync(join(dir, 'Broken'), 'not a tzif file at all, not even close to 44 bytes long......');
    expect(loadZoneRules('Broken', dir)).toBeNull();
    const amsterdam = readFileSync(join(ZONEINFO_DIR, 'Europe/Amsterdam'));
    expect(() => parseTzif(amsterdam.subarray(0, 200))).toThrow(/TZif/);
    // a zone the directory lacks (an empty one here) still works, through ICU
    const viaIcu = new Zone('Europe/Amsterdam', dir);
    for (const at of [Date.UTC(2026, 0, 1), Date.UTC(2026, 6, 1)]) expect(viaIcu.offset(at)).toBe(icuOffset('Europe/Amsterdam', at));
  });
});
