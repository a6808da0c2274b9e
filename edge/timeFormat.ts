/**
 * One time format for people: ISO 8601 with the offset of the gateway's time zone
 * ("2026-12-04T13:20:13+01:00"), in the CLI, the log on a terminal and the status page.
 * Machine formats (exports, the API, the upstream) keep epoch ms and may add this next to it.
 * Offsets come from the system's tz database (edge/zoneinfo.ts); only a zone it lacks falls
 * back to Intl (ICU, about 10 MB once used).
 */
import { loadZoneRules } from './zoneinfo.js';

/** A zone's UTC offset (local minus UTC, ms) at an instant. */
export type OffsetFn = (at: number) => number;

const offsets = new Map<string, OffsetFn>();

/** The offset function of an IANA zone: the tz database's rules, ICU for a zone it lacks. */
export function zoneOffset(name: string, zoneDir?: string): OffsetFn {
  const key = `${zoneDir ?? ''}\0${name}`;
  let fn = offsets.get(key);
  if (!fn) {
    const rules = loadZoneRules(name, zoneDir);
    fn = rules ? (at) => rules.offsetAt(at) : intlOffset(name);
    offsets.set(key, fn);
  }
  return fn;
}

/** Offsets from ICU, for a zone the system's tz database lacks. */
function intlOffset(name: string): OffsetFn {
  const fmt = new Intl.DateTimeFormat('en-US', {
    timeZone: name,
    hourCycle: 'h23',
    year: 'numeric',
    month: 'numeric',
    day: 'numeric',
    hour: 'numeric',
    minute: 'numeric',
    second: 'numeric',
  });
  return (at) => {
    const f: Record<string, number> = {};
    for (const p of fmt.formatToParts(at)) if (p.type !== 'literal') f[p.type] = Number(p.value);
    return Date.UTC(f.year!, f.month! - 1, f.day!, f.hour!, f.minute!, f.second!) - Math.floor(at / 1000) * 1000;
  };
}

const pad = (n: number, w = 2): string => String(n).padStart(w, '0');

export interface IsoOptions {
  /** keep milliseconds (default false: seconds) */
  ms?: boolean;
}

/**
 * An instant as ISO 8601 local time with its offset in `zone` (default UTC):
 * `2026-12-04T13:20:13+01:00`; UTC itself is written `+00:00`, never `Z`, so every line
 * reads the same way.
 */
export function isoLocal(at: number, zone = 'UTC', opts: IsoOptions = {}): string {
  if (!Number.isFinite(at)) return String(at);
  const off = zone === 'UTC' ? 0 : zoneOffset(zone)(at);
  const d = new Date(at + off);
  const sign = off < 0 ? '-' : '+';
  const abs = Math.abs(Math.round(off / 60_000));
  const frac = opts.ms ? `.${pad(d.getUTCMilliseconds(), 3)}` : '';
  return (
    `${pad(d.getUTCFullYear(), 4)}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}` +
    `T${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}${frac}` +
    `${sign}${pad(Math.floor(abs / 60))}:${pad(abs % 60)}`
  );
}
