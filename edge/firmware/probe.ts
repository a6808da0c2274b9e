/**
 * The functional probe after a device rebooted into its new firmware (issue 17 Deliver 4): the
 * version alone does not make an update done, the device must also do its job.
 * - a light answers a dim and reads it back: its first channel's setpoint is written to a probe
 *   level (its wanted level, or 10 points off it when that equals what it reads now) and read back
 *   verified; the engine then drives it back to its wanted level;
 * - a traffic controller reports its own plan running: mode fixed-time or vehicle-actuated, a
 *   program active, no program request active;
 * - any other device: its points read without error.
 */
import type { ProfileConfig } from '../config/schema.js';
import type { ModbusDriver } from '../drivers/modbus/index.js';
import { errorMessage } from '../errors.js';
import { describeProfile } from '../profiles/describe.js';

export type ProbeResult = { ok: true; detail: string } | { ok: false; reason: string };

const TRAFFIC_OWN_PLAN_MODES = new Set([2, 3]);

export async function functionalProbe(modbus: ModbusDriver, device: string, profile: ProfileConfig, wantedLevel: number | null): Promise<ProbeResult> {
  const d = describeProfile(profile);
  try {
    if (d.kind === 'lighting' && d.channels.length > 0) {
      const ch = d.channels[0]!;
      const now = (await modbus.read(device, ch.setpoint))[0]?.value;
      let level = wantedLevel ?? 100;
      if (typeof now === 'number' && Math.round(now) === level) level = level >= 50 ? level - 10 : level + 10;
      const w = await modbus.write(device, ch.setpoint, level);
      if (w.status !== 'verified') return { ok: false, reason: `the light did not take a dim to ${level} %: ${w.reason ?? w.status}` };
      return { ok: true, detail: `dimmed to ${level} % and read back` };
    }
    if (d.kind === 'traffic') {
      const role = (r: string) => d.roles.find((x) => x.role === r)?.point;
      const values = new Map((await modbus.read(device)).map((v) => [v.point, v.value]));
      const mode = role('mode') ? values.get(role('mode')!) : undefined;
      const program = role('activeProgram') ? values.get(role('activeProgram')!) : undefined;
      const request = role('requestStatus') ? values.get(role('requestStatus')!) : undefined;
      if (typeof mode === 'number' && !TRAFFIC_OWN_PLAN_MODES.has(mode)) return { ok: false, reason: `the controller runs in mode ${mode}, not its own plan (fixed-time or vehicle-actuated)` };
      if (typeof program === 'number' && program < 1) return { ok: false, reason: 'the controller reports no program running' };
      if (request === 1) return { ok: false, reason: 'the controller reports a program request active, not its own plan' };
      return { ok: true, detail: `runs its own plan${typeof program === 'number' ? ` (program ${program})` : ''}` };
    }
    await modbus.read(device);
    return { ok: true, detail: 'its points read' };
  } catch (err) {
    return { ok: false, reason: `the device did not answer the probe: ${errorMessage(err)}` };
  }
}
