/**
 * When a polled value is worth storing: a point's report strategy (README "Report strategies").
 * Polling is not affected: every polled value is the latest value in memory (status page, broker
 * state, API, flows); the strategy decides only which values become rows of the buffer, and so
 * what the upstream sync sends. Quality changes (good → bad → stale) and changes of type (a value
 * becoming null) are always stored, whatever the strategy.
 *
 * A point's strategy is the most specific one declared, taken whole (fields left out take the
 * defaults below, they are not inherited): the device's per-point override in devices.yaml, the
 * device's `report`, the profile point's `report`, the default of the point's role, the default.
 */

export interface ReportStrategy {
  /** poll: every polled value is stored; change: a value is stored when it differs from the last stored one */
  on: 'poll' | 'change';
  /** change: stored only when |value − last stored| exceeds this (units of the point); 0: any change */
  deadband: number;
  /** change: stored only when |value − last stored| exceeds this percent of |last stored|; 0: none */
  deadbandPercent: number;
  /** ms: a value is stored at least this often even when unchanged, so "no reading" means "no contact"; 0: never */
  heartbeat: number;
  /** ms: a change is not stored sooner than this after the last stored value (the value polled then is); 0: none */
  minInterval: number;
}

/** The strategy of a point nothing else decides: every change, and a heartbeat every 15 minutes. */
export const DEFAULT_STRATEGY: ReportStrategy = Object.freeze({ on: 'change', deadband: 0, deadbandPercent: 0, heartbeat: 15 * 60_000, minInterval: 0 });

/** Every polled value stored: what streetbox did before report strategies. */
export const EVERY_POLL_STRATEGY: ReportStrategy = Object.freeze({ on: 'poll', deadband: 0, deadbandPercent: 0, heartbeat: 0, minInterval: 0 });

/** Which strategy each point follows. */
export interface ReportPolicy {
  /** The strategy of a point: asked once per (device, point), the first time a value of it is polled. */
  strategy(device: string, point: string): ReportStrategy;
}

/** The policy that stores every polled value (tests and benchmarks of the buffer itself, the "before" of the economy bench). */
export const EVERY_POLL: ReportPolicy = Object.freeze({ strategy: () => EVERY_POLL_STRATEGY });
