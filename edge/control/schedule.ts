/**
 * Dimming schedules: programs of steps ("HH:MM" local time, or sunrise/sunset ± offset) per group,
 * evaluated on the gateway in its IANA time zone, so the city stays lit as planned while the
 * uplink is down.
 *
 * Semantics (README-notes.md has the reasoning):
 * - A step belongs to a local calendar date (its anchor date); `days` filters anchor dates. A
 *   "sunset+6h" step of a Friday fires early on Saturday and is a Friday step.
 * - "HH:MM" is wall-clock time in the gateway's zone. On a spring-forward day a time that does
 *   not exist fires at the first valid instant after it (the switch itself: "02:30" → 03:00 in
 *   Europe/Amsterdam); on a fall-back day a time that occurs twice fires once, at its first
 *   occurrence. Zone offsets come from the system's tz database (edge/zoneinfo.ts), Intl where it lacks one.
 * - A sun-anchored step is skipped on a day without that event (polar night, midnight sun).
 * - The level in force at an instant is that of the latest step fired at or before it, looking
 *   back across days (up to LOOKBACK_DAYS): in a polar night the last sunset step stays in force,
 *   under the midnight sun the last sunrise step. Steps firing at the same instant are ordered by
 *   schedule (config order) and step index; the last one wins.
 */
import type { z } from 'zod';
import type { gatewaySchema, scheduleSchema } from '../config/schema.js';
import { ControlError } from './errors.js';
import { sunDay, type CalendarDate, type SunDay } from './sun.js';
import { zoneOffset } from '../timeFormat.js';

export type ScheduleConfig = z.output<typeof scheduleSchema>;
export type GatewaySite = Pick<z.output<typeof gatewaySchema>, 'lat' | 'lon' | 'timezone'>;

const MINUTE = 60_000;
const HOUR = 3_600_000;
const DAY = 86_400_000;
/** How far back levelAt looks for the step in force: longer than any polar night. */
export const LOOKBACK_DAYS = 400;
const WEEKDAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'] as const;

export interface ScheduleLevel {
  level: number;
  source: { schedule: string; step: number };
  /** when that step fired (ms UTC) */
  since: number;
}

/** One firing of a step. `dst`: the step's local time did not exist ('gap') or occurred twice ('overlap') that day. */
export interface Transition {
  at: number;
  level: number;
  schedule: string;
  step: number;
  /** the step as written: "23:00", "sunset+15m" */
  stepAt: string;
  /** the anchor date in local time */
  date: CalendarDate;
  dst?: 'gap' | 'overlap';
}

export interface SkippedStep {
  schedule: string;
  step: number;
  stepAt: string;
  reason: 'polarDay' | 'polarNight';
}

/** A parsed step: when it fires relative to its anchor date. */
export type StepAnchor = { kind: 'clock'; minutes: number } | { kind: 'sunrise' | 'sunset'; offsetMs: number };
export interface ScheduleStep {
  index: number;
  text: string;
  level: number;
  anchor: StepAnchor;
}
/** A schedule as parsed by createScheduler. */
export interface ScheduleProgram {
  id: string;
  order: number;
  groups: ReadonlySet<string>;
  days: ReadonlySet<number> | null;
  steps: ScheduleStep[];
}

const STEP_RE = /^(?:(\d\d):(\d\d)|(sunset|sunrise)(?:([+-])(\d+)(m|h))?)$/;

function parseStep(text: string, level: number, index: number, path: string): ScheduleStep {
  const m = STEP_RE.exec(text);
  if (!m) throw new ControlError('E_CONFIG', `${path}.at: expected "HH:MM", "sunset", "sunrise" or an offset like "sunset+15m", got "${text}"`);
  if (m[1] !== undefined) {
    const h = Number(m[1]);
    const min = Number(m[2]);
    if (h > 23 || min > 59) throw new ControlError('E_CONFIG', `${path}.at: expected a time 00:00..23:59, got "${text}"`);
    return { index, text, level, anchor: { kind: 'clock', minutes: h * 60 + min } };
  }
  const amount = m[5] === undefined ? 0 : Number(m[5]) * (m[6] === 'h' ? HOUR : MINUTE);
  return { index, text, level, anchor: { kind: m[3] as 'sunset' | 'sunrise', offsetMs: m[4] === '-' ? -amount : amount } };
}

