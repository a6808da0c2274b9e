/**
 * The server side of the Modbus PDU: one request PDU in, one response PDU out, against a
 * unit's RegisterBank (and, where the unit has one, its UnitHandler: registers a device model
 * owns beyond the bank, such as a bootloader's, and file records). Framing (MBAP, RTU) is the
 * transports' business; this file only knows function codes.
 * // MODBUS Application Protocol Specification V1.1b3 §6, §7.
 */
import type { RegisterBank, Table } from './banks.js';
import { FILE_READ, FILE_WRITE, fileRecordAnswer, type FileRecordStore } from './fileRecord.js';

export type { FileRecordRef, FileRecordStore, FileRecordWrite } from './fileRecord.js';

/** // MODBUS Application Protocol V1.1b3 §7: exception codes. */
export const EXCEPTION = {
  illegalFunction: 0x01,
  illegalDataAddress: 0x02,
  illegalDataValue: 0x03,
  serverDeviceFailure: 0x04,
  acknowledge: 0x05,
  serverDeviceBusy: 0x06,
  negativeAcknowledge: 0x07,
  memoryParityError: 0x08,
  gatewayPathUnavailable: 0x0a,
  gatewayTargetFailed: 0x0b,
} as const;

/** Function codes whose writes a broadcast (unit 0) may carry. // Modbus over serial line V1.02 §2.1 */
export const WRITE_FUNCTIONS = new Set([0x05, 0x06, 0x0f, 0x10, FILE_WRITE]);

/** What an interceptWrite returns for a write it took and answers normally (an echo). */
export const HANDLED = 0;

/** What a device model adds to its bank (firmware.ts: a bootloader's registers and file records). */
export interface UnitHandler {
  /**
   * A validated write (FC 5, 6, 15, 16) before the bank's guards see it: undefined when the
   * addresses are not the handler's (the bank takes it), HANDLED when it took it, or an exception code.
   */
  interceptWrite?(table: 'coil' | 'holding', address: number, values: readonly number[]): number | undefined;
  /** Called before a validated read (FC 1..4) is answered from the bank, to bring the bank up to date. */
  beforeRead?(table: Table, address: number, count: number): void;
  /** FC 20 / FC 21; without it they are exception 1 (illegal function) */
  readonly files?: FileRecordStore | undefined;
}

/**
 * Builds the response to `pdu` (function code first). The returned buffer has `head` free
 * bytes before the PDU and `tail` after it, for the transport's header and CRC.
 */
export function respond(bank: RegisterBank, pdu: Uint8Array, head: number, tail: number, handler?: UnitHandler): Buffer {
  const fc = pdu[0] ?? 0;
  if (fc === FILE_READ || fc === FILE_WRITE) {
    // §6.14, §6.15 (fileRecord.ts)
    const answer = handler?.files ? fileRecordAnswer(handler.files, pdu) : EXCEPTION.illegalFunction;
    if (typeof answer === 'number') return exceptionPdu(fc, answer, head, tail);
    const out = Buffer.alloc(head + answer.length + tail);
    answer.copy(out, head);
    return out;
  }
  const code = check(bank, pdu);
  if (code !== 0) return exceptionPdu(fc, code, head, tail);
  if (fc <= 0x04) handler?.beforeRead?.(QTY[fc]!.table, u16(pdu, 1), u16(pdu, 3));
  const write = (table: 'coil' | 'holding', address: number, values: readonly number[]): number | undefined => {
    const taken = handler?.interceptWrite?.(table, address, values);
    if (taken === HANDLED) return undefined;
    return taken ?? bank.writeFromWire(table, address, values);
  };
  switch (fc) {
    case 0x01: // §6.1 Read Coils
    case 0x02: {
      // §6.2 Read Discrete Inputs
      const addr = u16(pdu, 1);
      const qty = u16(pdu, 3);
      const src = bank.bits(fc === 0x01 ? 'coil' : 'discrete');
      const n = Math.ceil(qty / 8);
      const out = Buffer.alloc(head + 2 + n + tail);
      out[head] = fc;
      out[head + 1] = n;
      for (let i = 0; i < qty; i++) if (src[addr + i]) out[head + 2 + (i >> 3)]! |= 1 << (i & 7);
      return out;
    }
    case 0x03: // §6.3 Read Holding Registers
    case 0x04: {
      // §6.4 Read Input Registers
      const addr = u16(pdu, 1);
      const qty = u16(pdu, 3);
      const src = bank.words(fc === 0x03 ? 'holding' : 'input');
      const out = Buffer.allocUnsafe(head + 2 + qty * 2 + tail);
      out[head] = fc;
      out[head + 1] = qty * 2;
      let o = head + 2;
      for (let i = 0; i < qty; i++) {
        const v = src[addr + i]!;
        out[o++] = v >>> 8;
        out[o++] = v & 0xff;
      }
      return out;
    }
    case 0x05: {
      // §6.5 Write Single Coil: 0xFF00 on, 0x0000 off; the response echoes the request
      const refused = write('coil', u16(pdu, 1), [u16(pdu, 3) === 0xff00 ? 1 : 0]);
      return refused !== undefined ? exceptionPdu(fc, refused, head, tail) : echo(pdu, 5, head, tail);
    }
    case 0x06: {
      // §6.6 Write Single Register
      const refused = write('holding', u16(pdu, 1), [u16(pdu, 3)]);
      return refused !== undefined ? exceptionPdu(fc, refused, head, tail) : echo(pdu, 5, head, tail);
    }
    case 0x0f: {
      // §6.11 Write Multiple Coils
      const addr = u16(pdu, 1);
      const qty = u16(pdu, 3);
      const values: number[] = [];
      for (let i = 0; i < qty; i++) values.push((pdu[6 + (i >> 3)]! >> (i & 7)) & 1);
      const refused = write('coil', addr, values);
      return refused !== undefined ? exceptionPdu(fc, refused, head, tail) : echo(pdu, 5, head, tail);
    }
    case 0x10: {
      // §6.12 Write Multiple Registers
      const addr = u16(pdu, 1);
      const qty = u16(pdu, 3);
      const values: number[] = [];
      for (let i = 0; i < qty; i++) values.push(u16(pdu, 6 + i * 2));
      const refused = write('holding', addr, values);
      return refused !== undefined ? exceptionPdu(fc, refused, head, tail) : echo(pdu, 5, head, tail);
    }
    default:
      return exceptionPdu(fc, EXCEPTION.illegalFunction, head, tail);
  }
}

