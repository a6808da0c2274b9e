/**
 * How a reading's value and quality are stored: the value column holds a number, 0/1, a string
 * or NULL, and `flags` says which type it was and the quality, so every value round-trips exactly
 * (a boolean comes back as a boolean, a NaN as NaN).
 *
 *   bits 0-1: quality   0 good, 1 stale, 2 bad
 *   bits 2-3: type      0 number, 1 boolean, 2 string, 3 null
 */
import type { Quality, Value } from './types.js';

export const TYPE_NUMBER = 0;
export const TYPE_BOOLEAN = 1 << 2;
export const TYPE_STRING = 2 << 2;
export const TYPE_NULL = 3 << 2;
const TYPE_MASK = 3 << 2;
const QUALITY_MASK = 3;

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

/** The value as SQLite can bind it (booleans as 0/1). */
export function storedValue(v: Value): number | string | null {
  return typeof v === 'boolean' ? (v ? 1 : 0) : v;
}

/** The value back from the column, as the type bits say it was written. */
export function decodeValue(stored: unknown, flags: number): Value {
  switch (flags & TYPE_MASK) {
    case TYPE_NUMBER:
      // SQLite stores NaN as NULL; it was a number, so it comes back as one.
      return stored === null ? NaN : Number(stored);
    case TYPE_BOOLEAN:
      return stored === 1 || stored === 1n;
    case TYPE_STRING:
      return typeof stored === 'string' ? stored : String(stored);
    default:
      return null;
  }
}

export function encodeFlags(v: Value, q: Quality | undefined): number {
  return typeBits(v) | qualityCode(q);
}
