/**
 * `report:` in devices.yaml: when a polled value becomes a row of the buffer (edge/report/strategy.ts,
 * README "Report strategies"). Written on a profile point, on a device (all its points) or per
 * point of a device (`points: { ch1_power: { report: … } }`):
 *
 *   report: change                                   # every change, a heartbeat every 15 min
 *   report: poll                                     # every polled value
 *   report: { deadband: "2%", heartbeat: 1h }        # a change beyond 2 % of the last stored value
 *   report: { on: poll, minInterval: 1m }            # a sample a minute
 *
 * The schema gives the full strategy (fields left out take the defaults of strategy.ts), so the
 * policy takes the most specific one whole. The checks against the device's profile (a point it
 * lacks, a deadband on an alarm's input) are `deviceReportIssues`, run by the loader beside the
 * checks between sections (deviceReports.ts: they need the built-in profiles, which are read with
 * this schema). No imports from the schema or the profiles: the points come as structural shapes.
 */
import { z } from 'zod';
import { isBoolPoint, type RolePoint } from '../profiles/pointRoles.js';
import { everyChangeIssues, everyChangeReasons, type EveryChangePoint } from '../report/everyChange.js';
import { DEFAULT_STRATEGY, EVERY_POLL_STRATEGY, type ReportStrategy } from '../report/strategy.js';
import { durationIn, durationText, fieldKinds } from './scalars.js';
import { didYouMean } from './suggest.js';

const PERCENT_RE = /^(\d+(?:\.\d+)?)\s*%$/;
/** The N of "N%"; NaN when the text is not a percent (the regex says so). */
const percentOf = (text: string): number => Number(PERCENT_RE.exec(text)?.[1] ?? NaN);

const DEADBAND = 'a deadband of 0 or more in the point\'s units (0.5) or a percent of the last stored value ("2%")';

/** A number in the point's units, or a percent of the last stored value ("2%"). */
const deadbandSchema = z.union([
  z.number().min(0),
  z
    .string()
    .regex(PERCENT_RE, { message: `expected ${DEADBAND}` })
    .refine((s) => !PERCENT_RE.test(s) || (percentOf(s) > 0 && percentOf(s) <= 100), { message: 'expected a percent above 0% and at most 100%' }),
]);
fieldKinds.add(deadbandSchema, { expected: DEADBAND });

const reportMapping = z
  .strictObject({
    on: z.enum(['poll', 'change']).optional().describe('`poll`: every polled value; `change` (default): a value that differs from the last stored one'),
    deadband: deadbandSchema
      .optional()
      .describe('with `on: change`, a change is stored only beyond this: a number in the point\'s units (`0.5`), or a percent of the last stored value (`"2%"`)'),
    heartbeat: durationIn('0ms', '1d')
      .optional()
      .describe(`a value is stored at least this often, changed or not, so "no reading" always means "no contact"; \`${durationText(DEFAULT_STRATEGY.heartbeat)}\` with \`on: change\`, none with \`on: poll\`; \`0\`: never`),
    minInterval: durationIn('0ms', '1d')
      .optional()
      .describe('a change is stored no sooner than this after the last stored value (the value polled then is); shorter than the heartbeat; `0`: no minimum'),
  })
  .superRefine((r, ctx) => {
    const poll = r.on === 'poll';
    if (poll && r.deadband !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['deadband'], message: 'a deadband goes with on: change; on: poll stores every polled value' });
    }
    if (poll && r.heartbeat !== undefined && r.heartbeat > 0) {
      ctx.addIssue({ code: 'custom', path: ['heartbeat'], message: 'a heartbeat goes with on: change; on: poll stores every polled value' });
    }
    const heartbeat = r.heartbeat ?? (poll ? 0 : DEFAULT_STRATEGY.heartbeat);
    if (r.minInterval !== undefined && r.minInterval > 0 && heartbeat > 0 && r.minInterval >= heartbeat) {
      const which = r.heartbeat === undefined ? `the default heartbeat, ${durationText(heartbeat)}` : `heartbeat ${durationText(heartbeat)}`;
      ctx.addIssue({ code: 'custom', path: ['minInterval'], message: `a heartbeat must be longer than the minimum interval: minInterval ${durationText(r.minInterval)} is not shorter than ${which}` });
    }
  })
  .transform((r): ReportStrategy => {
    const poll = r.on === 'poll';
    return {
      on: r.on ?? 'change',
      deadband: typeof r.deadband === 'number' ? r.deadband : 0,
      deadbandPercent: typeof r.deadband === 'string' ? percentOf(r.deadband) : 0,
      heartbeat: r.heartbeat ?? (poll ? 0 : DEFAULT_STRATEGY.heartbeat),
      minInterval: r.minInterval ?? 0,
    };
  });

