/**
 * The topic API of DESIGN.md ("Interfaces / MQTT"), under `streetbox/<gatewayId>/`:
 * status, devices (the retained list of the gateway's devices), devices/<id>/state,
 * devices/<id>/availability, devices/<id>/set, groups/<g>/set, commands/<commandId>, events.
 * Names are built and parsed here only.
 */
import { identifier } from '../config/schema.js';
import type { CommandTargetRef } from '../control/api.js';

export interface Topics {
  readonly prefix: string;
  status: string;
  events: string;
  /** the retained list of the gateway's devices with their kind and points (Zigbee2MQTT's `bridge/devices`) */
  devices: string;
  state(device: string): string;
  availability(device: string): string;
  command(id: string): string;
  /** where a device takes commands */
  set(device: string): string;
  /** the command target of a `devices/<id>/set` or `groups/<g>/set` topic, or null */
  setTarget(topic: string): CommandTargetRef | null;
}

export function topicsFor(gatewayId: string): Topics {
  const prefix = `streetbox/${gatewayId}/`;
  return {
    prefix,
    status: `${prefix}status`,
    events: `${prefix}events`,
    devices: `${prefix}devices`,
    state: (device) => `${prefix}devices/${device}/state`,
    availability: (device) => `${prefix}devices/${device}/availability`,
    command: (id) => `${prefix}commands/${id}`,
    set: (device) => `${prefix}devices/${device}/set`,
    setTarget(topic) {
      if (!topic.startsWith(prefix)) return null;
      const rest = topic.slice(prefix.length).split('/');
      if (rest.length !== 3 || rest[2] !== 'set') return null;
      const id = rest[1]!;
      if (!identifier.safeParse(id).success) return null;
      if (rest[0] === 'devices') return { kind: 'device', id };
      if (rest[0] === 'groups') return { kind: 'group', id };
      return null;
    },
  };
}
