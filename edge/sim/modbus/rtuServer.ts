/**
 * Modbus RTU slaves on one serial line (a PTY end in the simulators): several units share
 * the line, each request is answered only by the unit it addresses, and requests for units
 * not served here are ignored, as on an RS-485 line with other slaves.
 *
 * Framing: // Modbus over serial line V1.02 §2.5.1.1. A request whose length follows from its
 * function code is handled as soon as its last byte arrives; anything else (an unknown
 * function, a bad CRC, garbage) is dropped once the line has been silent, as a slave does.
 *
 * Wire-time emulation (`wireTime`): a PTY carries bytes at memory speed, so the server holds
 * each frame for its time on the wire: the request counts as complete bytes × bitsPerChar /
 * baud after its first byte, the slave waits the t3.5 silence, and the response is written
 * only once its own last character would have arrived.
 */
import { SerialPort } from 'serialport';
import { StreetboxError } from '../../errors.js';
import type { Logger } from '../../log.js';
import { crcOk, withCrc } from '../../drivers/modbus/crc.js';
import { garbage } from './faults.js';
import { rtuRequestLength, WRITE_FUNCTIONS } from './pdu.js';
import type { UnitRegistry } from './units.js';
import { charsMs, runAt, t35Ms, type WireTime } from './wireTime.js';

export interface RtuSimServerOptions {
  units: UnitRegistry;
  /** the serial device or PTY end to open */
  path: string;
  baud?: number;
  stopBits?: 1 | 2;
  wireTime?: WireTime;
  log?: Logger;
}

export interface RtuLineStats {
  /** well-formed frames for units not served here */
  ignored: number;
  /** frames dropped for a bad CRC or unparseable bytes */
  dropped: number;
  /** requests that began less than t3.5 after the previous response ended (wire-time mode) */
  gapViolations: number;
  /** wire-time mode: answered requests, the master's total idle time between a response and its next request, and how late our writes were */
  timed: number;
  masterIdleMs: number;
  writeLateMs: number;
}

/** What the server needs of a serial port; SerialPort satisfies it. */
export interface ByteLine {
  write(data: Buffer): unknown;
  on(event: 'data', fn: (chunk: Buffer) => void): unknown;
}

/** Silence after which a frame of unknown length is taken as complete (PTYs deliver a write at once). */
const SILENCE_MS = 3;

export class RtuSimServer {
  readonly stats: RtuLineStats = { ignored: 0, dropped: 0, gapViolations: 0, timed: 0, masterIdleMs: 0, writeLateMs: 0 };
  private readonly opts: RtuSimServerOptions;
  private port: SerialPort | null = null;
  private line: ByteLine | null = null;
  private buf: Buffer = Buffer.alloc(0);
  /** performance.now() when the first byte of the frame being received arrived */
  private arrival = 0;
  /** performance.now() when the last response's last character left the line */
  private lineFreeAt = 0;
  private silence: NodeJS.Timeout | null = null;
  private readonly pending = new Set<() => void>();

  constructor(opts: RtuSimServerOptions) {
    this.opts = opts;
  }

  get path(): string {
    return this.opts.path;
  }

  async start(): Promise<void> {
    if (this.port) return;
    const port = new SerialPort({
      path: this.opts.path,
      baudRate: this.opts.baud ?? this.opts.wireTime?.baud ?? 9600,
      dataBits: 8,
      parity: 'none',
      stopBits: this.opts.stopBits ?? 1,
      autoOpen: false,
    });
    await new Promise<void>((resolve, reject) =>
      port.open((err) =>
        err
          ? reject(new StreetboxError('E_MODBUS_TRANSPORT', `simulator cannot open serial path "${this.opts.path}": ${err.message}`, { cause: err }))
          : resolve(),
      ),
    );
    port.on('error', (err) => this.opts.log?.warn({ err, path: this.opts.path }, 'rtu simulator port error'));
    this.port = port;
    this.attach(port);
  }

  /** Serves on an already open line (tests, or a port opened elsewhere). */
  attach(line: ByteLine): void {
    this.line = line;
    line.on('data', (chunk) => this.onData(chunk));
  }

