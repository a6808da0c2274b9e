/**
 * Fault injection per simulated unit, settable at runtime: what a broken or misbehaving
 * slave does to a line. A fault applies to the next `count` requests (default: until cleared).
 *
 * - noAnswer: the request is swallowed (a dead or unpowered device).
 * - late: the right answer, `ms` late (a slow device; past the master's timeout it collides
 *   with the next transaction on RTU).
 * - crc: RTU: a frame with a wrong CRC; TCP (no CRC): an MBAP header with protocol id 1.
 * - exception: an exception response with `code` (1..11).
 * - garbage: `bytes` random bytes (default 9) instead of the answer.
 * - truncated: the first half of the answer only.
 * - wrongUnit: a well-formed answer carrying unit id + 1.
 * - wrongTransaction: TCP: a well-formed answer with transaction id + 1; RTU has no
 *   transaction id, so it answers with unit id + 1 like wrongUnit.
 * - loss: each request is dropped (no answer) with probability `rate` (0..1), drawn from a
 *   generator seeded with `seed` (default: the unit id), so a run repeats itself.
 * - lies: firmware (firmware.ts): the device answers a commit and reboots, but boots its old
 *   version. Every request is answered normally.
 */
import { randomBytes } from 'node:crypto';
import { StreetboxError } from '../../errors.js';
import { rng } from './model.js';

export type Fault =
  | { kind: 'noAnswer' }
  | { kind: 'late'; ms: number }
  | { kind: 'crc' }
  | { kind: 'exception'; code: number }
  | { kind: 'garbage'; bytes?: number }
  | { kind: 'truncated' }
  | { kind: 'wrongUnit' }
  | { kind: 'wrongTransaction' }
  | { kind: 'loss'; rate: number; seed?: number }
  | { kind: 'lies' };

export type FaultKind = Fault['kind'];

interface Active {
  fault: Fault;
  remaining: number;
  /** loss: the seeded draw */
  random?: () => number;
}

export class FaultTable {
  private readonly byUnit = new Map<number, Active>();
  /** faults applied so far, per unit */
  readonly applied = new Map<number, number>();

  set(unit: number, fault: Fault | null, opts: { count?: number } = {}): void {
    if (fault === null) {
      this.byUnit.delete(unit);
      return;
    }
    validate(fault);
    const count = opts.count ?? Infinity;
    if (!(count > 0)) throw new StreetboxError('E_USAGE', `"count" must be greater than 0, got ${count}`);
    this.byUnit.set(unit, { fault, remaining: count, ...(fault.kind === 'loss' ? { random: rng(fault.seed ?? unit) } : {}) });
  }

  get(unit: number): Fault | undefined {
    return this.byUnit.get(unit)?.fault;
  }

  /** The fault to apply to this request of `unit`, if any; counts it down (loss: only the requests it drops are returned). */
  take(unit: number): Fault | undefined {
    const a = this.byUnit.get(unit);
    if (!a) return undefined;
    if (--a.remaining <= 0) this.byUnit.delete(unit);
    if (a.fault.kind === 'loss' && a.random && !(a.random() < a.fault.rate)) return undefined;
    this.applied.set(unit, (this.applied.get(unit) ?? 0) + 1);
    return a.fault;
  }
}

function validate(f: Fault): void {
  if (f.kind === 'exception' && !(Number.isInteger(f.code) && f.code >= 1 && f.code <= 11)) {
    throw new StreetboxError('E_USAGE', `fault "exception": "code" must be an integer 1..11, got ${f.code}`);
  }
  if (f.kind === 'loss' && !(f.rate >= 0 && f.rate <= 1)) throw new StreetboxError('E_USAGE', `fault "loss": "rate" must be 0..1, got ${f.rate}`);
  if (f.kind === 'late' && !(f.ms >= 0)) throw new StreetboxError('E_USAGE', `fault "late": "ms" must be >= 0, got ${f.ms}`);
  if (f.kind === 'garbage' && f.bytes !== undefined && !(Number.isInteger(f.bytes) && f.bytes > 0 && f.bytes <= 512)) {
    throw new StreetboxError('E_USAGE', `fault "garbage": "bytes" must be an integer 1..512, got ${f.bytes}`);
  }
}

export function garbage(f: { bytes?: number }): Buffer {
  return randomBytes(f.bytes ?? 9);
}
