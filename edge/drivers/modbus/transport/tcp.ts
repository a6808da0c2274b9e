/**
 * Modbus TCP (Modbus Messaging on TCP/IP Implementation Guide V1.0b): one persistent connection
 * per bus, Nagle off, kept open by connection.ts (reconnect with backoff). Transaction ids are generated per
 * request and checked on the answer (§3.1.3); an answer with another transaction id or unit
 * id is discarded and counted. One transaction in flight (no pipelining).
 */
import { Socket } from 'node:net';
import type { Clock, Timer } from '../../../clock.js';
import { errorMessage } from '../../../errors.js';
import type { Logger } from '../../../log.js';
import { ModbusTimeoutError, ModbusTransportError } from '../errors.js';
import { MBAP_LENGTH, encodeMbap } from '../framing.js';
import { BusConnection, ConnectedTransport, type StateListener } from './connection.js';
import { ModbusMetrics, type BusCounters } from '../metrics.js';
import type { ModbusTransport, TransportCounters } from './types.js';

export interface TcpTransportOptions {
  busId: string;
  host: string;
  port: number;
  clock: Clock;
  log: Logger;
  connectTimeoutMs?: number;
  /** where the bus counts (the driver's registry); default its own */
  counters?: BusCounters;
  /** told every state change of the connection */
  onState?: StateListener;
}

interface InFlight {
  tid: number;
  unit: number;
  resolve: (pdu: Buffer) => void;
  reject: (err: Error) => void;
  timer: Timer;
}

export class TcpTransport extends ConnectedTransport<Socket> implements ModbusTransport {
  readonly kind = 'tcp';
  readonly busId: string;
  private readonly c: BusCounters;

  private readonly opts: TcpTransportOptions;
  protected readonly conn: BusConnection<Socket>;
  private rx: Buffer | undefined;
  private inFlight: InFlight | undefined;
  private nextTid = 1;

  constructor(opts: TcpTransportOptions) {
    super();
    this.opts = opts;
    this.busId = opts.busId;
    this.c = opts.counters ?? new ModbusMetrics().bus(opts.busId);
    this.conn = new BusConnection<Socket>({
      busId: opts.busId,
      clock: opts.clock,
      log: opts.log,
      notOpen: 'not connected',
      opened: { message: 'modbus tcp connected', fields: { host: opts.host, port: opts.port } },
      connects: this.c.connects,
      onState: opts.onState,
      open: (lost) => this.open(lost),
      close: (socket) => closeSocket(socket),
    });
  }

  get counters(): TransportCounters {
    return this.c.snapshot();
  }

  /** Connects a socket: Nagle off, keep-alive on; a loss fails the transaction in flight. */
  private open(lost: (reason: string) => void): Promise<Socket> {
    const { host, port, busId } = this.opts;
    return new Promise<Socket>((resolve, reject) => {
      const socket = new Socket();
      let settled = false;
      const fail = (err: Error) => {
        if (settled) return;
        settled = true;
        socket.destroy();
        reject(new ModbusTransportError(`bus "${busId}": cannot connect to ${host}:${port}: ${errorMessage(err)}`, { cause: err }));
      };
      socket.setTimeout(this.opts.connectTimeoutMs ?? 3000, () => fail(new Error('connect timed out')));
      socket.once('error', fail);
      socket.connect({ host, port }, () => {
        if (settled) return;
        settled = true;
        socket.setTimeout(0);
        socket.removeListener('error', fail);
        socket.setNoDelay(true);
        socket.setKeepAlive(true, 10_000);
        this.rx = undefined;
        let lastError: string | undefined;
        socket.on('data', (chunk: Buffer) => this.onData(chunk));
        socket.on('error', (err) => {
          lastError = `bus "${busId}": ${errorMessage(err)}`;
          this.conn.noteError(lastError);
        });
        socket.on('close', () => {
          if (this.conn.channel !== socket) return; // closed by us: close() has failed what was in flight
          this.rx = undefined;
          this.fail(new ModbusTransportError(`bus "${busId}": connection closed`));
          lost(lastError ?? `bus "${busId}": connection closed`);
        });
        resolve(socket);
      });
    });
  }

