import type { Clock, Timer } from '../../edge/clock.js';

/** A clock the test moves by hand: for backoff, expiry and schedules only. */
export class FakeClock implements Clock {
  private t: number;
  private mono = 0;
  private timers: { at: number; fn: () => void; id: number }[] = [];
  private nextId = 1;

  constructor(start = Date.UTC(2026, 0, 1)) {
    this.t = start;
  }

  now(): number {
    return this.t;
  }

  monotonic(): number {
    return this.mono;
  }

  setTimeout(fn: () => void, ms: number): Timer {
    const timer = { at: this.mono + Math.max(0, ms), fn, id: this.nextId++ };
    this.timers.push(timer);
    return timer as unknown as Timer;
  }

  clearTimeout(t: Timer): void {
    this.timers = this.timers.filter((x) => x !== (t as unknown));
  }

  /** Moves time forward, running due timers in order; awaits microtasks between them. */
  async advance(ms: number): Promise<void> {
    const end = this.mono + ms;
    for (;;) {
      this.timers.sort((a, b) => a.at - b.at || a.id - b.id);
      const next = this.timers[0];
      if (!next || next.at > end) break;
      this.timers.shift();
      this.t += next.at - this.mono;
      this.mono = next.at;
      next.fn();
      await flushMicrotasks();
    }
    this.t += end - this.mono;
    this.mono = end;
    await flushMicrotasks();
  }

  get pendingTimers(): number {
    return this.timers.length;
  }

  /**
   * Runs this clock's timers one at a time, each at its own instant, until `cond` returns something
   * other than undefined, null or false (checked once the microtasks settle, before each timer), and
   * returns that. Code whose every wait is on this clock then runs as fast as its CPU work and in the
   * same order every run: no stall of a loaded machine lets time pass unseen, as it does on a clock
   * scaled from the wall. `stepMs`: time also passes in steps of at most this while no timer is due
   * (a condition on the time itself: a window closing); without it, a wait with no timer left
   * rejects (nothing can change any more). Rejects naming `what` past `maxMs` of this clock.
   */
  async runUntil<T>(what: string, cond: () => T | undefined | null | false, opts: { maxMs?: number; stepMs?: number } = {}): Promise<T> {
    const { maxMs = 3_600_000, stepMs } = opts;
    const end = this.mono + maxMs;
    for (;;) {
      await flushMicrotasks();
      const v = cond();
      if (v !== undefined && v !== null && v !== false) return v;
      this.timers.sort((a, b) => a.at - b.at || a.id - b.id);
      const next = this.timers[0];
      const at = stepMs !== undefined && (!next || next.at > this.mono + stepMs) ? this.mono + stepMs : next?.at;
      if (at === undefined) throw new Error(`${what}: never happened, and no timer is left (at ${this.mono} ms of the clock)`);
      if (at > end) throw new Error(`${what}: did not happen within ${maxMs} ms of the clock`);
      this.t += at - this.mono;
      this.mono = at;
      if (next && next.at === at) {
        this.timers.shift();
        next.fn();
      }
    }
  }

  /** Runs the timers (runUntil) until `p` settles; its value, or its rejection. */
  async settle<T>(what: string, p: Promise<T>, opts: { maxMs?: number } = {}): Promise<T> {
    let settled = false;
    const done = (): void => {
      settled = true;
    };
    p.then(done, done);
    await this.runUntil(what, () => settled, opts);
    return p;
  }
}

export async function flushMicrotasks(): Promise<void> {
  for (let i = 0; i < 10; i++) await new Promise<void>((r) => setImmediate(r));
}
