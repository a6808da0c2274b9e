/**
 * The lifecycle of a bus connection, written once for RTU and TCP: one attempt (`connect`),
 * kept open (`start`: reopened with exponential backoff after a failed attempt or a loss), and
 * `close`. A transport says only how to open and close its channel (a serial port, a socket)
 * and calls `lost` when an open channel ends by itself; this class owns the state, the reason,
 * the backoff timer and the log lines, as MQTT.js keeps reconnect in its client and its
 * transports are small builders.
 *
 * The backoff is reset only by a channel that stayed open `stableMs`: a peer that accepts and
 * drops at once (a flapping bus) is retried with growing delays, not every 500 ms.
 */
import { Backoff } from '../../../backoff.js';
import type { Clock, Timer } from '../../../clock.js';
import { errorMessage } from '../../../errors.js';
import type { Logger } from '../../../log.js';
import type { Series } from '../../../metrics.js';
import { ModbusTransportError } from '../errors.js';
import type { TransportState } from './types.js';

/** How long a channel must stay open to count as back for good (backoff reset, bus health). */
export const STABLE_MS = 10_000;

export interface ChannelOpener<C> {
  /**
   * One attempt to open; rejects with an error naming the bus. `lost(reason)` is to be called
   * once the open channel ends by itself (the peer closed, the device vanished).
   */
  open(lost: (reason: string) => void): Promise<C>;
  /** Closes an open channel; resolves once it is closed. */
  close(channel: C): Promise<void>;
}

export interface BusConnectionOptions<C> extends ChannelOpener<C> {
  busId: string;
  clock: Clock;
  log: Logger;
  /** how `transact` says the channel is not open: "not connected", "serial port not open" */
  notOpen: string;
  /** the log line of a successful open, and its fields */
  opened: { message: string; fields: Record<string, unknown> };
  /** counts successful opens */
  connects: Series;
  /** reopen delays: default 500 ms doubling up to 30 s, reset by a channel that stayed open `stableMs` */
  backoff?: { minMs: number; maxMs: number };
  /** how long a channel must stay open before its loss starts the backoff over (default STABLE_MS) */
  stableMs?: number;
  /** called on every state change */
  onState?: StateListener | undefined;
}

export type StateListener = (state: TransportState, error?: string) => void;

export class BusConnection<C> {
  state: TransportState = 'closed';
  lastError: string | undefined;
  /** the open channel, if any */
  channel: C | undefined;

  private readonly opts: BusConnectionOptions<C>;
  private readonly backoff: Backoff;
  private attempt: Promise<C> | undefined;
  private timer: Timer | undefined;
  private keepOpen = false;
  private closing = false;
  /** clock.monotonic() when the open channel opened */
  private openedAt = 0;

  constructor(opts: BusConnectionOptions<C>) {
    this.opts = opts;
    this.backoff = new Backoff(opts.backoff ?? { minMs: 500, maxMs: 30_000 });
  }

  private setState(state: TransportState, error?: string): void {
    this.state = state;
    if (error !== undefined) this.lastError = error;
    this.opts.onState?.(state, error);
  }

  /** One attempt to open (or the one under way); rejects with an error naming the bus. */
  connect(): Promise<C> {
    if (this.channel !== undefined) return Promise.resolve(this.channel);
    if (this.attempt) return this.attempt;
    this.closing = false;
    this.setState('connecting');
    let opened: C | undefined;
    const lost = (reason: string): void => {
      if (opened !== undefined && this.channel === opened) this.onLost(reason);
    };
    const attempt = this.opts.open(lost).then(
      async (channel) => {
        if (this.closing) {
          await this.opts.close(channel).catch(() => undefined);
          throw new ModbusTransportError(`bus "${this.opts.busId}": closed while opening`);
        }
        this.attempt = undefined;
        opened = channel;
        this.channel = channel;
        this.opts.connects.inc();
        this.openedAt = this.opts.clock.monotonic();
        this.setState('connected');
        this.opts.log.info({ bus: this.opts.busId, ...this.opts.opened.fields }, this.opts.opened.message);
        return channel;
      },
      (err: unknown) => {
        this.attempt = undefined;
        this.setState('degraded', errorMessage(err));
        throw err;
      },
    );
    this.attempt = attempt;
    // Closed while opening: the rejection is for the caller; the attempt is over either way.
    attempt.catch(() => {
      if (this.attempt === attempt) this.attempt = undefined;
    });
    return attempt;
  }

  /** Keeps the channel open: opens now, and again with backoff after a failure or a loss. */
  start(): void {
    // a fresh start (not a second call while kept open) owes nothing to an earlier run's failures
    if (!this.keepOpen) this.backoff.reset();
    this.keepOpen = true;
    this.closing = false;
    this.reopen();
  }

  private reopen(): void {
    if (!this.keepOpen || this.channel !== undefined || this.attempt) return;
    this.connect().catch((err: unknown) => {
      if (!this.keepOpen) return;
      const delay = this.schedule();
      this.opts.log.error({ bus: this.opts.busId, err: errorMessage(err), retryInMs: delay }, 'modbus bus degraded');
    });
  }

  private schedule(): number {
    this.cancel();
    const delay = this.backoff.next();
    this.timer = this.opts.clock.setTimeout(() => {
      this.timer = undefined;
      this.reopen();
    }, delay);
    this.timer.unref?.();
    return delay;
  }

  private cancel(): void {
    if (this.timer) this.opts.clock.clearTimeout(this.timer);
    this.timer = undefined;
  }

  private onLost(reason: string): void {
    this.channel = undefined;
    // only a channel that stayed open a while starts the backoff over; a flapping peer does not
    if (this.opts.clock.monotonic() - this.openedAt >= (this.opts.stableMs ?? STABLE_MS)) this.backoff.reset();
    if (this.keepOpen) {
      this.setState('degraded', reason);
      this.schedule();
    } else this.setState('closed');
  }

  /** An error the open channel reported (the loss that usually follows says the rest). */
  noteError(message: string): void {
    this.lastError = message;
  }

  /**
   * The open channel, or the one being opened right now (start-up, a reopen): waited for
   * rather than failed at once. Rejects when the channel is neither open nor opening.
   */
  ready(): Promise<C> {
    if (this.channel !== undefined) return Promise.resolve(this.channel);
    if (this.attempt) return this.attempt;
    return Promise.reject(new ModbusTransportError(`bus "${this.opts.busId}": ${this.opts.notOpen}${this.lastError ? ` (${this.lastError})` : ''}`));
  }

  /** Closes, stops reopening, and waits for an attempt under way. Idempotent. */
  async close(): Promise<void> {
    this.keepOpen = false;
    this.closing = true;
    this.cancel();
    const channel = this.channel;
    this.channel = undefined;
    if (channel !== undefined) await this.opts.close(channel);
    await this.attempt?.catch(() => undefined);
    this.setState('closed');
  }
}

/** The lifecycle half of a ModbusTransport, delegated to its one BusConnection. */
export abstract class ConnectedTransport<C> {
  protected abstract readonly conn: BusConnection<C>;

  get state(): TransportState {
    return this.conn.state;
  }

  get lastError(): string | undefined {
    return this.conn.lastError;
  }

  async connect(): Promise<void> {
    await this.conn.connect();
  }

  start(): void {
    this.conn.start();
  }
}
