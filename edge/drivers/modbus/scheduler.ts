/**
 * The bus scheduler: exactly one transaction in flight per bus. Commands (writes, on-demand
 * reads, scans) go ahead of polls; polls of all devices are served in order of their due time,
 * so devices on a saturated line take turns. A failed transaction is retried after an
 * exponential backoff *without holding the line*: other devices' transactions go in between.
 *
 * Each device has a comms state: after `offlineAfter` failed polls in a row it is offline and
 * is probed only every `probeInterval` with one short attempt, so a dead device costs the
 * line one short timeout per probe interval; when it answers again it is online and polled
 * at once. Time comes from the injected clock (edge/clock.ts).
 *
 * Bulk transactions (firmware blocks) come last: after every command and every poll waiting
 * (polls wait in the queue only once due), and within the bus's `transferShare` of line time:
 * after a bulk transaction that held the line d ms, the next one may not start before
 * end + d × (1/share − 1); commands and polls use that gap.
 */
import { backoffDelay } from '../../backoff.js';
import type { Clock, Timer } from '../../clock.js';
import { StreetboxError, errorMessage } from '../../errors.js';
import type { Logger } from '../../log.js';
import { ModbusTransportError, isRetryable } from './errors.js';

export type Priority = 'command' | 'poll' | 'bulk';

/** Sends one request PDU and resolves with the response PDU (exception responses included). */
export type Transact = (pdu: Buffer) => Promise<Buffer>;

export interface RawTransport {
  transact(unit: number, pdu: Buffer, timeoutMs: number): Promise<Buffer>;
}

export interface SchedulerTiming {
  /** response timeout per transaction, ms */
  timeout: number;
  /** retries after a failed transaction */
  retries: number;
  /** failed polls in a row after which a device is offline */
  offlineAfter: number;
  /** probe period of an offline device, ms */
  probeInterval: number;
  /** the most of the line's time bulk transactions (firmware blocks) may take, 0.05..1; default 0.9 */
  transferShare?: number;
}

/** What bulk transactions have cost the line so far. */
export interface BulkStats {
  /** transactions started (retries count again) */
  transactions: number;
  /** line time they held, ms (a timeout holds the line for its whole wait) */
  lineMs: number;
}

export const DEFAULT_TRANSFER_SHARE = 0.9;

export interface RequestOptions {
  priority: Priority;
  /** monotonic ms; orders polls (commands are first come, first served) */
  due?: number;
  timeoutMs: number;
  retries: number;
}

export interface ScheduledDevice {
  readonly id: string;
  readonly unit: number;
  /** poll period, ms */
  readonly pollMs: number;
  /** One poll: its transactions go through `tx`. Throws (a retryable error) when the device did not answer. */
  poll(tx: Transact): Promise<void>;
  /** A small request that any live device answers (even with an exception): used to probe. */
  probePdu(): Buffer;
}

export interface DeviceHooks<D extends ScheduledDevice = ScheduledDevice> {
  /** a poll (after its retries) failed; `consecutive` counts failed polls in a row */
  onPollFailed?(device: D, err: unknown, consecutive: number): void;
  /** the device just went offline */
  onLost?(device: D, err: unknown): void;
  /** the device answered again after being offline */
  onRestored?(device: D): void;
}

export interface DeviceCommsState {
  online: boolean;
  consecutiveFailures: number;
  polls: number;
  failures: number;
  lastSeen: number | null;
  lastError: string | null;
  /** the measured period between the starts of the last two polls, ms */
  cycleMs: number | null;
  /** how long the last poll took, ms */
  pollMs: number | null;
}

interface Job {
  due: number;
  seq: number;
  run: () => void;
  reject: (err: Error) => void;
}

interface Slot<D extends ScheduledDevice> {
  device: D;
  state: DeviceCommsState;
  lastPollStart: number | null;
  wake: (() => void) | undefined;
  timer: Timer | undefined;
}

/** A short attempt: probes of offline devices and commands to them. */
export const PROBE_TIMEOUT_MS = 250;
const RETRY_BASE_MS = 50;
const RETRY_MAX_MS = 2000;
const MIN_BACKOFF_MS = 100;

