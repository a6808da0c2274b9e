/**
 * The points whose every change is stored: an alarm's input and a lamp failure (issue 15: "alarms
 * are always stored"). No strategy written for such a point may skip a change: a deadband (except
 * on a bool, whose every change passes any deadband) or a minimum interval on one is a devices.yaml
 * error. A device-wide `report:` is not written for them: they take it without its deadband and
 * minimum interval (policy.ts).
 *
 * No imports from the config or the profiles: the schema's checks (edge/config/report.ts) read
 * these rules, so the points come as small structural shapes (EveryChangePoint), as the roles of
 * edge/profiles/pointRoles.ts do.
 */
import type { PointRole } from '../profiles/pointRoles.js';
import type { ReportStrategy } from './strategy.js';

/** A point as these rules read it. */
export interface EveryChangePoint {
  name: string;
  /** true or false: a deadband never hides a change of it */
  bool: boolean;
  /** why every change of it is stored: "alarms are always stored: ch1_status feeds alarm ch1_lamp_failure" */
  everyChange?: string | undefined;
}

interface ProfileLike {
  points: readonly { name: string; role?: PointRole | undefined }[];
  alarms: readonly { name: string; point: string }[];
}

/** The points of a profile whose every change is stored, and why: the input of an alarm, a point of role lampFailure. */
export function everyChangeReasons(profile: ProfileLike): Map<string, string> {
  const alarms = new Map<string, string[]>();
  for (const a of profile.alarms) alarms.set(a.point, [...(alarms.get(a.point) ?? []), a.name]);
  const out = new Map<string, string>();
  for (const [point, names] of alarms) out.set(point, `alarms are always stored: ${point} feeds alarm${names.length > 1 ? 's' : ''} ${names.join(', ')}`);
  for (const pt of profile.points) if (pt.role === 'lampFailure' && !out.has(pt.name)) out.set(pt.name, lampFailureReason(pt.name));
  return out;
}

export function lampFailureReason(point: string): string {
  return `lamp failures are always stored: ${point} has role lampFailure`;
}

export interface EveryChangeIssue {
  /** the key of the `report:` mapping at fault */
  key: 'deadband' | 'minInterval';
  message: string;
}

/** What in `s`, written for this point, would skip a change of a point whose every change is stored. */
export function everyChangeIssues(point: EveryChangePoint, s: ReportStrategy): EveryChangeIssue[] {
  if (point.everyChange === undefined) return [];
  const issues: EveryChangeIssue[] = [];
  if ((s.deadband > 0 || s.deadbandPercent > 0) && !point.bool) {
    issues.push({ key: 'deadband', message: `a deadband would hide changes of ${point.name}, and ${point.everyChange}` });
  }
  if (s.minInterval > 0) issues.push({ key: 'minInterval', message: `a minimum interval would delay changes of ${point.name}, and ${point.everyChange}` });
  return issues;
}

/** A device-wide strategy as a point whose every change is stored takes it: without deadband and minimum interval (`on` and heartbeat kept). */
export function storingEveryChange(s: ReportStrategy): ReportStrategy {
  return s.deadband === 0 && s.deadbandPercent === 0 && s.minInterval === 0 ? s : { ...s, deadband: 0, deadbandPercent: 0, minInterval: 0 };
}
