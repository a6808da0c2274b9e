/**
 * Simulated two-channel streetlight controller, implementing the built-in profile
 * `streetlight-controller` (edge/profiles/streetlight-controller.yaml; addresses come from
 * the profile's points by name). On/off and dim setpoint are writable (out-of-range values
 * get exception 3, writes to read-only registers exception 2); the actual level follows the
 * setpoint, power follows the level, energy and burning hours accumulate, mains voltage
 * jitters; lamp-failure and driver-fault bits can be injected. While its firmware reboots its
 * outputs are dark; it comes up at 100 % on both channels, its safe default.
 */
import type { ProfileConfig } from '../../config/schema.js';
import { RegisterBank } from './banks.js';
import type { FirmwareModel } from './firmware.js';
import { rng, type DeviceModel, type RebootPhase } from './model.js';
import { EXCEPTION } from './pdu.js';
import { ProfilePoints } from './points.js';

export interface StreetlightOptions {
  /** rated power per channel, W (default 60 and 40) */
  ratedW?: [number, number];
  seed?: number;
}

interface Channel {
  n: 1 | 2;
  lampFailure: boolean;
  driverFault: boolean;
  overTemperature: boolean;
  ratedW: number;
  /** fractional energy (kWh) and burning time (h), kept exact between register updates */
  energyKWh: number;
  burningH: number;
}

export class StreetlightModel implements DeviceModel {
  readonly kind = 'streetlight-controller';
  readonly bank = new RegisterBank();
  readonly points: ProfilePoints;
  firmware: FirmwareModel | undefined;
  private readonly channels: Channel[];
  private readonly random: () => number;
  /** rebooting: the outputs are dark */
  private down = false;

  constructor(profile: ProfileConfig, opts: StreetlightOptions = {}) {
    this.points = new ProfilePoints(profile, this.bank);
    this.random = rng(opts.seed ?? 1);
    const rated = opts.ratedW ?? [60, 40];
    this.channels = ([1, 2] as const).map((n) => ({
      n,
      lampFailure: false,
      driverFault: false,
      overTemperature: false,
      ratedW: rated[n - 1]!,
      energyKWh: Math.round(200 + this.random() * 5000),
      burningH: Math.round(1000 + this.random() * 20000),
    }));
    this.bank.size.holding = this.points.extent('holding')![1] + 1;
    this.bank.size.coil = this.bank.size.discrete = this.bank.size.input = 0;
    const pt = this.points;
    pt.set('mains_voltage', 230);
    pt.set('mains_frequency', 50);
    pt.set('temperature', 25);
    for (const ch of this.channels) {
      pt.set(`ch${ch.n}_on`, true);
      pt.set(`ch${ch.n}_dim_setpoint`, 100);
    }
    this.bank.guard((table, address, values) => this.guard(table, address, values));
    this.bank.onWrite(() => this.update(0));
    this.update(0);
  }

  /** Injects (or clears) a lamp failure or driver fault on channel 1 or 2. */
  inject(channel: 1 | 2, fault: 'lampFailure' | 'driverFault' | 'overTemperature', on = true): void {
    this.channels[channel - 1]![fault] = on;
    this.update(0);
  }

  reboot(phase: RebootPhase): void {
    this.down = phase === 'down';
    if (phase === 'up') {
      for (const ch of this.channels) {
        this.points.set(`ch${ch.n}_on`, true);
        this.points.set(`ch${ch.n}_dim_setpoint`, 100);
      }
    }
    this.update(0);
  }

  tick(dtMs: number): void {
    const pt = this.points;
    // Mains jitters around 230 V / 50 Hz.
    pt.set('mains_voltage', 230 + (this.random() - 0.5) * 6);
    pt.set('mains_frequency', 50 + (this.random() - 0.5) * 0.1);
    this.update(dtMs);
  }

  private guard(table: 'coil' | 'holding', address: number, values: readonly number[]): number | undefined {
    if (table !== 'holding') return EXCEPTION.illegalDataAddress;
    for (let i = 0; i < values.length; i++) {
      const a = address + i;
      const v = values[i]!;
      const ch = this.channels.find((c) => this.points.point(`ch${c.n}_on`).address === a || this.points.point(`ch${c.n}_dim_setpoint`).address === a);
      if (!ch) return EXCEPTION.illegalDataAddress;
      const isOn = this.points.point(`ch${ch.n}_on`).address === a;
      if (isOn ? v > 1 : v > 100) return EXCEPTION.illegalDataValue;
    }
    return undefined;
  }

  /** Derives level, power, status, energy and burning hours from the settings and faults. */
  private update(dtMs: number): void {
    const pt = this.points;
    let totalW = 0;
    for (const ch of this.channels) {
      const p = `ch${ch.n}_`;
      const on = pt.get(`${p}on`) === 1;
      const level = on && !ch.driverFault && !this.down ? pt.get(`${p}dim_setpoint`) : 0;
      pt.set(`${p}dim_level`, level);
      // A failed lamp draws (almost) nothing; a driver at a level draws its share plus losses.
      const watts = level === 0 || ch.lampFailure ? 0 : (ch.ratedW * level) / 100 + 1.5 + (this.random() - 0.5) * 0.4;
      pt.set(`${p}power`, watts);
      totalW += watts;
      ch.energyKWh += (watts * dtMs) / 3_600_000_000;
      if (watts > 0) ch.burningH += dtMs / 3_600_000;
      pt.set(`${p}energy`, Math.floor(ch.energyKWh * 100 + 1e-6) / 100);
      pt.set(`${p}burning_hours`, Math.floor(ch.burningH + 1e-9));
      pt.set(`${p}status`, (ch.lampFailure ? 1 : 0) | (ch.driverFault ? 2 : 0) | (ch.overTemperature ? 4 : 0));
    }
    pt.set('temperature', 25 + totalW / 10);
  }
}