/**
 * Wall-clock arithmetic in one IANA zone. Offsets come from the system's tz database (edge/zoneinfo.ts);
 * only a zone without a TZif file there falls back to Intl.DateTimeFormat (ICU).
 */
export class Zone {
  private readonly offsetOf: (at: number) => number;

  /** `zoneDir`: where the TZif files are (default /usr/share/zoneinfo, or $TZDIR) */
  constructor(
    readonly name: string,
    zoneDir?: string,
  ) {
    this.offsetOf = zoneOffset(name, zoneDir);
  }

  /** Local date and time of an instant. */
  fields(at: number): CalendarDate & { hour: number; minute: number; second: number } {
    const d = new Date(Math.floor(at / 1000) * 1000 + this.offsetOf(at));
    return { year: d.getUTCFullYear(), month: d.getUTCMonth() + 1, day: d.getUTCDate(), hour: d.getUTCHours(), minute: d.getUTCMinutes(), second: d.getUTCSeconds() };
  }

  /** UTC offset in ms at an instant (local minus UTC). */
  offset(at: number): number {
    return this.offsetOf(at);
  }

  dateOf(at: number): CalendarDate {
    const { year, month, day } = this.fields(at);
    return { year, month, day };
  }

  /** The instant of a local wall-clock time; see the module comment for gaps and overlaps. */
  toUtc(date: CalendarDate, minutes: number): { at: number; dst?: 'gap' | 'overlap' } {
    const local = Date.UTC(date.year, date.month - 1, date.day) + minutes * MINUTE;
    // every zone is within UTC−12..+14, so the offsets around `local` are all candidates
    const before = this.offset(local - 14 * HOUR);
    const after = this.offset(local + 14 * HOUR);
    const valid = [...new Set([before, after])].map((o) => local - o).filter((u) => local - this.offset(u) === u);
    if (valid.length > 1) return { at: Math.min(...valid), dst: 'overlap' };
    if (valid.length === 1) return { at: valid[0]! };
    // a gap: the first valid instant after it is the switch itself, between these two
    return { at: this.switchBetween(local - Math.max(before, after), local - Math.min(before, after)), dst: 'gap' };
  }

  /** The first instant in (lo, hi] with the offset in force at hi (one offset change in between). */
  switchBetween(lo: number, hi: number): number {
    const late = this.offset(hi);
    while (hi - lo > 1) {
      const mid = Math.floor((lo + hi) / 2);
      if (this.offset(mid) === late) hi = mid;
      else lo = mid;
    }
    return hi;
  }
}

export function addDays(date: CalendarDate, n: number): CalendarDate {
  const d = new Date(Date.UTC(date.year, date.month - 1, date.day + n));
  return { year: d.getUTCFullYear(), month: d.getUTCMonth() + 1, day: d.getUTCDate() };
}

export function weekday(date: CalendarDate): (typeof WEEKDAYS)[number] {
  return WEEKDAYS[new Date(Date.UTC(date.year, date.month - 1, date.day)).getUTCDay()]!;
}

/** Orders firings: by instant, then schedule config order, then step index. */
function compare(a: { at: number; order: number; step: number }, b: { at: number; order: number; step: number }): number {
  return a.at - b.at || a.order - b.order || a.step - b.step;
}

type Firing = Transition & { order: number };

