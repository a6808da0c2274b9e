/**
 * Modbus RTU over a serial line (Modbus over serial line V1.02). The driver is the only master
 * on the line and keeps the timing itself:
 * - before each request the line must have been silent for t3.5 (§2.5.1.1), counted from the
 *   last byte received or from the end of our own last frame on the wire;
 * - a response is framed by its expected length (function code, byte count, exception);
 *   a silence longer than t1.5 inside a frame makes the frame invalid (§2.5.1.1);
 * - the CRC-16 is checked (§2.5.1.2); answers from another unit id are discarded;
 * - the response timeout starts when the request has left the wire (bytes × bits per
 *   character / baud after the write) and also covers the expected response's own wire time.
 * User space sees bytes in chunks with some scheduling jitter, so the t1.5 check allows
 * `interByteSlackMs` on top of t1.5 (the bus's `interByteSlack`, default 5 ms; 0 enforces the
 * bare spec value; a USB adapter with a 16 ms latency timer needs about 20 ms).
 */
import { SerialPort } from 'serialport';
import type { Clock, Timer } from '../../../clock.js';
import { errorMessage } from '../../../errors.js';
import type { Logger } from '../../../log.js';
import { expectedResponseLength } from '../codec.js';
import { ModbusCrcError, ModbusFrameError, ModbusTimeoutError, ModbusTransportError } from '../errors.js';
import { encodeRtuFrame, rtuCrcOk, rtuResponseLength, serialTiming, wireMs, type SerialTiming } from '../framing.js';
import { Backoff, newCounters, type ModbusTransport, type TransportState } from './types.js';

/** The part of a serial port this transport uses (serialport's SerialPort fits). */
export interface SerialLike {
  open(cb: (err: Error | null) => void): void;
  close(cb?: (err: Error | null) => void): void;
  write(data: Buffer, cb?: (err: Error | null | undefined) => void): boolean;
  on(event: 'data', fn: (chunk: Buffer) => void): unknown;
  on(event: 'close' | 'error', fn: (err?: Error) => void): unknown;
  removeAllListeners(): unknown;
  readonly isOpen: boolean;
}

export interface SerialOpenOptions {
  path: string;
  baudRate: number;
  dataBits: 7 | 8;
  parity: 'none' | 'even' | 'odd';
  stopBits: 1 | 2;
}

export interface RtuTransportOptions extends SerialOpenOptions {
  busId: string;
  clock: Clock;
  log: Logger;
  /** tolerance on top of t1.5 for user-space timing; default 5 ms */
  interByteSlackMs?: number;
  /** makes the port; default serialport's SerialPort (autoOpen off) */
  createPort?: (opts: SerialOpenOptions) => SerialLike;
}

interface InFlight {
  unit: number;
  fc: number;
  resolve: (pdu: Buffer) => void;
  reject: (err: Error) => void;
  timer: Timer | undefined;
}

const MAX_FRAME = 256; // Modbus over serial line 2.5.1: an RTU frame is at most 256 bytes
/** setImmediate turns spent on the last stretch of a t3.5 wait before falling back to a timer */
const MAX_SPINS = 2000;

export class RtuTransport implements ModbusTransport {
  readonly kind = 'rtu';
  readonly busId: string;
  readonly counters = newCounters();
  readonly timing: SerialTiming;
  state: TransportState = 'closed';
  lastError: string | undefined;
  onState: ((state: TransportState, error?: string) => void) | undefined;

  private readonly opts: RtuTransportOptions;
  private readonly clock: Clock;
  private readonly backoff: Backoff;
  private readonly t35Ms: number;
  private readonly interByteMs: number;
  private port: SerialLike | undefined;
  private opening: Promise<void> | undefined;
  private keepOpen = false;
  private busy = false;
  private inFlight: InFlight | undefined;
  private readonly frame = Buffer.alloc(MAX_FRAME);
  private frameLen = 0;
  /** monotonic ms of the last byte received */
  private lastRxAt = -Infinity;
  /** monotonic ms when our last frame has left the wire */
  private txEndAt = -Infinity;
  private gapTimer: Timer | undefined;

