/**
 * What the points of a profile mean: the kinds of device and the roles a point may play, as
 * data. The names follow the TALQ 2 data model where it has one (LampActuator
 * `targetLightCommand` / `actualLightState`, LampMonitor `activePower`, `activeEnergy`,
 * `operatingHours`, `lampFailure`, `supplyVoltage`, `temperature`; a Command's
 * `rampToLevelTime` and `expiration`), so a point's role reads the same on the wire to central.
 *
 * This file checks a profile's roles (profileRoleIssues, run by the config schema, so a bad
 * role is reported at its file:line:col); describe.ts answers "what is this device" from them.
 * No imports from the config: the schema imports the vocabulary from here.
 */

export const DEVICE_KINDS = ['lighting', 'traffic', 'other'] as const;
export type ProfileKind = (typeof DEVICE_KINDS)[number];

export interface RoleSpec {
  /** per output channel of a multi-channel controller (`channel: N` on the point, default 1), or once per device */
  scope: 'channel' | 'device';
  /** the kinds of profile the role belongs to; undefined: any kind */
  kinds?: readonly ProfileKind[];
  /** the gateway writes it: the point must be `access: rw` */
  written: boolean;
  /** number: a numeric point (no bool, no bit); bool: a bool point or a bit; either: both do */
  value: 'number' | 'bool' | 'either';
  /** what it means, for the README and errors */
  meaning: string;
}

/** The role vocabulary. Adding one is adding a row; describe.ts reads the ones it acts on. */
export const POINT_ROLES = {
  // lighting, per channel (TALQ LampActuator)
  targetLightLevel: { scope: 'channel', kinds: ['lighting'], written: true, value: 'number', meaning: 'the commanded dim level, 0..100 % (TALQ targetLightCommand)' },
  switch: { scope: 'channel', kinds: ['lighting'], written: true, value: 'either', meaning: 'the output on/off: a bool written true/false, a register written 1/0' },
  rampTime: { scope: 'channel', kinds: ['lighting'], written: true, value: 'number', meaning: 'the time the controller takes to reach a new level, in seconds (TALQ rampToLevelTime)' },
  actualLightLevel: { scope: 'channel', kinds: ['lighting'], written: false, value: 'number', meaning: 'the level the lamp is at, % (TALQ actualLightState)' },
  // monitoring, per channel (TALQ LampMonitor), any kind
  activePower: { scope: 'channel', written: false, value: 'number', meaning: 'active power, W (TALQ activePower)' },
  activeEnergy: { scope: 'channel', written: false, value: 'number', meaning: 'energy counter, kWh (TALQ activeEnergy)' },
  operatingHours: { scope: 'channel', written: false, value: 'number', meaning: 'lamp burning hours (TALQ operatingHours)' },
  lampFailure: { scope: 'channel', written: false, value: 'bool', meaning: 'lamp failure (TALQ lampFailure)' },
  // the device
  supplyVoltage: { scope: 'device', written: false, value: 'number', meaning: 'mains voltage, V (TALQ supplyVoltage)' },
  temperature: { scope: 'device', written: false, value: 'number', meaning: 'controller temperature, °C (TALQ temperature)' },
  firmwareVersion: { scope: 'device', written: false, value: 'number', meaning: 'the firmware version the device reports' },
  // traffic controllers (DESIGN.md safety rules: only a program request with a dead-man is ever written)
  programRequest: { scope: 'device', kinds: ['traffic'], written: true, value: 'number', meaning: 'the program to request, 1..n; 0 releases the request' },
  requestExpiry: { scope: 'device', kinds: ['traffic'], written: true, value: 'number', meaning: 'the dead-man timer of a request, in seconds, counted down by the controller (TALQ expiration, NTCIP unitBackupTime)' },
  mode: { scope: 'device', kinds: ['traffic'], written: false, value: 'number', meaning: 'the operating mode: 0 off, 1 flashing, 2 fixed-time, 3 vehicle-actuated, 4 manual; requests only in 2 and 3' },
  activeProgram: { scope: 'device', kinds: ['traffic'], written: false, value: 'number', meaning: 'the program running now, 0 none' },
  requestStatus: { scope: 'device', kinds: ['traffic'], written: false, value: 'number', meaning: 'the state of the request: 0 none, 1 active, 2 rejected, 3 expired' },
} as const satisfies Record<string, RoleSpec>;

