/**
 * Time-zone offsets from the system's tz database (/usr/share/zoneinfo, RFC 8536 TZif files), the
 * same data glibc uses for local time. Reading it directly keeps ICU out of the gateway: the first
 * Intl.DateTimeFormat with a timeZone pages in about 10 MB of ICU data that a cabinet gateway
 * cannot spare. Instants after a file's last transition follow its footer, a POSIX TZ rule
 * ("CET-1CEST,M3.5.0,M10.5.0/3"), as slim TZif files rely on it for every year after the last
 * rule change. A zone without a readable file returns null: the caller falls back to Intl.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export const ZONEINFO_DIR = process.env.TZDIR ?? '/usr/share/zoneinfo';

export interface ZoneRules {
  /** UTC offset (local minus UTC) in ms at an instant (ms since the epoch). */
  offsetAt(at: number): number;
}

/** "Europe/Amsterdam", "UTC", "Etc/GMT+5": path segments of letters, digits, _ + - only. */
const ZONE_NAME = /^[A-Za-z0-9_+-]+(?:\/[A-Za-z0-9_+-]+)*$/;
/**
 * Files of the directory that are not IANA zones: the leap-second (right/) and POSIX (posix/)
 * variants, the host's own localtime, posixrules and Factory. ICU refuses them too.
 */
const NOT_A_ZONE = /^(?:right\/|posix\/|localtime$|posixrules$|Factory$)/;

const cache = new Map<string, ZoneRules | null>();

/** The rules of an IANA zone from `dir`, or null when it has no readable, valid TZif file. */
export function loadZoneRules(name: string, dir: string = ZONEINFO_DIR): ZoneRules | null {
  const key = `${dir}\0${name}`;
  const cached = cache.get(key);
  if (cached !== undefined) return cached;
  let rules: ZoneRules | null = null;
  if (ZONE_NAME.test(name) && !NOT_A_ZONE.test(name)) {
    try {
      rules = parseTzif(readFileSync(join(dir, name)));
    } catch {
      rules = null;
    }
  }
  cache.set(key, rules);
  return rules;
}

interface LocalType {
  /** seconds east of UTC */
  utoff: number;
}

class TzifRules implements ZoneRules {
  constructor(
    /** transition instants, seconds since the epoch, ascending */
    private readonly times: Float64Array,
    /** the local type index in force from each transition */
    private readonly idx: Uint8Array,
    private readonly types: readonly LocalType[],
    /** for instants at or after the last transition (and for a file without any) */
    private readonly footer: PosixRule | null,
  ) {}

  offsetAt(at: number): number {
    const t = Math.floor(at / 1000);
    const times = this.times;
    const n = times.length;
    if (n === 0) return (this.footer ? this.footer.offsetAt(t) : (this.types[0]?.utoff ?? 0)) * 1000;
    if (t < (times[0] as number)) return (this.types[0] as LocalType).utoff * 1000;
    if (t >= (times[n - 1] as number) && this.footer) return this.footer.offsetAt(t) * 1000;
    let lo = 0;
    let hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if ((times[mid] as number) <= t) lo = mid;
      else hi = mid - 1;
    }
    return (this.types[this.idx[lo] as number] as LocalType).utoff * 1000;
  }
}

/** Parses a TZif file (versions 1 to 4); throws on anything malformed. */
export function parseTzif(buf: Buffer): ZoneRules {
  const first = readBlock(buf, 0, 4);
  if (first.version === 0) return new TzifRules(first.times, first.idx, first.types, null);
  // Version 2+: a second header and data block with 64-bit times, then the footer.
  const second = readBlock(buf, first.end, 8);
  if (buf[second.end] !== 0x0a) throw new Error('TZif: no footer');
  const close = buf.indexOf(0x0a, second.end + 1);
  if (close < 0) throw new Error('TZif: unterminated footer');
  const tz = buf.toString('latin1', second.end + 1, close);
  return new TzifRules(second.times, second.idx, second.types, tz === '' ? null : parsePosixTz(tz));
}

function readBlock(buf: Buffer, at: number, timeSize: 4 | 8): { version: number; times: Float64Array; idx: Uint8Array; types: LocalType[]; end: number } {
  if (buf.length < at + 44 || buf.toString('latin1', at, at + 4) !== 'TZif') throw new Error('TZif: bad magic');
  const v = buf[at + 4] as number;
  const version = v === 0 ? 0 : v - 0x30;
  if (version < 0 || version > 9) throw new Error('TZif: bad version');
  const [isutcnt, isstdcnt, leapcnt, timecnt, typecnt, charcnt] = [0, 1, 2, 3, 4, 5].map((i) => buf.readUInt32BE(at + 20 + 4 * i)) as [number, number, number, number, number, number];
  if (typecnt === 0) throw new Error('TZif: no local time types');
  // leap-second files ("right/") count seconds differently from the rest of the gateway
  if (leapcnt > 0) throw new Error('TZif: leap-second data is not supported');
  let p = at + 44;
  const size = timecnt * timeSize + timecnt + typecnt * 6 + charcnt + leapcnt * (timeSize + 4) + isstdcnt + isutcnt;
  if (buf.length < p + size) throw new Error('TZif: truncated');
  const times = new Float64Array(timecnt);
  for (let i = 0; i < timecnt; i++, p += timeSize) times[i] = timeSize === 4 ? buf.readInt32BE(p) : Number(buf.readBigInt64BE(p));
  const idx = new Uint8Array(buf.subarray(p, p + timecnt));
  p += timecnt;
  const types: LocalType[] = [];
  for (let i = 0; i < typecnt; i++, p += 6) types.push({ utoff: buf.readInt32BE(p) });
  for (const i of idx) if (i >= typecnt) throw new Error('TZif: bad type index');
  return { version, times, idx, types, end: at + 44 + size };
}

