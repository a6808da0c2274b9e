/**
 * Modbus TCP (Modbus Messaging on TCP/IP Implementation Guide V1.0b): one persistent connection
 * per bus, Nagle off, reconnect with exponential backoff. Transaction ids are generated per
 * request and checked on the answer (§3.1.3); an answer with another transaction id or unit
 * id is discarded and counted. One transaction in flight (no pipelining).
 */
import { Socket } from 'node:net';
import type { Clock, Timer } from '../../../clock.js';
import { errorMessage } from '../../../errors.js';
import type { Logger } from '../../../log.js';
import { ModbusTimeoutError, ModbusTransportError } from '../errors.js';
import { MBAP_LENGTH, encodeMbap } from '../framing.js';
import { Backoff, newCounters, type ModbusTransport, type TransportState } from './types.js';

export interface TcpTransportOptions {
  busId: string;
  host: string;
  port: number;
  clock: Clock;
  log: Logger;
  connectTimeoutMs?: number;
}

interface InFlight {
  tid: number;
  unit: number;
  resolve: (pdu: Buffer) => void;
  reject: (err: Error) => void;
  timer: Timer;
}

export class TcpTransport implements ModbusTransport {
  readonly kind = 'tcp';
  readonly busId: string;
  readonly counters = newCounters();
  state: TransportState = 'closed';
  lastError: string | undefined;
  onState: ((state: TransportState, error?: string) => void) | undefined;

  private readonly opts: TcpTransportOptions;
  private readonly backoff: Backoff;
  private socket: Socket | undefined;
  private connecting: Promise<void> | undefined;
  private rx: Buffer | undefined;
  private inFlight: InFlight | undefined;
  private nextTid = 1;
  private keepOpen = false;
  private closing = false;

  constructor(opts: TcpTransportOptions) {
    this.opts = opts;
    this.busId = opts.busId;
    this.backoff = new Backoff(opts.clock);
  }

  private setState(state: TransportState, error?: string): void {
    this.state = state;
    if (error !== undefined) this.lastError = error;
    this.onState?.(state, error);
  }

  connect(): Promise<void> {
    if (this.state === 'connected') return Promise.resolve();
    if (this.connecting) return this.connecting;
    const { host, port, busId } = this.opts;
    this.closing = false;
    this.setState('connecting');
    const attempt = new Promise<void>((resolve, reject) => {
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
        if (this.closing) {
          fail(new Error('bus closed while connecting'));
          return;
        }
        settled = true;
        socket.setTimeout(0);
        socket.removeListener('error', fail);
        socket.setNoDelay(true);
        socket.setKeepAlive(true, 10_000);
        this.attach(socket);
        resolve();
      });
    });
    this.connecting = attempt.then(
      () => {
        this.connecting = undefined;
        this.counters.connects++;
        this.backoff.reset();
        this.setState('connected');
        this.opts.log.info({ bus: busId, host, port }, 'modbus tcp connected');
      },
      (err: unknown) => {
        this.connecting = undefined;
        this.setState('degraded', errorMessage(err));
        throw err;
      },
    );
    return this.connecting;
  }

  start(): void {
    this.keepOpen = true;
    this.closing = false;
    this.reconnectNow();
  }

  private reconnectNow(): void {
    if (!this.keepOpen || this.state === 'connected' || this.connecting) return;
    this.connect().catch((err: unknown) => {
      if (!this.keepOpen) return;
      const delay = this.backoff.schedule(() => this.reconnectNow());
      this.opts.log.warn({ bus: this.busId, err: errorMessage(err), retryInMs: delay }, 'modbus bus degraded');
    });
  }

  private attach(socket: Socket): void {
    this.socket = socket;
    this.rx = undefined;
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err) => {
      this.lastError = `bus "${this.busId}": ${errorMessage(err)}`;
    });
    socket.on('close', () => {
      if (this.socket !== socket) return;
      this.socket = undefined;
      this.rx = undefined;
      this.fail(new ModbusTransportError(`bus "${this.busId}": connection closed`));
      if (this.keepOpen) {
        this.setState('degraded', this.lastError ?? `bus "${this.busId}": connection closed`);
        this.backoff.schedule(() => this.reconnectNow());
      } else {
        this.setState('closed');
      }
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
        this.counters.frameErrors++;
        this.counters.discardedBytes += at;
        rx = rx.subarray(at);
        continue;
      }
      // Not an MBAP header: skip to our answer's header, or drop what cannot start one.
      this.counters.frameErrors++;
      const at = pending ? findHeader(rx, pending.tid, 1) : -1;
      const keep = at > 0 ? at : Math.max(1, rx.length - (MBAP_LENGTH - 1));
      this.counters.discardedBytes += keep;
      rx = rx.subarray(keep);
    }
    this.rx = rx.length > 0 ? rx : undefined;
  }

  private onFrame(frame: Buffer): void {
    const tid = frame.readUInt16BE(0);
    const pending = this.inFlight;
    if (frame.readUInt16BE(2) !== 0) {
      this.counters.frameErrors++;
      return;
    }
    if (!pending || tid !== pending.tid) {
      this.counters.discardedTransaction++;
      return;
    }
    if (frame[6] !== pending.unit) {
      this.counters.discardedUnit++;
      return;
    }
    this.inFlight = undefined;
    this.opts.clock.clearTimeout(pending.timer);
    this.counters.responses++;
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
    if (this.state === 'connected' && this.socket) return this.send(this.socket, unit, pdu, timeoutMs);
    if (!this.connecting) {
      return Promise.reject(new ModbusTransportError(`bus "${this.busId}": not connected${this.lastError ? ` (${this.lastError})` : ''}`));
    }
    // Connecting right now (start-up, or a reconnect): wait for it rather than fail at once.
    return this.connecting.then(() => {
      if (!this.socket) throw new ModbusTransportError(`bus "${this.busId}": not connected`);
      return this.send(this.socket, unit, pdu, timeoutMs);
    });
  }

  private send(socket: Socket, unit: number, pdu: Buffer, timeoutMs: number): Promise<Buffer> {
    const tid = this.nextTid;
    this.nextTid = (this.nextTid + 1) & 0xffff;
    this.counters.requests++;
    return new Promise<Buffer>((resolve, reject) => {
      const timer = this.opts.clock.setTimeout(() => {
        if (this.inFlight?.tid !== tid) return;
        this.inFlight = undefined;
        this.counters.timeouts++;
        // A part of a frame left in the buffer would corrupt the next answer.
        if (this.rx) this.counters.discardedBytes += this.rx.length;
        this.rx = undefined;
        reject(new ModbusTimeoutError(`bus "${this.busId}" unit ${unit}: no answer within ${timeoutMs} ms`));
      }, timeoutMs);
      this.inFlight = { tid, unit, resolve, reject, timer };
      socket.write(encodeMbap(tid, unit, pdu));
    });
  }

  async close(): Promise<void> {
    this.keepOpen = false;
    this.closing = true;
    this.backoff.cancel();
    this.fail(new ModbusTransportError(`bus "${this.busId}": closed`));
    const socket = this.socket;
    this.socket = undefined;
    if (socket) {
      await new Promise<void>((resolve) => {
        socket.once('close', () => resolve());
        socket.destroy();
      });
    }
    await this.connecting?.catch(() => undefined);
    this.setState('closed');
  }
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
