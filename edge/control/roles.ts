/**
 * The role model of DESIGN.md as data, and the MQTT topic ACL of each role for the topic API.
 *
 * technician: everything; maintenance: read + lighting commands; central: read, pull, ack,
 * commands (lighting and traffic programs), the configuration's versions (it changes the
 * configuration through its own door, `down/config`, not the API) and firmware deployments;
 * viewer: read. Every role sees deployments (`firmware.view`). A role that
 * may command also has a priority band for its overrides (schedule 0 < maintenance 50 < central
 * 70 < technician 90): an explicit priority may be given up to the role's ceiling, never above.
 */
import type { z } from 'zod';
import { identifier, roles as ROLE_NAMES, type role } from '../config/schema.js';

export type Role = z.output<typeof role>;
export const ROLE_LIST: readonly Role[] = ROLE_NAMES;

/**
 * `config.view`: the configuration's versions, their (redacted) texts and diffs; changing it is `admin`.
 * `firmware.view`: deployments and their jobs; `firmware.deploy`: submit, pause, resume and cancel them,
 * upload artifacts (a traffic controller among the targets also takes `command.traffic`).
 */
export const PERMISSIONS = ['read', 'pull', 'ack', 'command.lighting', 'command.traffic', 'admin', 'config.view', 'firmware.view', 'firmware.deploy'] as const;
export type Permission = (typeof PERMISSIONS)[number];

/** Who asked: the role and the user or token name (recorded with every command and claim). */
export interface Principal {
  role: Role;
  principal: string;
}

export interface PriorityBand {
  /** used when a command gives no priority */
  default: number;
  /** the highest priority the role may give */
  ceiling: number;
}

export interface RoleSpec {
  permissions: readonly Permission[];
  /** null: the role may not command, so it has no priority */
  priority: PriorityBand | null;
}

/** The level a schedule claims with; every override outranks it. */
export const SCHEDULE_PRIORITY = 0;
/** The lowest priority an override may have. */
export const MIN_CLAIM_PRIORITY = 1;

export const ROLES: Readonly<Record<Role, RoleSpec>> = {
  technician: { permissions: PERMISSIONS, priority: { default: 90, ceiling: 100 } },
  central: { permissions: ['read', 'pull', 'ack', 'command.lighting', 'command.traffic', 'config.view', 'firmware.view', 'firmware.deploy'], priority: { default: 70, ceiling: 79 } },
  maintenance: { permissions: ['read', 'command.lighting', 'firmware.view'], priority: { default: 50, ceiling: 59 } },
  viewer: { permissions: ['read', 'firmware.view'], priority: null },
};

function spec(r: string): RoleSpec | undefined {
  return Object.hasOwn(ROLES, r) ? ROLES[r as Role] : undefined;
}

/** Whether a role has a permission; an unknown role (say from a stale row) has none. */
export function can(r: Role, permission: Permission): boolean {
  return spec(r)?.permissions.includes(permission) ?? false;
}

/** Whether role `r` may do no more than `max`: no permission `max` lacks, no higher priority. */
export function roleAtMost(r: Role, max: Role): boolean {
  const a = spec(r);
  const b = spec(max);
  if (!a || !b) return false;
  return a.permissions.every((p) => b.permissions.includes(p)) && (a.priority?.ceiling ?? -1) <= (b.priority?.ceiling ?? -1);
}

/** The role's priority band, or null when it may not command. */
export function priorityBand(r: Role): PriorityBand | null {
  return spec(r)?.priority ?? null;
}

// ---------------------------------------------------------------------------------------
// MQTT topic ACL. Topic API under `streetbox/<gatewayId>/` (DESIGN.md "Interfaces"):
//   status, devices/<id>/state, devices/<id>/availability, events, commands/<id>: written by
//     the gateway only, readable with 'read';
//   devices/<id>/set: publish with a command permission ('command.lighting' or
//     'command.traffic'; the pipeline checks the device's kind again);
//   groups/<g>/set: publish with 'command.lighting'.
// Anything outside the prefix (local flows' own topics, $SYS) is for 'admin' only; nobody may
// publish to another gateway's `streetbox/<other>/` namespace or to a `$` topic.
// With Home Assistant discovery on (`homeAssistantPrefix`), `<prefix>/#` is readable with 'read'
// (the configs the gateway publishes there); of its topics a client may publish only
// `<prefix>/status`, Home Assistant's birth and will, with any role: nobody but the gateway
// publishes configs. Subscriptions are all-or-nothing: a filter is granted only if every topic
// it can match is readable by the role. A viewer subscribing to `#` is refused (SUBACK 0x80),
// not silently narrowed; `streetbox/<gw>/#` is the filter to use. Refusing needs no per-message
// check in the broker and cannot leak a topic added later.