/** Evaluates the configured schedules; build it with createScheduler. */
export class Scheduler {
  readonly zone: Zone;
  private readonly programs: ScheduleProgram[];
  private readonly sunCache = new Map<number, SunDay>();
  /** firings per group and anchor date: they depend on nothing else, and levelAt runs per device */
  private readonly firingCache = new Map<string, { firings: Firing[]; skipped: SkippedStep[] }>();
  /** days around an anchor date within which its steps may fire (offsets, polar sun events) */
  private readonly spanDays: number;

  constructor(
    readonly site: GatewaySite,
    programs: ScheduleProgram[],
  ) {
    this.zone = new Zone(site.timezone);
    this.programs = programs;
    let maxOffset = 0;
    for (const p of programs) for (const s of p.steps) if (s.anchor.kind !== 'clock') maxOffset = Math.max(maxOffset, Math.abs(s.anchor.offsetMs));
    this.spanDays = Math.ceil(maxOffset / DAY) + 2;
  }

  /** The groups some schedule covers. */
  groups(): string[] {
    return [...new Set(this.programs.flatMap((p) => [...p.groups]))];
  }

  hasSchedule(groupId: string): boolean {
    return this.programs.some((p) => p.groups.has(groupId));
  }

  /** Sunrise and sunset of a local date at the gateway, or null without lat/lon. */
  sunOn(date: CalendarDate): SunDay | null {
    if (this.site.lat === undefined || this.site.lon === undefined) return null;
    const key = Date.UTC(date.year, date.month - 1, date.day);
    let day = this.sunCache.get(key);
    if (!day) {
      if (this.sunCache.size > 2000) this.sunCache.clear();
      day = sunDay(this.site.lat, this.site.lon, date);
      this.sunCache.set(key, day);
    }
    return day;
  }

  /** The firings of the steps anchored on one local date, unsorted, and the sun steps skipped that day (cached). */
  private firingsOn(groupId: string, date: CalendarDate): { firings: Firing[]; skipped: SkippedStep[] } {
    const key = `${groupId}\u0000${date.year}-${date.month}-${date.day}`;
    let entry = this.firingCache.get(key);
    if (!entry) {
      if (this.firingCache.size > 4096) this.firingCache.clear();
      const skipped: SkippedStep[] = [];
      entry = { firings: this.computeFirings(groupId, date, skipped), skipped };
      this.firingCache.set(key, entry);
    }
    return entry;
  }

  private computeFirings(groupId: string, date: CalendarDate, skipped: SkippedStep[]): Firing[] {
    const out: Firing[] = [];
    const wd = WEEKDAYS.indexOf(weekday(date));
    for (const p of this.programs) {
      if (!p.groups.has(groupId) || (p.days !== null && !p.days.has(wd))) continue;
      for (const s of p.steps) {
        const base = { level: s.level, schedule: p.id, step: s.index, stepAt: s.text, date, order: p.order };
        if (s.anchor.kind === 'clock') {
          const { at, dst } = this.zone.toUtc(date, s.anchor.minutes);
          out.push(dst === undefined ? { ...base, at } : { ...base, at, dst });
          continue;
        }
        const event = this.sunOn(date)![s.anchor.kind];
        if (event.kind === 'event') out.push({ ...base, at: event.at + s.anchor.offsetMs });
        else skipped.push({ schedule: p.id, step: s.index, stepAt: s.text, reason: event.kind });
      }
    }
    return out;
  }

  /** Every step firing for the group with from <= at < to, in order. */
  transitions(groupId: string, from: number, to: number): Transition[] {
    if (!this.hasSchedule(groupId) || to <= from) return [];
    const out: Firing[] = [];
    const last = addDays(this.zone.dateOf(to), this.spanDays);
    for (let d = addDays(this.zone.dateOf(from), -this.spanDays); ; d = addDays(d, 1)) {
      for (const f of this.firingsOn(groupId, d).firings) if (f.at >= from && f.at < to) out.push(f);
      if (d.year === last.year && d.month === last.month && d.day === last.day) break;
    }
    return out.sort(compare).map(({ order: _order, ...t }) => ({ ...t, date: { ...t.date } }));
  }