  async stop(): Promise<void> {
    for (const cancel of this.pending) cancel();
    this.pending.clear();
    if (this.silence) clearTimeout(this.silence);
    this.silence = null;
    this.line = null;
    const port = this.port;
    this.port = null;
    if (port?.isOpen) await new Promise<void>((resolve) => port.close(() => resolve()));
  }

  private onData(chunk: Buffer): void {
    if (this.buf.length === 0) {
      this.arrival = performance.now();
      this.buf = chunk;
    } else this.buf = Buffer.concat([this.buf, chunk]);
    this.parse();
    if (this.silence) clearTimeout(this.silence);
    this.silence = this.buf.length > 0 ? setTimeout(() => this.onSilence(), SILENCE_MS) : null;
  }

  /** Handles every complete frame of known length at the head of the buffer. */
  private parse(): void {
    for (;;) {
      const len = rtuRequestLength(this.buf, 0, this.buf.length);
      if (len === undefined || len === 'unknown' || this.buf.length < len) return;
      const frame = this.buf.subarray(0, len);
      if (!crcOk(frame)) return; // misaligned or corrupted: wait for silence and drop it all
      const reqBytes = len;
      this.buf = this.buf.subarray(len);
      this.handle(frame, reqBytes);
      // A second frame in the same burst was sent without waiting for the answer to the first.
      if (this.buf.length > 0) this.arrival = performance.now();
    }
  }

  private onSilence(): void {
    this.silence = null;
    const frame = this.buf;
    this.buf = Buffer.alloc(0);
    if (frame.length >= 4 && crcOk(frame)) this.handle(frame, frame.length);
    else if (frame.length > 0) this.stats.dropped++;
  }

  private handle(frame: Buffer, reqBytes: number): void {
    const unit = frame[0]!;
    const pdu = frame.subarray(1, frame.length - 2);
    const units = this.opts.units;
    if (unit === 0) {
      if (WRITE_FUNCTIONS.has(pdu[0] ?? 0)) units.broadcast(pdu);
      return;
    }
    if (!units.has(unit)) {
      this.stats.ignored++;
      return;
    }
    const { frame: out, fault } = units.serve(unit, pdu, 1, 0);
    if (!out) return;
    out[0] = unit;
    let reply: Buffer = withCrc(out);
    switch (fault?.kind) {
      case 'crc':
        reply[reply.length - 1] = reply[reply.length - 1]! ^ 0xff;
        break;
      case 'garbage':
        reply = garbage(fault);
        break;
      case 'truncated':
        reply = reply.subarray(0, Math.max(1, reply.length >> 1));
        break;
      case 'wrongUnit':
      case 'wrongTransaction':
        out[0] = (unit + 1) & 0xff;
        reply = withCrc(out);
        break;
      default:
        break;
    }
    const late = fault?.kind === 'late' ? fault.ms : 0;
    const w = this.opts.wireTime;
    if (!w) {
      if (late > 0) this.later(performance.now() + late, reply);
      else this.line?.write(reply);
      return;
    }
    // The line cannot carry the request while a response is still on it; the master owes t3.5 of silence.
    if (this.lineFreeAt > 0) {
      if (this.arrival < this.lineFreeAt + t35Ms(w) - 0.5) this.stats.gapViolations++;
      if (this.arrival >= this.lineFreeAt && this.arrival - this.lineFreeAt < 1000) this.stats.masterIdleMs += this.arrival - this.lineFreeAt;
    }
    const frameStart = Math.max(this.arrival, this.lineFreeAt);
    // The request ends on the wire, the slave waits t3.5, then its reply takes its own wire time.
    const requestEnd = frameStart + charsMs(w, reqBytes);
    const replyEnd = requestEnd + t35Ms(w) + late + charsMs(w, reply.length);
    this.lineFreeAt = replyEnd;
    this.stats.timed++;
    this.later(replyEnd, reply);
  }

  private later(at: number, reply: Buffer): void {
    const cancel = runAt(at, () => {
      this.pending.delete(cancel);
      this.stats.writeLateMs += performance.now() - at;
      this.line?.write(reply);
    });
    this.pending.add(cancel);
  }
}
