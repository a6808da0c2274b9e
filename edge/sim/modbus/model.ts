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
export type { RebootPhase } from './firmware.js';
import type { RebootPhase } from './firmware.js';

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

export { rng, mulberry32 } from './random.js';

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