  /** The first step firing strictly after `after`, looking ahead up to LOOKBACK_DAYS. */
  nextTransition(groupId: string, after: number): Transition | null {
    if (!this.hasSchedule(groupId)) return null;
    for (let days = 2; ; days *= 2) {
      const window = Math.min(days, LOOKBACK_DAYS);
      const next = this.transitions(groupId, after + 1, after + 1 + window * DAY)[0];
      if (next) return next;
      if (window >= LOOKBACK_DAYS) return null;
    }
  }

  /** The step in force at `at`: the latest firing at or before it, or null if none in LOOKBACK_DAYS. */
  levelAt(groupId: string, at: number): ScheduleLevel | null {
    if (!this.hasSchedule(groupId)) return null;
    const today = this.zone.dateOf(at);
    let best: Firing | null = null;
    for (let k = -this.spanDays; k <= LOOKBACK_DAYS; k++) {
      const date = addDays(today, -k);
      for (const f of this.firingsOn(groupId, date).firings) if (f.at <= at && (best === null || compare(f, best) > 0)) best = f;
      // no firing of an earlier anchor date can come after this bound
      const prev = addDays(date, -1);
      const bound = Date.UTC(prev.year, prev.month - 1, prev.day) + (this.spanDays + 1) * DAY;
      if (best !== null && best.at > bound) break;
    }
    return best && { level: best.level, source: { schedule: best.schedule, step: best.step }, since: best.at };
  }

  /** Sun-anchored steps that do not fire on a local date because the sun does not rise or set. */
  skippedOn(groupId: string, date: CalendarDate): SkippedStep[] {
    return this.firingsOn(groupId, date).skipped.map((k) => ({ ...k }));
  }
}

/** Builds a Scheduler from `schedules` and `gateway`; a sun-anchored step needs gateway lat/lon. */
export function createScheduler(schedules: readonly ScheduleConfig[], site: GatewaySite): Scheduler {
  const programs = schedules.map((s, i): ScheduleProgram => {
    const steps = s.steps.map((st, j) => parseStep(st.at, st.level, j, `schedules[${i}].steps[${j}]`));
    const sunStep = steps.find((st) => st.anchor.kind !== 'clock');
    if (sunStep && (site.lat === undefined || site.lon === undefined)) {
      throw new ControlError('E_CONFIG', `schedules[${i}].steps[${sunStep.index}].at: "${sunStep.text}" needs gateway.lat and gateway.lon`);
    }
    const days = s.days === undefined ? null : new Set(s.days.map((d) => WEEKDAYS.indexOf(d)));
    return { id: s.id, order: i, groups: new Set(s.groups), days, steps };
  });
  return new Scheduler(site, programs);
}

// ---------------------------------------------------------------------------------------
// `streetbox schedule preview --group <g> --days <n>`

const pad = (n: number): string => String(n).padStart(2, '0');

function formatOffset(ms: number): string {
  const m = Math.round(Math.abs(ms) / MINUTE);
  return `${ms < 0 ? '-' : '+'}${pad(Math.floor(m / 60))}:${pad(m % 60)}`;
}

function formatDate(d: CalendarDate): string {
  const wd = weekday(d);
  return `${wd[0]!.toUpperCase()}${wd.slice(1)} ${d.year}-${pad(d.month)}-${pad(d.day)}`;
}

/** "HH:MM +01:00" in the zone; with the date too when `withDate`. */
function formatLocal(zone: Zone, at: number, withDate = false): string {
  const f = zone.fields(at);
  const time = `${pad(f.hour)}:${pad(f.minute)} ${formatOffset(zone.offset(at))}`;
  return withDate ? `${formatDate(f)} ${time}` : time;
}

function sameDate(a: CalendarDate, b: CalendarDate): boolean {
  return a.year === b.year && a.month === b.month && a.day === b.day;
}

