/**
 * The devices' `points:` against their profiles' points (report.ts deviceReportIssues): a point
 * the profile lacks, a deadband or minimum interval on a point whose every change is stored. The
 * loader runs it beside the checks between sections, on the valid parts of a file (all of a
 * well-formed one), so its issues come at file:line:col with the others. It is not part of the
 * schema's crossCheck: it needs the built-in profiles, and reading those needs the schema.
 */
import { loadProfiles } from '../profiles/index.js';
import { devicePoints } from '../report/points.js';
import type { CrossIssue, ValidParts } from './lenient.js';
import { deviceReportIssues } from './report.js';
import type { DeviceConfig, ProfileConfig } from './schema.js';

/** A profile with all its points and alarms (in a malformed file, one left out leaves a hole: lenient.ts). */
function wholeProfile(p: ProfileConfig): boolean {
  const whole = (list: unknown): boolean => Array.isArray(list) && Object.keys(list).length === list.length;
  return whole(p.points) && whole(p.alarms);
}

/** The issues of the devices' `points:`; a device or profile left out of the valid parts is not checked. */
export function deviceReportCheck({ parts, leftOut }: ValidParts): CrossIssue[] {
  // lists of the valid parts keep the index of each item, with holes where one was left out
  const devices = (Array.isArray(parts.devices) ? parts.devices : []) as (DeviceConfig | undefined)[];
  const custom = (Array.isArray(parts.profiles) ? parts.profiles : []) as (ProfileConfig | undefined)[];
  const profileOf = (name: string): ProfileConfig | undefined => {
    const found = custom.find((p) => p?.name === name);
    if (found !== undefined) return wholeProfile(found) ? found : undefined;
    return leftOut.has('profiles', name) ? undefined : loadProfiles().get(name);
  };
  const issues: CrossIssue[] = [];
  devices.forEach((d, i) => {
    if (d?.points !== undefined) issues.push(...deviceReportIssues(d, i, devicePoints(d, { get: profileOf })));
  });
  return issues;
}
