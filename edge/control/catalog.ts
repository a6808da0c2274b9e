/**
 * What the command pipeline knows about the devices of devices.yaml: which are lights (Modbus
 * streetlight controllers with chN_dim_setpoint / chN_on channels, LoRaWAN streetlight nodes),
 * which are traffic controllers (a profile with `program_request`), the groups and their
 * members. Built once from the config and the profiles; no I/O afterwards.
 */
import type { Config, DeviceConfig, ProfileConfig } from '../config/schema.js';
import type { ProfileRegistry } from '../profiles/index.js';
import type { DeviceKind } from './roles.js';

/** The two points of a traffic controller a program request writes; nothing else is ever written. */
export const TRAFFIC_REQUEST_POINT = 'program_request';
export const TRAFFIC_EXPIRY_POINT = 'request_expiry';
export const TRAFFIC_MODE_POINT = 'mode';

export interface LightChannel {
  n: number;
  setpoint: string;
  on: string;
  /** chN_on is a bool point (coil, bit, bool): written true/false; else a register written 1/0 */
  onBool: boolean;
  /** a ramp-time register of the profile (seconds), when it has one */
  ramp?: string;
}

export interface CatalogDevice {
  id: string;
  config: DeviceConfig;
  kind: DeviceKind | 'other';
  transport: 'modbus' | 'lorawan';
  profile: ProfileConfig | undefined;
  /** lights on Modbus: the channels of the profile */
  channels: LightChannel[];
  groups: readonly string[];
  allowCommands: boolean;
}

const CHANNEL_RE = /^ch(\d+)_dim_setpoint$/;

function channelsOf(profile: ProfileConfig | undefined): LightChannel[] {
  if (!profile) return [];
  const rw = new Map(profile.points.filter((p) => p.access === 'rw').map((p) => [p.name, p]));
  const out: LightChannel[] = [];
  for (const p of profile.points) {
    const m = CHANNEL_RE.exec(p.name);
    if (!m || p.access !== 'rw') continue;
    const n = Number(m[1]);
    const on = `ch${n}_on`;
    const onPoint = rw.get(on);
    if (!onPoint) continue;
    const onBool = onPoint.type === 'bool' || onPoint.table === 'coil' || onPoint.bit !== undefined;
    const ramp = [`ch${n}_ramp_s`, `ch${n}_ramp_time`, 'ramp_s', 'ramp_time'].find((r) => rw.has(r));
    out.push(ramp === undefined ? { n, setpoint: p.name, on, onBool } : { n, setpoint: p.name, on, onBool, ramp });
  }
  return out.sort((a, b) => a.n - b.n);
}

export class Catalog {
  private readonly devices = new Map<string, CatalogDevice>();
  private readonly groups = new Map<string, string[]>();

  constructor(config: Pick<Config, 'devices' | 'groups'>, profiles: Pick<ProfileRegistry, 'get'>) {
    for (const g of config.groups) this.groups.set(g.id, []);
    for (const d of config.devices) {
      const transport = d.devEui !== undefined ? 'lorawan' : 'modbus';
      const profile = profiles.get(d.profile);
      const channels = transport === 'modbus' ? channelsOf(profile) : [];
      const isTraffic =
        profile?.kind === 'traffic' || d.profile === 'traffic-controller' || (profile?.points.some((p) => p.name === TRAFFIC_REQUEST_POINT) ?? false);
      const kind: CatalogDevice['kind'] = isTraffic ? 'traffic' : transport === 'lorawan' || channels.length > 0 ? 'lighting' : 'other';
      this.devices.set(d.id, { id: d.id, config: d, kind, transport, profile, channels, groups: d.groups, allowCommands: d.allowCommands });
      for (const g of d.groups) {
        const members = this.groups.get(g) ?? [];
        members.push(d.id);
        this.groups.set(g, members);
      }
    }
  }

  device(id: string): CatalogDevice | undefined {
    return this.devices.get(id);
  }

  /** The member device ids of a group (declared under `groups:` or named by a device), or undefined. */
  members(groupId: string): readonly string[] | undefined {
    return this.groups.get(groupId);
  }

  hasGroup(groupId: string): boolean {
    return this.groups.has(groupId);
  }

  deviceIds(): string[] {
    return [...this.devices.keys()];
  }

  groupIds(): string[] {
    return [...this.groups.keys()];
  }

  lights(): CatalogDevice[] {
    return [...this.devices.values()].filter((d) => d.kind === 'lighting');
  }

  /** For the broker's ACL (roles.ts mqttAllowed deviceKind). */
  kindOf(id: string): DeviceKind | undefined {
    const k = this.devices.get(id)?.kind;
    return k === 'lighting' || k === 'traffic' ? k : undefined;
  }
}
