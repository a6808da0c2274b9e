/**
 * What the command pipeline knows about the devices of devices.yaml: what each device is (a
 * light and its channels, a traffic controller and the points a program request writes, or
 * something else), as its profile declares it (edge/profiles/describe.ts), the groups and their
 * members. Built once from the config and the profiles; no I/O afterwards.
 */
import type { Config, DeviceConfig, ProfileConfig } from '../config/schema.js';
import { describeDevice, type LightChannel, type TrafficPoints } from '../profiles/describe.js';
import type { ProfileRegistry } from '../profiles/index.js';
import type { DeviceKind } from './roles.js';

export type { LightChannel, TrafficPoints } from '../profiles/describe.js';

export interface CatalogDevice {
  id: string;
  config: DeviceConfig;
  kind: DeviceKind | 'other';
  transport: 'modbus' | 'lorawan';
  profile: ProfileConfig | undefined;
  /** lights on Modbus: the channels of the profile (roles targetLightLevel, switch, rampTime) */
  channels: LightChannel[];
  /** traffic controllers that take program requests: the points of roles programRequest, requestExpiry, mode */
  traffic?: TrafficPoints;
  groups: readonly string[];
  allowCommands: boolean;
}

export class Catalog {
  private readonly devices = new Map<string, CatalogDevice>();
  private readonly groups = new Map<string, string[]>();

  constructor(config: Pick<Config, 'devices' | 'groups'>, profiles: Pick<ProfileRegistry, 'get'>) {
    for (const g of config.groups) this.groups.set(g.id, []);
    for (const d of config.devices) {
      const profile = profiles.get(d.profile);
      const { kind, transport, channels, traffic } = describeDevice(d, profiles);
      const dev: CatalogDevice = { id: d.id, config: d, kind, transport, profile, channels, groups: d.groups, allowCommands: d.allowCommands };
      if (traffic) dev.traffic = traffic;
      this.devices.set(d.id, dev);
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
