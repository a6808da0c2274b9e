/**
 * Raw Modbus for tests that must see the exact PDUs: request builders written from the
 * MODBUS Application Protocol V1.1b3 (independent of edge/drivers/modbus/codec.ts), a Modbus
 * TCP client over a real socket and an RTU master on a PTY end. A request that gets no answer
 * within its timeout resolves null (a silent or lossy device), never throws.
 */
import { connect, type Socket } from 'node:net';
import { SerialPort } from 'serialport';
import { crcOk, withCrc } from '../../edge/drivers/modbus/crc.js';

/** Request PDUs, function code first. */
export const req = {
  /** §6.3 / §6.4 */
  read: (fc: 3 | 4, address: number, count: number): Buffer => Buffer.from([fc, address >> 8, address & 0xff, count >> 8, count & 0xff]),
  /** §6.6 */
  writeSingle: (address: number, value: number): Buffer => Buffer.from([0x06, address >> 8, address & 0xff, value >> 8, value & 0xff]),
  /** §6.12 */
  writeMultiple(address: number, values: readonly number[]): Buffer {
    const out = Buffer.alloc(6 + 2 * values.length);
    out[0] = 0x10;
    out.writeUInt16BE(address, 1);
    out.writeUInt16BE(values.length, 3);
    out[5] = 2 * values.length;
    values.forEach((v, i) => out.writeUInt16BE(v, 6 + 2 * i));
    return out;
  },
  /** §6.15: one sub-request per entry; `refType` (default 6) to send a wrong one */
  writeFileRecord(subs: readonly { file: number; record: number; data: Buffer; refType?: number }[]): Buffer {
    const parts = subs.map((s) => {
      const head = Buffer.alloc(7);
      head[0] = s.refType ?? 6;
      head.writeUInt16BE(s.file, 1);
      head.writeUInt16BE(s.record, 3);
      head.writeUInt16BE(s.data.length >> 1, 5);
      return Buffer.concat([head, s.data]);
    });
    const body = Buffer.concat(parts);
    return Buffer.concat([Buffer.from([0x15, body.length]), body]);
  },
  /** §6.14 */
  readFileRecord(subs: readonly { file: number; record: number; length: number; refType?: number }[]): Buffer {
    const out = Buffer.alloc(2 + 7 * subs.length);
    out[0] = 0x14;
    out[1] = 7 * subs.length;
    subs.forEach((s, i) => {
      const o = 2 + 7 * i;
      out[o] = s.refType ?? 6;
      out.writeUInt16BE(s.file, o + 1);
      out.writeUInt16BE(s.record, o + 3);
      out.writeUInt16BE(s.length, o + 5);
    });
    return out;
  },
};

/** The exception code of a response PDU, or null for a normal response. */
export function exceptionOf(res: Buffer): number | null {
  return res[0]! & 0x80 ? res[1]! : null;
}

/** The registers of an FC 3 / FC 4 response. */
export function registers(res: Buffer): number[] {
  if (exceptionOf(res) !== null) throw new Error(`exception ${res[1]} to FC ${res[0]! & 0x7f}`);
  return Array.from({ length: res[1]! / 2 }, (_, i) => res.readUInt16BE(2 + 2 * i));
}

/** The record data of each sub-response of an FC 20 response (§6.14). */
export function fileRecords(res: Buffer): Buffer[] {
  if (exceptionOf(res) !== null) throw new Error(`exception ${res[1]} to FC 20`);
  const out: Buffer[] = [];
  const end = 2 + res[1]!;
  for (let o = 2; o < end; ) {
    const len = res[o]!;
    if (res[o + 1] !== 6) throw new Error(`reference type ${res[o + 1]}`);
    out.push(Buffer.from(res.subarray(o + 2, o + 1 + len)));
    o += 1 + len;
  }
  return out;
}

/** One request, its response PDU or null when none came within `timeoutMs`. */
export type Transact = (pdu: Buffer, timeoutMs?: number) => Promise<Buffer | null>;

export interface RawTcpClient {
  transact: Transact;
  close(): void;
}