// ---- POSIX TZ rules (the footer) -----------------------------------------------------------

interface RuleDate {
  kind: 'J' | 'n' | 'M';
  /** J: 1..365 (no Feb 29); n: 0..365; M: month */
  a: number;
  /** M: week 1..5 (5: last) */
  w: number;
  /** M: weekday 0..6 (Sunday 0) */
  d: number;
  /** local time of the change, seconds (may be negative or past 24 h, RFC 8536 §3.3.1) */
  time: number;
}

/** A POSIX TZ rule: a standard offset and optionally daylight time between two dates. */
export class PosixRule {
  constructor(
    /** seconds east of UTC */
    readonly std: number,
    readonly dst: number | null,
    private readonly start: RuleDate | null,
    private readonly end: RuleDate | null,
  ) {}

  /** Offset in seconds at an instant in seconds: that of the latest change at or before it. */
  offsetAt(t: number): number {
    if (this.dst === null || !this.start || !this.end) return this.std;
    // A rule's time may lie up to 167 h from its date (RFC 8536 §3.3.1), so a change of one
    // year's rule can fall in the next or the previous year: look at three years of changes.
    const year = new Date(t * 1000).getUTCFullYear();
    let latest = -Infinity;
    let offset = this.std;
    for (let y = year - 1; y <= year + 1; y++) {
      // the start is given in standard time, the end in daylight time
      const start = ruleInstant(y, this.start) - this.std;
      const end = ruleInstant(y, this.end) - this.dst;
      if (end <= t && end > latest) [latest, offset] = [end, this.std];
      // a start at the very instant of an end wins: "EST5EDT,0/0,J365/25" is daylight time all year
      if (start <= t && start >= latest) [latest, offset] = [start, this.dst];
    }
    return offset;
  }
}

/** Parses "CET-1CEST,M3.5.0,M10.5.0/3", "<+0530>-5:30", "EST5EDT,M3.2.0,M11.1.0", … */
export function parsePosixTz(tz: string): PosixRule {
  let i = 0;
  const fail = (): never => {
    throw new Error(`POSIX TZ rule: cannot parse "${tz}"`);
  };
  const name = (): void => {
    if (tz[i] === '<') {
      const close = tz.indexOf('>', i);
      if (close < 0) fail();
      i = close + 1;
    } else {
      const s = i;
      while (i < tz.length && /[A-Za-z]/.test(tz[i] as string)) i++;
      if (i - s < 3) fail();
    }
  };
  /** [+-]hh[:mm[:ss]] in seconds */
  const hms = (): number => {
    const m = /^([+-]?)(\d{1,3})(?::(\d{1,2}))?(?::(\d{1,2}))?/.exec(tz.slice(i));
    if (!m) return fail();
    i += m[0].length;
    const v = Number(m[2]) * 3600 + Number(m[3] ?? 0) * 60 + Number(m[4] ?? 0);
    return m[1] === '-' ? -v : v;
  };
  const date = (): RuleDate => {
    let r: RuleDate;
    const rest = tz.slice(i);
    let m: RegExpExecArray | null;
    if ((m = /^M(\d{1,2})\.(\d)\.(\d)/.exec(rest))) {
      r = { kind: 'M', a: Number(m[1]), w: Number(m[2]), d: Number(m[3]), time: 7200 };
      if (r.a < 1 || r.a > 12 || r.w < 1 || r.w > 5 || r.d > 6) fail();
    } else if ((m = /^J(\d{1,3})/.exec(rest))) {
      r = { kind: 'J', a: Number(m[1]), w: 0, d: 0, time: 7200 };
      if (r.a < 1 || r.a > 365) fail();
    } else if ((m = /^(\d{1,3})/.exec(rest))) {
      r = { kind: 'n', a: Number(m[1]), w: 0, d: 0, time: 7200 };
      if (r.a > 365) fail();
    } else {
      return fail();
    }
    i += m[0].length;
    if (tz[i] === '/') {
      i++;
      r.time = hms();
    }
    return r;
  };
  name();
  // POSIX offsets are west of UTC: "CET-1" is UTC+1.
  const std = -hms() || 0;
  if (i === tz.length) return new PosixRule(std, null, null, null);
  name();
  let dst = std + 3600;
  if (i < tz.length && tz[i] !== ',') dst = -hms() || 0;
  if (tz[i] !== ',') fail();
  i++;
  const start = date();
  if (tz[i] !== ',') fail();
  i++;
  const end = date();
  if (i !== tz.length) fail();
  return new PosixRule(std, dst, start, end);
}

const DAY_S = 86_400;

/** The rule date of a year as seconds since the epoch, local clock read as UTC. */
function ruleInstant(year: number, r: RuleDate): number {
  const jan1 = Date.UTC(year, 0, 1) / 1000;
  let day: number;
  if (r.kind === 'J') {
    // 1..365, Feb 29 never counted
    const leap = (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;
    day = r.a - 1 + (leap && r.a > 59 ? 1 : 0);
  } else if (r.kind === 'n') {
    day = r.a;
  } else {
    const first = Date.UTC(year, r.a - 1, 1) / 1000;
    const firstDow = new Date(first * 1000).getUTCDay();
    let dom = 1 + ((r.d - firstDow + 7) % 7) + (r.w - 1) * 7;
    const days = new Date(Date.UTC(year, r.a, 0)).getUTCDate();
    while (dom > days) dom -= 7;
    day = (first - jan1) / DAY_S + dom - 1;
  }
  return jan1 + day * DAY_S + r.time;
}
