/**
 * The data economy in words, the same in `streetbox status`, `streetbox doctor` and the
 * server-rendered status page (edge/api/static/status.js says it the same way in the browser):
 * the buffer's offline autonomy at the measured load (edge/store/autonomy.ts) and the upstream
 * bytes per day (cloud-sync/dailyBytes.ts). Bytes upstream are decimal (MB), as plans are sold.
 */
import type { UpstreamBytes } from '../cloud-sync/dailyBytes.js';
import type { Autonomy } from './store/types.js';

/** 12.3 below ten days, whole days above: a figure to act on, not a false precision. */
export function daysText(days: number): string {
  return days < 10 ? days.toFixed(1) : String(Math.round(days));
}

/** 1234567 → "1,234,567" */
export function countText(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

/** Decimal units: 950 B, 12.3 kB, 4.5 MB, 1.2 GB. */
export function bytesText(n: number): string {
  if (n < 1e3) return `${Math.round(n)} B`;
  const [unit, div] = n < 1e6 ? ['kB', 1e3] : n < 1e9 ? ['MB', 1e6] : ['GB', 1e9];
  return `${(n / div).toFixed(1)} ${unit}`;
}

/** Whether the autonomy is measured yet (a load over enough time). */
export function measured(a: Autonomy | undefined): a is Autonomy & { days: number; readingsPerDay: number } {
  return a !== undefined && a.days !== null && a.readingsPerDay !== null;
}

/** "buffer holds ≈ 12.3 days offline at the current load (123,456 readings/day, 9.8 B each)", or "measuring…". */
export function autonomyText(a: Autonomy | undefined): string {
  if (!measured(a)) return 'buffer autonomy: measuring…';
  return `buffer holds ≈ ${daysText(a.days)} days offline at the current load (${countText(a.readingsPerDay)} readings/day, ${a.bytesPerReading.toFixed(1)} B each)`;
}

/** "1.2 MB sent today, ≈ 36.0 MB a month", or "… month estimate after the first full day". */
export function upstreamText(u: UpstreamBytes): string {
  const month = u.bytesPerMonthEstimate === null ? 'a month estimated after the first full day' : `≈ ${bytesText(u.bytesPerMonthEstimate)} a month`;
  return `${bytesText(u.bytesToday)} sent today, ${month}`;
}
