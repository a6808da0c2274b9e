/**
 * What a simulated node gives its application-layer packages (TS003–TS006, one file each): its
 * own clock, a way to send on the package's FPort (a small queue of uplinks), and timers on the
 * node's clock that a reboot clears.
 */
import type { Clock, Timer } from '../../clock.js';
import { unixToGpsMs } from '../../drivers/lorawan/mac/types.js';

/**
 * The node's time: the simulator's clock, off by the node's `clockOffsetMs` (a fault) until it is
 * corrected by TS003 AppTimeAns or LoRaWAN DeviceTimeAns.
 */
export class NodeClock {
  readonly base: Clock;
  /** ms the node's clock is ahead of GPS time (negative: behind) */
  private skewMs: number;

  constructor(base: Clock, offsetMs = 0) {
    this.base = base;
    this.skewMs = offsetMs;
  }

  /** GPS ms by the node's clock. */
  gpsMs(): number {
    return unixToGpsMs(this.base.now()) + this.skewMs;
  }

  /** GPS seconds by the node's clock, as TS003/TS005/TS006 carry them (uint32). */
  gpsS(): number {
    return Math.floor(this.gpsMs() / 1000) >>> 0;
  }

  /** ms from now until the node's clock reads `gpsS` (negative when past). */
  msUntil(gpsS: number): number {
    return gpsS * 1000 - this.gpsMs();
  }

  /** Moves the node's clock by `ms`. */
  correct(ms: number): void {
    this.skewMs += ms;
  }

  /** How far the node's clock is off GPS time (ms, positive: ahead). */
  get errorMs(): number {
    return this.skewMs;
  }
}

/** An uplink a package wants sent: its payload is built when the frame goes out (null: nothing to send any more). */
export type UplinkBuilder = () => Buffer | null;

export interface PackageHost {
  readonly clock: NodeClock;
  /**
   * Queues an uplink on `fPort`. The node sends it `delayMs` from now (default: its answer delay),
   * as a class A device answers a request soon instead of waiting for its next periodic uplink.
   */
  send(fPort: number, payload: Buffer | UplinkBuilder, delayMs?: number): void;
  /** Runs `fn` after `ms` on the node's clock; a reboot or stop clears it. */
  after(ms: number, fn: () => void): void;
  /** A seeded random number in [0, 1) (the node's own source, so a run repeats). */
  random(): number;
}

/** uplinks waiting to be sent at most (a device's buffer is small); more answers are dropped */
const MAX_QUEUE = 16;

export interface NodeHostOptions {
  clock: NodeClock;
  random: () => number;
  /** the node's answer delay (ms) */
  answerDelayMs: number;
  /** the node asks for an uplink `delayMs` from now */
  wantUplink(delayMs: number): void;
  /** an answer was dropped: the queue was full */
  dropped(): void;
}

/** The node's side of PackageHost: its queue of application uplinks and its timers. */
export class NodeHost implements PackageHost {
  readonly clock: NodeClock;
  private readonly opts: NodeHostOptions;
  private queue: { fPort: number; build: UplinkBuilder }[] = [];
  private readonly timers = new Set<Timer>();
  private stopped = false;

  constructor(opts: NodeHostOptions) {
    this.opts = opts;
    this.clock = opts.clock;
  }

  get queued(): number {
    return this.queue.length;
  }

  random(): number {
    return this.opts.random();
  }

  /** An answer joins the queue now (sent after the answer delay) or, with an explicit delay, when that delay has passed. */
  send(fPort: number, payload: Buffer | UplinkBuilder, delayMs?: number): void {
    const build = typeof payload === 'function' ? payload : () => payload;
    const enqueue = (): void => {
      if (this.queue.length >= MAX_QUEUE) this.opts.dropped();
      else this.queue.push({ fPort, build });
    };
    if (delayMs === undefined) {
      enqueue();
      this.opts.wantUplink(this.opts.answerDelayMs);
      return;
    }
    this.after(delayMs, () => {
      enqueue();
      this.opts.wantUplink(0);
    });
  }

  /** The first queued uplink that still has something to say. */
  next(): { fPort: number; payload: Buffer } | null {
    for (let item = this.queue.shift(); item; item = this.queue.shift()) {
      const payload = item.build();
      if (payload) return { fPort: item.fPort, payload };
    }
    return null;
  }

  after(ms: number, fn: () => void): void {
    if (this.stopped) return;
    const t = this.clock.base.setTimeout(() => {
      this.timers.delete(t);
      if (!this.stopped) fn();
    }, Math.max(0, ms));
    t.unref?.();
    this.timers.add(t);
  }

  /** A reboot: the queue and the timers are gone. */
  clear(): void {
    for (const t of this.timers) this.clock.base.clearTimeout(t);
    this.timers.clear();
    this.queue = [];
  }

  stop(): void {
    this.stopped = true;
    this.clear();
  }
}
