import { describe, expect, it } from 'vitest';
import {
  can,
  filterCovers,
  mqttAllowed,
  PERMISSIONS,
  priorityBand,
  ROLE_LIST,
  roleAtMost,
  validTopicFilter,
  type DeviceKind,
  type Permission,
  type Role,
} from '../../edge/control/roles.js';

// The expected matrix, written out by hand from DESIGN.md ("Roles"): every role × every permission.
const MATRIX: Record<Role, Record<Permission, boolean>> = {
  technician: { read: true, pull: true, ack: true, 'command.lighting': true, 'command.traffic': true, admin: true, 'config.view': true, 'firmware.view': true, 'firmware.deploy': true },
  central: { read: true, pull: true, ack: true, 'command.lighting': true, 'command.traffic': true, admin: false, 'config.view': true, 'firmware.view': true, 'firmware.deploy': true },
  maintenance: { read: true, pull: false, ack: false, 'command.lighting': true, 'command.traffic': false, admin: false, 'config.view': false, 'firmware.view': true, 'firmware.deploy': false },
  viewer: { read: true, pull: false, ack: false, 'command.lighting': false, 'command.traffic': false, admin: false, 'config.view': false, 'firmware.view': true, 'firmware.deploy': false },
};

describe('roles: permissions', () => {
  const cases = ROLE_LIST.flatMap((r) => PERMISSIONS.map((p) => [r, p, MATRIX[r][p]] as const));
  it('covers every role and permission', () => expect(cases).toHaveLength(4 * 9));
  it.each(cases)('%s may %s: %s', (r, p, allowed) => {
    expect(can(r, p)).toBe(allowed);
  });
  it('an unknown role has no permission', () => {
    expect(can('root' as Role, 'read')).toBe(false);
    expect(can('__proto__' as Role, 'read')).toBe(false);
  });
  it('priority bands: schedule 0 < maintenance 50 < central 70 < technician 90, ceilings below the next band', () => {
    expect(priorityBand('maintenance')).toEqual({ default: 50, ceiling: 59 });
    expect(priorityBand('central')).toEqual({ default: 70, ceiling: 79 });
    expect(priorityBand('technician')).toEqual({ default: 90, ceiling: 100 });
    expect(priorityBand('viewer')).toBeNull();
  });
});

const GW = 'gw1';
const KINDS: Record<string, DeviceKind> = { 'lamp-1': 'lighting', 'tl-1': 'traffic' };
const opts = { deviceKind: (id: string) => KINDS[id] };
// allowed for [technician, central, maintenance, viewer]
type Row = [string, [boolean, boolean, boolean, boolean]];
const ALL: [boolean, boolean, boolean, boolean] = [true, true, true, true];
const NONE: [boolean, boolean, boolean, boolean] = [false, false, false, false];
const TECH: [boolean, boolean, boolean, boolean] = [true, false, false, false];
const ORDER: Role[] = ['technician', 'central', 'maintenance', 'viewer'];

const PUBLISH: Row[] = [
  ['streetbox/gw1/devices/lamp-1/set', [true, true, true, false]],
  ['streetbox/gw1/devices/tl-1/set', [true, true, false, false]],
  ['streetbox/gw1/devices/unknown-9/set', [true, true, true, false]], // the pipeline rejects and records it
  ['streetbox/gw1/groups/main/set', [true, true, true, false]],
  // written by the gateway only: a forged state or event could hide an alarm
  ['streetbox/gw1/status', NONE],
  ['streetbox/gw1/devices/lamp-1/state', NONE],
  ['streetbox/gw1/devices/lamp-1/availability', NONE],
  ['streetbox/gw1/events', NONE],
  ['streetbox/gw1/commands/0b7e6c1e-1', NONE],
  ['streetbox/gw1/groups/main/state', NONE],
  ['streetbox/gw1/devices/lamp-1/set/extra', NONE],
  ['streetbox/gw1/devices//set', NONE],
  ['streetbox/gw2/devices/lamp-1/set', NONE],
  ['streetbox/gw1/groups/+/set', NONE], // wildcards in a topic name [MQTT-4.7.3-2]
  ['streetbox/gw1/#', NONE],
  ['$SYS/broker/uptime', NONE],
  ['', NONE],
  ['local/flows/pump', TECH],
];

