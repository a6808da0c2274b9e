/**
 * The reconstruction check of issue 15 on the simulated day: every polled value is recorded as
 * it enters the writer, and after the day the stored series (read back from the store through
 * its reading pages, as export and sync read it) must
 * - consist of polled values only, each with its poll's timestamp;
 * - reconstruct every polled value within its point's deadband: at every poll time, the last
 *   stored value at or before it differs from the polled one by no more than the deadband (the
 *   same comparison the filter makes), with the same quality; a change may wait out the point's
 *   minInterval;
 * - leave no gap between stored values (nor from the last one to the last poll) longer than the
 *   heartbeat. The filter stores a heartbeat ahead of the next poll (edge/report/filter.ts: 2.5 ×
 *   the mean poll interval); a longer gap closed by a poll later than 1.5 × the previous interval
 *   (a stalled poll no lookahead plans for) is reported apart, as the lookahead's caveat.
 */
import type { ReportPolicy, ReportStrategy } from '../../edge/report/strategy.js';
import type { NewReading, Quality, Reading } from '../../edge/store/types.js';

const QUALITY: Record<Quality, number> = { good: 0, stale: 1, bad: 2 };
const LOOKAHEAD = 1.5;

/** One point's polled values, in poll order, in growable typed arrays (a day holds millions). */
class PointSeries {
  n = 0;
  ts = new Float64Array(1024);
  value = new Float64Array(1024);
  quality = new Uint8Array(1024);
  bool = false;

  add(ts: number, value: number, quality: number): void {
    if (this.n === this.ts.length) {
      this.ts = grow(this.ts, new Float64Array(this.n * 2));
      this.value = grow(this.value, new Float64Array(this.n * 2));
      this.quality = grow(this.quality, new Uint8Array(this.n * 2));
    }
    this.ts[this.n] = ts;
    this.value[this.n] = value;
    this.quality[this.n] = quality;
    this.n++;
  }
}

function grow<T extends Float64Array | Uint8Array>(from: T, to: T): T {
  to.set(from);
  return to;
}

export interface Violation {
  device: string;
  point: string;
  ts: number;
  what: string;
}

export interface ReconstructionReport {
  points: number;
  polled: number;
  stored: number;
  violations: number;
  /** the first few, in the order found */
  first: Violation[];
  /** gaps longer than the heartbeat closed by a poll later than the filter's lookahead assumes */
  lateGaps: number;
  /** the longest gap between stored values relative to its heartbeat (≤ 1 holds the promise) */
  worstGapRatio: number;
}

const numeric = (v: NewReading['value']): number => {
  if (typeof v === 'number') return v;
  if (typeof v === 'boolean') return v ? 1 : 0;
  if (v === null) return NaN;
  throw new TypeError(`the economy bench records numbers and booleans, got the string ${JSON.stringify(v)}`);
};

/** Records what was polled; checks the stored series against it after the day. */
export class PolledRecorder {
  private readonly series = new Map<string, Map<string, PointSeries>>();
  polled = 0;

  record(rs: readonly NewReading[]): void {
    for (const r of rs) {
      let byPoint = this.series.get(r.device);
      if (!byPoint) this.series.set(r.device, (byPoint = new Map()));
      let s = byPoint.get(r.point);
      if (!s) {
        byPoint.set(r.point, (s = new PointSeries()));
        s.bool = typeof r.value === 'boolean';
      }
      s.add(r.ts, numeric(r.value), QUALITY[r.quality ?? 'good']);
      this.polled++;
    }
  }

