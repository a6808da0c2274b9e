/**
 * Profile points on a simulated unit's register bank: the device models read and write
 * their state in engineering units, by point name, through the same profile YAML the
 * driver polls (so an address lives in one place only). Encoding is written here
 * independently of the driver's codec, so a codec bug shows up as a wrong reading.
 */
import type { PointConfig, ProfileConfig } from '../../config/schema.js';
import { StreetboxError } from '../../errors.js';
import type { RegisterBank } from './banks.js';

export class ProfilePoints {
  private readonly byName = new Map<string, PointConfig>();
  readonly profile: ProfileConfig;
  private readonly bank: RegisterBank;

  constructor(profile: ProfileConfig, bank: RegisterBank) {
    this.profile = profile;
    this.bank = bank;
    for (const p of profile.points) this.byName.set(p.name, p);
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  point(name: string): PointConfig {
    const p = this.byName.get(name);
    if (!p) throw new StreetboxError('E_NOT_FOUND', `profile "${this.profile.name}" has no point "${name}"`);
    return p;
  }

  /** Writes an engineering value (after scale and offset) into the bank. */
  set(name: string, value: number | boolean): void {
    const p = this.point(name);
    const v = typeof value === 'boolean' ? (value ? 1 : 0) : value;
    if (p.table === 'coil' || p.table === 'discrete') {
      this.bank.bits(p.table)[p.address] = v ? 1 : 0;
      return;
    }
    const words = this.bank.words(p.table);
    if (p.bit !== undefined) {
      const mask = 1 << p.bit;
      words[p.address] = v ? words[p.address]! | mask : words[p.address]! & ~mask;
      return;
    }
    const raw = p.type === 'bool' ? v : (v - p.offset) / p.scale;
    const [hi, lo] = encode(p.type, raw);
    if (lo === undefined) {
      words[p.address] = hi;
      return;
    }
    const big = p.wordOrder === 'big';
    words[p.address] = big ? hi : lo;
    words[p.address + 1] = big ? lo : hi;
  }

  /** Reads a point as an engineering value. */
  get(name: string): number {
    const p = this.point(name);
    if (p.table === 'coil' || p.table === 'discrete') return this.bank.bits(p.table)[p.address]!;
    const words = this.bank.words(p.table);
    if (p.bit !== undefined) return (words[p.address]! >> p.bit) & 1;
    const a = words[p.address]!;
    if (p.type === 'bool') return a ? 1 : 0;
    const b = words[p.address + 1] ?? 0;
    const [hi, lo] = p.wordOrder === 'big' ? [a, b] : [b, a];
    return decode(p.type, hi, lo) * p.scale + p.offset;
  }

  /** The address range [first, last] of the points of `table`, or undefined when it has none. */
  extent(table: PointConfig['table']): [number, number] | undefined {
    let first = Infinity;
    let last = -Infinity;
    for (const p of this.profile.points) {
      if (p.table !== table) continue;
      const width = p.type === 'int32' || p.type === 'uint32' || p.type === 'float32' ? 2 : 1;
      first = Math.min(first, p.address);
      last = Math.max(last, p.address + width - 1);
    }
    return first === Infinity ? undefined : [first, last];
  }
}

const f32 = new DataView(new ArrayBuffer(4));

function encode(type: PointConfig['type'], raw: number): [number, number?] {
  switch (type) {
    case 'bool':
      return [raw ? 1 : 0];
    case 'int16':
    case 'uint16':
      return [Math.round(raw) & 0xffff];
    case 'int32':
    case 'uint32': {
      const n = Math.round(raw);
      const u = n < 0 ? n + 2 ** 32 : n;
      return [Math.floor(u / 65536) & 0xffff, u & 0xffff];
    }
    case 'float32':
      f32.setFloat32(0, raw);
      return [f32.getUint16(0), f32.getUint16(2)];
  }
}

function decode(type: PointConfig['type'], hi: number, lo: number): number {
  switch (type) {
    case 'bool':
      return hi ? 1 : 0;
    case 'uint16':
      return hi;
    case 'int16':
      return hi >= 0x8000 ? hi - 0x10000 : hi;
    case 'uint32':
      return hi * 65536 + lo;
    case 'int32': {
      const u = hi * 65536 + lo;
      return u >= 2 ** 31 ? u - 2 ** 32 : u;
    }
    case 'float32':
      f32.setUint16(0, hi);
      f32.setUint16(2, lo);
      return f32.getFloat32(0);
  }
}