export type MqttAction = 'publish' | 'subscribe';
export type DeviceKind = 'lighting' | 'traffic';

export interface MqttAclOptions {
  /** the kind of a device, to require 'command.traffic' for a traffic controller's set topic */
  deviceKind?: (deviceId: string) => DeviceKind | undefined;
  /** Home Assistant's discovery prefix when the broker publishes discovery (broker.homeAssistant) */
  homeAssistantPrefix?: string | undefined;
}

const isId = (s: string | undefined): s is string => s !== undefined && identifier.safeParse(s).success;

/** A topic name one may publish to: non-empty, no wildcards, no NUL [MQTT-4.7.3-1], [MQTT-4.7.3-2]. */
export function validTopicName(topic: string): boolean {
  return topic.length > 0 && topic.length <= 65535 && !/[+#\u0000]/.test(topic);
}

/** A well-formed filter: '#' alone and last, '+' alone in its level [MQTT-4.7.1-2], [MQTT-4.7.1-3]. */
export function validTopicFilter(filter: string): boolean {
  if (filter.length === 0 || filter.length > 65535 || filter.includes('\u0000')) return false;
  const levels = filter.split('/');
  return levels.every((l, i) => (l.includes('#') ? l === '#' && i === levels.length - 1 : !l.includes('+') || l === '+'));
}

/** True if every topic that `filter` matches is matched by `pattern` (both valid filters). */
export function filterCovers(pattern: string, filter: string): boolean {
  const p = pattern.split('/');
  const f = filter.split('/');
  // a filter starting with a wildcard does not match topics starting with '$' [MQTT-4.7.2-1]
  const dollar = f[0]!.startsWith('$');
  for (let i = 0; ; i++) {
    const pi = p[i];
    const fi = f[i];
    if (pi === undefined) return fi === undefined;
    if (pi === '#') return !(i === 0 && dollar);
    if (fi === undefined || fi === '#') return false;
    if (pi === '+') {
      if (i === 0 && dollar) return false;
      continue;
    }
    if (fi === '+' || pi !== fi) return false;
  }
}

function readablePatterns(r: Role, gatewayId: string, opts: MqttAclOptions): string[] {
  const out: string[] = [];
  if (can(r, 'read')) out.push(`streetbox/${gatewayId}/#`);
  if (can(r, 'read') && opts.homeAssistantPrefix !== undefined) out.push(`${opts.homeAssistantPrefix}/#`);
  if (can(r, 'admin')) out.push('#', '$SYS/#');
  return out;
}

function mayPublish(r: Role, topic: string, gatewayId: string, opts: MqttAclOptions): boolean {
  if (!validTopicName(topic) || topic.startsWith('$')) return false;
  const prefix = `streetbox/${gatewayId}/`;
  const ha = opts.homeAssistantPrefix;
  if (ha !== undefined && !topic.startsWith(prefix) && (topic === ha || topic.startsWith(`${ha}/`))) return topic === `${ha}/status`;
  // another gateway's API namespace is nobody's to write here; other topics are the technician's
  if (!topic.startsWith(prefix)) return !topic.startsWith('streetbox/') && can(r, 'admin');
  const rest = topic.slice(prefix.length).split('/');
  if (rest.length !== 3 || rest[2] !== 'set' || !isId(rest[1])) return false; // gateway-owned or not in the API
  if (rest[0] === 'groups') return can(r, 'command.lighting');
  if (rest[0] !== 'devices') return false;
  const kind = opts.deviceKind?.(rest[1]);
  if (kind === 'lighting') return can(r, 'command.lighting');
  if (kind === 'traffic') return can(r, 'command.traffic');
  // an unknown device: let the command pipeline reject it with a reason (and record it)
  return can(r, 'command.lighting') || can(r, 'command.traffic');
}

/**
 * Whether a client of role `r` may publish to `topic` or subscribe to the filter `topic` on the
 * broker of gateway `gatewayId`. An MQTT 5 shared subscription `$share/<name>/<filter>` is judged
 * by its filter.
 */
export function mqttAllowed(r: Role, action: MqttAction, topic: string, gatewayId: string, opts: MqttAclOptions = {}): boolean {
  if (spec(r) === undefined || !isId(gatewayId)) return false;
  if (action === 'publish') return mayPublish(r, topic, gatewayId, opts);
  let filter = topic;
  const shared = /^\$share\/[^/#+]+\/(.+)$/.exec(topic);
  if (shared) filter = shared[1]!;
  if (!validTopicFilter(filter)) return false;
  return readablePatterns(r, gatewayId, opts).some((p) => filterCovers(p, filter));
}