  constructor(opts: RtuTransportOptions) {
    this.opts = opts;
    this.busId = opts.busId;
    this.clock = opts.clock;
    this.backoff = new Backoff(opts.clock);
    this.timing = serialTiming(opts.baudRate, opts.dataBits, opts.parity, opts.stopBits);
    this.t35Ms = this.timing.t35Us / 1000;
    this.interByteMs = this.timing.t15Us / 1000 + (opts.interByteSlackMs ?? 5);
  }

  private setState(state: TransportState, error?: string): void {
    this.state = state;
    if (error !== undefined) this.lastError = error;
    this.onState?.(state, error);
  }

  connect(): Promise<void> {
    if (this.state === 'connected') return Promise.resolve();
    if (this.opening) return this.opening;
    const { path, baudRate, dataBits, parity, stopBits, busId } = this.opts;
    this.setState('connecting');
    const port = this.opts.createPort
      ? this.opts.createPort({ path, baudRate, dataBits, parity, stopBits })
      : (new SerialPort({ path, baudRate, dataBits, parity, stopBits, autoOpen: false }) as unknown as SerialLike);
    this.opening = new Promise<void>((resolve, reject) => {
      port.open((err) => {
        if (err) {
          reject(new ModbusTransportError(`bus "${busId}": cannot open serial port ${path}: ${errorMessage(err)}`, { cause: err }));
        } else resolve();
      });
    }).then(
      () => {
        this.opening = undefined;
        this.attach(port);
        this.counters.connects++;
        this.backoff.reset();
        this.setState('connected');
        this.opts.log.info({ bus: busId, path, baudRate, parity, dataBits, stopBits }, 'modbus rtu port open');
      },
      (err: unknown) => {
        this.opening = undefined;
        port.removeAllListeners();
        this.setState('degraded', errorMessage(err));
        throw err;
      },
    );
    return this.opening;
  }

  start(): void {
    this.keepOpen = true;
    this.reopenNow();
  }

  private reopenNow(): void {
    if (!this.keepOpen || this.state === 'connected' || this.opening) return;
    this.connect().catch((err: unknown) => {
      if (!this.keepOpen) return;
      const delay = this.backoff.schedule(() => this.reopenNow());
      this.opts.log.error({ bus: this.busId, err: errorMessage(err), retryInMs: delay }, 'modbus bus degraded');
    });
  }

  private attach(port: SerialLike): void {
    this.port = port;
    this.frameLen = 0;
    port.on('data', (chunk: Buffer) => this.onData(chunk));
    port.on('error', (err?: Error) => {
      this.lastError = `bus "${this.busId}": ${errorMessage(err)}`;
    });
    port.on('close', () => {
      if (this.port !== port) return;
      this.port = undefined;
      this.fail(new ModbusTransportError(`bus "${this.busId}": serial port closed`));
      if (this.keepOpen) {
        this.setState('degraded', `bus "${this.busId}": serial port ${this.opts.path} closed`);
        this.backoff.schedule(() => this.reopenNow());
      } else this.setState('closed');
    });
  }

  // -------------------------------------------------------------------------------------
  // Receiving

