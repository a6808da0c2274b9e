import { Backoff } from './backoff.js';
import type { ComponentHealth, ComponentState, ComponentStateChange, EventBus } from './bus.js';
import type { Clock, Timer } from './clock.js';
import type { Component } from './component.js';
import { errorMessage } from './errors.js';
import type { Logger } from './log.js';

export interface SupervisorOptions {
  log: Logger;
  bus: EventBus;
  clock: Clock;
  /** first restart delay; doubles on each failure up to maxBackoffMs */
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  /** how long stop() of one component may take before it is abandoned */
  stopTimeoutMs?: number;
}

export interface ComponentStatus {
  name: string;
  state: ComponentState;
  restarts: number;
  failures: number;
  lastError: string | null;
  since: number;
}

interface Entry {
  component: Component;
  status: ComponentStatus;
  /** restart delays: reset when a start succeeds */
  backoff: Backoff;
  timer: Timer | null;
  /** the start or stop under way, so restarts never overlap */
  busy: Promise<void> | null;
  /** parts the component reported lost (bus 'health'), with why; it restores them by itself */
  lost: Map<string, string>;
  /** degraded because of `lost`, not failed: no restart is pending */
  healing: boolean;
}

/**
 * Starts components in order and stops them in reverse. A component that fails to start,
 * or reports itself degraded at run time (bus 'component' with state 'degraded'), is logged,
 * counted and restarted with exponential backoff; the process lives on. A component that
 * reports a part lost which it restores by itself (bus 'health': a Modbus bus reopening with
 * its own backoff) is shown degraded without a restart, and running again once every part it
 * reported lost is back.
 */
export class Supervisor {
  private readonly entries: Entry[] = [];
  private readonly opts: Required<SupervisorOptions>;
  private stopping = false;
  /** set while the supervisor itself announces a state on bus 'component' (not a component's report) */
  private announcing = false;

  constructor(opts: SupervisorOptions) {
    this.opts = { initialBackoffMs: 1000, maxBackoffMs: 60_000, stopTimeoutMs: 10_000, ...opts };
  }

  add(component: Component): void {
    this.entries.push({
      component,
      status: { name: component.name, state: 'stopped', restarts: 0, failures: 0, lastError: null, since: this.opts.clock.now() },
      backoff: new Backoff({ minMs: this.opts.initialBackoffMs, maxMs: this.opts.maxBackoffMs }),
      timer: null,
      busy: null,
      lost: new Map(),
      healing: false,
    });
  }

  /** Starts every component in order. Never throws: a failed component is degraded and retried. */
  /** `signal`: once aborted (a SIGTERM during start-up), no further component is started. */
  async startAll(signal?: AbortSignal): Promise<void> {
    this.stopping = false;
    this.opts.bus.on(this, 'component', (change) => {
      if (change.state !== 'degraded' || this.announcing) return;
      const entry = this.entries.find((e) => e.component.name === change.name);
      if (entry && (entry.status.state === 'running' || entry.healing)) this.fail(entry, change.error ?? 'reported degraded');
    });
    this.opts.bus.on(this, 'health', (health) => this.onHealth(health));
    for (const entry of this.entries) {
      if (signal?.aborted) break;
      await this.startOne(entry);
    }
  }

  /**
   * Stops every component in reverse order; each stop is bounded by stopTimeoutMs, and all of
   * them together by `budgetMs` (a component still stopping when it runs out is abandoned and
   * logged, so the process can exit in time; the store is closed by the caller either way).
   */
  async stopAll(budgetMs = Number.POSITIVE_INFINITY): Promise<void> {
    this.stopping = true;
    this.opts.bus.off(this);
    const deadline = performance.now() + budgetMs;
    for (const entry of [...this.entries].reverse()) {
      if (entry.timer) this.opts.clock.clearTimeout(entry.timer);
      entry.timer = null;
      const left = (): number => Math.max(0, deadline - performance.now());
      // a start still under way is waited for, within the budget (then its stop runs)
      if (entry.busy) await withTimeout(entry.busy.catch(() => undefined), left());
      await this.stopOne(entry, Math.min(this.opts.stopTimeoutMs, Math.max(left(), 1)));
    }
  }

  status(): ComponentStatus[] {
    return this.entries.map((e) => ({ ...e.status }));
  }

  private announce(change: ComponentStateChange): void {
    this.announcing = true;
    try {
      this.opts.bus.emit('component', change);
    } finally {
      this.announcing = false;
    }
  }

