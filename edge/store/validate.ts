/** Checks a reading before it is buffered or written: cheap typeof tests, no allocation when valid. */
import type { NewReading } from './types.js';

/** Why the reading cannot be stored, or null when it can. */
export function invalidReading(r: NewReading | undefined): string | null {
  if (r === null || typeof r !== 'object') return 'not an object';
  if (typeof r.ts !== 'number' || !Number.isFinite(r.ts)) return `ts must be a finite number (ms), got ${String(r.ts)}`;
  if (typeof r.device !== 'string' || r.device.length === 0) return 'device must be a non-empty string';
  if (typeof r.point !== 'string' || r.point.length === 0) return 'point must be a non-empty string';
  const v = r.value;
  if (v !== null && typeof v !== 'number' && typeof v !== 'boolean' && typeof v !== 'string') return `value must be a number, boolean, string or null, got ${typeof v}`;
  if (r.unit !== undefined && r.unit !== null && typeof r.unit !== 'string') return 'unit must be a string or null';
  const q = r.quality;
  if (q !== undefined && q !== 'good' && q !== 'stale' && q !== 'bad') return `quality must be good, stale or bad, got ${String(q)}`;
  return null;
}