/** `poll`, `change` or a mapping; the output is the whole strategy. */
export const reportSchema = z.union([
  // poll: every polled value, no heartbeat (nothing is skipped); change: DEFAULT_STRATEGY
  z.enum(['poll', 'change']).transform((on): ReportStrategy => ({ ...(on === 'poll' ? EVERY_POLL_STRATEGY : DEFAULT_STRATEGY) })),
  reportMapping,
]);

// ---------------------------------------------------------------------------------------
// Checks against the device's profile

interface Issue {
  path: (string | number)[];
  message: string;
}

/** A device as the check reads it: possibly only the valid parts of a malformed file (lenient.ts). */
interface ReportDevice {
  profile: string;
  points?: Record<string, { report?: unknown }> | undefined;
}

/** A strategy the schema made (the valid parts of a malformed file may hold a half-read mapping). */
function isStrategy(v: unknown): v is ReportStrategy {
  if (v === null || typeof v !== 'object') return false;
  const s = v as Record<string, unknown>;
  return typeof s.on === 'string' && [s.deadband, s.deadbandPercent, s.heartbeat, s.minInterval].every((n) => typeof n === 'number');
}

/**
 * The issues of device `i`'s `points:` against its points (`points` undefined: the profile is
 * unknown or could not be read whole, nothing to check): a point the device lacks (with a
 * did-you-mean), a deadband or minimum interval on a point whose every change is stored. The
 * device's own `report:` is never at fault: such points take it without either (policy.ts).
 */
export function deviceReportIssues(d: ReportDevice, i: number, points: { points: readonly EveryChangePoint[] } | undefined): Issue[] {
  if (points === undefined) return [];
  const issues: Issue[] = [];
  const byName = new Map(points.points.map((p) => [p.name, p]));
  for (const [name, override] of Object.entries(d.points ?? {})) {
    const point = byName.get(name);
    if (point === undefined) {
      const hint = didYouMean(name, byName.keys());
      const known = hint === undefined ? `; its points: ${[...byName.keys()].join(', ')}` : `; did you mean "${hint}"?`;
      issues.push({ path: ['devices', i, 'points', name], message: `profile "${d.profile}" has no point "${name}"${known}` });
      continue;
    }
    if (!isStrategy(override.report)) continue;
    for (const issue of everyChangeIssues(point, override.report)) issues.push({ path: ['devices', i, 'points', name, 'report', issue.key], message: issue.message });
  }
  return issues;
}

/** A profile as its check reads it (valid so far: the roles may still have issues of their own). */
interface ReportProfile {
  points: readonly (RolePoint & { report?: unknown })[];
  alarms: readonly { name: string; point: string }[];
}

/** The issues of a profile's `report:`s: a deadband or minimum interval on a point whose every change is stored. */
export function profileReportIssues(p: ReportProfile): Issue[] {
  const reasons = everyChangeReasons(p);
  const issues: Issue[] = [];
  p.points.forEach((pt, i) => {
    if (!isStrategy(pt.report)) return;
    const point = { name: pt.name, bool: isBoolPoint(pt), everyChange: reasons.get(pt.name) };
    for (const issue of everyChangeIssues(point, pt.report)) issues.push({ path: ['points', i, 'report', issue.key], message: issue.message });
  });
  return issues;
}