/**
 * A readable table of what the group's schedules do over `days` local days from `from`: per day
 * the sunrise and sunset, daylight-saving switches, each step firing in local time, and the
 * sun-anchored steps skipped on days without that event.
 */
export function formatPreview(s: Scheduler, groupId: string, from: number, days: number): string {
  const zone = s.zone;
  const { lat, lon } = s.site;
  const place = lat !== undefined && lon !== undefined ? ` · ${lat.toFixed(2)}, ${lon.toFixed(2)}` : '';
  const lines = [`Schedule preview: group "${groupId}" · ${zone.name}${place} · ${days} day(s) from ${formatLocal(zone, from, true)}`];
  if (!s.hasSchedule(groupId)) {
    lines.push('No schedule covers this group: it stays at its defaultLevel unless a command or override applies.');
    return lines.join('\n');
  }
  const start = s.levelAt(groupId, from);
  lines.push(
    start
      ? `In force at start: ${start.level} % (${start.source.schedule}.steps[${start.source.step}], since ${formatLocal(zone, start.since, true)})`
      : `In force at start: no step within ${LOOKBACK_DAYS} days (the group's defaultLevel applies)`,
  );
  const first = zone.dateOf(from);
  const end = zone.toUtc(addDays(first, days), 0).at;
  const all = s.transitions(groupId, from, end);
  for (let i = 0; i < days; i++) {
    const date = addDays(first, i);
    const dayStart = zone.toUtc(date, 0).at;
    const dayEnd = zone.toUtc(addDays(date, 1), 0).at;
    let head = formatDate(date);
    const sun = s.sunOn(date);
    if (sun) {
      const show = (e: SunDay['sunrise'], name: string): string => {
        if (e.kind !== 'event') return `no ${name} (${e.kind === 'polarDay' ? 'midnight sun' : 'polar night'})`;
        const on = zone.dateOf(e.at);
        const shift = Math.round((Date.UTC(on.year, on.month - 1, on.day) - Date.UTC(date.year, date.month - 1, date.day)) / DAY);
        return `${name} ${formatLocal(zone, e.at)}${shift === 0 ? '' : shift > 0 ? ' (next day)' : ' (day before)'}`;
      };
      head += `   ${show(sun.sunrise, 'sunrise')}   ${show(sun.sunset, 'sunset')}`;
    }
    const o0 = zone.offset(dayStart);
    const o1 = zone.offset(dayEnd - 1);
    if (o0 !== o1) {
      const at = zone.switchBetween(dayStart, dayEnd - 1);
      // the wall-clock reading at the switch, on the old offset: "02:00" forward, "03:00" back in Europe
      const wall = new Date(at + o0);
      const clockAt = `${pad(wall.getUTCHours())}:${pad(wall.getUTCMinutes())}`;
      head += `   clocks go ${o1 > o0 ? 'forward' : 'back'} at ${clockAt} (${formatOffset(o0)} → ${formatOffset(o1)})`;
    }
    lines.push('', head);
    for (const t of all) {
      if (!sameDate(zone.dateOf(t.at), date)) continue;
      const note =
        t.dst === 'gap'
          ? `   (${t.stepAt} does not exist today: fires at the first valid time after)`
          : t.dst === 'overlap'
            ? `   (${t.stepAt} occurs twice today: fires once, at the first)`
            : '';
      lines.push(`    ${formatLocal(zone, t.at)}  ${String(t.level).padStart(3)} %   ${t.schedule}.steps[${t.step}] ${t.stepAt}${note}`);
    }
    for (const k of s.skippedOn(groupId, date)) {
      const why = k.reason === 'polarDay' ? 'midnight sun: no sunrise or sunset today' : 'polar night: no sunrise or sunset today';
      lines.push(`    skipped           ${k.schedule}.steps[${k.step}] ${k.stepAt}   (${why})`);
    }
  }
  return lines.join('\n');
}