export class BusScheduler<D extends ScheduledDevice = ScheduledDevice> {
  private readonly commands: Job[] = [];
  private readonly polls: Job[] = [];
  private readonly bulks: Job[] = [];
  /** monotonic ms before which no bulk transaction starts (the share's gap) */
  private bulkNotBefore = -Infinity;
  private bulkTimer: Timer | undefined;
  /** the gap after a bulk transaction, per ms it took: 1/share − 1 */
  private readonly bulkGapFactor: number;
  private readonly bulkStats: BulkStats = { transactions: 0, lineMs: 0 };
  private readonly slots = new Map<string, Slot<D>>();
  private readonly sleepers = new Set<{ timer: Timer; resolve: () => void }>();
  private active = false;
  private stopped = false;
  private seq = 0;

  constructor(
    private readonly opts: {
      busId: string;
      transport: RawTransport;
      clock: Clock;
      timing: SchedulerTiming;
      log: Logger;
      hooks?: DeviceHooks<D>;
      /** told each bulk transaction's line time, ms, when it ends (the driver's metrics) */
      onBulk?: (lineMs: number) => void;
    },
  ) {
    const share = opts.timing.transferShare ?? DEFAULT_TRANSFER_SHARE;
    if (!(share >= 0.05 && share <= 1)) {
      throw new StreetboxError('E_CONFIG', `bus "${opts.busId}": "transferShare" is not within 0.05..1 (got ${share})`);
    }
    this.bulkGapFactor = 1 / share - 1;
  }

  get queued(): number {
    return this.commands.length + this.polls.length + this.bulks.length;
  }

  /** Bulk transactions started and the line time they held, since this scheduler was made. */
  get bulkUsage(): Readonly<BulkStats> {
    return { ...this.bulkStats };
  }

  // -------------------------------------------------------------------------------------
  // Transactions

  /** One transaction with retries; retries wait out their backoff off the line. */
  request(unit: number, pdu: Buffer, o: RequestOptions): Promise<Buffer> {
    const first = this.enqueue(o.priority, o.due ?? 0, () => this.opts.transport.transact(unit, pdu, o.timeoutMs));
    return o.retries > 0 ? first.catch((err: unknown) => this.retry(unit, pdu, o, err)) : first;
  }

  private async retry(unit: number, pdu: Buffer, o: RequestOptions, firstError: unknown): Promise<Buffer> {
    let err = firstError;
    for (let attempt = 0; ; attempt++) {
      if (this.stopped || attempt >= o.retries || !isRetryable(err)) throw err;
      await this.sleep(backoffDelay(attempt, RETRY_BASE_MS, RETRY_MAX_MS));
      try {
        return await this.enqueue(o.priority, o.due ?? 0, () => this.opts.transport.transact(unit, pdu, o.timeoutMs));
      } catch (e) {
        err = e;
      }
    }
  }

  private enqueue<T>(priority: Priority, due: number, fn: () => Promise<T>): Promise<T> {
    if (this.stopped) return Promise.reject(this.stoppedError());
    return new Promise<T>((resolve, reject) => {
      const job: Job = {
        due,
        seq: this.seq++,
        reject,
        run: () => {
          const started = this.opts.clock.monotonic();
          const settle = (): void => {
            this.active = false;
            if (priority === 'bulk') this.bulkEnded(started);
          };
          fn().then(
            (v) => {
              settle();
              resolve(v);
              this.pump();
            },
            (err: unknown) => {
              settle();
              reject(err as Error);
              this.pump();
            },
          );
        },
      };
      (priority === 'command' ? this.commands : priority === 'poll' ? this.polls : this.bulks).push(job);
      this.pump();
    });
  }

  /** A bulk transaction that started at `started` ended now: counted, and the share's gap set. */
  private bulkEnded(started: number): void {
    const end = this.opts.clock.monotonic();
    const d = Math.max(0, end - started);
    this.bulkStats.transactions++;
    this.bulkStats.lineMs += d;
    this.bulkNotBefore = end + d * this.bulkGapFactor;
    this.opts.onBulk?.(d);
  }

