/**
 * The report filter: decides, poll by poll, which values become rows of the buffer (strategy.ts).
 * It sits at the door of the batched writer (edge/store/writer.ts), so every driver and simulator
 * is filtered the same way. Per point it keeps the last stored value, its time and quality, and
 * the time of the last poll and the point's poll interval (to keep the heartbeat's promise one
 * poll ahead). Two Map gets and no allocation per reading once a point is known. A new policy
 * (a configuration applied live) keeps that state for every point whose strategy it leaves
 * unchanged, so a change elsewhere stores nothing extra.
 */
import type { NewReading, Quality, Value } from '../store/types.js';
import type { ReportPolicy, ReportStrategy } from './strategy.js';

/**
 * A policy that can also say which points its configuration declares. Optional: given it, a
 * change of policy forgets the points it no longer declares (a removed device), which a strategy
 * alone cannot tell (an unknown point follows DEFAULT_STRATEGY like many declared ones).
 */
export interface DeclaringPolicy extends ReportPolicy {
  declares?(device: string, point: string): boolean;
}

interface PointState {
  readonly strategy: ReportStrategy;
  /** whether a value of this point was stored since the filter started */
  stored: boolean;
  /** ts, value and quality of the last stored value */
  ts: number;
  value: Value;
  quality: Quality;
  /** ts of the last polled value, stored or not (kept for a heartbeat only, as is the interval) */
  polledTs: number;
  /** the point's poll interval (ms), averaged over the last INTERVALS_AVERAGED intervals or so */
  interval: number;
  /** intervals averaged into `interval` so far, up to INTERVALS_AVERAGED */
  intervals: number;
}

/**
 * A heartbeat stores a value when the next poll could come after the heartbeat: when the time
 * since the last stored value plus this many poll intervals exceeds it. A scheduler that polls
 * every P, each poll up to P/2 early or late, leaves up to 2P between two polls; the averaged
 * interval may read up to 1/INTERVALS_AVERAGED short; 2.5 covers both. (The last interval alone
 * is no guide: after a late poll the next one comes early, and the one after may be late again.)
 */
const HEARTBEAT_LOOKAHEAD = 2.5;
/** Relative rounding of a double (a few ulps): a difference this close to the band is on it, not beyond. */
const BAND_EPSILON = 1e-12;
/** The poll interval is the mean of the intervals seen, then a moving average over about this many. */
const INTERVALS_AVERAGED = 8;

export class ReportFilter {
  private policy: ReportPolicy;
  private readonly points = new Map<string, Map<string, PointState>>();
  /** values offered to `keep` */
  polled = 0;
  /** values `keep` said to store */
  stored = 0;

  constructor(policy: ReportPolicy) {
    this.policy = policy;
  }

  /**
   * From the next value on, `policy` decides. A point whose strategy is unchanged keeps its
   * state (last stored value, heartbeat bookkeeping); one whose strategy changed, or that the
   * policy no longer declares (DeclaringPolicy), is forgotten: its next value is stored as a
   * first value. Returns how many points were kept and forgotten.
   */
  setPolicy(policy: ReportPolicy): { kept: number; forgotten: number } {
    const declares = (policy as DeclaringPolicy).declares?.bind(policy);
    let kept = 0;
    let forgotten = 0;
    for (const [device, byPoint] of this.points) {
      for (const [point, s] of byPoint) {
        const same = (declares === undefined || declares(device, point)) && sameStrategy(s.strategy, policy.strategy(device, point));
        if (same) kept++;
        else {
          byPoint.delete(point);
          forgotten++;
        }
      }
      if (byPoint.size === 0) this.points.delete(device);
    }
    this.policy = policy;
    return { kept, forgotten };
  }

  /**
   * Whether this polled value is stored, by its point's strategy; remembers it either way.
   * Values of one point are offered in poll order.
   */
  keep(r: NewReading): boolean {
    this.polled++;
    let byPoint = this.points.get(r.device);
    if (!byPoint) this.points.set(r.device, (byPoint = new Map()));
    let s = byPoint.get(r.point);
    if (!s) {
      s = { strategy: this.policy.strategy(r.device, r.point), stored: false, ts: 0, value: null, quality: 'good', polledTs: r.ts, interval: 0, intervals: 0 };
      byPoint.set(r.point, s);
    }
    if (s.strategy.heartbeat > 0) trackInterval(s, r.ts);
    const quality = r.quality ?? 'good';
    const store = !s.stored || quality !== s.quality || worthStoring(s, r.ts, r.value);
    if (!store) return false;
    s.stored = true;
    s.ts = r.ts;
    s.value = r.value;
    s.quality = quality;
    this.stored++;
    return true;
  }
}

/** Whether two strategies are the same, field by field (a strategy is flat: its fields are primitives). */
function sameStrategy(a: ReportStrategy, b: ReportStrategy): boolean {
  if (a === b) return true;
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]) as Set<keyof ReportStrategy>;
  for (const k of keys) if (!Object.is(a[k], b[k])) return false;
  return true;
}

/** Takes the interval since the point's last poll into its averaged poll interval. */
function trackInterval(s: PointState, ts: number): void {
  const gap = ts - s.polledTs;
  s.polledTs = ts;
  // An interval longer than the heartbeat is contact lost and found again, not the poll rhythm:
  // the value after it is stored anyway (its gap exceeds the heartbeat).
  if (gap <= 0 || gap > s.strategy.heartbeat) return;
  if (s.intervals < INTERVALS_AVERAGED) s.intervals++;
  s.interval += (gap - s.interval) / s.intervals;
}

function worthStoring(s: PointState, ts: number, value: Value): boolean {
  const { on, heartbeat, minInterval } = s.strategy;
  const since = ts - s.ts;
  // the wall clock stepped back (NTP correcting a clock that ran ahead): the value is stored and
  // becomes the baseline, or the minimum interval and the heartbeat would wait for the clock to catch up
  if (since < 0) return true;
  if (heartbeat > 0 && since + HEARTBEAT_LOOKAHEAD * s.interval > heartbeat) return true;
  if (typeOf(value) !== typeOf(s.value)) return true;
  if (minInterval > 0 && since < minInterval) return false;
  return on === 'poll' || changed(s.strategy, s.value, value);
}

/** number, boolean, string or null: a change of type is always stored */
function typeOf(v: Value): string {
  return v === null ? 'null' : typeof v;
}

/** Whether `value` differs from `last` by more than the strategy's deadband. */
function changed(strategy: ReportStrategy, last: Value, value: Value): boolean {
  if (value === last) return false;
  if (typeof value !== 'number' || typeof last !== 'number') return true;
  // NaN is unchanged only beside NaN; a deadband never hides a value becoming NaN or infinite
  if (Number.isNaN(value) || Number.isNaN(last)) return !(Number.isNaN(value) && Number.isNaN(last));
  if (!Number.isFinite(value) || !Number.isFinite(last)) return true;
  const band = Math.max(strategy.deadband, (strategy.deadbandPercent / 100) * Math.abs(last));
  // "beyond" in decimal terms: 10.3 − 10.2 is 0.10000000000000142 in binary, not beyond a 0.1 band
  return Math.abs(value - last) > band + BAND_EPSILON * Math.max(Math.abs(value), Math.abs(last));
}
