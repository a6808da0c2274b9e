import { Backoff } from './backoff.js';
import type { ComponentHealth, ComponentState, ComponentStateChange, EventBus } from './bus.js';
import type { Clock, Timer } from './clock.js';
import type { Component } from './component.js';
import { StreetboxError, errorMessage } from './errors.js';
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
  /** taken out of the set (remove()): no start, restart or state report of it counts any more */
  removed: boolean;
}

/**
 * Starts components in order and stops them in reverse. While running, the set can change
 * (a configuration applied live): a component is restarted on purpose (restartNow), inserted
 * at a position, or removed; these wait for a start or stop of the same component under way,
 * cancel a pending backoff restart, and are no-ops once the supervisor is stopping. A component that fails to start,
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
  /** startAll has run (and stopAll not): an inserted component is started at once */
  private started = false;
  /** stops of removed components still under way: stopAll waits for them too */
  private readonly removing = new Set<Promise<void>>();
  /** set while the supervisor itself announces a state on bus 'component' (not a component's report) */
  private announcing = false;

  constructor(opts: SupervisorOptions) {
    this.opts = { initialBackoffMs: 1000, maxBackoffMs: 60_000, stopTimeoutMs: 10_000, ...opts };
  }

  add(component: Component): void {
    this.entries.push(this.newEntry(component));
  }

  private newEntry(component: Component): Entry {
    return {
      component,
      status: { name: component.name, state: 'stopped', restarts: 0, failures: 0, lastError: null, since: this.opts.clock.now() },
      backoff: new Backoff({ minMs: this.opts.initialBackoffMs, maxMs: this.opts.maxBackoffMs }),
      timer: null,
      busy: null,
      lost: new Map(),
      healing: false,
      removed: false,
    };
  }

  has(name: string): boolean {
    return this.entries.some((e) => e.component.name === name);
  }

  /**
   * A planned restart (the configuration it reads changed): a pending backoff restart is
   * cancelled, a start or stop under way is waited for, then the component is stopped (bounded
   * by stopTimeoutMs) and started, its states announced as usual. Not a failure: neither
   * `failures` nor `restarts` counts it, and the backoff starts over. Resolves once the start
   * has run; a start that fails leaves it degraded and retried with backoff, like any start.
   * Before startAll it does nothing (the component reads its configuration when it starts).
   */
  async restartNow(name: string): Promise<void> {
    if (this.stopping) return;
    const entry = this.entryOf(name);
    if (!this.started) return;
    this.cancelRestart(entry);
    entry.backoff.reset();
    await this.exclusive(entry, async () => {
      // a start that failed while we waited scheduled a backoff restart: this one replaces it
      this.cancelRestart(entry);
      await this.stopOne(entry, this.opts.stopTimeoutMs);
      if (this.stopping || entry.removed) return;
      await this.startOne(entry);
    });
  }

  /**
   * Adds a component before the one named `before` (else at the end), and starts it when the
   * supervisor runs; it is stopped in reverse order with the rest. Resolves once its start has
   * run (a failed start leaves it degraded and retried).
   */
  async insert(component: Component, opts: { before?: string } = {}): Promise<void> {
    if (this.stopping) return;
    if (this.has(component.name)) throw new StreetboxError('E_COMPONENT', `a component named "${component.name}" is already supervised`);
    let index = this.entries.length;
    if (opts.before !== undefined) {
      index = this.entries.findIndex((e) => e.component.name === opts.before);
      if (index < 0) throw new StreetboxError('E_NOT_FOUND', `no component "${opts.before}" to insert "${component.name}" before`);
    }
    const entry = this.newEntry(component);
    this.entries.splice(index, 0, entry);
    if (!this.started) return;
    await this.exclusive(entry, () => this.startOne(entry));
  }

  /**
   * Takes a component out of the set: it leaves status() at once, a pending backoff restart is
   * cancelled, a start under way is waited for and the component is stopped, each bounded by
   * stopTimeoutMs. Resolves once it is stopped (or its stop was abandoned).
   */
  async remove(name: string): Promise<void> {
    if (this.stopping) return;
    const entry = this.entryOf(name);
    entry.removed = true;
    this.cancelRestart(entry);
    this.entries.splice(this.entries.indexOf(entry), 1);
    const done = (async () => {
      if (entry.busy) await withTimeout(entry.busy.catch(() => undefined), this.opts.stopTimeoutMs);
      await this.stopOne(entry, this.opts.stopTimeoutMs);
    })();
    this.removing.add(done);
    try {
      await done;
    } finally {
      this.removing.delete(done);
    }
  }

  private entryOf(name: string): Entry {
    const entry = this.entries.find((e) => e.component.name === name);
    if (!entry) throw new StreetboxError('E_NOT_FOUND', `no component "${name}"; components: ${this.entries.map((e) => e.component.name).join(', ') || '(none)'}`);
    return entry;
  }

  private cancelRestart(entry: Entry): void {
    if (entry.timer) this.opts.clock.clearTimeout(entry.timer);
    entry.timer = null;
  }

  /**
   * Runs `op` once no other start, stop or restart of the entry is under way, so they never
   * overlap; skipped when the supervisor is stopping or the entry was removed meanwhile.
   */
  private async exclusive(entry: Entry, op: () => Promise<void>): Promise<void> {
    while (entry.busy) await entry.busy.catch(() => undefined);
    if (this.stopping || entry.removed) return;
    const run = op();
    entry.busy = run;
    try {
      await run;
    } finally {
      if (entry.busy === run) entry.busy = null;
    }
  }

  /** Starts every component in order. Never throws: a failed component is degraded and retried. */
  /** `signal`: once aborted (a SIGTERM during start-up), no further component is started. */
  async startAll(signal?: AbortSignal): Promise<void> {
    this.stopping = false;
    this.started = true;
    this.opts.bus.on(this, 'component', (change) => {
      if (change.state !== 'degraded' || this.announcing) return;
      const entry = this.entries.find((e) => e.component.name === change.name);
      if (entry && (entry.status.state === 'running' || entry.healing)) this.fail(entry, change.error ?? 'reported degraded');
    });
    this.opts.bus.on(this, 'health', (health) => this.onHealth(health));
    // a snapshot: one inserted meanwhile is started by insert(), one restarted on purpose is not started twice
    for (const entry of [...this.entries]) {
      if (signal?.aborted) break;
      await this.exclusive(entry, async () => {
        if (entry.status.state === 'stopped') await this.startOne(entry);
      });
    }
  }

  /**
   * Stops every component in reverse order; each stop is bounded by stopTimeoutMs, and all of
   * them together by `budgetMs` (a component still stopping when it runs out is abandoned and
   * logged, so the process can exit in time; the store is closed by the caller either way).
   */
  async stopAll(budgetMs = Number.POSITIVE_INFINITY): Promise<void> {
    this.stopping = true;
    this.started = false;
    this.opts.bus.off(this);
    const deadline = performance.now() + budgetMs;
    const left = (): number => Math.max(0, deadline - performance.now());
    for (const entry of [...this.entries].reverse()) {
      this.cancelRestart(entry);
      // a start still under way is waited for, within the budget (then its stop runs)
      if (entry.busy) await withTimeout(entry.busy.catch(() => undefined), left());
      await this.stopOne(entry, Math.min(this.opts.stopTimeoutMs, Math.max(left(), 1)));
    }
    // components removed just before are still stopping: within the budget, wait for them too
    if (this.removing.size > 0) await withTimeout(Promise.all(this.removing), left());
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
    try {
      await entry.component.start();
      if (this.stopping || entry.removed) return;
      entry.backoff.reset();
      if (entry.lost.size > 0) this.degradeUntilBack(entry);
      else this.setState(entry, 'running');
      log.info({ component: entry.component.name }, 'component started');
    } catch (err) {
      this.fail(entry, errorMessage(err), err);
    }
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
    if (entry.removed) {
      log.warn({ component: entry.component.name, err: err ?? message }, 'removed component failed; not restarted');
      return;
    }
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

  /** The backoff restart of a failed component (not when a planned restart brought it back meanwhile). */
  private async restart(entry: Entry): Promise<void> {
    await this.exclusive(entry, async () => {
      if (entry.status.state !== 'degraded' || entry.healing) return;
      entry.status.restarts++;
      try {
        await entry.component.stop();
      } catch (err) {
        this.opts.log.warn({ component: entry.component.name, err }, 'stop before restart failed');
      }
      if (this.stopping || entry.removed) return;
      await this.startOne(entry);
    });
  }
}

/** Waits for `p` at most `ms`; never rejects. */
async function withTimeout(p: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([p, new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)))]);
  clearTimeout(timer);
}
