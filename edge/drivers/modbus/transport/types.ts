/**
 * What the bus scheduler needs from a transport: one request/response transaction at a time,
 * plus the connection state. RTU (rtu.ts) and TCP (tcp.ts) implement it.
 */
import type { Clock, Timer } from '../../../clock.js';

export type TransportState = 'connecting' | 'connected' | 'degraded' | 'closed';

export interface TransportCounters {
  requests: number;
  responses: number;
  timeouts: number;
  crcErrors: number;
  /** truncated frames, inter-byte gaps > t1.5, unknown function codes, bad MBAP headers */
  frameErrors: number;
  /** complete answers from another unit id than the one asked */
  discardedUnit: number;
  /** TCP: answers carrying another transaction id than the one in flight (late answers) */
  discardedTransaction: number;
  /** bytes that arrived while no transaction was in flight, or trailing a frame */
  discardedBytes: number;
  connects: number;
}

export function newCounters(): TransportCounters {
  return {
    requests: 0,
    responses: 0,
    timeouts: 0,
    crcErrors: 0,
    frameErrors: 0,
    discardedUnit: 0,
    discardedTransaction: 0,
    discardedBytes: 0,
    connects: 0,
  };
}

export interface ModbusTransport {
  readonly kind: 'rtu' | 'tcp';
  readonly busId: string;
  readonly state: TransportState;
  readonly lastError: string | undefined;
  readonly counters: TransportCounters;
  /** One attempt to open/connect; rejects with an error naming the bus. */
  connect(): Promise<void>;
  /** Keeps the transport open: connects now and again with exponential backoff after a failure or a loss. */
  start(): void;
  /** Closes; rejects a transaction in flight. Idempotent. */
  close(): Promise<void>;
  /**
   * Sends `pdu` to `unit` and resolves with the response PDU (which may be an exception
   * response: the caller decodes it). Only one transaction may be in flight.
   */
  transact(unit: number, pdu: Buffer, timeoutMs: number): Promise<Buffer>;
  /** Called on every state change. */
  onState?: ((state: TransportState, error?: string) => void) | undefined;
}

/** Exponential backoff for reconnects: 500 ms doubling up to 30 s, reset after a success. */
export class Backoff {
  private attempt = 0;
  private timer: Timer | undefined;

  constructor(
    private readonly clock: Clock,
    private readonly minMs = 500,
    private readonly maxMs = 30_000,
  ) {}

  get nextDelayMs(): number {
    return Math.min(this.maxMs, this.minMs * 2 ** this.attempt);
  }

  schedule(fn: () => void): number {
    this.cancel();
    const delay = this.nextDelayMs;
    this.attempt++;
    this.timer = this.clock.setTimeout(() => {
      this.timer = undefined;
      fn();
    }, delay);
    this.timer.unref?.();
    return delay;
  }

  reset(): void {
    this.attempt = 0;
  }

  cancel(): void {
    if (this.timer) this.clock.clearTimeout(this.timer);
    this.timer = undefined;
  }
}