/** Validates function code, quantity and address range; 0 when the request is acceptable. */
function check(bank: RegisterBank, pdu: Uint8Array): number {
  const fc = pdu[0] ?? 0;
  const limits = QTY[fc];
  if (!limits) return EXCEPTION.illegalFunction;
  if (pdu.length < 5) return EXCEPTION.illegalDataValue;
  const addr = u16(pdu, 1);
  if (fc === 0x05 || fc === 0x06) {
    const v = u16(pdu, 3);
    if (fc === 0x05 && v !== 0xff00 && v !== 0x0000) return EXCEPTION.illegalDataValue; // §6.5
    return bank.inRange(limits.table, addr, 1) ? 0 : EXCEPTION.illegalDataAddress;
  }
  const qty = u16(pdu, 3);
  if (qty < 1 || qty > limits.max) return EXCEPTION.illegalDataValue;
  if (fc === 0x0f || fc === 0x10) {
    const bytes = fc === 0x0f ? Math.ceil(qty / 8) : qty * 2;
    if (pdu[5] !== bytes || pdu.length < 6 + bytes) return EXCEPTION.illegalDataValue;
  }
  return bank.inRange(limits.table, addr, qty) ? 0 : EXCEPTION.illegalDataAddress;
}

const QTY: Record<number, { table: 'coil' | 'discrete' | 'holding' | 'input'; max: number } | undefined> = {
  0x01: { table: 'coil', max: 2000 },
  0x02: { table: 'discrete', max: 2000 },
  0x03: { table: 'holding', max: 125 },
  0x04: { table: 'input', max: 125 },
  0x05: { table: 'coil', max: 1 },
  0x06: { table: 'holding', max: 1 },
  0x0f: { table: 'coil', max: 1968 },
  0x10: { table: 'holding', max: 123 },
};

export function exceptionPdu(fc: number, code: number, head: number, tail: number): Buffer {
  const out = Buffer.alloc(head + 2 + tail);
  out[head] = (fc | 0x80) & 0xff;
  out[head + 1] = code;
  return out;
}

function echo(pdu: Uint8Array, n: number, head: number, tail: number): Buffer {
  const out = Buffer.alloc(head + n + tail);
  out.set(pdu.subarray(0, n), head);
  return out;
}

function u16(b: Uint8Array, i: number): number {
  return ((b[i] ?? 0) << 8) | (b[i + 1] ?? 0);
}

/**
 * The length of an RTU request frame (unit + PDU + CRC) from its first bytes, or undefined
 * while that cannot be known yet (or never, for a function code we do not parse).
 */
export function rtuRequestLength(buf: Uint8Array, start: number, available: number): number | 'unknown' | undefined {
  if (available < 2) return undefined;
  const fc = buf[start + 1]!;
  if (fc >= 0x01 && fc <= 0x06) return 8;
  if (fc === 0x0f || fc === 0x10) return available < 7 ? undefined : 9 + buf[start + 6]!;
  // §6.14 / §6.15: unit, function code, byte count, that many bytes, CRC
  if (fc === FILE_READ || fc === FILE_WRITE) return available < 3 ? undefined : 5 + buf[start + 2]!;
  return 'unknown';
}