export type PointRole = keyof typeof POINT_ROLES;
export const POINT_ROLE_NAMES = Object.keys(POINT_ROLES) as [PointRole, ...PointRole[]];

/** The roles a kind cannot do without (per channel for lighting). */
export const LIGHT_CHANNEL_ROLES = ['targetLightLevel', 'switch'] as const satisfies readonly PointRole[];

export const MAX_CHANNELS = 64;

/** The legacy names of profiles written before roles (inferred, with a deprecation hint; see describe.ts). */
export const LEGACY_NAMES = {
  setpoint: /^ch(\d+)_dim_setpoint$/,
  on: (n: number) => `ch${n}_on`,
  ramp: (n: number) => [`ch${n}_ramp_s`, `ch${n}_ramp_time`, 'ramp_s', 'ramp_time'],
  programRequest: 'program_request',
  requestExpiry: 'request_expiry',
  mode: 'mode',
  trafficProfile: 'traffic-controller',
} as const;

/** The shape of a profile this file reads (the config's ProfileConfig, input or output side). */
export interface RolePoint {
  name: string;
  table: 'coil' | 'discrete' | 'holding' | 'input';
  type?: string | undefined;
  bit?: number | undefined;
  access?: 'r' | 'rw' | undefined;
  role?: PointRole | undefined;
  channel?: number | undefined;
}

export interface RoleProfile {
  name: string;
  kind?: ProfileKind | undefined;
  transport?: 'modbus' | 'lorawan' | undefined;
  points: readonly RolePoint[];
}

export interface RoleIssue {
  /** relative to the profile: ['points', 3, 'role'], ['kind'], [] */
  path: (string | number)[];
  message: string;
}

/** true for a point read as a bool: type bool, a coil or discrete input, a bit of a register */
export function isBoolPoint(p: Pick<RolePoint, 'type' | 'table' | 'bit'>): boolean {
  return p.type === 'bool' || p.table === 'coil' || p.table === 'discrete' || p.bit !== undefined;
}

export function isPointRole(r: unknown): r is PointRole {
  return typeof r === 'string' && Object.hasOwn(POINT_ROLES, r);
}

/** The channel of a per-channel role: `channel`, default 1. */
export function channelOf(pt: Pick<RolePoint, 'channel'>): number {
  return typeof pt.channel === 'number' ? pt.channel : 1;
}

const NO_DIMMABLE_CHANNEL =
  'a lighting profile needs a dimmable channel: give one point role "targetLightLevel" (the dim level, access rw) and one role "switch" (on/off, access rw); add channel: N to each for a multi-channel controller';

const kindList = (kinds: readonly ProfileKind[]): string => kinds.map((k) => `"${k}"`).join(' or ');

/**
 * The issues of a profile's roles: a role on a point of the wrong access or type, a channel
 * without a per-channel role, a role twice on one channel, roles without a `kind`, a role of
 * another kind, a lighting profile without a dimmable channel, a program request without its
 * dead-man; in every profile, roles or not, a traffic controller's names under another kind
 * (trafficNameIssues). A profile without any role is otherwise checked as legacy (describe.ts
 * infers its roles from the old point names): only a lighting kind without a dimmable channel.
 */