  private setState(entry: Entry, state: ComponentState, error?: string): void {
    entry.status.state = state;
    entry.status.since = this.opts.clock.now();
    if (error !== undefined) entry.status.lastError = error;
    // Only announce states the supervisor decides; 'degraded' reports come from components.
    if (state !== 'degraded') this.announce({ name: entry.component.name, state });
  }

  /** A part of a component lost or back (bus 'health'): degraded while any is lost, running when all are back. */
  private onHealth(health: ComponentHealth): void {
    const entry = this.entries.find((e) => e.component.name === health.name);
    if (!entry || this.stopping) return;
    if (health.ok) entry.lost.delete(health.part);
    else entry.lost.set(health.part, health.error ?? `${health.part} lost`);
    if (entry.status.state === 'running' && entry.lost.size > 0) this.degradeUntilBack(entry);
    else if (entry.healing && entry.lost.size > 0) entry.status.lastError = this.lostError(entry);
    else if (entry.healing) {
      entry.healing = false;
      this.setState(entry, 'running');
      this.opts.log.info({ component: entry.component.name, part: health.part }, 'component recovered');
    }
  }

  private lostError(entry: Entry): string {
    return [...entry.lost.values()].join('; ');
  }

  /** Degraded while parts are lost; the component restores them itself, so nothing is restarted. */
  private degradeUntilBack(entry: Entry): void {
    const error = this.lostError(entry);
    entry.healing = true;
    entry.status.state = 'degraded';
    entry.status.lastError = error;
    entry.status.since = this.opts.clock.now();
    this.announce({ name: entry.component.name, state: 'degraded', error });
    this.opts.log.warn({ component: entry.component.name, err: error, lost: [...entry.lost.keys()] }, 'component degraded; it restores what it lost by itself');
  }

  private async startOne(entry: Entry): Promise<void> {
    const { log } = this.opts;
    // a new start: what an earlier run reported lost is its own business
    entry.lost.clear();
    entry.healing = false;
    this.setState(entry, 'starting');
    const run = (async () => {
      try {
        await entry.component.start();
        if (this.stopping) return;
        entry.backoff.reset();
        if (entry.lost.size > 0) this.degradeUntilBack(entry);
        else this.setState(entry, 'running');
        log.info({ component: entry.component.name }, 'component started');
      } catch (err) {
        this.fail(entry, errorMessage(err), err);
      }
    })();
    entry.busy = run;
    await run;
    entry.busy = null;
  }

  private async stopOne(entry: Entry, timeoutMs: number): Promise<void> {
    if (entry.status.state === 'stopped') return;
    entry.healing = false;
    this.setState(entry, 'stopping');
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        entry.component.stop(),
        new Promise<void>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`stop timed out after ${Math.round(timeoutMs)} ms`)), timeoutMs);
        }),
      ]);
    } catch (err) {
      this.opts.log.error({ component: entry.component.name, err }, 'component failed to stop cleanly');
    } finally {
      clearTimeout(timer);
    }
    this.setState(entry, 'stopped');
    this.opts.log.info({ component: entry.component.name }, 'component stopped');
  }

  private fail(entry: Entry, message: string, err?: unknown): void {
    const { log, clock } = this.opts;
    entry.healing = false;
    entry.status.failures++;
    entry.status.state = 'degraded';
    entry.status.lastError = message;
    entry.status.since = clock.now();
    this.announce({ name: entry.component.name, state: 'degraded', error: message });
    if (this.stopping) return;
    const delay = entry.backoff.next();
    log.error({ component: entry.component.name, err: err ?? message, retryInMs: delay }, 'component degraded; restarting with backoff');
    if (entry.timer) clock.clearTimeout(entry.timer);
    entry.timer = clock.setTimeout(() => {
      entry.timer = null;
      void this.restart(entry).catch((e: unknown) => log.error({ err: e }, 'restart failed'));
    }, delay);
    entry.timer.unref?.();
  }

  private async restart(entry: Entry): Promise<void> {
    if (this.stopping) return;
    if (entry.busy) await entry.busy.catch(() => undefined);
    entry.status.restarts++;
    try {
      await entry.component.stop();
    } catch (err) {
      this.opts.log.warn({ component: entry.component.name, err }, 'stop before restart failed');
    }
    if (this.stopping) return;
    await this.startOne(entry);
  }
}

/** Waits for `p` at most `ms`; never rejects. */
async function withTimeout(p: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([p, new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)))]);
  clearTimeout(timer);
}
