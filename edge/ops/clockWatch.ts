/**
 * Clock-jump detection. A gateway without a real-time clock boots at some old time and jumps
 * when NTP syncs; an operator may set the time by hand. Readings carry the wall clock (UTC ms),
 * so a jump shows as a step in their `ts`: this component compares the wall-clock and the
 * monotonic deltas every few seconds and records a `clock.jumped` event (severity warning)
 * when they differ by more than a threshold, so whoever reads the data can tell a step in
 * `ts` from a gap in the data. Ordering never depends on it: `seq` is a counter.
 */
import type { Component, GatewayContext } from '../component.js';
import type { Timer } from '../clock.js';

export interface ClockWatchOptions {
  /** how often the two clocks are compared */
  intervalMs?: number;
  /** a difference beyond this is a jump */
  thresholdMs?: number;
}

export interface ClockJump {
  /** the wall time it should have been (the last sample plus the monotonic delta) */
  fromTs: number;
  /** the wall time it was */
  toTs: number;
  /** toTs - fromTs: positive when the clock jumped forward */
  deltaMs: number;
}

export interface ClockWatch extends Component {
  /** jumps seen since start */
  readonly jumps: number;
}

export function createClockWatch(ctx: Pick<GatewayContext, 'clock' | 'store' | 'log'>, opts: ClockWatchOptions = {}): ClockWatch {
  const intervalMs = opts.intervalMs ?? 5000;
  const thresholdMs = opts.thresholdMs ?? 2000;
  const { clock, store } = ctx;
  const log = ctx.log.child({ module: 'clock-watch' });
  let timer: Timer | null = null;
  let lastWall = 0;
  let lastMono = 0;
  let jumps = 0;

  const sample = (): void => {
    lastWall = clock.now();
    lastMono = clock.monotonic();
  };

  const tick = (): void => {
    timer = null;
    const wall = clock.now();
    const mono = clock.monotonic();
    const expected = lastWall + (mono - lastMono);
    const deltaMs = Math.round(wall - expected);
    if (Math.abs(deltaMs) > thresholdMs) {
      jumps++;
      const jump: ClockJump = { fromTs: Math.round(expected), toTs: wall, deltaMs };
      log.warn(jump, 'wall clock jumped');
      try {
        store.appendEvent({ ts: wall, kind: 'clock.jumped', severity: 'warning', detail: { ...jump } });
      } catch (err) {
        log.error({ err }, 'cannot record the clock jump');
      }
    }
    lastWall = wall;
    lastMono = mono;
    schedule();
  };

  const schedule = (): void => {
    timer = clock.setTimeout(tick, intervalMs);
    timer.unref?.();
  };

  return {
    name: 'clock-watch',
    get jumps() {
      return jumps;
    },
    async start() {
      if (timer) return;
      sample();
      schedule();
    },
    async stop() {
      if (timer) clock.clearTimeout(timer);
      timer = null;
    },
  };
}