  /** Checks `stored` (every stored reading, in seq order) against the recorded polls under `policy`. */
  check(stored: Iterable<Reading>, policy: ReportPolicy, keep = 5): ReconstructionReport {
    const rows = new Map<string, Map<string, Reading[]>>();
    let storedCount = 0;
    const report: ReconstructionReport = { points: 0, polled: this.polled, stored: 0, violations: 0, first: [], lateGaps: 0, worstGapRatio: 0 };
    const violation = (device: string, point: string, ts: number, what: string): void => {
      report.violations++;
      if (report.first.length < keep) report.first.push({ device, point, ts, what });
    };
    for (const r of stored) {
      storedCount++;
      let byPoint = rows.get(r.device);
      if (!byPoint) rows.set(r.device, (byPoint = new Map()));
      let list = byPoint.get(r.point);
      if (!list) byPoint.set(r.point, (list = []));
      list.push(r);
    }
    report.stored = storedCount;
    for (const [device, byPoint] of this.series) {
      for (const [point, s] of byPoint) {
        report.points++;
        const list = rows.get(device)?.get(point) ?? [];
        rows.get(device)?.delete(point);
        checkPoint(device, point, s, list, policy.strategy(device, point), report, violation);
      }
    }
    for (const [device, byPoint] of rows) for (const [point, list] of byPoint) violation(device, point, list[0]!.ts, `${list.length} stored values of a point never polled`);
    return report;
  }
}

function checkPoint(
  device: string,
  point: string,
  s: PointSeries,
  stored: readonly Reading[],
  strategy: ReportStrategy,
  report: ReconstructionReport,
  violation: (device: string, point: string, ts: number, what: string) => void,
): void {
  const { heartbeat, minInterval } = strategy;
  // the filter stores every change of a bool whatever the deadband
  const band = (last: number): number => (strategy.on === 'poll' || s.bool ? 0 : Math.max(strategy.deadband, (strategy.deadbandPercent / 100) * Math.abs(last)));
  let j = -1; // the last stored row at or before the poll
  for (let i = 0; i < s.n; i++) {
    const ts = s.ts[i]!;
    const value = s.value[i]!;
    const quality = s.quality[i]!;
    const nextRow = stored[j + 1];
    if (nextRow && nextRow.ts <= ts) {
      j++;
      // a stored value is this poll's, exactly
      if (nextRow.ts !== ts || numeric(nextRow.value) !== value || QUALITY[nextRow.quality] !== quality) {
        if (!(Number.isNaN(value) && nextRow.value === null)) violation(device, point, nextRow.ts, `stored ${String(nextRow.value)} at ${iso(nextRow.ts)} is not the value polled then (${value} at ${iso(ts)})`);
      }
      if (j > 0 && heartbeat > 0) gap(stored[j - 1]!.ts, ts, i);
      continue;
    }
    const last = stored[j];
    if (!last) {
      violation(device, point, ts, `polled ${value} at ${iso(ts)} before any value was stored`);
      return;
    }
    const lastValue = numeric(last.value);
    const since = ts - last.ts;
    const off = QUALITY[last.quality] !== quality || (Number.isNaN(lastValue) !== Number.isNaN(value)) || Math.abs(value - lastValue) > band(lastValue) * (1 + 1e-9) + 1e-9 * Math.max(Math.abs(value), Math.abs(lastValue));
    if (off && !(minInterval > 0 && since < minInterval)) {
      violation(device, point, ts, `polled ${value} at ${iso(ts)}, stored ${String(last.value)} since ${iso(last.ts)}: beyond the deadband`);
    }
  }
  if (j + 1 < stored.length) violation(device, point, stored[j + 1]!.ts, `${stored.length - j - 1} stored values after the last poll`);
  const last = stored[j];
  if (last && heartbeat > 0 && s.n > 0) gap(last.ts, s.ts[s.n - 1]!, s.n);

  /** a gap from `from` to `to`, closed by poll `i` (s.n: the day's end) */
  function gap(from: number, to: number, i: number): void {
    const ratio = (to - from) / heartbeat;
    report.worstGapRatio = Math.max(report.worstGapRatio, ratio);
    if (ratio <= 1) return;
    // the poll that closed it came later than the filter's lookahead assumed at the poll before
    const late = i >= 2 && i < s.n && s.ts[i]! - s.ts[i - 1]! > LOOKAHEAD * (s.ts[i - 1]! - s.ts[i - 2]!);
    if (late) report.lateGaps++;
    else violation(device, point, to, `${((to - from) / 1000).toFixed(1)} s between stored values (${iso(from)} to ${iso(to)}), heartbeat ${heartbeat / 1000} s`);
  }
}

function iso(ts: number): string {
  return new Date(ts).toISOString();
}