  private onData(chunk: Buffer): void {
    const now = this.clock.monotonic();
    if (this.frameLen > 0 && now - this.lastRxAt > this.interByteMs) this.invalidatePartial('silence longer than t1.5 inside the frame');
    this.lastRxAt = now;
    if (!this.inFlight) {
      this.counters.discardedBytes += chunk.length;
      return;
    }
    let offset = 0;
    while (offset < chunk.length && this.inFlight) {
      const n = Math.min(chunk.length - offset, MAX_FRAME - this.frameLen);
      if (n === 0) {
        // Longer than any RTU frame: not a frame.
        this.counters.frameErrors++;
        this.counters.discardedBytes += this.frameLen;
        this.frameLen = 0;
        continue;
      }
      chunk.copy(this.frame, this.frameLen, offset, offset + n);
      this.frameLen += n;
      offset += n;
      // A burst may hold several frames (another unit's late answer, then ours).
      while (this.inFlight && this.frameLen > 0 && this.tryComplete());
    }
    if (!this.inFlight) {
      // Answered: whatever else came in the same burst is not part of any answer.
      this.counters.discardedBytes += chunk.length - offset + this.frameLen;
      this.frameLen = 0;
      this.clearGapTimer();
    } else if (this.frameLen > 0) this.armGapTimer();
    else this.clearGapTimer();
  }

  /** Takes one complete frame off the front of the buffer; false when more bytes are needed. */
  private tryComplete(): boolean {
    const pending = this.inFlight!;
    const need = rtuResponseLength(this.frame, this.frameLen);
    if (need === undefined || this.frameLen < need) return false;
    if (need === -1) {
      // An unknown function code: the frame's length cannot be known, so nothing after it can be trusted.
      this.counters.frameErrors++;
      this.counters.discardedBytes += this.frameLen;
      const unit = this.frame[0];
      const fc = this.frame[1];
      this.frameLen = 0;
      if (unit === pending.unit) this.settle(new ModbusFrameError(`bus "${this.busId}" unit ${unit}: unknown function code ${String(fc)} in answer`));
      return true;
    }
    const frame = this.frame.subarray(0, need);
    let err: Error | undefined;
    let pdu: Buffer | undefined;
    if (!rtuCrcOk(frame)) {
      this.counters.crcErrors++;
      // With a bad CRC the address byte cannot be trusted either; one that is not ours is let go.
      if (frame[0] === pending.unit) err = new ModbusCrcError(`bus "${this.busId}" unit ${pending.unit}: CRC error in answer`);
    } else if (frame[0] !== pending.unit) {
      this.counters.discardedUnit++;
    } else if ((frame[1]! & 0x7f) !== pending.fc) {
      this.counters.frameErrors++;
      err = new ModbusFrameError(`bus "${this.busId}" unit ${pending.unit}: answer with function ${frame[1]! & 0x7f} to function ${pending.fc}`);
    } else {
      this.counters.responses++;
      pdu = Buffer.from(frame.subarray(1, need - 2));
    }
    this.frame.copyWithin(0, need, this.frameLen);
    this.frameLen -= need;
    if (err) this.settle(err);
    else if (pdu) this.settle(undefined, pdu);
    return true;
  }

  private armGapTimer(): void {
    this.clearGapTimer();
    const at = this.lastRxAt;
    this.gapTimer = this.clock.setTimeout(() => {
      this.gapTimer = undefined;
      // Let the I/O phase deliver bytes already read before calling it a gap.
      setImmediate(() => {
        if (this.lastRxAt === at && this.frameLen > 0) this.invalidatePartial('truncated: silence longer than t1.5 inside the frame');
      });
    }, Math.ceil(this.interByteMs));
  }

  private clearGapTimer(): void {
    if (this.gapTimer) this.clock.clearTimeout(this.gapTimer);
    this.gapTimer = undefined;
  }

  /** Modbus over serial line 2.5.1.1: a frame interrupted by more than t1.5 is discarded. */
  private invalidatePartial(why: string): void {
    const got = this.frameLen;
    const unit = this.frame[0];
    this.counters.frameErrors++;
    this.counters.discardedBytes += got;
    this.frameLen = 0;
    this.clearGapTimer();
    const pending = this.inFlight;
    if (pending && unit === pending.unit) {
      this.settle(new ModbusFrameError(`bus "${this.busId}" unit ${unit}: invalid frame (${got} bytes, ${why})`));
    }
  }

