/**
 * Point values as a profile describes them: raw registers or bits ⇄ engineering values.
 * value = raw × scale + offset; a write sends (value − offset) / scale, rounded to the type.
 */
import type { PointConfig } from '../../config/schema.js';

export type PointValueType = number | boolean;

const f32 = new DataView(new ArrayBuffer(4));

/** Registers (or bits) the point occupies in its table. */
export function pointWidth(p: Pick<PointConfig, 'table' | 'type' | 'bit'>): number {
  if (p.table === 'coil' || p.table === 'discrete' || p.bit !== undefined) return 1;
  return p.type === 'int32' || p.type === 'uint32' || p.type === 'float32' ? 2 : 1;
}

export function isBitTable(table: PointConfig['table']): boolean {
  return table === 'coil' || table === 'discrete';
}

/** Decimal places of a number as written (0.1 → 1, 0.01 → 2, 2 → 0). */
function decimals(n: number): number {
  if (Number.isInteger(n)) return 0;
  const s = String(n);
  const e = s.indexOf('e-');
  if (e >= 0) return Number(s.slice(e + 2)) + (s.split('.')[1]?.split('e')[0]?.length ?? 0);
  return s.split('.')[1]?.length ?? 0;
}

function scaled(p: PointConfig, raw: number): number {
  if (p.scale === 1 && p.offset === 0) return raw;
  const v = raw * p.scale + p.offset;
  if (p.type === 'float32') return v;
  // 2301 × 0.1 is 230.10000000000002 in binary floating point: round to the scale's decimals.
  const d = Math.min(12, Math.max(decimals(p.scale), decimals(p.offset)));
  return Number(v.toFixed(d));
}

/** The raw (unscaled) integer or float of a register point, from `words` starting at `at`. */
export function rawFromRegisters(p: PointConfig, words: ArrayLike<number>, at: number): number {
  const w0 = words[at]!;
  if (p.bit !== undefined) return (w0 >> p.bit) & 1;
  switch (p.type) {
    case 'bool':
    case 'uint16':
      return w0;
    case 'int16':
      return w0 >= 0x8000 ? w0 - 0x10000 : w0;
    default: {
      const w1 = words[at + 1]!;
      const [hi, lo] = p.wordOrder === 'big' ? [w0, w1] : [w1, w0];
      if (p.type === 'uint32') return hi * 0x10000 + lo;
      if (p.type === 'int32') return ((hi << 16) | lo) | 0;
      f32.setUint16(0, hi);
      f32.setUint16(2, lo);
      // float32 carries ~7 significant digits; drop the binary noise of widening to float64.
      return Number(f32.getFloat32(0).toPrecision(7));
    }
  }
}

/** The engineering value of a register point. */
export function decodeRegisters(p: PointConfig, words: ArrayLike<number>, at: number): PointValueType {
  const raw = rawFromRegisters(p, words, at);
  if (p.bit !== undefined || p.type === 'bool') return raw !== 0;
  return scaled(p, raw);
}

/** The engineering value of a coil or discrete input. */
export function decodeBit(bit: boolean): boolean {
  return bit;
}

/**
 * The registers to write for `value` (16-bit: one register, 32-bit: two in the point's word
 * order). Throws RangeError for a value the type cannot hold. Bit points are written by
 * read-modify-write in the driver; see applyBit.
 */
export function encodeRegisters(p: PointConfig, value: PointValueType): number[] {
  if (p.type === 'bool') return [toBool(value, p.name) ? 1 : 0];
  if (typeof value === 'boolean') throw new RangeError(`point "${p.name}" is ${p.type}: expected a number, got ${value}`);
  if (!Number.isFinite(value)) throw new RangeError(`point "${p.name}": expected a finite number, got ${value}`);
  const raw = (value - p.offset) / p.scale;
  if (p.type === 'float32') {
    f32.setFloat32(0, raw);
    return order(p, f32.getUint16(0), f32.getUint16(2));
  }
  const n = Math.round(raw);
  const [min, max] = RANGES[p.type];
  if (n < min || n > max) {
    throw new RangeError(`point "${p.name}": ${value} is raw ${n}, outside ${p.type} ${min}..${max}`);
  }
  switch (p.type) {
    case 'uint16':
      return [n];
    case 'int16':
      return [n & 0xffff];
    case 'uint32':
      return order(p, Math.floor(n / 0x10000), n % 0x10000);
    default:
      return order(p, (n >>> 16) & 0xffff, n & 0xffff);
  }
}

const RANGES: Record<'int16' | 'uint16' | 'int32' | 'uint32', [number, number]> = {
  int16: [-0x8000, 0x7fff],
  uint16: [0, 0xffff],
  int32: [-0x80000000, 0x7fffffff],
  uint32: [0, 0xffffffff],
};

function order(p: PointConfig, hi: number, lo: number): number[] {
  return p.wordOrder === 'big' ? [hi, lo] : [lo, hi];
}

/** A bool from true/false or 1/0; anything else is a RangeError. */
export function toBool(value: PointValueType, name: string): boolean {
  if (typeof value === 'boolean') return value;
  if (value === 1 || value === 0) return value === 1;
  throw new RangeError(`point "${name}" is a switch: expected true/false or 1/0, got ${value}`);
}

/** Sets or clears bit `bit` of `word`. */
export function applyBit(word: number, bit: number, on: boolean): number {
  return on ? (word | (1 << bit)) & 0xffff : word & ~(1 << bit) & 0xffff;
}
