/**
 * A virtual clock for a day simulated in accelerated time: the writer's flush timer and the
 * store's latest-value timer run on it, fired by the day's loop as it moves time forward, so
 * every commit happens at the virtual time it would have happened on a cabinet.
 */
import type { Clock, Timer } from '../../edge/clock.js';

interface Pending {
  at: number;
  id: number;
  fn: () => void;
}

export class VirtualClock implements Clock {
  private t: number;
  private readonly t0: number;
  /** a handful at a time (the writer's flush, the store's latest persistence): a list is enough */
  private pending: Pending[] = [];
  private nextId = 1;

  constructor(start: number) {
    this.t = this.t0 = start;
  }

  now(): number {
    return this.t;
  }

  monotonic(): number {
    return this.t - this.t0;
  }

  setTimeout(fn: () => void, ms: number): Timer {
    const timer: Pending = { at: this.t + Math.max(0, ms), id: this.nextId++, fn };
    this.pending.push(timer);
    return timer as unknown as Timer;
  }

  clearTimeout(t: Timer): void {
    this.pending = this.pending.filter((p) => p !== (t as unknown));
  }

  /** Moves time to `to`, firing each timer due on the way at its own time, in order. */
  advanceTo(to: number): void {
    for (;;) {
      let next: Pending | undefined;
      for (const p of this.pending) if (p.at <= to && (!next || p.at < next.at || (p.at === next.at && p.id < next.id))) next = p;
      if (!next) break;
      this.pending = this.pending.filter((p) => p !== next);
      this.t = Math.max(this.t, next.at);
      next.fn();
    }
    this.t = Math.max(this.t, to);
  }
}
