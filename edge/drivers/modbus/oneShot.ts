/**
 * One-shot operations behind the CLI (`streetbox scan`, `read`, `write`): each opens the
 * device's bus with a standalone ModbusClient, does one thing and closes it. They talk to the
 * line directly, so they are for a gateway that is not running (a running gateway holds the
 * serial port; go through its API instead).
 */
import type { Config, DeviceConfig, ProfileConfig } from '../../config/schema.js';
import { StreetboxError } from '../../errors.js';
import type { Logger } from '../../log.js';
import { loadProfiles, type ProfileRegistry } from '../../profiles/index.js';
import { ModbusClient, pointOf } from './client.js';
import type { PointValue, WriteResult } from './points.js';

export interface OneShotOptions {
  log?: Logger;
  /** default: loadProfiles(config.profiles) */
  profiles?: ProfileRegistry;
}

/** "1-247", "1,2,5-8" → sorted unique unit ids 1..247; anything else is an E_USAGE error. */
export function parseUnits(spec: string): number[] {
  const units = new Set<number>();
  for (const part of spec.split(',').map((s) => s.trim())) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part);
    if (!m) throw new StreetboxError('E_USAGE', `--units: expected a list like "1-247" or "1,2,5-8", got "${spec}"`);
    const from = Number(m[1]);
    const to = m[2] === undefined ? from : Number(m[2]);
    if (from < 1 || to > 247 || from > to) throw new StreetboxError('E_USAGE', `--units: "${part}" is not a range inside 1..247`);
    for (let u = from; u <= to; u++) units.add(u);
  }
  return [...units].sort((a, b) => a - b);
}

/** "true", "false", "on", "off" or a number. */
export function parseValue(text: string): number | boolean {
  const t = text.trim().toLowerCase();
  if (t === 'true' || t === 'on') return true;
  if (t === 'false' || t === 'off') return false;
  const n = Number(t);
  if (t === '' || !Number.isFinite(n)) throw new StreetboxError('E_USAGE', `expected a number, true/false or on/off, got "${text}"`);
  return n;
}

async function withBus<T>(config: Config, busId: string, opts: OneShotOptions, fn: (client: ModbusClient) => Promise<T>): Promise<T> {
  const bus = config.buses.find((b) => b.id === busId);
  if (!bus) throw new StreetboxError('E_NOT_FOUND', `no bus "${busId}"; buses: ${config.buses.map((b) => b.id).join(', ') || '(none)'}`);
  const client = new ModbusClient(opts.log ? { bus, log: opts.log } : { bus });
  try {
    await client.open();
    return await fn(client);
  } finally {
    await client.close();
  }
}

function modbusDevice(config: Config, deviceId: string, opts: OneShotOptions): { device: DeviceConfig & { bus: string; unit: number }; profile: ProfileConfig } {
  const device = config.devices.find((d) => d.id === deviceId);
  if (!device) throw new StreetboxError('E_NOT_FOUND', `no device "${deviceId}" in the configuration`);
  if (device.bus === undefined || device.unit === undefined) throw new StreetboxError('E_USAGE', `device "${deviceId}" is not a Modbus device`);
  const profile = (opts.profiles ?? loadProfiles(config.profiles)).require(device.profile);
  return { device: device as DeviceConfig & { bus: string; unit: number }, profile };
}

/** The unit ids among `units` that answer on `busId` (default timeout 200 ms per unit). */
export async function scanBus(config: Config, busId: string, units: readonly number[], opts: OneShotOptions & { timeoutMs?: number } = {}): Promise<number[]> {
  return withBus(config, busId, opts, (c) => c.scan(units, opts.timeoutMs === undefined ? {} : { timeoutMs: opts.timeoutMs }));
}

/** All points of a device, or one. */
export async function readDevice(config: Config, deviceId: string, point?: string, opts: OneShotOptions = {}): Promise<PointValue[]> {
  const { device, profile } = modbusDevice(config, deviceId, opts);
  if (point !== undefined) pointOf(profile, point);
  return withBus(config, device.bus, opts, (c) => c.readPoints(device.unit, profile, point === undefined ? undefined : [point]));
}

/** Writes a point and reads it back. */
export async function writeDevice(config: Config, deviceId: string, point: string, value: number | boolean, opts: OneShotOptions = {}): Promise<WriteResult> {
  const { device, profile } = modbusDevice(config, deviceId, opts);
  pointOf(profile, point);
  return withBus(config, device.bus, opts, (c) => c.writePoint(device.unit, profile, point, value));
}
