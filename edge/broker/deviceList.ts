/**
 * The gateway's devices as MQTT clients see them: the retained `streetbox/<gw>/devices` list
 * (as Zigbee2MQTT's `bridge/devices`) and what Home Assistant discovery (homeAssistant.ts) is built
 * from. Each device with its kind, profile, transport, groups and points (name, unit, type, access,
 * role, channel), all from the configuration and the device's profile (edge/profiles/describe.ts
 * tells the kind and the roles); nothing is inferred from a point's name.
 *
 * A LoRaWAN node's points are the lora-streetlight codec's and the radio's, whatever its profile
 * (every node speaks that codec: edge/report/points.ts).
 */
import type { AlarmConfig, Config } from '../config/schema.js';
import { describedDevices } from '../api/deviceState.js';
import type { DeviceDescription, PointRole, ProfileKind } from '../profiles/describe.js';
import { loadProfiles } from '../profiles/index.js';
import { decodeStatus, LORA_STREETLIGHT_POINTS, RADIO_POINTS, RADIO_UNITS, STATUS_LENGTH, STATUS_VERSION } from '../profiles/loraStreetlight.js';
import { isBoolPoint } from '../profiles/pointRoles.js';

export interface PointInfo {
  name: string;
  unit: string | null;
  /** what its values are: a number, or true/false */
  type: 'number' | 'bool';
  /** rw: the gateway writes it (a command does, never a client directly) */
  access: 'r' | 'rw';
  role: PointRole | null;
  /** the output channel of a per-channel role (or as the profile gives it), else null */
  channel: number | null;
  /** a LoRaWAN radio point (rssi, snr, battery, …): the link, not the device's function */
  radio?: true;
}

export interface DeviceInfo {
  id: string;
  name: string | null;
  kind: ProfileKind;
  profile: string;
  transport: 'modbus' | 'lorawan';
  groups: string[];
  points: PointInfo[];
}

/** A device as the discovery builder reads it: the list entry, its description and its profile's alarms. */
export interface DeviceEntry {
  info: DeviceInfo;
  desc: DeviceDescription;
  alarms: readonly AlarmConfig[];
  devEui: string | null;
}

/** The radio points' units, as edge/drivers/lorawan/readings.ts stores them. */

/** Which codec fields are true/false: read off a decoded (all-zero) status frame, so the codec's own types decide. */
const LORA_SAMPLE = (() => {
  const frame = Buffer.alloc(STATUS_LENGTH);
  frame[0] = STATUS_VERSION;
  return decodeStatus(frame);
})();

const LORA_POINTS: readonly Omit<PointInfo, 'role' | 'channel'>[] = [
  ...LORA_STREETLIGHT_POINTS.map((p) => ({ name: p.name, unit: p.unit, type: typeof LORA_SAMPLE[p.name] === 'boolean' ? ('bool' as const) : ('number' as const), access: 'r' as const })),
  ...RADIO_POINTS.map((name) => ({ name, unit: RADIO_UNITS[name], type: name === 'externalPower' ? ('bool' as const) : ('number' as const), access: 'r' as const, radio: true as const })),
];

/** Per configuration object: a configuration change makes a new one. */
const byConfig = new WeakMap<Config, DeviceEntry[]>();

/** Every configured device, in the order of devices.yaml. */
export function deviceEntries(config: Config): DeviceEntry[] {
  let entries = byConfig.get(config);
  if (entries) return entries;
  const profiles = loadProfiles(config.profiles);
  entries = [...describedDevices(config).values()].map(({ device, desc, alarms }) => {
    const roles = new Map(desc.roles.map((r) => [r.point, r]));
    const role = (name: string): Pick<PointInfo, 'role' | 'channel'> => {
      const r = roles.get(name);
      return { role: r?.role ?? null, channel: r?.channel ?? null };
    };
    const profile = profiles.get(device.profile);
    const points: PointInfo[] =
      device.devEui !== undefined
        ? LORA_POINTS.map((p) => ({ ...p, ...role(p.name) }))
        : (profile?.points ?? []).map((p) => {
            const r = role(p.name);
            return { name: p.name, unit: p.unit ?? null, type: isBoolPoint(p) ? 'bool' : 'number', access: p.access, role: r.role, channel: r.channel ?? p.channel ?? null };
          });
    const info: DeviceInfo = { id: device.id, name: device.name ?? null, kind: desc.kind, profile: device.profile, transport: desc.transport, groups: [...device.groups], points };
    return { info, desc, alarms, devEui: device.devEui ?? null };
  });
  byConfig.set(config, entries);
  return entries;
}

/** The payload of the retained `devices` topic: a JSON array of the devices (radio points marked `radio: true`). */
export function deviceListPayload(config: Config): string {
  return JSON.stringify(deviceEntries(config).map((e) => e.info));
}
