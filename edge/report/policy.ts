/**
 * The report policy of a configuration: which strategy (strategy.ts) each point of each device
 * follows. The most specific one declared, taken whole:
 *
 *   1. the device's per-point override in devices.yaml   devices[].points.<point>.report
 *   2. the device's report, for all its points             devices[].report
 *      (an alarm's input or a lamp failure takes it without deadband and minimum interval:
 *      every change of those is stored, everyChange.ts)
 *   3. the profile point's report                          profiles[].points[].report, a built-in's
 *   4. the default of the point's role (defaults.ts), or of a LoRaWAN radio point
 *   5. DEFAULT_STRATEGY
 *
 * The defaults (4, 5) of a LoRaWAN device's points take the LoRaWAN heartbeat (defaults.ts). A
 * point the configuration does not know (the stat readings of a forwarder `gw-<eui>`, a point no
 * profile names) follows DEFAULT_STRATEGY. Everything is resolved once, when the policy is made:
 * asking for a point's strategy is two Map lookups.
 */
import type { Config, DeviceConfig } from '../config/schema.js';
import { loadProfiles, type ProfileRegistry } from '../profiles/index.js';
import type { RadioPoint } from '../profiles/loraStreetlight.js';
import { onLoRaWAN, RADIO_DEFAULTS, ROLE_DEFAULTS, type ReportDefault } from './defaults.js';
import { storingEveryChange } from './everyChange.js';
import { devicePoints, type ReportPoint } from './points.js';
import { DEFAULT_STRATEGY, type ReportStrategy } from './strategy.js';
import type { DeclaringPolicy } from './filter.js';

/** Where a point's strategy comes from (1–5 above). */
export type ReportSource = 'device point' | 'device' | 'profile' | 'role' | 'default';

export interface PointReport {
  point: string;
  strategy: ReportStrategy;
  from: ReportSource;
  /** why the strategy is not the one written at `from` (the device's report on an alarm input) */
  note?: string;
}

export function reportPolicy(config: Config): DeclaringPolicy {
  const profiles = loadProfiles(config.profiles);
  const byDevice = new Map<string, Map<string, ReportStrategy>>();
  for (const device of config.devices) {
    byDevice.set(device.id, new Map(resolveDevice(device, profiles).map((r) => [r.point, r.strategy])));
  }
  return {
    strategy: (device, point) => byDevice.get(device)?.get(point) ?? DEFAULT_STRATEGY,
    // a configuration change forgets the points a configured device no longer has (filter.ts
    // setPolicy); values of what the config does not list (a forwarder's radio figures) are kept
    declares: (device, point) => byDevice.get(device)?.has(point) ?? true,
  };
}

/** Every point of a device with its strategy and where that comes from (doctor, CLI); [] for an unknown device. */
export function describeReport(config: Config, deviceId: string): PointReport[] {
  const device = config.devices.find((d) => d.id === deviceId);
  return device === undefined ? [] : resolveDevice(device, loadProfiles(config.profiles));
}

function resolveDevice(device: DeviceConfig, profiles: ProfileRegistry): PointReport[] {
  const known = devicePoints(device, profiles);
  if (known === undefined) return [];
  return known.points.map((p) => ({ point: p.name, ...resolve(device, p, known.lorawan) }));
}

function resolve(device: DeviceConfig, p: ReportPoint, lorawan: boolean): Omit<PointReport, 'point'> {
  const points = device.points ?? {};
  if (Object.hasOwn(points, p.name)) return { strategy: points[p.name]!.report, from: 'device point' };
  if (device.report !== undefined) return broad(device.report, p, 'device');
  if (p.report !== undefined) return { strategy: p.report, from: 'profile' };
  const builtIn: ReportDefault | undefined = p.radio ? RADIO_DEFAULTS[p.name as RadioPoint] : p.role === undefined ? undefined : ROLE_DEFAULTS[p.role];
  const lora = (s: ReportStrategy): ReportStrategy => (lorawan ? onLoRaWAN(s) : s);
  if (builtIn !== undefined) return broad(lora(builtIn.strategy), p, 'role');
  return { strategy: lora(DEFAULT_STRATEGY), from: 'default' };
}

/**
 * A strategy not written for this point (the device's report, its role's default) as the point
 * takes it: one whose every change is stored (an alarm's input) keeps it without deadband and
 * minimum interval.
 */
function broad(report: ReportStrategy, p: ReportPoint, from: 'device' | 'role'): Omit<PointReport, 'point'> {
  const strategy = p.everyChange === undefined ? report : storingEveryChange(report);
  if (strategy === report) return { strategy, from };
  const whose = from === 'device' ? "the device's" : "its role's";
  return { strategy, from, note: `every change, without ${whose} deadband and minimum interval (${p.everyChange})` };
}
