/**
 * GET /api/v1/history?device=&point=|points=&from=&to=&buckets=: per bucket min, mean, max, last,
 * count and bad of a device's points over [from, to), computed in SQLite over the buffer
 * (Store.history, edge/store/history.ts), and the commands that mark its charts (when did the dim
 * happen, who sent it), and its alarms over the range as spans (Store.alarmSpans, from the
 * alarm.raised / alarm.cleared events). Permission `read`: whoever sees the latest values sees their history; raw
 * rows in bulk stay `pull` (/api/v1/readings). The work is bounded (HISTORY_LIMITS): at most 32
 * points, 2000 buckets, 400 days.
 */
import { z } from 'zod';
import { identifier, type DeviceConfig } from '../../config/schema.js';
import { HISTORY_LIMITS, type AlarmSpans } from '../../store/api.js';
import { StoreError } from '../../store/errors.js';
import type { CommandRecord } from '../../store/types.js';
import { describedDevices } from '../deviceState.js';
import { badInput, notFound } from '../errors.js';
import type { Router } from '../router.js';
import { field, ID_WORDS, integer, integerWords, list, time, TIME_WORDS } from '../schemas.js';
import type { RouteEnv } from './env.js';

export const DEFAULT_BUCKETS = 500;
/** from, when not given: a day before `to` */
export const DEFAULT_RANGE_MS = 86_400_000;

const historyQuery = z.strictObject({
  device: field(identifier, ID_WORDS, { description: 'the device', required: 'required: the id of a configured device' }),
  point: field(identifier, ID_WORDS, { description: 'one point (or `points`; neither: every point that has readings)' }),
  points: field(list(identifier, HISTORY_LIMITS.points), `expected at most ${HISTORY_LIMITS.points} point names, comma-separated (${ID_WORDS.slice('expected '.length)})`, {
    description: `comma-separated point names, at most ${HISTORY_LIMITS.points}`,
  }),
  from: field(time, TIME_WORDS, { description: 'the start: ms since the epoch or ISO 8601 with its offset; default a day before `to`' }),
  to: field(time, TIME_WORDS, { description: 'the end (excluded): ms since the epoch or ISO 8601 with its offset; default now' }),
  buckets: field(integer(1, HISTORY_LIMITS.buckets), integerWords(1, HISTORY_LIMITS.buckets), { description: 'how many buckets the range is cut into', default: DEFAULT_BUCKETS }),
});

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
  r.add({
    method: 'GET',
    path: '/api/v1/history',
    access: 'read',
    query: historyQuery,
    doc: (a) => ({
      operationId: 'getHistory',
      summary: "A device's points over a range, per bucket",
      description: `Per bucket min, mean, max, last, count and bad of each point over [from, to), computed over the buffer; the commands that mark the charts (the device's and its groups'), and its alarms as spans. At most ${HISTORY_LIMITS.points} points, ${HISTORY_LIMITS.buckets} buckets, ${HISTORY_LIMITS.rangeMs / 86_400_000} days. \`point\` and \`points\` are not given together.`,
      tags: ['data'],
      responses: {
        200: { description: 'the series, marks and alarms', schema: a.history },
        404: { description: 'no such device', schema: a.errorBody },
      },
    }),
    handler: async ({ query: q }) => {
      const { device, buckets } = q;
      if (q.point !== undefined && q.points !== undefined) throw badInput('points', 'give point or points, not both');
      const points = q.point !== undefined ? [q.point] : q.points;
      const to = q.to ?? env.ctx.clock.now();
      const from = q.from ?? to - DEFAULT_RANGE_MS;
      if (to <= from) throw badInput('to', `must be after from (${from})${q.to !== undefined ? '' : '; it defaults to now'}`);
      if (to - from > HISTORY_LIMITS.rangeMs) throw badInput('from', `the range is at most ${HISTORY_LIMITS.rangeMs / 86_400_000} days, got ${((to - from) / 86_400_000).toFixed(1)}`);
      const config: DeviceConfig | undefined = env.ctx.config.devices.find((d) => d.id === device);
      if (!config) throw notFound(`device ${device}`);
      let series;
      try {
        series = await env.ctx.store.history({ device, ...(points !== undefined ? { points } : {}), from, to, buckets });
      } catch (err) {
        // a point the device has no readings of
        if (err instanceof StoreError && err.code === 'E_NOT_FOUND') throw badInput(q.point !== undefined ? 'point' : 'points', err.message);
        throw err;
      }
      const marks = env.ctx.store.commandMarks({ device, groups: config.groups, from, to }).map(mark);
      const severities = new Map((describedDevices(env.ctx.config).get(device)?.alarms ?? []).map((a) => [a.name, a.severity]));
      const alarms = (await env.ctx.store.alarmSpans(device, from, to)).map((a) => alarm(a, severities));
      return { status: 200, body: { ...series, marks, alarms } };
    },
  });
}
