/**
 * Simulated traffic-light controller, implementing the built-in profile `traffic-controller`
 * (edge/profiles/traffic-controller.yaml; addresses come from the profile's points by name).
 *
 * It runs its own time-of-day plan. A program request (program_request, request_expiry) is
 * accepted only for a program it knows (else exception 3) and only in modes 2 and 3 (else
 * exception 6). The request's expiry is a dead-man timer (NTCIP unitBackupTime): the
 * controller counts it down once a second and, at 0, drops the request and resumes its own
 * plan (request_status 3). Only those two registers are writable: signal-group states are
 * never exposed for writing (any other holding address is exception 2). While its firmware
 * reboots it flashes amber (mode 1; a program request is dropped); it comes up in the mode it
 * had, running its own plan.
 */
import type { ProfileConfig } from '../../config/schema.js';
import { RegisterBank } from './banks.js';
import type { FirmwareModel } from './firmware.js';
import { rng, type DeviceModel, type RebootPhase } from './model.js';
import { EXCEPTION } from './pdu.js';
import { ProfilePoints } from './points.js';

export const TRAFFIC_MODES = { off: 0, flashing: 1, fixedTime: 2, actuated: 3, manual: 4 } as const;
export const REQUEST_STATUS = { none: 0, active: 1, rejected: 2, expired: 3 } as const;
export const TRAFFIC_FAULT_BITS = {
  lampFailure: 0,
  signalConflict: 1,
  detectorFault: 2,
  powerFailure: 3,
  controllerFault: 4,
  clockFault: 5,
} as const;
export type TrafficFault = keyof typeof TRAFFIC_FAULT_BITS;

export interface TrafficOptions {
  /** the programs (signal plans) this controller knows; default 1..4 */
  programs?: number[];
  /** its own plan: the program for an hour of the day (local time of the host); default peak/day/night */
  plan?: (hour: number) => number;
  /** vehicles per second per detector loop (default 0.5) */
  vehiclesPerS?: number;
  /** wall clock for the time-of-day plan; default Date.now */
  now?: () => number;
  /** how long a request written with expiry 0 waits for its expiry to be written (ms, default 2000) */
  expiryGraceMs?: number;
  seed?: number;
}

const LOOPS = 8;

export class TrafficModel implements DeviceModel {
  readonly kind = 'traffic-controller';
  readonly bank = new RegisterBank();
  readonly points: ProfilePoints;
  readonly programs: ReadonlySet<number>;
  firmware: FirmwareModel | undefined;
  /** rebooting: the mode to come back to */
  private modeBeforeReboot: number | null = null;
  private readonly plan: (hour: number) => number;
  private rate: number;
  private readonly now: () => number;
  private readonly grace: number;
  private readonly random: () => number;
  private readonly loops: number[] = [];
  private requestLeftMs = 0;
  private requested = 0;
  private faultBits = 0;
  private lampsFailed = 0;

  constructor(profile: ProfileConfig, opts: TrafficOptions = {}) {
    this.points = new ProfilePoints(profile, this.bank);
    this.programs = new Set(opts.programs ?? [1, 2, 3, 4]);
    this.plan = opts.plan ?? ((h) => (h >= 22 || h < 6 ? 3 : (h >= 7 && h < 9) || (h >= 16 && h < 19) ? 2 : 1));
    this.rate = opts.vehiclesPerS ?? 0.5;
    this.now = opts.now ?? Date.now;
    this.grace = opts.expiryGraceMs ?? 2000;
    this.random = rng(opts.seed ?? 7);
    for (let k = 1; k <= LOOPS; k++) if (this.points.has(`loop${k}_count`)) this.loops.push(Math.floor(this.random() * 100_000));
    for (const table of ['coil', 'discrete', 'holding', 'input'] as const) {
      this.bank.size[table] = (this.points.extent(table)?.[1] ?? -1) + 1;
    }
    this.points.set('mode', TRAFFIC_MODES.actuated);
    this.bank.guard((table, address, values) => this.guard(table, address, values));
    this.bank.onWrite((_t, address, values) => this.written(address, values));
    this.update();
  }

  get mode(): number {
    return this.points.get('mode');
  }

  setMode(mode: number): void {
    this.points.set('mode', mode);
    if (mode !== TRAFFIC_MODES.fixedTime && mode !== TRAFFIC_MODES.actuated && this.requested) this.release(REQUEST_STATUS.none);
    this.update();
  }

