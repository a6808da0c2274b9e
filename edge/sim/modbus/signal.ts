/**
 * A device that plays a known signal (tests of the report strategies, edge/report): every point
 * of its profile holds the same sample, and each read request the unit receives moves every
 * point to the next one. A poll reading its points in one request sees one sample, the next poll
 * the next: poll and signal are locked, whatever the timing of the polls.
 */
import type { ProfileConfig } from '../../config/schema.js';
import { RegisterBank } from './banks.js';
import type { DeviceModel } from './model.js';
import { ProfilePoints } from './points.js';
import { UnitRegistry, type Served } from './units.js';

/** // MODBUS Application Protocol V1.1b3 §6.1–6.4: the read function codes */
const READS = new Set([0x01, 0x02, 0x03, 0x04]);

export class SignalModel implements DeviceModel {
  readonly kind = 'signal';
  readonly bank = new RegisterBank();
  readonly points: ProfilePoints;
  private readonly signal: (n: number) => number;
  /** samples played so far: the points hold sample `played - 1` */
  played = 0;

  /** `signal(n)`: the n-th sample, in the points' engineering units */
  constructor(profile: ProfileConfig, signal: (n: number) => number) {
    this.points = new ProfilePoints(profile, this.bank);
    this.signal = signal;
  }

  /** Every point to the next sample. */
  advance(): void {
    const v = this.signal(this.played++);
    for (const p of this.points.profile.points) this.points.set(p.name, v);
  }

  /** The signal follows the reads, not the clock. */
  tick(): void {}
}

/** Units whose signal models advance on every read request addressed to them (faulted ones too). */
export class SignalUnits extends UnitRegistry {
  private readonly models = new Map<number, SignalModel>();

  addSignal(unit: number, model: SignalModel): void {
    this.add(unit, model.bank);
    this.models.set(unit, model);
  }

  override serve(unit: number, pdu: Uint8Array, head: number, tail: number): Served {
    if (READS.has(pdu[0] ?? 0)) this.models.get(unit)?.advance();
    return super.serve(unit, pdu, head, tail);
  }
}