  private settle(err: Error | undefined, pdu?: Buffer): void {
    const pending = this.inFlight;
    if (!pending) return;
    this.inFlight = undefined;
    this.busy = false;
    if (pending.timer) this.clock.clearTimeout(pending.timer);
    if (err) pending.reject(err);
    else pending.resolve(pdu!);
  }

  private fail(err: Error): void {
    this.frameLen = 0;
    this.clearGapTimer();
    this.settle(err);
  }

  // -------------------------------------------------------------------------------------
  // Sending

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => this.clock.setTimeout(resolve, ms));
  }

  /**
   * Modbus over serial line 2.5.1.1: at least t3.5 of silence before a new frame. Timers have
   * millisecond granularity (a 1.75 ms wait would take 2–3 ms), so the last stretch is waited
   * out on setImmediate turns: bounded, and only for the last 2 ms at most.
   */
  private async awaitSilence(limitMs: number): Promise<void> {
    const start = this.clock.monotonic();
    let spins = 0;
    for (;;) {
      const quietAt = Math.max(this.lastRxAt, this.txEndAt) + this.t35Ms;
      const now = this.clock.monotonic();
      if (now >= quietAt) return;
      if (now - start > limitMs) throw new ModbusFrameError(`bus "${this.busId}": the line is never silent for t3.5 (a device keeps sending)`);
      const wait = quietAt - now;
      if (wait > 2 || spins >= MAX_SPINS) {
        await this.sleep(Math.max(1, Math.floor(wait - 1.5)));
        spins = 0;
      } else {
        spins++;
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
    }
  }

  async transact(unit: number, pdu: Buffer, timeoutMs: number): Promise<Buffer> {
    if (this.busy) throw new ModbusTransportError(`bus "${this.busId}": a transaction is already in flight`);
    if (unit === 0) throw new ModbusFrameError(`bus "${this.busId}": broadcast (unit 0) is not supported`);
    if (this.state !== 'connected') {
      if (!this.opening) throw new ModbusTransportError(`bus "${this.busId}": serial port not open${this.lastError ? ` (${this.lastError})` : ''}`);
      await this.opening;
    }
    this.busy = true;
    try {
      await this.awaitSilence(Math.max(timeoutMs, 100));
    } catch (err) {
      this.busy = false;
      throw err;
    }
    const port = this.port;
    if (!port) {
      this.busy = false;
      throw new ModbusTransportError(`bus "${this.busId}": serial port closed`);
    }
    const frame = encodeRtuFrame(unit, pdu);
    const responseBytes = expectedResponseLength(pdu) + 3;
    this.frameLen = 0;
    this.counters.requests++;
    return new Promise<Buffer>((resolve, reject) => {
      const pending: InFlight = { unit, fc: pdu[0]!, resolve, reject, timer: undefined };
      this.inFlight = pending;
      const sentAt = this.clock.monotonic();
      const requestWire = wireMs(this.timing, frame.length);
      this.txEndAt = sentAt + requestWire;
      const wait = requestWire + timeoutMs + wireMs(this.timing, responseBytes);
      pending.timer = this.clock.setTimeout(() => {
        if (this.inFlight !== pending) return;
        pending.timer = undefined;
        this.counters.timeouts++;
        this.frameLen = 0;
        this.settle(new ModbusTimeoutError(`bus "${this.busId}" unit ${unit}: no answer within ${timeoutMs} ms`));
      }, Math.ceil(wait));
      port.write(frame, (err) => {
        if (err && this.inFlight === pending) this.settle(new ModbusTransportError(`bus "${this.busId}": write failed: ${errorMessage(err)}`, { cause: err }));
      });
    });
  }

  async close(): Promise<void> {
    this.keepOpen = false;
    this.backoff.cancel();
    this.fail(new ModbusTransportError(`bus "${this.busId}": closed`));
    await this.opening?.catch(() => undefined);
    const port = this.port;
    this.port = undefined;
    if (port?.isOpen) {
      await new Promise<void>((resolve) => port.close(() => resolve()));
    }
    port?.removeAllListeners();
    this.setState('closed');
  }
}
