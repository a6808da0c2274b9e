/**
 * What a device is doing now, in the words of the map and of the metrics: a light is on, dimmed
 * or off; any device is offline, or in alarm. One function, read by the status page's live feed
 * (map colours, the level on each control) and by GET /metrics (streetbox_device_level,
 * streetbox_device_state); nothing else decides it.
 *
 * From the device's profile (its roles, edge/profiles/describe.ts, and its alarms) and the latest
 * values of the store; never from point names:
 * - offline: the driver or the comms events say so (a device never heard of is `unknown`);
 * - alarm: an alarm of the profile is active in the latest values (its point, its bit or any
 *   non-zero value), or a point of role lampFailure is true;
 * - a light's level: the highest channel's actualLightLevel (the level the lamp reports), else
 *   its targetLightLevel; a channel whose switch is off counts 0. on = 100 %, dimmed = 1..99 %,
 *   off = 0 % (a light with no level reported yet is `unknown`);
 * - anything else that is online and in no alarm is `on` (it runs).
 */
import type { AlarmConfig, Config, DeviceConfig, ProfileConfig } from '../config/schema.js';
import { describeDevice, type DeviceDescription } from '../profiles/describe.js';
import { loadProfiles } from '../profiles/index.js';
import type { LatestValue } from '../store/types.js';

export const DEVICE_STATES = ['on', 'dimmed', 'off', 'offline', 'alarm', 'unknown'] as const;
export type DeviceState = (typeof DEVICE_STATES)[number];

export interface DeviceNow {
  state: DeviceState;
  /** a light's level now, 0..100 %; null for other kinds or when not reported yet */
  level: number | null;
  /** names of the active alarms (profile alarms, then lampFailure points) */
  alarms: string[];
}

/** The alarms of a device's profile (none for a built-in LoRaWAN profile: its lampFailure point says it). */
export function profileAlarms(profile: ProfileConfig | undefined): readonly AlarmConfig[] {
  return profile?.alarms ?? [];
}

function numberOf(v: LatestValue | undefined): number | null {
  if (!v || v.quality === 'bad') return null;
  if (typeof v.value === 'number' && Number.isFinite(v.value)) return v.value;
  if (typeof v.value === 'boolean') return v.value ? 1 : 0;
  return null;
}

function alarmActive(a: AlarmConfig, latest: ReadonlyMap<string, LatestValue>): boolean {
  const n = numberOf(latest.get(a.point));
  if (n === null) return false;
  return a.bit === undefined ? n !== 0 : (Math.trunc(n) & (1 << a.bit)) !== 0;
}

/** The active alarms: the profile's, then each lampFailure point that is true. */
function activeAlarms(desc: DeviceDescription, alarms: readonly AlarmConfig[], latest: ReadonlyMap<string, LatestValue>): string[] {
  const out = alarms.filter((a) => alarmActive(a, latest)).map((a) => a.name);
  for (const r of desc.roles) {
    if (r.role !== 'lampFailure' || out.includes(r.point)) continue;
    if (numberOf(latest.get(r.point)) === 1) out.push(r.point);
  }
  return out;
}

/** A light's level now: the highest of its channels (a lamp switched off counts 0), null when none reported. */
export function lightLevel(desc: DeviceDescription, latest: ReadonlyMap<string, LatestValue>): number | null {
  const channels = new Set<number | undefined>(desc.roles.filter((r) => r.role === 'actualLightLevel' || r.role === 'targetLightLevel').map((r) => r.channel));
  let best: number | null = null;
  for (const ch of channels) {
    const point = (role: string): string | undefined => desc.roles.find((r) => r.role === role && r.channel === ch)?.point;
    const actual = point('actualLightLevel');
    const target = point('targetLightLevel');
    let level = numberOf(actual === undefined ? undefined : latest.get(actual)) ?? numberOf(target === undefined ? undefined : latest.get(target));
    if (level === null) continue;
    const sw = point('switch');
    if (sw !== undefined && numberOf(latest.get(sw)) === 0) level = 0;
    level = Math.max(0, Math.min(100, level));
    best = best === null ? level : Math.max(best, level);
  }
  return best;
}

/** What the device is doing now (see the file's comment). `online`: null when never heard of. */
export function deviceState(desc: DeviceDescription, alarms: readonly AlarmConfig[], latest: ReadonlyMap<string, LatestValue>, online: boolean | null): DeviceNow {
  const level = desc.kind === 'lighting' ? lightLevel(desc, latest) : null;
  const active = activeAlarms(desc, alarms, latest);
  let state: DeviceState;
  if (online === false) state = 'offline';
  else if (active.length > 0) state = 'alarm';
  else if (desc.kind === 'lighting') state = level === null ? 'unknown' : level >= 100 ? 'on' : level > 0 ? 'dimmed' : 'off';
  else state = online === true ? 'on' : 'unknown';
  return { state, level, alarms: active };
}

/** A configured device as deviceState() reads it: its description and its profile's alarms. */
export interface DescribedDevice {
  device: DeviceConfig;
  desc: DeviceDescription;
  alarms: readonly AlarmConfig[];
}

/** Per configuration object (a configuration change makes a new one): the profiles are read once, not at each status or scrape. */
const describedByConfig = new WeakMap<Config, ReadonlyMap<string, DescribedDevice>>();

/** Every configured device, described, by id, in the order of devices.yaml. */
export function describedDevices(config: Config): ReadonlyMap<string, DescribedDevice> {
  let byId = describedByConfig.get(config);
  if (!byId) {
    const profiles = loadProfiles(config.profiles);
    byId = new Map(config.devices.map((device) => [device.id, { device, desc: describeDevice(device, profiles), alarms: profileAlarms(profiles.get(device.profile)) }]));
    describedByConfig.set(config, byId);
  }
  return byId;
}

/**
 * online/lastSeen of a device: its driver's row says, else the comms events (online) and its
 * newest value (lastSeen: a LoRaWAN node heard before a restart was last seen when its newest
 * value came, not "never"). The API's device rows, the live feed and /metrics all ask this.
 */
export function deviceAvailability(
  row: Readonly<Record<string, unknown>> | undefined,
  fromEvents: { online: boolean } | undefined,
  lastValueTs: number | null,
): { online: boolean | null; lastSeen: number | null } {
  return {
    online: typeof row?.['online'] === 'boolean' ? row['online'] : (fromEvents?.online ?? null),
    lastSeen: typeof row?.['lastSeen'] === 'number' ? row['lastSeen'] : lastValueTs,
  };
}

/** The newest timestamp of a device's latest values, null when it has none. */
export function newestTs(latest: ReadonlyMap<string, LatestValue>): number | null {
  let newest: number | null = null;
  for (const v of latest.values()) if (newest === null || v.ts > newest) newest = v.ts;
  return newest;
}
