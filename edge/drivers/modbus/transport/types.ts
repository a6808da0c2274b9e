/**
 * What the bus scheduler needs from a transport: one request/response transaction at a time,
 * plus the connection state. RTU (rtu.ts) and TCP (tcp.ts) implement it; both keep their
 * connection through connection.ts.
 */
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

export interface ModbusTransport {
  readonly kind: 'rtu' | 'tcp';
  readonly busId: string;
  readonly state: TransportState;
  readonly lastError: string | undefined;
  /** the bus's counters as they are now (edge/drivers/modbus/metrics.ts counts them) */
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
}
