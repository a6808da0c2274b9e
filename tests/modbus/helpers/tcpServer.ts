/**
 * A minimal Modbus TCP server for the driver's integration tests: real sockets on 127.0.0.1,
 * register tables per unit, and scripted faults per unit (silence, exception, a frame with
 * a wrong transaction or unit id before the right one, a broken MBAP header, a write that
 * stores something else). Speaks our own codec's server side; pymodbus interop is tested
 * separately.
 */
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import {
  ModbusExceptionError,
  decodeRequest,
  encodeBitsResponse,
  encodeExceptionResponse,
  encodeMbap,
  encodeRegistersResponse,
  encodeWriteResponse,
} from '../../../edge/drivers/modbus/index.js';

export const TABLE_SIZE = 1000;

export class UnitTables {
  readonly holding = new Uint16Array(TABLE_SIZE);
  readonly input = new Uint16Array(TABLE_SIZE);
  readonly coils = new Uint8Array(TABLE_SIZE);
  readonly discrete = new Uint8Array(TABLE_SIZE);
  /** holding address → inclusive range a write must fall in (else exception 3) */
  readonly limits = new Map<number, [number, number]>();
}

export type Fault =
  | { kind: 'silent' }
  | { kind: 'exception'; code: number; fc?: number }
  | { kind: 'wrongTidFirst' }
  | { kind: 'wrongUnitFirst' }
  | { kind: 'badHeader' }
  | { kind: 'garbageThenAnswer' }
  | { kind: 'truncatedThenSilent' }
  | { kind: 'mangleWrites' };

export interface SeenRequest {
  unit: number;
  fc: number;
  address: number;
}

export class TestModbusServer {
  readonly units = new Map<number, UnitTables>();
  readonly faults = new Map<number, Fault>();
  readonly seen: SeenRequest[] = [];
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  port = 0;

  unit(id: number): UnitTables {
    let t = this.units.get(id);
    if (!t) this.units.set(id, (t = new UnitTables()));
    return t;
  }

  async listen(port = 0): Promise<number> {
    this.server = createServer((socket) => this.serve(socket));
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(port, '127.0.0.1', () => resolve());
    });
    this.port = (this.server.address() as AddressInfo).port;
    return this.port;
  }

  get connections(): number {
    return this.sockets.size;
  }

  /** Drops every client connection (the server keeps listening). */
  dropClients(): void {
    for (const s of this.sockets) s.destroy();
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    if (this.server) await new Promise<void>((resolve) => this.server!.close(() => resolve()));
    this.server = undefined;
  }

  private serve(socket: Socket): void {
    this.sockets.add(socket);
    socket.setNoDelay(true);
    socket.on('close', () => this.sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    let rx: Buffer = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      rx = rx.length ? Buffer.concat([rx, chunk]) : chunk;
      while (rx.length >= 7) {
        const total = 6 + rx.readUInt16BE(4);
        if (rx.length < total) break;
        const adu = rx.subarray(0, total);
        rx = rx.subarray(total);
        this.answer(socket, adu.readUInt16BE(0), adu[6]!, adu.subarray(7));
      }
    });
  }

  private answer(socket: Socket, tid: number, unit: number, pdu: Buffer): void {
    const tables = this.units.get(unit);
    this.seen.push({ unit, fc: pdu[0]!, address: pdu.length >= 3 ? pdu.readUInt16BE(1) : -1 });
    const fault = this.faults.get(unit);
    if (!tables || fault?.kind === 'silent') return; // a unit that is not there never answers
    if (fault?.kind === 'badHeader') {
      socket.write(Buffer.from([0, 0, 0, 0, 0, 0, 0xff]));
      return;
    }
    let response: Buffer;
    if (fault?.kind === 'exception' && (fault.fc === undefined || fault.fc === pdu[0])) {
      response = encodeExceptionResponse(pdu[0]!, fault.code);
    } else {
      try {
        response = executeRequest(tables, pdu, fault?.kind === 'mangleWrites');
      } catch (err) {
        if (!(err instanceof ModbusExceptionError)) throw err;
        response = encodeExceptionResponse(pdu[0]!, err.exceptionCode);
      }
    }
    if (fault?.kind === 'truncatedThenSilent') {
      socket.write(encodeMbap(tid, unit, response).subarray(0, 9));
      return;
    }
    if (fault?.kind === 'garbageThenAnswer') {
      socket.write(Buffer.concat([Buffer.from([0x13, 0x37, 0xde, 0xad, 0xbe, 0xef, 0x42, 0x00, 0x99]), encodeMbap(tid, unit, response)]));
      return;
    }
    if (fault?.kind === 'wrongTidFirst') socket.write(encodeMbap((tid + 1) & 0xffff, unit, response));
    if (fault?.kind === 'wrongUnitFirst') socket.write(encodeMbap(tid, (unit + 1) & 0xff, response));
    socket.write(encodeMbap(tid, unit, response));
  }
}

/** Executes a request PDU on `t`; throws ModbusExceptionError for the exception answers. */
export function executeRequest(t: UnitTables, pdu: Buffer, mangle = false): Buffer {
  const rq = decodeRequest(pdu);
  const illegalAddress = () => new ModbusExceptionError(rq.fc, 2, 'ILLEGAL DATA ADDRESS');
  const span = (address: number, n: number) => {
    if (address + n > TABLE_SIZE) throw illegalAddress();
  };
  switch (rq.fc) {
    case 1:
    case 2: {
      span(rq.address, rq.quantity);
      const src = rq.fc === 1 ? t.coils : t.discrete;
      return encodeBitsResponse(rq.fc, Array.from(src.subarray(rq.address, rq.address + rq.quantity), (b) => b === 1));
    }
    case 3:
    case 4:
      span(rq.address, rq.quantity);
      return encodeRegistersResponse(rq.fc, (rq.fc === 3 ? t.holding : t.input).subarray(rq.address, rq.address + rq.quantity));
    case 5:
      span(rq.address, 1);
      t.coils[rq.address] = rq.value !== mangle ? 1 : 0;
      return encodeWriteResponse(pdu);
    case 6: {
      span(rq.address, 1);
      const lim = t.limits.get(rq.address);
      if (lim && (rq.value < lim[0] || rq.value > lim[1])) throw new ModbusExceptionError(6, 3, 'ILLEGAL DATA VALUE');
      t.holding[rq.address] = mangle ? (rq.value + 1) & 0xffff : rq.value;
      return encodeWriteResponse(pdu);
    }
    case 15:
      span(rq.address, rq.values.length);
      rq.values.forEach((v, i) => (t.coils[rq.address + i] = v ? 1 : 0));
      return encodeWriteResponse(pdu);
    case 16:
      span(rq.address, rq.values.length);
      rq.values.forEach((v, i) => (t.holding[rq.address + i] = mangle ? (v + 1) & 0xffff : v));
      return encodeWriteResponse(pdu);
    default:
      // file records (FC 20/21): this server has no files
      throw new ModbusExceptionError(rq.fc, 1, 'ILLEGAL FUNCTION');
  }
}
