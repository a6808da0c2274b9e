/**
 * GET /api/v1/history?device=&point=|points=&from=&to=&buckets=: per bucket min, mean, max, last,
 * count and bad of a device's points over [from, to), computed in SQLite over the buffer
 * (Store.history, edge/store/history.ts), and the commands that mark its charts (when did the dim
 * happen, who sent it), and its alarms over the range as spans (Store.alarmSpans, from the
 * alarm.raised / alarm.cleared events). Permission `read`: whoever sees the latest values sees their history; raw
 * rows in bulk stay `pull` (/api/v1/readings). The work is bounded (HISTORY_LIMITS): at most 32
 * points, 2000 buckets, 400 days.
 */
import type { DeviceConfig } from '../../config/schema.js';
import { HISTORY_LIMITS, type AlarmSpans } from '../../store/api.js';
import { StoreError } from '../../store/errors.js';
import type { CommandRecord } from '../../store/types.js';
import { describedDevices } from '../deviceState.js';
import { badInput, notFound } from '../errors.js';
import { idParam, intParam, query } from '../http.js';
import type { Router } from '../router.js';
import type { RouteEnv } from './env.js';

export const DEFAULT_BUCKETS = 500;
/** from, when not given: a day before `to` */
export const DEFAULT_RANGE_MS = 86_400_000;
/** the last instant a JS Date holds (ECMA-262 §21.4.1.1) */
const MAX_TIME = 8.64e15;

// ISO 8601 extended format with an offset: 2026-12-04T13:20, …:05, …:05.250, then Z or ±hh:mm
const ISO = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,3}))?)?(?:(Z)|([+-])(\d{2}):(\d{2}))$/;

/** An ISO 8601 time with its offset, in ms; NaN for a date or time that does not exist (Feb 30, 25:00). */
function isoMs(text: string): number {
  const m = ISO.exec(text);
  if (!m) return NaN;
  const [y, mo, d, h, mi, s] = [1, 2, 3, 4, 5, 6].map((i) => Number(m[i] ?? 0)) as [number, number, number, number, number, number];
  const offH = Number(m[10] ?? 0);
  const offM = Number(m[11] ?? 0);
  const daysInMonth = new Date(Date.UTC(y, mo, 0)).getUTCDate();
  if (mo < 1 || mo > 12 || d < 1 || d > daysInMonth || h > 23 || mi > 59 || s > 59 || offH > 23 || offM > 59) return NaN;
  const offset = (m[9] === '-' ? -1 : 1) * (offH * 60 + offM) * 60_000;
  return Date.UTC(y, mo - 1, d, h, mi, s, Number((m[7] ?? '0').padEnd(3, '0'))) - offset;
}

/** A time parameter: ms since the epoch, or ISO 8601 with an offset; absent: undefined. */
function timeParam(q: Map<string, string>, name: string): number | undefined {
  const raw = q.get(name);
  if (raw === undefined) return undefined;
  const ms = /^\d{1,16}$/.test(raw) ? Number(raw) : isoMs(raw);
  if (!Number.isSafeInteger(ms) || ms < 0 || ms > MAX_TIME) {
    throw badInput(name, `expected ms since the epoch or an ISO 8601 time with its offset (2026-12-04T13:20:00+01:00), got ${JSON.stringify(raw.slice(0, 40))}`);
  }
  return ms;
}

/** point= (one) or points= (a comma-separated list, at most HISTORY_LIMITS.points); neither: undefined (every point). */
function pointsParam(q: Map<string, string>): string[] | undefined {
  const one = q.get('point');
  const many = q.get('points');
  if (one !== undefined && many !== undefined) throw badInput('points', 'give point or points, not both');
  if (one !== undefined) return [idParam(one, 'point') as string];
  if (many === undefined) return undefined;
  const names = [...new Set(many.split(','))];
  if (names.length > HISTORY_LIMITS.points) throw badInput('points', `at most ${HISTORY_LIMITS.points} points, got ${names.length}`);
  for (const name of names) idParam(name, 'points');
  return names;
}

/** A command as a chart marks it. */
function mark(c: CommandRecord): Record<string, unknown> {
  const level = c.params['level'];
  return {
    ts: c.ts,
    id: c.id,
    action: c.action,
    level: typeof level === 'number' ? level : null,
    status: c.status,
    by: c.source.principal,
    role: c.source.role,
    target: c.target,
  };
}

/** An alarm's spans, its severity from its events or else from the device's profile (its raise evicted). */
function alarm(a: AlarmSpans, profile: ReadonlyMap<string, string>): Record<string, unknown> {
  return { name: a.name, severity: a.severity ?? profile.get(a.name) ?? null, spans: a.spans, dropped: a.dropped };
}

export function historyRoutes(r: Router, env: RouteEnv): void {
  r.add('GET', '/api/v1/history', 'read', async ({ url }) => {
    const q = query(url, ['device', 'point', 'points', 'from', 'to', 'buckets']);
    const device = idParam(q.get('device'), 'device');
    if (device === undefined) throw badInput('device', 'required: the id of a configured device');
    const points = pointsParam(q);
    const buckets = intParam(q, 'buckets', DEFAULT_BUCKETS, 1, HISTORY_LIMITS.buckets);
    const to = timeParam(q, 'to') ?? env.ctx.clock.now();
    const from = timeParam(q, 'from') ?? to - DEFAULT_RANGE_MS;
    if (to <= from) throw badInput('to', `must be after from (${from})${q.has('to') ? '' : '; it defaults to now'}`);
    if (to - from > HISTORY_LIMITS.rangeMs) throw badInput('from', `the range is at most ${HISTORY_LIMITS.rangeMs / 86_400_000} days, got ${((to - from) / 86_400_000).toFixed(1)}`);
    const config: DeviceConfig | undefined = env.ctx.config.devices.find((d) => d.id === device);
    if (!config) throw notFound(`device ${device}`);
    let history;
    try {
      history = await env.ctx.store.history({ device, ...(points !== undefined ? { points } : {}), from, to, buckets });
    } catch (err) {
      // a point the device has no readings of
      if (err instanceof StoreError && err.code === 'E_NOT_FOUND') throw badInput(q.has('point') ? 'point' : 'points', err.message);
      throw err;
    }
    const marks = env.ctx.store.commandMarks({ device, groups: config.groups, from, to }).map(mark);
    const severities = new Map((describedDevices(env.ctx.config).get(device)?.alarms ?? []).map((a) => [a.name, a.severity]));
    const alarms = (await env.ctx.store.alarmSpans(device, from, to)).map((a) => alarm(a, severities));
    return { status: 200, body: { ...history, marks, alarms } };
  });
}
