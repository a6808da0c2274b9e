/**
 * A simulated device: a register bank plus the behaviour behind it. The simulator advances
 * every model with tick(dt) (simulated ms; `speed` scales it). A device whose profile declares
 * `firmware` gets a FirmwareModel (firmware.ts, attached by createModel): its bootloader, and
 * reboots, whose effect on the outputs the model says in reboot().
 */
import type { ProfileConfig } from '../../config/schema.js';
import { RegisterBank } from './banks.js';
import type { FirmwareModel } from './firmware.js';
import { ProfilePoints } from './points.js';

/** 'down' when the device goes silent after a commit, 'up' when it runs (its new firmware) again */
export type RebootPhase = 'down' | 'up';

export interface DeviceModel {
  readonly kind: string;
  readonly bank: RegisterBank;
  readonly points: ProfilePoints;
  /** its firmware, when its profile declares one */
  firmware?: FirmwareModel | undefined;
  tick(dtMs: number): void;
  /** What a reboot does to the device's outputs (default: nothing). */
  reboot?(phase: RebootPhase): void;
}

/** A deterministic pseudo-random source (mulberry32), so a seeded simulator repeats itself; seed 0 is taken as 0x9e3779b9. */
export function rng(seed: number): () => number {
  return mulberry32(seed >>> 0 || 0x9e3779b9);
}

/** mulberry32: a small seeded PRNG in [0, 1), the seed taken as it is (a uint32), so a run can be replayed from its seed. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Any other profile: its points hold fixed values (0 unless set), reads and writes of the
 * profile's addresses work, everything else is exception 2.
 */
export class GenericModel implements DeviceModel {
  readonly kind = 'generic';
  readonly bank = new RegisterBank();
  readonly points: ProfilePoints;
  firmware: FirmwareModel | undefined;

  constructor(profile: ProfileConfig) {
    this.points = new ProfilePoints(profile, this.bank);
    for (const table of ['coil', 'discrete', 'holding', 'input'] as const) {
      this.bank.size[table] = (this.points.extent(table)?.[1] ?? -1) + 1;
    }
  }

  tick(): void {}
}
