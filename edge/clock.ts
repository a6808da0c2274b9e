/** Time as the gateway sees it; injected so schedules, backoff and expiry can be tested with a fake. */
export interface Clock {
  /** Wall-clock time, ms since the epoch (UTC). */
  now(): number;
  /** Monotonic time in ms, for intervals and timeouts; never jumps with NTP. */
  monotonic(): number;
  setTimeout(fn: () => void, ms: number): Timer;
  clearTimeout(t: Timer): void;
  /** ms of this clock per ms of real time: k for a scaledClock, 1 (or absent) otherwise */
  readonly rate?: number;
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

/**
 * The instant scaled clocks of every process agree on (simulate.radioTimeScale): a gateway, the
 * simulator of a test in another process and a gateway restarted after a SIGKILL share one radio
 * time line, as real radios share real time. Scaled wall time is ahead of real time by
 * (k − 1) × the time since this origin: years, at most, for a scale of 10 — GPS seconds still fit
 * their 32 bits.
 */
export const RADIO_TIME_ORIGIN = Date.UTC(2026, 0, 1);

/**
 * A clock that runs `k` times faster than `base` (simulate.radioTimeScale: demos and tests with
 * simulated radios only). Wall time is `origin` + k × the base's time since `origin` (by default the
 * moment it is created; RADIO_TIME_ORIGIN for a time line shared between processes); monotonic time
 * runs k× from creation; a timer of `ms` fires after ms/k of `base`.
 */
export function scaledClock(base: Clock, k: number, origin: number = base.now()): Clock {
  if (!(k >= 1)) throw new RangeError(`scaledClock: "k" is not 1 or more (${k})`);
  const mono0 = base.monotonic();
  return {
    rate: k * (base.rate ?? 1),
    now: () => origin + k * (base.now() - origin),
    monotonic: () => mono0 + k * (base.monotonic() - mono0),
    setTimeout: (fn, ms) => base.setTimeout(fn, ms / k),
    clearTimeout: (t) => base.clearTimeout(t),
  };
}

/** The wall time on `clock` of an instant of its monotonic time line (as the two relate now). */
export function wallOf(clock: Clock, monotonicMs: number): number {
  return clock.now() - (clock.monotonic() - monotonicMs);
}

/** Runs `fn` every `ms` on `clock` (a chain of unref'd timeouts: it never holds the process) until the returned function is called. */
export function every(clock: Clock, ms: number, fn: () => void): () => void {
  let timer: Timer | null = null;
  let stopped = false;
  const arm = (): void => {
    timer = clock.setTimeout(() => {
      fn();
      if (!stopped) arm();
    }, ms);
    timer.unref?.();
  };
  arm();
  return () => {
    stopped = true;
    if (timer) clock.clearTimeout(timer);
  };
}