  private pump(): void {
    if (this.active || this.stopped) return;
    let job = this.commands.shift();
    if (!job && this.polls.length > 0) {
      let best = 0;
      for (let i = 1; i < this.polls.length; i++) {
        const a = this.polls[i]!;
        const b = this.polls[best]!;
        if (a.due < b.due || (a.due === b.due && a.seq < b.seq)) best = i;
      }
      job = this.polls.splice(best, 1)[0];
    }
    if (!job && this.bulks.length > 0) {
      // Bulk last, and not before the gap its share leaves after the previous one.
      const wait = this.bulkNotBefore - this.opts.clock.monotonic();
      if (wait > 0) this.wakeForBulk(wait);
      else job = this.bulks.shift();
    }
    if (!job) return;
    this.active = true;
    job.run();
  }

  /** Pumps again once the share's gap is over (one timer at a time). */
  private wakeForBulk(ms: number): void {
    if (this.bulkTimer) return;
    this.bulkTimer = this.opts.clock.setTimeout(() => {
      this.bulkTimer = undefined;
      this.pump();
    }, ms);
  }

  private stoppedError(): Error {
    return new ModbusTransportError(`bus "${this.opts.busId}": stopped`);
  }

  private sleep(ms: number): Promise<void> {
    if (this.stopped) return Promise.reject(this.stoppedError());
    return new Promise<void>((resolve) => {
      const entry = {
        resolve: () => {
          this.sleepers.delete(entry);
          resolve();
        },
        timer: this.opts.clock.setTimeout(() => entry.resolve(), ms),
      };
      this.sleepers.add(entry);
    });
  }

  // -------------------------------------------------------------------------------------
  // Devices

  addDevice(device: D): DeviceCommsState {
    const state: DeviceCommsState = {
      online: true,
      consecutiveFailures: 0,
      polls: 0,
      failures: 0,
      lastSeen: null,
      lastError: null,
      cycleMs: null,
      pollMs: null,
    };
    this.slots.set(device.id, { device, state, lastPollStart: null, wake: undefined, timer: undefined });
    return state;
  }

  /** Starts the poll loop of every device added; the first polls are due now. */
  start(): void {
    this.stopped = false;
    for (const slot of this.slots.values()) {
      void this.loop(slot).catch((err: unknown) => {
        if (!this.stopped) this.opts.log.error({ err, device: slot.device.id }, 'modbus poll loop ended');
      });
    }
  }

  state(deviceId: string): DeviceCommsState | undefined {
    return this.slots.get(deviceId)?.state;
  }