export function profileRoleIssues(p: RoleProfile): RoleIssue[] {
  const issues: RoleIssue[] = [];
  const declared = p.points.some((pt) => pt.role !== undefined && isPointRole(pt.role));
  const seen = new Map<string, number>();
  p.points.forEach((pt, i) => {
    const at = (key: string, message: string): void => void issues.push({ path: ['points', i, key], message });
    if (pt.role === undefined) {
      if (pt.channel !== undefined) at('channel', `"channel" goes with a per-channel role (${perChannelRoles().join(', ')}); this point has no role`);
      return;
    }
    // an unknown role is the schema's issue (with the list of roles); nothing more to say here
    if (!isPointRole(pt.role)) return;
    const spec: RoleSpec = POINT_ROLES[pt.role];
    const written = `role "${pt.role}" is written by the gateway`;
    if (spec.written && (pt.access ?? 'r') !== 'rw') at('role', `${written}: its point needs access: rw (a coil or a holding register)`);
    if (spec.value === 'number' && isBoolPoint(pt)) at('role', `role "${pt.role}" is a number: expected a register point (int16, uint16, int32, uint32, float32, no bit), got ${describeBool(pt)}`);
    if (spec.value === 'bool' && !isBoolPoint(pt)) at('role', `role "${pt.role}" is true or false: expected a bool point (type: bool, a coil, a discrete input or a bit), got ${pt.type ?? 'uint16'}`);
    if (spec.scope === 'device' && pt.channel !== undefined) at('channel', `role "${pt.role}" is one per device: it takes no "channel"`);
    if (spec.kinds !== undefined && p.kind !== undefined && !spec.kinds.includes(p.kind)) {
      at('role', `role "${pt.role}" belongs to a ${kindList(spec.kinds)} profile; this one is kind "${p.kind}"`);
    }
    const channel = spec.scope === 'channel' ? channelOf(pt) : undefined;
    const key = channel === undefined ? pt.role : `${pt.role}/${channel}`;
    const first = seen.get(key);
    if (first !== undefined) {
      const where = channel === undefined ? '' : ` on channel ${channel}`;
      at('role', `duplicate role "${pt.role}"${where}: point "${p.points[first]!.name}" (points[${first}]) already has it`);
    } else seen.set(key, i);
  });

  const named = trafficNameIssues(p);
  issues.push(...named);
  if (declared) {
    if (p.kind === undefined) {
      issues.push({ path: [], message: `profile "${p.name}" gives its points roles but no kind: add kind: ${DEVICE_KINDS.join(' | ')}` });
      return issues;
    }
    if (p.kind === 'lighting' && (p.transport ?? 'modbus') === 'modbus') issues.push(...lightingIssues(p));
    if (p.kind === 'traffic') issues.push(...trafficIssues(p));
    return issues;
  }
  // a kind the names contradict is the issue; whether it could be dimmed is beside the point
  return named.length > 0 ? issues : [...issues, ...legacyIssues(p)];
}

/** The point names of a traffic controller's request (the built-in profile's), and the role each must carry. */
const TRAFFIC_REQUEST_NAMES: ReadonlyMap<string, { role: PointRole; what: string }> = new Map([
  [LEGACY_NAMES.programRequest, { role: 'programRequest', what: 'program request register' }],
  [LEGACY_NAMES.requestExpiry, { role: 'requestExpiry', what: "request's dead-man timer" }],
]);

/**
 * The names no profile may contradict, roles or not (DESIGN.md safety rules): a point named
 * `program_request` or `request_expiry` is a traffic controller's request register, and a profile
 * named `traffic-controller` replaces the built-in traffic controller. Such a profile is kind
 * traffic (one without roles and without kind is read as traffic from these names, describe.ts),
 * and where it declares roles those points carry programRequest / requestExpiry. The control plane
 * then knows them: a raw write to them (to any point of a traffic controller) is refused, and only
 * a program request, with its dead-man, writes them. Any other reading would let a technician's
 * point write (`streetbox write`, action `write`) reach the request register with no dead-man.
 */
export function trafficNameIssues(p: RoleProfile): RoleIssue[] {
  const declared = p.points.some((pt) => isPointRole(pt.role));
  const traffic = p.kind === 'traffic' || (p.kind === undefined && !declared);
  const says = p.kind === undefined ? 'declares no kind' : `says kind "${p.kind}"`;
  const issues: RoleIssue[] = [];
  if (p.name === LEGACY_NAMES.trafficProfile && !traffic) {
    issues.push({
      path: p.kind === undefined ? ['name'] : ['kind'],
      message: `profile "${p.name}" replaces the built-in traffic controller, but ${says}: declare kind: traffic (a traffic controller is never written, except by a program request with its dead-man)`,
    });
  }
  p.points.forEach((pt, i) => {
    const known = TRAFFIC_REQUEST_NAMES.get(pt.name);
    if (known === undefined) return;
    if (!traffic) {
      issues.push({
        path: ['points', i, 'name'],
        message: `a "${pt.name}" point is a traffic controller's ${known.what}, but the profile ${says}: declare kind: traffic and give the point role: ${known.role}, so that only a program request with its dead-man writes it`,
      });
    } else if (declared && pt.role !== known.role && (pt.role === undefined || isPointRole(pt.role))) {
      issues.push({
        path: ['points', i, pt.role === undefined ? 'name' : 'role'],
        message: `the "${pt.name}" point of a traffic controller is its ${known.what}: give it role: ${known.role}${pt.role === undefined ? '' : ` (not "${pt.role}")`}, so that only a program request with its dead-man writes it`,
      });
    }
  });
  return issues;
}