  reboot(phase: RebootPhase): void {
    if (phase === 'down') {
      this.modeBeforeReboot ??= this.mode;
      this.setMode(TRAFFIC_MODES.flashing);
      this.points.set('request_status', REQUEST_STATUS.none);
    } else if (this.modeBeforeReboot !== null) {
      this.setMode(this.modeBeforeReboot);
      this.modeBeforeReboot = null;
    }
  }

  /** Raises or clears a fault flag; a lamp failure also sets the failed-lamp count (default 1). */
  setFault(fault: TrafficFault, on = true, lamps = 1): void {
    const bit = 1 << TRAFFIC_FAULT_BITS[fault];
    this.faultBits = on ? this.faultBits | bit : this.faultBits & ~bit;
    if (fault === 'lampFailure') this.lampsFailed = on ? lamps : 0;
    this.update();
  }

  /** Vehicles per second per detector loop from now on; 0 freezes the counts (tests, demos). */
  setVehicleRate(perS: number): void {
    this.rate = Math.max(0, perS);
  }

  setDoorOpen(open: boolean): void {
    this.points.set('cabinet_door_open', open);
  }

  tick(dtMs: number): void {
    const mode = this.mode;
    if (mode === TRAFFIC_MODES.fixedTime || mode === TRAFFIC_MODES.actuated) {
      // Vehicles pass each loop as a Poisson process.
      const expected = (this.rate * dtMs) / 1000;
      this.loops.forEach((c, i) => (this.loops[i] = (c + poisson(expected, this.random)) % 2 ** 32));
    }
    if (this.requested) {
      this.requestLeftMs -= dtMs;
      if (this.requestLeftMs <= 0) this.release(REQUEST_STATUS.expired);
    }
    this.update();
  }

  private guard(table: 'coil' | 'holding', address: number, values: readonly number[]): number | undefined {
    if (table !== 'holding') return EXCEPTION.illegalDataAddress;
    const req = this.points.point('program_request').address;
    const exp = this.points.point('request_expiry').address;
    for (let i = 0; i < values.length; i++) {
      const a = address + i;
      if (a === exp) continue;
      if (a !== req) return EXCEPTION.illegalDataAddress;
      const v = values[i]!;
      if (v === 0) continue;
      if (!this.programs.has(v)) {
        this.points.set('request_status', REQUEST_STATUS.rejected);
        return EXCEPTION.illegalDataValue;
      }
      const mode = this.mode;
      if (mode !== TRAFFIC_MODES.fixedTime && mode !== TRAFFIC_MODES.actuated) return EXCEPTION.serverDeviceBusy;
    }
    return undefined;
  }

  private written(address: number, values: readonly number[]): void {
    const req = this.points.point('program_request').address;
    const exp = this.points.point('request_expiry').address;
    const expiry = exp >= address && exp < address + values.length ? values[exp - address]! : undefined;
    const program = req >= address && req < address + values.length ? values[req - address]! : undefined;
    if (program !== undefined) {
      if (program === 0) this.release(REQUEST_STATUS.none);
      else {
        this.requested = program;
        const left = expiry ?? this.points.get('request_expiry');
        this.requestLeftMs = left > 0 ? left * 1000 : this.grace;
      }
    } else if (expiry !== undefined && this.requested) this.requestLeftMs = expiry * 1000; // a renewal
    this.update();
  }

  private release(status: number): void {
    this.requested = 0;
    this.requestLeftMs = 0;
    this.points.set('program_request', 0);
    this.points.set('request_expiry', 0);
    this.points.set('request_status', status);
  }

  private update(): void {
    const pt = this.points;
    const mode = this.mode;
    const own = mode === TRAFFIC_MODES.off || mode === TRAFFIC_MODES.flashing ? 0 : this.plan(new Date(this.now()).getHours());
    pt.set('active_program', this.requested || own);
    if (this.requested) {
      pt.set('request_status', REQUEST_STATUS.active);
      pt.set('request_expiry', Math.ceil(this.requestLeftMs / 1000));
    }
    pt.set('faults', this.faultBits);
    pt.set('lamp_failures', this.lampsFailed);
    this.loops.forEach((c, i) => pt.set(`loop${i + 1}_count`, c));
  }
}

function poisson(lambda: number, random: () => number): number {
  if (lambda <= 0) return 0;
  if (lambda > 30) return Math.max(0, Math.round(lambda + Math.sqrt(lambda) * (random() + random() + random() - 1.5) * 2));
  const l = Math.exp(-lambda);
  let k = 0;
  let p = 1;
  do {
    k++;
    p *= random();
  } while (p > l);
  return k - 1;
}
