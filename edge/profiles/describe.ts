/**
 * What a device is, from its profile alone: its kind, the channels a light is dimmed through,
 * the points a traffic controller's program request writes, and every point's role. The control
 * plane (edge/control/catalog.ts), the CLI (`streetbox write`) and the broker's ACL ask
 * describeDevice; nothing else decides what a device is.
 *
 * A profile that declares roles (pointRoles.ts) is read as written. One written before roles
 * (no point has a role) is read by the rule of those days, kept so that an upgrade starts the
 * same gateway: `chN_dim_setpoint` + `chN_on` (rw) make light channel N, a `program_request`
 * or `request_expiry` point (or the name `traffic-controller`) a traffic controller writing
 * `request_expiry` as its dead-man and checking `mode`. Such a profile carries a deprecation hint
 * naming the roles to declare (`streetbox doctor` shows it).
 *
 * Those names are a traffic controller's in every profile, roles or not: the config refuses one
 * that says otherwise (pointRoles.ts trafficNameIssues), and a profile that reached here anyway
 * unchecked is read as a traffic controller that takes no requests, so nothing of it is written.
 */
import type { DeviceConfig, PointConfig, ProfileConfig } from '../config/schema.js';
import { LORA_STREETLIGHT_KIND, LORA_STREETLIGHT_POINTS, LORA_STREETLIGHT_PROFILE } from './loraStreetlight.js';
import { channelOf, isBoolPoint, legacyChannels, LEGACY_NAMES, POINT_ROLES, trafficNameIssues, type PointRole, type ProfileKind } from './pointRoles.js';

export type { PointRole, ProfileKind } from './pointRoles.js';

/** One output channel of a Modbus light: the points a dim writes. */
export interface LightChannel {
  n: number;
  /** the point of role targetLightLevel */
  setpoint: string;
  /** the point of role switch */
  on: string;
  /** the switch is a bool point (coil, bit, bool): written true/false; else a register written 1/0 */
  onBool: boolean;
  /** the point of role rampTime (seconds), when the profile has one */
  ramp?: string;
}

/** The points a program request writes (and the mode it checks first), nothing else is ever written. */
export interface TrafficPoints {
  request: string;
  expiry: string;
  mode?: string;
}

export interface RoleAssignment {
  role: PointRole;
  /** per-channel roles only */
  channel?: number;
  point: string;
}

export interface DeviceDescription {
  kind: ProfileKind;
  transport: 'modbus' | 'lorawan';
  /** Modbus lights: the channels, by number; [] for anything else */
  channels: LightChannel[];
  /** traffic controllers that take program requests */
  traffic?: TrafficPoints;
  /** every point with a role (declared, or inferred for a legacy profile) */
  roles: RoleAssignment[];
  /** set when the roles were inferred from the old point names: what to declare instead */
  legacyHint?: string;
}

/** What a device of devices.yaml is. `profiles` is the registry (built-in and custom profiles). */
export function describeDevice(device: Pick<DeviceConfig, 'profile' | 'devEui'>, profiles: { get(name: string): ProfileConfig | undefined }): DeviceDescription {
  if (device.devEui !== undefined) return describeLora(device.profile, profiles.get(device.profile));
  return describeProfile(profiles.get(device.profile));
}

/** What a device with this (Modbus) profile is; an unknown profile is an `other` with nothing to write. */
export function describeProfile(profile: ProfileConfig | undefined): DeviceDescription {
  if (!profile) return { kind: 'other', transport: 'modbus', channels: [], roles: [] };
  // never valid config (the schema refuses it): the safe reading, a controller nothing writes
  if (trafficNameIssues(profile).length > 0) return { kind: 'traffic', transport: 'modbus', channels: [], roles: [] };
  const declared = profile.points.some((p) => p.role !== undefined);
  return declared ? fromRoles(profile) : fromLegacyNames(profile);
}

/** The roles of the profile's points, as declared. */
function fromRoles(profile: ProfileConfig): DeviceDescription {
  const kind = profile.kind ?? 'other';
  const roles: RoleAssignment[] = [];
  for (const p of profile.points) {
    if (p.role === undefined) continue;
    roles.push(POINT_ROLES[p.role].scope === 'channel' ? { role: p.role, channel: channelOf(p), point: p.name } : { role: p.role, point: p.name });
  }
  const byName = new Map(profile.points.map((p) => [p.name, p]));
  const find = (role: PointRole, channel?: number): PointConfig | undefined => {
    const r = roles.find((a) => a.role === role && a.channel === channel);
    return r === undefined ? undefined : byName.get(r.point);
  };
  const channels: LightChannel[] = [];
  if (kind === 'lighting') {
    const numbers = [...new Set(roles.filter((r) => r.role === 'targetLightLevel').map((r) => r.channel ?? 1))].sort((a, b) => a - b);
    for (const n of numbers) {
      const setpoint = find('targetLightLevel', n);
      const on = find('switch', n);
      // the schema refuses a lighting profile with a channel lacking either (pointRoles.ts)
      if (!setpoint || !on) continue;
      channels.push(channel(n, setpoint, on, find('rampTime', n)));
    }
  }
  const out: DeviceDescription = { kind, transport: 'modbus', channels, roles };
  const request = find('programRequest');
  const expiry = find('requestExpiry');
  if (kind === 'traffic' && request && expiry) out.traffic = traffic(request, expiry, find('mode'));
  return out;
}