const SUBSCRIBE: Row[] = [
  ['streetbox/gw1/#', ALL],
  ['streetbox/gw1', ALL],
  ['streetbox/gw1/status', ALL],
  ['streetbox/gw1/devices/+/state', ALL],
  ['streetbox/gw1/devices/lamp-1/availability', ALL],
  ['streetbox/gw1/devices/+/+', ALL],
  ['streetbox/gw1/events', ALL],
  ['streetbox/gw1/commands/+', ALL],
  ['streetbox/gw1/commands/#', ALL],
  ['streetbox/gw1/groups/+/set', ALL],
  ['$share/ops/streetbox/gw1/events', ALL],
  // wider than the gateway's namespace: refused, not narrowed
  ['#', TECH],
  ['+/gw1/#', TECH],
  ['+/+/status', TECH],
  ['streetbox/+/status', TECH],
  ['streetbox/#', TECH],
  ['local/flows/#', TECH],
  ['$SYS/#', TECH],
  ['$share/ops/#', TECH],
  ['$other/x', NONE],
  // malformed filters [MQTT-4.7.1-2], [MQTT-4.7.1-3]
  ['streetbox/gw1/#/x', NONE],
  ['streetbox/gw1/dev+', NONE],
  ['streetbox/gw1/de#', NONE],
  ['', NONE],
];

describe('roles: roleAtMost (the cap on what flows may act as)', () => {
  it('orders the roles viewer < maintenance < central < technician, by permissions and priority', () => {
    const order: Role[] = ['viewer', 'maintenance', 'central', 'technician'];
    for (const [i, r] of order.entries()) {
      for (const [j, max] of order.entries()) expect(roleAtMost(r, max), `${r} at most ${max}`).toBe(i <= j);
    }
    expect(roleAtMost('admin' as Role, 'technician')).toBe(false);
    expect(roleAtMost('viewer', 'root' as Role)).toBe(false);
  });
});

describe('roles: MQTT ACL matrix (gateway gw1)', () => {
  const expand = (rows: Row[]) => rows.flatMap(([topic, allowed]) => ORDER.map((r, i) => [r, topic, allowed[i]!] as const));
  it.each(expand(PUBLISH))('%s publish %j: %s', (r, topic, allowed) => {
    expect(mqttAllowed(r, 'publish', topic, GW, opts)).toBe(allowed);
  });
  it.each(expand(SUBSCRIBE))('%s subscribe %j: %s', (r, topic, allowed) => {
    expect(mqttAllowed(r, 'subscribe', topic, GW, opts)).toBe(allowed);
  });
  it('without a device-kind lookup any command permission may publish to a device set topic', () => {
    expect(mqttAllowed('maintenance', 'publish', 'streetbox/gw1/devices/tl-1/set', GW)).toBe(true);
    expect(mqttAllowed('viewer', 'publish', 'streetbox/gw1/devices/tl-1/set', GW)).toBe(false);
  });
  it('an unknown role or a malformed gateway id is refused', () => {
    expect(mqttAllowed('root' as Role, 'subscribe', 'streetbox/gw1/#', GW)).toBe(false);
    expect(mqttAllowed('technician', 'subscribe', '#', 'gw/+')).toBe(false);
  });
});

describe('roles: filterCovers', () => {
  it.each([
    ['a/#', 'a', true],
    ['a/#', 'a/b/c', true],
    ['a/#', 'a/+/c', true],
    ['a/#', 'a/#', true],
    ['a/+', 'a/b', true],
    ['a/+', 'a/+', true],
    ['a/+', 'a/#', false],
    ['a/+', 'a/b/c', false],
    ['a/b', 'a/+', false],
    ['a/b', 'a/b', true],
    ['a/b', 'a', false],
    ['#', '$SYS/x', false],
    ['+/x', '$SYS/x', false],
    ['$SYS/#', '$SYS/x', true],
  ] as const)('%s covers %s: %s', (pattern, filter, covers) => {
    expect(validTopicFilter(filter)).toBe(true);
    expect(filterCovers(pattern, filter)).toBe(covers);
  });
});
