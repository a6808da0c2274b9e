/**
 * Modbus RTU over a serial line (Modbus over serial line V1.02). The driver is the only master
 * on the line and keeps the timing itself:
 * - before each request the line must have been silent for t3.5 (§2.5.1.1), counted from the
 *   last byte received or from the end of our own last frame on the wire;
 * - a response is framed by rtuParser.ts: by its expected length (function code, byte count,
 *   exception); a silence longer than t1.5 inside a frame makes the frame invalid (§2.5.1.1);
 * - the CRC-16 is checked (§2.5.1.2); answers from another unit id are discarded;
 * - the response timeout starts when the request has left the wire (bytes × bits per
 *   character / baud after the write) and also covers the expected response's own wire time.
 * User space sees bytes in chunks with some scheduling jitter, so the t1.5 check allows
 * `interByteSlackMs` on top of t1.5 (the bus's `interByteSlack`, default 5 ms; 0 enforces the
 * bare spec value; a USB adapter with a 16 ms latency timer needs about 20 ms).
 * Opening, keeping open and closing the port is connection.ts, as for TCP: this file keeps the
 * port, the silence owed before a request and the answer awaited.
 */
import { SerialPort } from 'serialport';
import type { Clock, Timer } from '../../../clock.js';
import { errorMessage } from '../../../errors.js';
import type { Logger } from '../../../log.js';
import { expectedResponseLength } from '../codec.js';
import { crcOk } from '../crc.js';
import { ModbusCrcError, ModbusFrameError, ModbusTimeoutError, ModbusTransportError } from '../errors.js';
import { encodeRtuFrame, rtuResponseLength, serialTiming, wireMs, type SerialTiming } from '../framing.js';
import { RtuParser, type InvalidReason } from '../rtuParser.js';
import { BusConnection, ConnectedTransport, type StateListener } from './connection.js';
import { ModbusMetrics, type BusCounters } from '../metrics.js';
import type { ModbusTransport, TransportCounters } from './types.js';

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
  /** where the bus counts (the driver's registry); default its own */
  counters?: BusCounters;
  /** told every state change of the connection */
  onState?: StateListener;
}

interface InFlight {
  unit: number;
  fc: number;
  resolve: (pdu: Buffer) => void;
  reject: (err: Error) => void;
  timer: Timer | undefined;
}

/** setImmediate turns spent on the last stretch of a t3.5 wait before falling back to a timer */
const MAX_SPINS = 2000;

const SILENCE_WHY: Record<'gap' | 'truncated', string> = {
  gap: 'silence longer than t1.5 inside the frame',
  truncated: 'truncated: silence longer than t1.5 inside the frame',
};

export class RtuTransport extends ConnectedTransport<SerialLike> implements ModbusTransport {
  readonly kind = 'rtu';
  readonly busId: string;
  private readonly c: BusCounters;
  readonly timing: SerialTiming;
  protected readonly conn: BusConnection<SerialLike>;

  private readonly opts: RtuTransportOptions;
  private readonly clock: Clock;
  private readonly t35Ms: number;
  private readonly parser: RtuParser;
  private busy = false;
  private inFlight: InFlight | undefined;
  /** monotonic ms when our last frame has left the wire */
  private txEndAt = -Infinity;

  constructor(opts: RtuTransportOptions) {
    super();
    this.opts = opts;
    this.busId = opts.busId;
    this.c = opts.counters ?? new ModbusMetrics().bus(opts.busId);
    this.clock = opts.clock;
    this.timing = serialTiming(opts.baudRate, opts.dataBits, opts.parity, opts.stopBits);
    this.t35Ms = this.timing.t35Us / 1000;
    this.parser = new RtuParser({
      interval: this.timing.t15Us / 1000 + (opts.interByteSlackMs ?? 5),
      frameLength: rtuResponseLength,
      clock: opts.clock,
      onFrame: (frame) => this.onFrame(frame),
      onInvalid: (bytes, reason) => this.onInvalid(bytes, reason),
    });
    const { path, baudRate, parity, dataBits, stopBits } = opts;
    this.conn = new BusConnection<SerialLike>({
      busId: opts.busId,
      clock: opts.clock,
      log: opts.log,
      notOpen: 'serial port not open',
      opened: { message: 'modbus rtu port open', fields: { path, baudRate, parity, dataBits, stopBits } },
      connects: this.c.connects,
      onState: opts.onState,
      open: (lost) => this.open(lost),
      close: (port) => closePort(port),
    });
  }

  get counters(): TransportCounters {
    return this.c.snapshot();
  }