/** A profile written before roles: the rule of those days, and a hint at the roles to declare instead. */
function fromLegacyNames(profile: ProfileConfig): DeviceDescription {
  const names = new Map(profile.points.map((p) => [p.name, p]));
  const request = names.get(LEGACY_NAMES.programRequest);
  const expiry = names.get(LEGACY_NAMES.requestExpiry);
  const legacy = legacyChannels(profile);
  const kind: ProfileKind =
    profile.kind ?? (request !== undefined || expiry !== undefined || profile.name === LEGACY_NAMES.trafficProfile ? 'traffic' : legacy.length > 0 ? 'lighting' : 'other');
  const out: DeviceDescription = { kind, transport: 'modbus', channels: [], roles: [] };
  const inferred: string[] = [];
  if (kind === 'lighting') {
    for (const c of legacy) {
      const setpoint = names.get(c.setpoint.name)!;
      const on = names.get(c.on.name)!;
      const ramp = c.ramp === undefined ? undefined : names.get(c.ramp.name);
      out.channels.push(channel(c.n, setpoint, on, ramp));
      const ch = c.n === 1 ? '' : `, channel: ${c.n}`;
      out.roles.push({ role: 'targetLightLevel', channel: c.n, point: setpoint.name }, { role: 'switch', channel: c.n, point: on.name });
      inferred.push(`${setpoint.name} { role: targetLightLevel${ch} }`, `${on.name} { role: switch${ch} }`);
      if (ramp) {
        out.roles.push({ role: 'rampTime', channel: c.n, point: ramp.name });
        inferred.push(`${ramp.name} { role: rampTime${ch} }`);
      }
    }
  }
  if (kind === 'traffic' && request?.access === 'rw' && expiry?.access === 'rw') {
    const mode = names.get(LEGACY_NAMES.mode);
    out.traffic = traffic(request, expiry, mode);
    out.roles.push({ role: 'programRequest', point: request.name }, { role: 'requestExpiry', point: expiry.name });
    inferred.push(`${request.name} { role: programRequest }`, `${expiry.name} { role: requestExpiry }`);
    if (mode) {
      out.roles.push({ role: 'mode', point: mode.name });
      inferred.push(`${mode.name} { role: mode }`);
    }
  }
  if (inferred.length > 0 || (profile.kind === undefined && kind !== 'other')) {
    const what = inferred.length > 0 ? `, and on its points ${inferred.join(', ')}` : '';
    out.legacyHint = `profile "${profile.name}" has no point roles: it is read as a ${kind} device from its point names, which is deprecated; declare kind: ${kind}${what}`;
  }
  return out;
}

/** LoRaWAN nodes: the lora-streetlight codec (loraStreetlight.ts); a custom profile may say its kind. */
function describeLora(name: string, profile: ProfileConfig | undefined): DeviceDescription {
  if (name === LORA_STREETLIGHT_PROFILE || !profile) {
    const roles = LORA_STREETLIGHT_POINTS.flatMap((p): RoleAssignment[] => (p.role === undefined ? [] : [{ role: p.role, point: p.name, ...(POINT_ROLES[p.role].scope === 'channel' ? { channel: 1 } : {}) }]));
    return { kind: LORA_STREETLIGHT_KIND, transport: 'lorawan', channels: [], roles };
  }
  // every LoRaWAN node speaks the streetlight codec: a light unless its profile says otherwise
  return { kind: profile.kind ?? 'lighting', transport: 'lorawan', channels: [], roles: [] };
}

function channel(n: number, setpoint: PointConfig, on: PointConfig, ramp: PointConfig | undefined): LightChannel {
  const c: LightChannel = { n, setpoint: setpoint.name, on: on.name, onBool: isBoolPoint(on) };
  if (ramp) c.ramp = ramp.name;
  return c;
}

function traffic(request: PointConfig, expiry: PointConfig, mode: PointConfig | undefined): TrafficPoints {
  return mode === undefined ? { request: request.name, expiry: expiry.name } : { request: request.name, expiry: expiry.name, mode: mode.name };
}

/** The deprecation hints of the custom profiles still read from their point names (`streetbox doctor` shows them). */
export function legacyProfileHints(profiles: readonly ProfileConfig[]): string[] {
  return profiles.flatMap((p) => {
    const hint = p.transport === 'modbus' ? describeProfile(p).legacyHint : undefined;
    return hint === undefined ? [] : [hint];
  });
}
