/**
 * How a reading's value and quality are stored: the value column holds a number, an integer, a
 * string or NULL, and `flags` says which type it was, the quality and the decimal scale, so every
 * value round-trips exactly (a boolean comes back as a boolean, a NaN as NaN, -0 as -0).
 *
 *   bits 0-1: quality   0 good, 1 stale, 2 bad
 *   bits 2-3: type      0 number, 1 boolean, 2 string, 3 null
 *   bits 4-5: scale k   a number stored as the integer n = value × 10^k (k = 1..3); 0: as is
 *
 * Two forms, both read by `decodeValue`:
 * - the compact form (`encodeReading`, `encodeInto`), for the rows of the reading and latest
 *   tables: SQLite keeps an INTEGER in 0 to 6 bytes (0 and 1 in none) and a REAL in 8, and
 *   better-sqlite3 binds every JS number as REAL, so an integral number (and a boolean) is bound as
 *   a BigInt, and a number of at most 3 decimals as the BigInt n with k in the flags when n / 10^k
 *   gives back exactly the same double. Anything else (other fractions, -0, NaN, ±Infinity,
 *   integers beyond ±2^53) stays a REAL; strings and null are stored as they are.
 * - the plain form (`storedValue`, `encodeFlags`: k = 0, no BigInt), for values held in memory
 *   (the latest value of each point, points.ts).
 * Migration 3 (migrations.ts) rewrites older rows, all in the plain form, to the compact one in SQL.
 */
import type { Quality, Value } from './types.js';

export const TYPE_NUMBER = 0;
export const TYPE_BOOLEAN = 1 << 2;
export const TYPE_STRING = 2 << 2;
export const TYPE_NULL = 3 << 2;
export const TYPE_MASK = 3 << 2;
const QUALITY_MASK = 3;
export const SCALE_SHIFT = 4;
const SCALE_MASK = 3 << SCALE_SHIFT;
/** 10^k for the scale k of the flags; decoding divides by exactly these */
export const SCALES: readonly number[] = [1, 10, 100, 1000];
/** the largest magnitude of an integer (or of a scaled one, n) stored as INTEGER */
export const MAX_COMPACT = 2 ** 53;
/** not compact: stored as a REAL */
const NO_SCALE = -1;

const QUALITIES: readonly Quality[] = ['good', 'stale', 'bad', 'bad'];

export function qualityCode(q: Quality | undefined): number {
  return q === undefined || q === 'good' ? 0 : q === 'stale' ? 1 : 2;
}

export function qualityOf(flags: number): Quality {
  return QUALITIES[flags & QUALITY_MASK] ?? 'bad';
}

/** The type bits of a value; see `storedValue` for what goes in the column. */
export function typeBits(v: Value): number {
  switch (typeof v) {
    case 'number':
      return TYPE_NUMBER;
    case 'boolean':
      return TYPE_BOOLEAN;
    case 'string':
      return TYPE_STRING;
    default:
      return TYPE_NULL;
  }
}

/** The value in the plain form (booleans as 0/1, numbers as they are). */
export function storedValue(v: Value): number | string | null {
  return typeof v === 'boolean' ? (v ? 1 : 0) : v;
}

/** The flags of the plain form (scale 0). */
export function encodeFlags(v: Value, q: Quality | undefined): number {
  return typeBits(v) | qualityCode(q);
}

/**
 * The scale k (0..3) at which `v` is stored as the integer n = round(v × 10^k), with
 * n / 10^k === v exactly and |n| ≤ 2^53; NO_SCALE when none is (a REAL then).
 */
function scaleOf(v: number): number {
  if (Number.isInteger(v)) return v >= -MAX_COMPACT && v <= MAX_COMPACT && !Object.is(v, -0) ? 0 : NO_SCALE;
  // NaN and ±Infinity fail this too
  if (!(Math.abs(v) * 1000 <= MAX_COMPACT)) return NO_SCALE;
  for (let k = 1; k <= 3; k++) {
    const s = SCALES[k] as number;
    if (Math.round(v * s) / s === v) return k;
  }
  return NO_SCALE;
}

/**
 * Writes the compact column value of (v, q) at out[at] and its flags at out[at + 1]; returns
 * at + 2. For the insert path: no allocation but the BigInt.
 */
export function encodeInto(out: unknown[], at: number, v: Value, q: Quality | undefined): number {
  const quality = qualityCode(q);
  switch (typeof v) {
    case 'number': {
      const k = scaleOf(v);
      if (k === NO_SCALE) {
        out[at] = v;
        out[at + 1] = TYPE_NUMBER | quality;
      } else {
        out[at] = BigInt(k === 0 ? v : Math.round(v * (SCALES[k] as number)));
        out[at + 1] = TYPE_NUMBER | quality | (k << SCALE_SHIFT);
      }
      break;
    }
    case 'boolean':
      // SQLite stores the integers 0 and 1 in the record header alone
      out[at] = v ? 1n : 0n;
      out[at + 1] = TYPE_BOOLEAN | quality;
      break;
    case 'string':
      out[at] = v;
      out[at + 1] = TYPE_STRING | quality;
      break;
    default:
      out[at] = null;
      out[at + 1] = TYPE_NULL | quality;
  }
  return at + 2;
}

const scratch: unknown[] = [null, 0];

/** The compact column value and flags of (v, q), for a row of the reading or latest table. */
export function encodeReading(v: Value, q: Quality | undefined): { stored: bigint | number | string | null; flags: number } {
  encodeInto(scratch, 0, v, q);
  return { stored: scratch[0] as bigint | number | string | null, flags: scratch[1] as number };
}

/** The value back from the column (either form), as the flags say it was written. */
export function decodeValue(stored: unknown, flags: number): Value {
  switch (flags & TYPE_MASK) {
    case TYPE_NUMBER: {
      // SQLite stores NaN as NULL; it was a number, so it comes back as one.
      if (stored === null) return NaN;
      const k = (flags & SCALE_MASK) >> SCALE_SHIFT;
      return k === 0 ? Number(stored) : Number(stored) / (SCALES[k] as number);
    }
    case TYPE_BOOLEAN:
      return stored === 1 || stored === 1n;
    case TYPE_STRING:
      return typeof stored === 'string' ? stored : String(stored);
    default:
      return null;
  }
}