  /** Waits until monotonic time `at`, or until woken (a command found the device alive). */
  private waitUntil(slot: Slot<D>, at: number): Promise<void> {
    const delay = at - this.opts.clock.monotonic();
    if (delay <= 0) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const done = () => {
        if (slot.timer) this.opts.clock.clearTimeout(slot.timer);
        slot.timer = undefined;
        slot.wake = undefined;
        resolve();
      };
      slot.wake = done;
      slot.timer = this.opts.clock.setTimeout(done, delay);
    });
  }

  private async loop(slot: Slot<D>): Promise<void> {
    const { clock, timing } = this.opts;
    const { device, state } = slot;
    let due = clock.monotonic();
    while (!this.stopped) {
      await this.waitUntil(slot, due);
      if (this.stopped) return;
      // Woken early (a command found an offline device alive): the poll is due now.
      due = Math.min(due, clock.monotonic());
      if (!state.online) {
        // One short attempt per probe interval: a dead device never holds the line for long.
        try {
          await this.request(device.unit, device.probePdu(), {
            priority: 'poll',
            due,
            timeoutMs: Math.min(timing.timeout, PROBE_TIMEOUT_MS),
            retries: 0,
          });
          this.markAlive(slot);
          due = clock.monotonic();
        } catch (err) {
          if (this.stopped) return;
          state.lastError = errorMessage(err);
          due = Math.max(due + timing.probeInterval, clock.monotonic());
        }
        continue;
      }
      const start = clock.monotonic();
      if (slot.lastPollStart !== null) state.cycleMs = start - slot.lastPollStart;
      slot.lastPollStart = start;
      const pollDue = due;
      try {
        await device.poll((pdu) =>
          this.request(device.unit, pdu, { priority: 'poll', due: pollDue, timeoutMs: timing.timeout, retries: timing.retries }),
        );
        state.polls++;
        state.pollMs = clock.monotonic() - start;
        state.consecutiveFailures = 0;
        state.lastSeen = clock.now();
        due = Math.max(due + device.pollMs, clock.monotonic());
      } catch (err) {
        if (this.stopped) return;
        state.polls++;
        state.failures++;
        state.consecutiveFailures++;
        state.lastError = errorMessage(err);
        state.pollMs = clock.monotonic() - start;
        this.opts.hooks?.onPollFailed?.(device, err, state.consecutiveFailures);
        if (state.consecutiveFailures >= timing.offlineAfter) {
          state.online = false;
          slot.lastPollStart = null;
          this.opts.hooks?.onLost?.(device, err);
          due = clock.monotonic() + timing.probeInterval;
        } else {
          // Exponential backoff: the next poll after n failures in a row waits poll × 2^(n-1).
          // (at least 100 ms, so a bus that fails at once never spins)
          const backoff = Math.max(MIN_BACKOFF_MS, backoffDelay(state.consecutiveFailures - 1, device.pollMs, timing.probeInterval));
          due = clock.monotonic() + backoff;
        }
      }
    }
  }

  private markAlive(slot: Slot<D>): void {
    const { state } = slot;
    state.consecutiveFailures = 0;
    state.lastSeen = this.opts.clock.now();
    if (!state.online) {
      state.online = true;
      this.opts.hooks?.onRestored?.(slot.device);
    }
  }

  /**
   * A command for a device (a write, an on-demand read): its transactions go ahead of every
   * poll. To an offline device it is one short attempt; an answer brings the device back.
   */
  async command<T>(deviceId: string, fn: (tx: Transact) => Promise<T>): Promise<T> {
    const slot = this.slots.get(deviceId);
    if (!slot) throw new ModbusTransportError(`bus "${this.opts.busId}": no device "${deviceId}"`);
    const { timing } = this.opts;
    const offline = !slot.state.online;
    const o: RequestOptions = offline
      ? { priority: 'command', timeoutMs: Math.min(timing.timeout, PROBE_TIMEOUT_MS), retries: 0 }
      : { priority: 'command', timeoutMs: timing.timeout, retries: timing.retries };
    let answered = false;
    const result = await fn(async (pdu) => {
      const r = await this.request(slot.device.unit, pdu, o);
      answered = true;
      return r;
    }).finally(() => {
      if (answered && offline && !slot.state.online) {
        this.markAlive(slot);
        slot.wake?.();
      }
    });
    return result;
  }

  /**
   * Firmware blocks for a device: `fn`'s transactions go at bulk priority, after commands and
   * due polls and within the bus's transferShare, with the bus's timeout and retries, whether
   * the device is online or not (stopping a transfer to a silent device is the caller's business).
   */
  async bulk<T>(deviceId: string, fn: (tx: Transact) => Promise<T>): Promise<T> {
    const slot = this.slots.get(deviceId);
    if (!slot) throw new ModbusTransportError(`bus "${this.opts.busId}": no device "${deviceId}"`);
    const { timing } = this.opts;
    const o: RequestOptions = { priority: 'bulk', timeoutMs: timing.timeout, retries: timing.retries };
    return fn((pdu) => this.request(slot.device.unit, pdu, o));
  }

  /** Stops the loops and rejects everything queued. The transport rejects what is in flight. */
  stop(): void {
    this.stopped = true;
    const err = this.stoppedError();
    if (this.bulkTimer) this.opts.clock.clearTimeout(this.bulkTimer);
    this.bulkTimer = undefined;
    for (const job of this.commands.splice(0)) job.reject(err);
    for (const job of this.polls.splice(0)) job.reject(err);
    for (const job of this.bulks.splice(0)) job.reject(err);
    for (const s of this.sleepers) {
      this.opts.clock.clearTimeout(s.timer);
      s.resolve();
    }
    for (const slot of this.slots.values()) slot.wake?.();
  }
}