function describeBool(pt: RolePoint): string {
  if (pt.bit !== undefined) return `bit ${pt.bit} of a register`;
  if (pt.table === 'coil' || pt.table === 'discrete') return pt.table === 'coil' ? 'a coil' : 'a discrete input';
  return 'a bool';
}

function perChannelRoles(): string[] {
  return POINT_ROLE_NAMES.filter((r) => POINT_ROLES[r].scope === 'channel');
}

/** Every channel a light role names has a level and a switch; at least one channel does. */
function lightingIssues(p: RoleProfile): RoleIssue[] {
  const channels = new Map<number, Set<string>>();
  p.points.forEach((pt) => {
    if (!isPointRole(pt.role) || (POINT_ROLES[pt.role] as RoleSpec).kinds?.includes('lighting') !== true) return;
    const n = channelOf(pt);
    channels.set(n, (channels.get(n) ?? new Set()).add(pt.role));
  });
  const need = LIGHT_CHANNEL_ROLES.join('" and "');
  if (![...channels.values()].some((roles) => LIGHT_CHANNEL_ROLES.every((r) => roles.has(r)))) {
    return [{ path: ['kind'], message: NO_DIMMABLE_CHANNEL }];
  }
  const issues: RoleIssue[] = [];
  for (const [n, roles] of [...channels].sort((a, b) => a[0] - b[0])) {
    const missing = LIGHT_CHANNEL_ROLES.filter((r) => !roles.has(r));
    if (missing.length > 0) issues.push({ path: ['kind'], message: `channel ${n} of this lighting profile lacks role "${missing.join('" and "')}" (every channel needs "${need}")` });
  }
  return issues;
}

/** A program request is never written without its dead-man (DESIGN.md safety rules), nor the other way round. */
function trafficIssues(p: RoleProfile): RoleIssue[] {
  const at = (role: PointRole): number => p.points.findIndex((pt) => pt.role === role);
  const request = at('programRequest');
  const expiry = at('requestExpiry');
  if (request >= 0 && expiry < 0) {
    return [{ path: ['points', request, 'role'], message: 'a program request needs its dead-man: give the expiry register (seconds) role "requestExpiry"' }];
  }
  if (expiry >= 0 && request < 0) {
    return [{ path: ['points', expiry, 'role'], message: 'role "requestExpiry" goes with a point of role "programRequest", the program it keeps alive' }];
  }
  return [];
}

/**
 * A profile without roles: its kind comes from `kind:` or from the old names. A declared kind the
 * names contradict is trafficNameIssues'; a declared lighting kind without the old channel names
 * cannot be dimmed, and says so.
 */
function legacyIssues(p: RoleProfile): RoleIssue[] {
  if (p.kind === 'lighting' && (p.transport ?? 'modbus') === 'modbus' && legacyChannels(p).length === 0) {
    return [{ path: ['kind'], message: NO_DIMMABLE_CHANNEL }];
  }
  return [];
}

export interface LegacyChannel {
  n: number;
  setpoint: RolePoint;
  on: RolePoint;
  ramp?: RolePoint;
}

/** chN_dim_setpoint + chN_on (both rw), with chN_ramp_s / chN_ramp_time / ramp_s / ramp_time: the rule before roles. */
export function legacyChannels(p: RoleProfile): LegacyChannel[] {
  const rw = new Map(p.points.filter((pt) => pt.access === 'rw').map((pt) => [pt.name, pt]));
  const out: LegacyChannel[] = [];
  for (const pt of p.points) {
    const m = LEGACY_NAMES.setpoint.exec(pt.name);
    if (!m || pt.access !== 'rw') continue;
    const n = Number(m[1]);
    const on = rw.get(LEGACY_NAMES.on(n));
    if (!on) continue;
    const ramp = LEGACY_NAMES.ramp(n)
      .map((r) => rw.get(r))
      .find((r) => r !== undefined);
    out.push(ramp === undefined ? { n, setpoint: pt, on } : { n, setpoint: pt, on, ramp });
  }
  return out.sort((a, b) => a.n - b.n);
}
