/** Time as the gateway sees it; injected so schedules, backoff and expiry can be tested with a fake. */
export interface Clock {
  /** Wall-clock time, ms since the epoch (UTC). */
  now(): number;
  /** Monotonic time in ms, for intervals and timeouts; never jumps with NTP. */
  monotonic(): number;
  setTimeout(fn: () => void, ms: number): Timer;
  clearTimeout(t: Timer): void;
}

export interface Timer {
  unref?(): unknown;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  monotonic: () => performance.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (t) => clearTimeout(t as NodeJS.Timeout),
};
