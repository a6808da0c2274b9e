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
}

export async function flushMicrotasks(): Promise<void> {
  for (let i = 0; i < 10; i++) await new Promise<void>((r) => setImmediate(r));
}