  /**
   * §3.1.3: an ADU is the 7-byte MBAP header (protocol id 0, length = unit + PDU ≤ 254) and its
   * PDU. Garbage or a truncated frame puts the stream out of step; as nothing is pipelined, the
   * one frame we want carries the transaction id in flight, so we skip ahead to its header
   * rather than drop a connection that other units behind a gateway share.
   */
  private onData(chunk: Buffer): void {
    let rx = this.rx ? Buffer.concat([this.rx, chunk]) : chunk;
    while (rx.length >= MBAP_LENGTH) {
      const pending = this.inFlight;
      const length = rx.readUInt16BE(4);
      if (rx.readUInt16BE(2) === 0 && length >= 2 && length <= 254) {
        const total = 6 + length;
        if (rx.length >= total) {
          const frame = rx.subarray(0, total);
          rx = rx.subarray(total);
          this.onFrame(frame);
          continue;
        }
        // Incomplete. If it is not our answer and our answer's header follows, it never will be.
        const at = pending && rx.readUInt16BE(0) !== pending.tid ? findHeader(rx, pending.tid, 1) : -1;
        if (at < 0) break;
        this.c.frameErrors.inc();
        this.c.discardedBytes.inc(at);
        rx = rx.subarray(at);
        continue;
      }
      // Not an MBAP header: skip to our answer's header, or drop what cannot start one.
      this.c.frameErrors.inc();
      const at = pending ? findHeader(rx, pending.tid, 1) : -1;
      const keep = at > 0 ? at : Math.max(1, rx.length - (MBAP_LENGTH - 1));
      this.c.discardedBytes.inc(keep);
      rx = rx.subarray(keep);
    }
    this.rx = rx.length > 0 ? rx : undefined;
  }

  private onFrame(frame: Buffer): void {
    const tid = frame.readUInt16BE(0);
    const pending = this.inFlight;
    if (frame.readUInt16BE(2) !== 0) {
      this.c.frameErrors.inc();
      return;
    }
    if (!pending || tid !== pending.tid) {
      this.c.discardedTransaction.inc();
      return;
    }
    if (frame[6] !== pending.unit) {
      this.c.discardedUnit.inc();
      return;
    }
    this.inFlight = undefined;
    this.opts.clock.clearTimeout(pending.timer);
    this.c.responses.inc();
    pending.resolve(frame.subarray(MBAP_LENGTH));
  }

  private fail(err: Error): void {
    const pending = this.inFlight;
    if (!pending) return;
    this.inFlight = undefined;
    this.opts.clock.clearTimeout(pending.timer);
    pending.reject(err);
  }

  transact(unit: number, pdu: Buffer, timeoutMs: number): Promise<Buffer> {
    if (this.inFlight) return Promise.reject(new ModbusTransportError(`bus "${this.busId}": a transaction is already in flight`));
    const socket = this.conn.channel;
    if (socket) return this.send(socket, unit, pdu, timeoutMs);
    return this.conn.ready().then((s) => this.send(s, unit, pdu, timeoutMs));
  }

  private send(socket: Socket, unit: number, pdu: Buffer, timeoutMs: number): Promise<Buffer> {
    const tid = this.nextTid;
    this.nextTid = (this.nextTid + 1) & 0xffff;
    this.c.requests.inc();
    return new Promise<Buffer>((resolve, reject) => {
      const timer = this.opts.clock.setTimeout(() => {
        if (this.inFlight?.tid !== tid) return;
        this.inFlight = undefined;
        this.c.timeouts.inc();
        // A part of a frame left in the buffer would corrupt the next answer.
        if (this.rx) this.c.discardedBytes.inc(this.rx.length);
        this.rx = undefined;
        reject(new ModbusTimeoutError(`bus "${this.busId}" unit ${unit}: no answer within ${timeoutMs} ms`));
      }, timeoutMs);
      this.inFlight = { tid, unit, resolve, reject, timer };
      socket.write(encodeMbap(tid, unit, pdu));
    });
  }

  async close(): Promise<void> {
    this.fail(new ModbusTransportError(`bus "${this.busId}": closed`));
    await this.conn.close();
  }
}

function closeSocket(socket: Socket): Promise<void> {
  if (socket.destroyed) return Promise.resolve();
  return new Promise<void>((resolve) => {
    socket.once('close', () => resolve());
    socket.destroy();
  });
}

/** The first index ≥ from where an MBAP header with transaction id `tid` starts, or -1. */
function findHeader(rx: Buffer, tid: number, from: number): number {
  const hi = tid >> 8;
  const lo = tid & 0xff;
  for (let i = from; i + 6 <= rx.length; i++) {
    if (rx[i] !== hi || rx[i + 1] !== lo || rx[i + 2] !== 0 || rx[i + 3] !== 0) continue;
    const length = (rx[i + 4]! << 8) | rx[i + 5]!;
    if (length >= 2 && length <= 254) return i;
  }
  return -1;
}