  /** Opens the port; its close (the device vanished) fails the transaction in flight. */
  private async open(lost: (reason: string) => void): Promise<SerialLike> {
    const { path, baudRate, dataBits, parity, stopBits, busId } = this.opts;
    const port = this.opts.createPort
      ? this.opts.createPort({ path, baudRate, dataBits, parity, stopBits })
      : (new SerialPort({ path, baudRate, dataBits, parity, stopBits, autoOpen: false }) as unknown as SerialLike);
    try {
      await new Promise<void>((resolve, reject) => port.open((err) => (err ? reject(err) : resolve())));
    } catch (err) {
      port.removeAllListeners();
      throw new ModbusTransportError(`bus "${busId}": cannot open serial port ${path}: ${errorMessage(err)}`, { cause: err });
    }
    this.parser.stop();
    port.on('data', (chunk: Buffer) => {
      this.c.discardedBytes.inc(this.parser.push(chunk));
    });
    port.on('error', (err?: Error) => this.conn.noteError(`bus "${busId}": ${errorMessage(err)}`));
    port.on('close', () => {
      if (this.conn.channel !== port) return; // closed by us: close() has failed what was in flight
      this.fail(new ModbusTransportError(`bus "${busId}": serial port closed`));
      lost(`bus "${busId}": serial port ${path} closed`);
    });
    return port;
  }

  // -------------------------------------------------------------------------------------
  // Receiving (rtuParser.ts frames the bytes)

  private onFrame(frame: Buffer): void {
    const pending = this.inFlight;
    if (!pending) return;
    if (!crcOk(frame)) {
      this.c.crcErrors.inc();
      // With a bad CRC the address byte cannot be trusted either; one that is not ours is let go.
      if (frame[0] === pending.unit) this.settle(new ModbusCrcError(`bus "${this.busId}" unit ${pending.unit}: CRC error in answer`));
    } else if (frame[0] !== pending.unit) {
      this.c.discardedUnit.inc();
    } else if ((frame[1]! & 0x7f) !== pending.fc) {
      this.c.frameErrors.inc();
      this.settle(new ModbusFrameError(`bus "${this.busId}" unit ${pending.unit}: answer with function ${frame[1]! & 0x7f} to function ${pending.fc}`));
    } else {
      this.c.responses.inc();
      this.settle(undefined, Buffer.from(frame.subarray(1, frame.length - 2)));
    }
  }

  private onInvalid(bytes: Buffer, reason: InvalidReason): void {
    this.c.frameErrors.inc();
    this.c.discardedBytes.inc(bytes.length);
    const pending = this.inFlight;
    // Longer than any RTU frame: not a frame, and no telling whose.
    if (!pending || reason === 'overflow' || bytes[0] !== pending.unit) return;
    const unit = bytes[0];
    if (reason === 'unknownLength') {
      // The frame's length cannot be known, so nothing after it can be trusted.
      this.settle(new ModbusFrameError(`bus "${this.busId}" unit ${unit}: unknown function code ${String(bytes[1])} in answer`));
    } else {
      // Modbus over serial line 2.5.1.1: a frame interrupted by more than t1.5 is discarded.
      this.settle(new ModbusFrameError(`bus "${this.busId}" unit ${unit}: invalid frame (${bytes.length} bytes, ${SILENCE_WHY[reason]})`));
    }
  }

  private settle(err: Error | undefined, pdu?: Buffer): void {
    const pending = this.inFlight;
    if (!pending) return;
    this.inFlight = undefined;
    this.busy = false;
    this.parser.stop();
    if (pending.timer) this.clock.clearTimeout(pending.timer);
    if (err) pending.reject(err);
    else pending.resolve(pdu!);
  }

  private fail(err: Error): void {
    this.parser.stop();
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
      const quietAt = Math.max(this.parser.lastByteAt, this.txEndAt) + this.t35Ms;
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
    if (this.conn.channel === undefined) await this.conn.ready();
    this.busy = true;
    try {
      await this.awaitSilence(Math.max(timeoutMs, 100));
    } catch (err) {
      this.busy = false;
      throw err;
    }
    const port = this.conn.channel;
    if (!port) {
      this.busy = false;
      throw new ModbusTransportError(`bus "${this.busId}": serial port closed`);
    }
    const frame = encodeRtuFrame(unit, pdu);
    const responseBytes = expectedResponseLength(pdu) + 3;
    this.parser.listen();
    this.c.requests.inc();
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
        this.c.timeouts.inc();
        this.settle(new ModbusTimeoutError(`bus "${this.busId}" unit ${unit}: no answer within ${timeoutMs} ms`));
      }, Math.ceil(wait));
      port.write(frame, (err) => {
        if (err && this.inFlight === pending) this.settle(new ModbusTransportError(`bus "${this.busId}": write failed: ${errorMessage(err)}`, { cause: err }));
      });
    });
  }

  async close(): Promise<void> {
    this.fail(new ModbusTransportError(`bus "${this.busId}": closed`));
    await this.conn.close();
  }
}

async function closePort(port: SerialLike): Promise<void> {
  if (port.isOpen) await new Promise<void>((resolve) => port.close(() => resolve()));
  port.removeAllListeners();
}
