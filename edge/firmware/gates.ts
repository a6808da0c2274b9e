/**
 * City safety for firmware updates (issue 17 Deliver 5), as pure functions of the clock, the
 * configuration and what the control plane says of a device: whether a job may take its device
 * out of service now, and if not, why in words (the job's `waiting`, the report, the event).
 *
 * - Lights update by day (sunrise + dayMargin .. sunset − dayMargin at the gateway's lat/lon, the
 *   astronomical clock of edge/control/sun.ts) or inside one of firmware.lights.windows, and never
 *   more than firmware.lights.maxGroupShare of one group at once (at least one light), so no street
 *   goes dark; a technician's override holds a light.
 * - Traffic controllers only with allowCommands (checked when the deployment is accepted), only
 *   inside one of firmware.traffic.windows (none: never), never while a program request is active.
 * - Every device: inside one of the deployment's maintenance windows when it names any.
 */
import type { Config } from '../config/schema.js';
import { sunDay } from '../control/sun.js';
import { zoneOffset } from '../timeFormat.js';
import type { GateVerdict, TimeWindow } from './types.js';

const MINUTE = 60_000;
const DAY = 86_400_000;
const DAY_NAMES = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'] as const;

/** minutes since local midnight of "HH:MM" */
function minutesOf(hhmm: string): number {
  const [h, m] = hhmm.split(':').map(Number);
  return (h ?? 0) * 60 + (m ?? 0);
}

/**
 * Whether `now` is inside `w` in the zone `timezone`. A window past midnight (`to` < `from`)
 * belongs to the day it starts on; `from` = `to` is the whole day.
 */
export function insideWindow(w: TimeWindow, now: number, timezone: string): boolean {
  const local = now + zoneOffset(timezone)(now);
  const minute = Math.floor((((local % DAY) + DAY) % DAY) / MINUTE);
  const weekday = new Date(Math.floor(local / DAY) * DAY).getUTCDay();
  const from = minutesOf(w.from);
  const to = minutesOf(w.to);
  const dayOk = (d: number) => !w.days || w.days.length === 0 || w.days.includes(DAY_NAMES[((d % 7) + 7) % 7]!);
  if (from === to) return dayOk(weekday);
  if (from < to) return minute >= from && minute < to && dayOk(weekday);
  // past midnight: the evening part is today's window, the morning part yesterday's
  if (minute >= from) return dayOk(weekday);
  if (minute < to) return dayOk(weekday - 1);
  return false;
}

export function insideAny(windows: readonly TimeWindow[], now: number, timezone: string): boolean {
  return windows.some((w) => insideWindow(w, now, timezone));
}

export function describeWindows(windows: readonly TimeWindow[]): string {
  return windows.map((w) => `${w.from}-${w.to}${w.days && w.days.length > 0 ? ` ${w.days.join(',')}` : ''}`).join(', ');
}

/** Daylight at the gateway's position: `ok`, or when it begins next (ms UTC), or null when the position is unknown. */
export function daylight(lat: number | undefined, lon: number | undefined, now: number, marginMs: number): { ok: boolean; next: number | null } | null {
  if (lat === undefined || lon === undefined) return null;
  let next: number | null = null;
  // yesterday, today and tomorrow in UTC cover every local day the instant can belong to
  for (let d = -1; d <= 1; d++) {
    const t = new Date(now + d * DAY);
    const day = sunDay(lat, lon, { year: t.getUTCFullYear(), month: t.getUTCMonth() + 1, day: t.getUTCDate() });
    // the first or last day of the midnight sun has one real event: the other end of its daylight is the day's edge
    const from = day.sunrise.kind === 'event' ? day.sunrise.at + marginMs : day.sunrise.kind === 'polarDay' ? day.solarNoon - DAY / 2 : null;
    const to = day.sunset.kind === 'event' ? day.sunset.at - marginMs : day.sunset.kind === 'polarDay' ? day.solarNoon + DAY / 2 : null;
    if (from === null || to === null) continue;
    if (from >= to) continue;
    if (now >= from && now < to) return { ok: true, next: null };
    if (from > now && (next === null || from < next)) next = from;
  }
  return { ok: false, next };
}

/** What a gate needs to know of a device. */
export interface GatedDevice {
  id: string;
  kind: 'lighting' | 'traffic' | 'other';
  groups: readonly string[];
  /** traffic controllers: devices.yaml allowCommands now (a configuration change may have taken it away) */
  allowCommands?: boolean;
}

export interface GateInputs {
  now: number;
  config: Pick<Config, 'gateway' | 'firmware'>;
  /** the deployment's maintenance windows */
  windows: readonly TimeWindow[];
  /** the control plane's reason to hold the device (override, program request), or null */
  hold: string | null;
}

/** Whether the device may be taken out of service now (time of day, windows, holds); the caps are counted apart (caps.ts). */
export function gate(dev: GatedDevice, i: GateInputs): GateVerdict {
  const { now, config } = i;
  const tz = config.gateway.timezone;
  if (i.windows.length > 0 && !insideAny(i.windows, now, tz)) {
    return { ok: false, waiting: `outside the deployment's maintenance windows (${describeWindows(i.windows)}, ${tz})` };
  }
  if (i.hold) return { ok: false, waiting: i.hold };
  const fw = config.firmware;
  if (dev.kind === 'lighting') {
    if (insideAny(fw.lights.windows, now, tz)) return { ok: true };
    if (fw.lights.byDay) {
      const d = daylight(config.gateway.lat, config.gateway.lon, now, fw.lights.dayMargin);
      if (d === null) {
        return { ok: false, waiting: 'lights update by day, but gateway.lat/lon are not set: set them, or give firmware.lights.windows' };
      }
      if (d.ok) return { ok: true };
      return {
        ok: false,
        waiting: `night: lights update by day${d.next !== null ? ` (from ${new Date(d.next).toISOString()})` : ''}${fw.lights.windows.length > 0 ? ` or in ${describeWindows(fw.lights.windows)}` : ''}`,
        ...(d.next !== null ? { retryAt: d.next } : {}),
      };
    }
    return { ok: false, waiting: fw.lights.windows.length > 0 ? `outside firmware.lights.windows (${describeWindows(fw.lights.windows)}, ${tz})` : 'lights may not update: firmware.lights.byDay is off and no firmware.lights.windows are set' };
  }
  if (dev.kind === 'traffic') {
    if (dev.allowCommands === false) return { ok: false, waiting: 'allowCommands is false in devices.yaml: this traffic controller takes no commands, updates included' };
    if (fw.traffic.windows.length === 0) return { ok: false, waiting: 'traffic controllers update only inside firmware.traffic.windows, and none is set' };
    if (!insideAny(fw.traffic.windows, now, tz)) return { ok: false, waiting: `outside firmware.traffic.windows (${describeWindows(fw.traffic.windows)}, ${tz})` };
  }
  return { ok: true };
}

/** How many lights of a group of `size` lights may be out of service at once. */
export function groupAllowance(size: number, share: number): number {
  return Math.max(1, Math.floor(size * share));
}