/** A Modbus TCP client for one unit (MBAP: MODBUS Messaging on TCP/IP Implementation Guide V1.0b §3.1.3). */
export async function rawTcpClient(host: string, port: number, unit: number): Promise<RawTcpClient> {
  const socket: Socket = connect({ host, port });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  socket.on('error', () => undefined);
  const waiting = new Map<number, (pdu: Buffer) => void>();
  let pending = Buffer.alloc(0);
  socket.on('data', (chunk: Buffer) => {
    pending = Buffer.concat([pending, chunk]);
    while (pending.length >= 7 && pending.length >= 6 + pending.readUInt16BE(4)) {
      const len = pending.readUInt16BE(4);
      const tid = pending.readUInt16BE(0);
      const pdu = Buffer.from(pending.subarray(7, 6 + len));
      pending = pending.subarray(6 + len);
      waiting.get(tid)?.(pdu);
    }
  });
  let tid = 0;
  return {
    transact(pdu, timeoutMs = 1000) {
      tid = (tid + 1) & 0xffff;
      const id = tid;
      const head = Buffer.alloc(7);
      head.writeUInt16BE(id, 0);
      head.writeUInt16BE(0, 2);
      head.writeUInt16BE(pdu.length + 1, 4);
      head[6] = unit;
      return new Promise((resolve) => {
        const timer = setTimeout(() => {
          waiting.delete(id);
          resolve(null);
        }, timeoutMs);
        waiting.set(id, (res) => {
          clearTimeout(timer);
          waiting.delete(id);
          resolve(res);
        });
        socket.write(Buffer.concat([head, pdu]));
      });
    },
    close: () => socket.destroy(),
  };
}

export interface RawRtuMaster {
  /** one request to `unit`; the response PDU, or null after `timeoutMs` of nothing complete */
  transact(unit: number, pdu: Buffer, timeoutMs?: number): Promise<Buffer | null>;
  close(): Promise<void>;
}

/** An RTU master on a serial path (a PTY end). // Modbus over serial line V1.02 §2.5.1 */
export async function rawRtuMaster(path: string, baudRate = 19200): Promise<RawRtuMaster> {
  const port = new SerialPort({ path, baudRate, autoOpen: false });
  await new Promise<void>((resolve, reject) => port.open((e) => (e ? reject(e) : resolve())));
  let buf = Buffer.alloc(0);
  let onFrame: (() => void) | null = null;
  port.on('data', (d: Buffer) => {
    buf = Buffer.concat([buf, d]);
    onFrame?.();
  });
  return {
    async transact(unit, pdu, timeoutMs = 1000) {
      buf = Buffer.alloc(0);
      const result = await new Promise<Buffer | null>((resolve) => {
        const timer = setTimeout(() => {
          onFrame = null;
          resolve(null);
        }, timeoutMs);
        onFrame = () => {
          for (;;) {
            const n = responseLength(buf);
            if (n === undefined || buf.length < n) return;
            const frame = buf.subarray(0, n);
            buf = buf.subarray(n);
            // a late answer to an earlier request (it timed out) or another unit's: not ours
            if (frame[0] !== unit || !crcOk(frame)) continue;
            clearTimeout(timer);
            onFrame = null;
            resolve(Buffer.from(frame.subarray(1, n - 2)));
            return;
          }
        };
        port.write(withCrc(Buffer.concat([Buffer.from([unit]), pdu])));
      });
      return result;
    },
    close: () => new Promise<void>((resolve) => (port.isOpen ? port.close(() => resolve()) : resolve())),
  };
}

/** The length of an RTU response frame (unit, PDU, CRC) from its first bytes. */
function responseLength(b: Buffer): number | undefined {
  if (b.length < 3) return undefined;
  const fc = b[1]!;
  if (fc & 0x80) return 5;
  if (fc === 0x05 || fc === 0x06 || fc === 0x0f || fc === 0x10) return 8;
  return 5 + b[2]!; // FC 1..4, 20 (byte count), 21 (request data length: an echo)
}
