/**
 * A scripted Modbus RTU slave on one end of a socat PTY pair, for the RTU transport's tests:
 * per unit it answers normally or with a fault (silence, CRC error, another unit's answer
 * first, a frame split by a long gap, garbage). It records when each request arrived and how
 * long the line had been silent since its own last answer (the master's t3.5).
 */
import { performance } from 'node:perf_hooks';
import { SerialPort } from 'serialport';
import { ModbusExceptionError, encodeExceptionResponse } from '../../../edge/drivers/modbus/index.js';
import { crcOk } from '../../../edge/drivers/modbus/crc.js';
import { encodeRtuFrame, rtuRequestLength } from '../../../edge/drivers/modbus/framing.js';
import { UnitTables, executeRequest } from './tcpServer.js';

export type RtuBehaviour = 'ok' | 'silent' | 'crc' | 'wrongUnitFirst' | 'sameBurst' | 'split' | 'garbage' | { lateMs: number };

export class RtuResponder {
  readonly units = new Map<number, UnitTables>();
  readonly behaviour = new Map<number, RtuBehaviour>();
  /** ms of silence on the line before each request (since our last byte written) */
  readonly silenceBefore: number[] = [];
  requests = 0;
  private port: SerialPort | undefined;
  private rx = Buffer.alloc(0);
  private lastTxAt = -Infinity;
  private timers = new Set<NodeJS.Timeout>();

  constructor(
    private readonly path: string,
    private readonly baudRate = 9600,
  ) {}

  unit(id: number): UnitTables {
    let t = this.units.get(id);
    if (!t) this.units.set(id, (t = new UnitTables()));
    return t;
  }

  async open(): Promise<void> {
    const port = new SerialPort({ path: this.path, baudRate: this.baudRate, autoOpen: false });
    await new Promise<void>((resolve, reject) => port.open((err) => (err ? reject(err) : resolve())));
    port.on('data', (chunk: Buffer) => this.onData(chunk));
    this.port = port;
  }

  async close(): Promise<void> {
    for (const t of this.timers) clearTimeout(t);
    const port = this.port;
    this.port = undefined;
    if (port?.isOpen) await new Promise<void>((resolve) => port.close(() => resolve()));
  }

  private later(ms: number, fn: () => void): void {
    const t = setTimeout(() => {
      this.timers.delete(t);
      fn();
    }, ms);
    this.timers.add(t);
  }

  private write(bytes: Buffer): void {
    this.port?.write(bytes);
    this.lastTxAt = performance.now();
  }

  private onData(chunk: Buffer): void {
    const now = performance.now();
    if (this.rx.length === 0) this.silenceBefore.push(now - this.lastTxAt);
    this.rx = Buffer.concat([this.rx, chunk]);
    for (;;) {
      const need = rtuRequestLength(this.rx);
      if (need === undefined) return;
      if (need === -1) {
        this.rx = Buffer.alloc(0);
        return;
      }
      if (this.rx.length < need) return;
      const frame = this.rx.subarray(0, need);
      this.rx = this.rx.subarray(need);
      if (crcOk(frame)) this.answer(frame[0]!, frame.subarray(1, need - 2));
    }
  }

  private answer(unit: number, pdu: Buffer): void {
    this.requests++;
    const tables = this.units.get(unit);
    const b = this.behaviour.get(unit) ?? 'ok';
    if (!tables || b === 'silent') return;
    let response: Buffer;
    try {
      response = executeRequest(tables, pdu);
    } catch (err) {
      if (!(err instanceof ModbusExceptionError)) throw err;
      response = encodeExceptionResponse(pdu[0]!, err.exceptionCode);
    }
    const frame = encodeRtuFrame(unit, response);
    if (b === 'ok') this.write(frame);
    else if (b === 'crc') {
      frame[frame.length - 1]! ^= 0xff;
      this.write(frame);
    } else if (b === 'wrongUnitFirst') {
      this.write(encodeRtuFrame((unit % 247) + 1, response));
      this.later(10, () => this.write(frame));
    } else if (b === 'sameBurst') {
      // another unit's (late) answer and ours back to back, in one write
      this.write(Buffer.concat([encodeRtuFrame((unit % 247) + 1, response), frame]));
    } else if (b === 'split') {
      this.write(frame.subarray(0, 4));
      this.later(40, () => this.write(frame.subarray(4)));
    } else if (b === 'garbage') {
      this.write(Buffer.from([unit, 0x2b, 0x99, 0x13, 0x37, 0x00]));
    } else {
      this.later(b.lateMs, () => this.write(frame));
    }
  }
}
