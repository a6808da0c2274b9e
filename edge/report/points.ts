/**
 * The points of a device as report strategies see them: name, role, the profile's `report:`, and
 * whether every change of the point must be stored (everyChange.ts). Read by the policy
 * (policy.ts) and by the loader's check of the devices' `points:` (edge/config/deviceReports.ts).
 */
import type { DeviceConfig, ProfileConfig } from '../config/schema.js';
import { describeDevice } from '../profiles/describe.js';
import { LORA_STREETLIGHT_POINTS, RADIO_POINTS } from '../profiles/loraStreetlight.js';
import { isBoolPoint, POINT_ROLES, type PointRole } from '../profiles/pointRoles.js';
import { everyChangeReasons, lampFailureReason, type EveryChangePoint } from './everyChange.js';
import type { ReportStrategy } from './strategy.js';

export interface ReportPoint extends EveryChangePoint {
  role?: PointRole;
  /** the profile point's `report:` */
  report?: ReportStrategy;
  /** a LoRaWAN radio point (RADIO_POINTS: rssi, snr, dr, gateways, txPower, battery, externalPower, margin) */
  radio?: true;
}

export interface DevicePoints {
  /** a LoRaWAN node (it has a devEui): its points are the lora-streetlight codec's and the radio's */
  lorawan: boolean;
  points: ReportPoint[];
}

type Profiles = { get(name: string): ProfileConfig | undefined };

/** The points of a device; undefined for a Modbus device whose profile is unknown. */
export function devicePoints(device: Pick<DeviceConfig, 'profile' | 'devEui'>, profiles: Profiles): DevicePoints | undefined {
  if (device.devEui !== undefined) return { lorawan: true, points: LORA_POINTS };
  const profile = profiles.get(device.profile);
  if (!profile) return undefined;
  // the roles as describeDevice reads them (inferred from the old names for a profile written before roles)
  const roles = new Map(describeDevice(device, profiles).roles.map((r) => [r.point, r.role]));
  const reasons = everyChangeReasons(profile);
  const points = profile.points.map((pt) => {
    const role = roles.get(pt.name);
    const reason = reasons.get(pt.name);
    return {
      name: pt.name,
      bool: isBoolPoint(pt),
      ...(role === undefined ? {} : { role }),
      ...(pt.report === undefined ? {} : { report: pt.report }),
      ...(reason === undefined ? {} : { everyChange: reason }),
    };
  });
  return { lorawan: false, points };
}

/** Every LoRaWAN node speaks the lora-streetlight codec (its roles hold whatever the profile), plus the radio points. */
const LORA_POINTS: ReportPoint[] = [
  ...LORA_STREETLIGHT_POINTS.map((p) => ({
    name: p.name,
    // the codec's only point that must report every change is a lamp failure, a bool by its role
    bool: p.role !== undefined && POINT_ROLES[p.role].value === 'bool',
    ...(p.role === undefined ? {} : { role: p.role }),
    ...(p.report === undefined ? {} : { report: p.report }),
    ...(p.role === 'lampFailure' ? { everyChange: lampFailureReason(p.name) } : {}),
  })),
  ...RADIO_POINTS.map((name) => ({ name, bool: name === 'externalPower', radio: true as const })),
];
