/**
 * Modbus PDUs (function code + data) for function codes 1, 2, 3, 4, 5, 6, 15, 16, 20 and 21,
 * both directions: the client encodes requests and decodes responses; the server side
 * (decodeRequest, encode*Response) serves the simulators and test servers. Framing (RTU address
 * + CRC, TCP MBAP) lives in framing.ts. Clauses cite MODBUS Application Protocol Specification
 * V1.1b3. File records (FC 20/21, firmware transfer) go one sub-request per PDU.
 */
import { ModbusExceptionError, ModbusFrameError } from './errors.js';

export const FC = {
  readCoils: 1,
  readDiscreteInputs: 2,
  readHoldingRegisters: 3,
  readInputRegisters: 4,
  writeSingleCoil: 5,
  writeSingleRegister: 6,
  writeMultipleCoils: 15,
  writeMultipleRegisters: 16,
  readFileRecord: 20,
  writeFileRecord: 21,
} as const;
export type FunctionCode = (typeof FC)[keyof typeof FC];
export type ReadFunctionCode = 1 | 2 | 3 | 4;

// §7 MODBUS Exception Responses
const EXCEPTION_NAMES: Record<number, string> = {
  1: 'ILLEGAL FUNCTION',
  2: 'ILLEGAL DATA ADDRESS',
  3: 'ILLEGAL DATA VALUE',
  4: 'SERVER DEVICE FAILURE',
  5: 'ACKNOWLEDGE',
  6: 'SERVER DEVICE BUSY',
  7: 'NEGATIVE ACKNOWLEDGE',
  8: 'MEMORY PARITY ERROR',
  10: 'GATEWAY PATH UNAVAILABLE',
  11: 'GATEWAY TARGET DEVICE FAILED TO RESPOND',
};

export function exceptionName(code: number): string {
  return EXCEPTION_NAMES[code] ?? `UNDEFINED EXCEPTION ${code}`;
}

/** Protocol limits per request: §6.1 (2000 bits), §6.3 (125 registers), §6.11 (1968), §6.12 (123). */
export const MAX_READ_BITS = 2000;
export const MAX_READ_REGISTERS = 125;
export const MAX_WRITE_BITS = 1968;
export const MAX_WRITE_REGISTERS = 123;

/** §6.14/§6.15 file records: reference type 6, files 1..0xFFFF, records 0..0x270F. */
export const FILE_REFERENCE_TYPE = 6;
export const MAX_FILE_RECORD = 0x270f;
/** §6.14: the response data length (2 + 2 × registers for one sub-request) is at most 0xF5 */
export const MAX_READ_FILE_REGISTERS = 121;
/** §6.15: the request data length (7 + 2 × registers for one sub-request) is at most 0xF5 */
export const MAX_WRITE_FILE_REGISTERS = 119;
/** bytes of one sub-request header: reference type, file, record, record length */
const SUB_REQUEST = 7;

function check(cond: boolean, what: string): void {
  if (!cond) throw new RangeError(what);
}

function checkAddress(address: number, quantity: number): void {
  check(Number.isInteger(address) && address >= 0 && address <= 0xffff, `address ${address} outside 0..65535`);
  check(address + quantity <= 0x10000, `address ${address} + quantity ${quantity} runs past 65535`);
}

// ---------------------------------------------------------------------------------------
// Client side: requests

/** §6.1–6.4: read coils / discrete inputs / holding registers / input registers. */
export function encodeReadRequest(fc: ReadFunctionCode, address: number, quantity: number): Buffer {
  const max = fc <= 2 ? MAX_READ_BITS : MAX_READ_REGISTERS;
  check(Number.isInteger(quantity) && quantity >= 1 && quantity <= max, `quantity ${quantity} outside 1..${max}`);
  checkAddress(address, quantity);
  const pdu = Buffer.allocUnsafe(5);
  pdu[0] = fc;
  pdu.writeUInt16BE(address, 1);
  pdu.writeUInt16BE(quantity, 3);
  return pdu;
}

/** §6.5 Write Single Coil: ON is 0xFF00, OFF 0x0000. */
export function encodeWriteSingleCoil(address: number, value: boolean): Buffer {
  checkAddress(address, 1);
  const pdu = Buffer.allocUnsafe(5);
  pdu[0] = FC.writeSingleCoil;
  pdu.writeUInt16BE(address, 1);
  pdu.writeUInt16BE(value ? 0xff00 : 0x0000, 3);
  return pdu;
}

/** §6.6 Write Single Register. */
export function encodeWriteSingleRegister(address: number, value: number): Buffer {
  checkAddress(address, 1);
  check(Number.isInteger(value) && value >= 0 && value <= 0xffff, `register value ${value} outside 0..65535`);
  const pdu = Buffer.allocUnsafe(5);
  pdu[0] = FC.writeSingleRegister;
  pdu.writeUInt16BE(address, 1);
  pdu.writeUInt16BE(value, 3);
  return pdu;
}

/** §6.11 Write Multiple Coils. */
export function encodeWriteMultipleCoils(address: number, values: readonly boolean[]): Buffer {
  check(values.length >= 1 && values.length <= MAX_WRITE_BITS, `quantity ${values.length} outside 1..${MAX_WRITE_BITS}`);
  checkAddress(address, values.length);
  const byteCount = Math.ceil(values.length / 8);
  const pdu = Buffer.alloc(6 + byteCount);
  pdu[0] = FC.writeMultipleCoils;
  pdu.writeUInt16BE(address, 1);
  pdu.writeUInt16BE(values.length, 3);
  pdu[5] = byteCount;
  values.forEach((v, i) => {
    if (v) pdu[6 + (i >> 3)]! |= 1 << (i & 7);
  });
  return pdu;
}

/** §6.12 Write Multiple Registers. */
export function encodeWriteMultipleRegisters(address: number, values: readonly number[]): Buffer {
  check(values.length >= 1 && values.length <= MAX_WRITE_REGISTERS, `quantity ${values.length} outside 1..${MAX_WRITE_REGISTERS}`);
  checkAddress(address, values.length);
  const pdu = Buffer.allocUnsafe(6 + 2 * values.length);
  pdu[0] = FC.writeMultipleRegisters;
  pdu.writeUInt16BE(address, 1);
  pdu.writeUInt16BE(values.length, 3);
  pdu[5] = 2 * values.length;
  values.forEach((v, i) => {
    check(Number.isInteger(v) && v >= 0 && v <= 0xffff, `register value ${v} outside 0..65535`);
    pdu.writeUInt16BE(v, 6 + 2 * i);
  });
  return pdu;
}

function checkFileRecord(file: number, record: number, registers: number, max: number): void {
  check(Number.isInteger(file) && file >= 1 && file <= 0xffff, `file number ${file} outside 1..65535`);
  check(Number.isInteger(record) && record >= 0 && record <= MAX_FILE_RECORD, `record number ${record} outside 0..${MAX_FILE_RECORD}`);
  check(Number.isInteger(registers) && registers >= 1 && registers <= max, `record length ${registers} outside 1..${max}`);
  check(record + registers <= MAX_FILE_RECORD + 1, `record ${record} + length ${registers} runs past record ${MAX_FILE_RECORD}`);
}

function putSubRequest(pdu: Buffer, file: number, record: number, registers: number): void {
  pdu[2] = FILE_REFERENCE_TYPE;
  pdu.writeUInt16BE(file, 3);
  pdu.writeUInt16BE(record, 5);
  pdu.writeUInt16BE(registers, 7);
}

/** §6.14 Read File Record, one sub-request: `registers` registers of `file` from record `record`. */
export function encodeReadFileRecord(file: number, record: number, registers: number): Buffer {
  checkFileRecord(file, record, registers, MAX_READ_FILE_REGISTERS);
  const pdu = Buffer.allocUnsafe(2 + SUB_REQUEST);
  pdu[0] = FC.readFileRecord;
  pdu[1] = SUB_REQUEST;
  putSubRequest(pdu, file, record, registers);
  return pdu;
}

/** §6.15 Write File Record, one sub-request: `data` (an even number of bytes) at record `record` of `file`. */
export function encodeWriteFileRecord(file: number, record: number, data: Uint8Array): Buffer {
  check(data.length % 2 === 0, `record data of ${data.length} bytes is not whole registers`);
  const registers = data.length / 2;
  checkFileRecord(file, record, registers, MAX_WRITE_FILE_REGISTERS);
  const pdu = Buffer.allocUnsafe(2 + SUB_REQUEST + data.length);
  pdu[0] = FC.writeFileRecord;
  pdu[1] = SUB_REQUEST + data.length;
  putSubRequest(pdu, file, record, registers);
  pdu.set(data, 2 + SUB_REQUEST);
  return pdu;
}

/** The length of the normal response PDU to `request` (an exception response is 2 bytes). */
export function expectedResponseLength(request: Uint8Array): number {
  const fc = request[0];
  const quantity = ((request[3] ?? 0) << 8) | (request[4] ?? 0);
  switch (fc) {
    case 20: {
      // §6.14: per sub-request a length byte, the reference type and the record data
      let length = 2;
      for (let at = 2; at + SUB_REQUEST <= request.length; at += SUB_REQUEST) {
        length += 2 + 2 * (((request[at + 5] ?? 0) << 8) | (request[at + 6] ?? 0));
      }
      return length;
    }
    case 21:
      return request.length; // §6.15: the normal response echoes the request
    case 1:
    case 2:
      return 2 + Math.ceil(quantity / 8);
    case 3:
    case 4:
      return 2 + 2 * quantity;
    case 5:
    case 6:
    case 15:
    case 16:
      return 5;
    default:
      throw new ModbusFrameError(`unsupported function code ${String(fc)}`);
  }
}

// ---------------------------------------------------------------------------------------
// Client side: responses

export type ResponseData =
  | { kind: 'bits'; bits: boolean[] }
  | { kind: 'registers'; registers: number[] }
  | { kind: 'written'; address: number; value: number }
  /** FC 20: the record data of the one sub-request */
  | { kind: 'file'; data: Buffer }
  /** FC 21: the request echoed */
  | { kind: 'fileWritten' };

/** Throws ModbusExceptionError for an exception response (§7: function code | 0x80, one code byte). */
export function throwIfException(response: Uint8Array): void {
  const fc = response[0] ?? 0;
  if (fc & 0x80) {
    const code = response[1] ?? 0;
    throw new ModbusExceptionError(fc & 0x7f, code, exceptionName(code));
  }
}

/** Decodes `response` as the answer to `request`, checking function code, byte count and echo. */
export function decodeResponse(request: Uint8Array, response: Uint8Array): ResponseData {
  throwIfException(response);
  const fc = request[0]!;
  if (response[0] !== fc) throw new ModbusFrameError(`response function code ${String(response[0])} to a request with ${fc}`);
  const expected = expectedResponseLength(request);
  if (response.length !== expected) {
    throw new ModbusFrameError(`function ${fc}: response of ${response.length} bytes, expected ${expected}`);
  }
  const quantity = (request[3]! << 8) | request[4]!;
  switch (fc) {
    case 20:
      return decodeReadFileResponse(request, response);
    case 21:
      // §6.15: the normal response is an echo of the request
      if (!Buffer.from(response).equals(Buffer.from(request))) throw new ModbusFrameError('function 21: response does not echo the request');
      return { kind: 'fileWritten' };
    case 1:
    case 2: {
      if (response[1] !== Math.ceil(quantity / 8)) throw new ModbusFrameError(`function ${fc}: byte count ${String(response[1])} for ${quantity} bits`);
      const bits = new Array<boolean>(quantity);
      for (let i = 0; i < quantity; i++) bits[i] = ((response[2 + (i >> 3)]! >> (i & 7)) & 1) === 1;
      return { kind: 'bits', bits };
    }
    case 3:
    case 4: {
      if (response[1] !== 2 * quantity) throw new ModbusFrameError(`function ${fc}: byte count ${String(response[1])} for ${quantity} registers`);
      const registers = new Array<number>(quantity);
      for (let i = 0; i < quantity; i++) registers[i] = (response[2 + 2 * i]! << 8) | response[3 + 2 * i]!;
      return { kind: 'registers', registers };
    }
    default: {
      // §6.5, §6.6: the normal response echoes the request; §6.11, §6.12: address and quantity.
      for (let i = 1; i < 5; i++) {
        if (response[i] !== request[i]) throw new ModbusFrameError(`function ${fc}: response does not echo the request`);
      }
      return { kind: 'written', address: (response[1]! << 8) | response[2]!, value: (response[3]! << 8) | response[4]! };
    }
  }
}

/** §6.14: [20][data length][sub-response length][reference type 6][record data]; one sub-request. */
function decodeReadFileResponse(request: Uint8Array, response: Uint8Array): ResponseData {
  if (request.length !== 2 + SUB_REQUEST) throw new ModbusFrameError('function 20: one sub-request per request is supported');
  const dataBytes = 2 * ((request[7]! << 8) | request[8]!);
  if (response[1] !== dataBytes + 2) throw new ModbusFrameError(`function 20: response data length ${String(response[1])} for ${dataBytes} bytes of record`);
  if (response[2] !== dataBytes + 1) throw new ModbusFrameError(`function 20: sub-response length ${String(response[2])} for ${dataBytes} bytes of record`);
  if (response[3] !== FILE_REFERENCE_TYPE) throw new ModbusFrameError(`function 20: reference type ${String(response[3])}, expected 6`);
  return { kind: 'file', data: Buffer.from(response.subarray(4)) };
}

// ---------------------------------------------------------------------------------------
// Server side (simulators, test servers)

export type Request =
  | { fc: ReadFunctionCode; address: number; quantity: number }
  | { fc: 5; address: number; value: boolean }
  | { fc: 6; address: number; value: number }
  | { fc: 15; address: number; values: boolean[] }
  | { fc: 16; address: number; values: number[] }
  /** §6.14, one sub-request: `length` registers from record `record` of `file` */
  | { fc: 20; file: number; record: number; length: number }
  /** §6.15, one sub-request: `data` (2 × registers bytes) at record `record` of `file` */
  | { fc: 21; file: number; record: number; data: Buffer };

/**
 * §6.14/§6.15, one sub-request (more are refused with exception 3): a byte count outside
 * 7..0xF5, a PDU that does not fit it, a zero or oversized record length → 3; a reference type
 * other than 6, file 0, a record past 0x270F (its last register included) → 2.
 */
function decodeFileRequest(fc: 20 | 21, pdu: Uint8Array): Request {
  const illegal = (code: 2 | 3) => new ModbusExceptionError(fc, code, exceptionName(code));
  const byteCount = pdu[1] ?? 0;
  if (byteCount < SUB_REQUEST || byteCount > 0xf5 || pdu.length !== 2 + byteCount || pdu.length < 2 + SUB_REQUEST) throw illegal(3);
  const file = (pdu[3]! << 8) | pdu[4]!;
  const record = (pdu[5]! << 8) | pdu[6]!;
  const length = (pdu[7]! << 8) | pdu[8]!;
  const max = fc === 20 ? MAX_READ_FILE_REGISTERS : MAX_WRITE_FILE_REGISTERS;
  if (fc === 20 ? byteCount !== SUB_REQUEST : byteCount !== SUB_REQUEST + 2 * length) throw illegal(3);
  if (length < 1 || length > max) throw illegal(3);
  if (pdu[2] !== FILE_REFERENCE_TYPE || file === 0 || record > MAX_FILE_RECORD || record + length > MAX_FILE_RECORD + 1) throw illegal(2);
  if (fc === 20) return { fc, file, record, length };
  return { fc, file, record, data: Buffer.from(pdu.subarray(2 + SUB_REQUEST)) };
}

/** Decodes a request PDU; an unsupported or malformed one throws ModbusExceptionError (1 or 3). */
export function decodeRequest(pdu: Uint8Array): Request {
  const fc = pdu[0] ?? 0;
  const illegalValue = () => new ModbusExceptionError(fc, 3, exceptionName(3));
  if (fc === 20 || fc === 21) return decodeFileRequest(fc, pdu);
  if (pdu.length < 5) {
    if ([1, 2, 3, 4, 5, 6, 15, 16].includes(fc)) throw illegalValue();
    throw new ModbusExceptionError(fc, 1, exceptionName(1));
  }
  const address = (pdu[1]! << 8) | pdu[2]!;
  const word = (pdu[3]! << 8) | pdu[4]!;
  switch (fc) {
    case 1:
    case 2:
    case 3:
    case 4: {
      const max = fc <= 2 ? MAX_READ_BITS : MAX_READ_REGISTERS;
      if (word < 1 || word > max || pdu.length !== 5) throw illegalValue();
      return { fc, address, quantity: word };
    }
    case 5:
      if ((word !== 0xff00 && word !== 0) || pdu.length !== 5) throw illegalValue();
      return { fc, address, value: word === 0xff00 };
    case 6:
      if (pdu.length !== 5) throw illegalValue();
      return { fc, address, value: word };
    case 15: {
      if (word < 1 || word > MAX_WRITE_BITS || pdu[5] !== Math.ceil(word / 8) || pdu.length !== 6 + pdu[5]) throw illegalValue();
      const values: boolean[] = [];
      for (let i = 0; i < word; i++) values.push(((pdu[6 + (i >> 3)]! >> (i & 7)) & 1) === 1);
      return { fc, address, values };
    }
    case 16: {
      if (word < 1 || word > MAX_WRITE_REGISTERS || pdu[5] !== 2 * word || pdu.length !== 6 + pdu[5]) throw illegalValue();
      const values: number[] = [];
      for (let i = 0; i < word; i++) values.push((pdu[6 + 2 * i]! << 8) | pdu[7 + 2 * i]!);
      return { fc, address, values };
    }
    default:
      throw new ModbusExceptionError(fc, 1, exceptionName(1));
  }
}

export function encodeBitsResponse(fc: 1 | 2, bits: readonly boolean[]): Buffer {
  const n = Math.ceil(bits.length / 8);
  const pdu = Buffer.alloc(2 + n);
  pdu[0] = fc;
  pdu[1] = n;
  bits.forEach((b, i) => {
    if (b) pdu[2 + (i >> 3)]! |= 1 << (i & 7);
  });
  return pdu;
}

export function encodeRegistersResponse(fc: 3 | 4, registers: ArrayLike<number>): Buffer {
  const pdu = Buffer.allocUnsafe(2 + 2 * registers.length);
  pdu[0] = fc;
  pdu[1] = 2 * registers.length;
  for (let i = 0; i < registers.length; i++) pdu.writeUInt16BE(registers[i]! & 0xffff, 2 + 2 * i);
  return pdu;
}

/** §6.5/6.6 echo the request; §6.11/6.12 echo address and quantity. */
export function encodeWriteResponse(request: Uint8Array): Buffer {
  return Buffer.from(request.subarray(0, 5));
}

/** §6.14, one sub-request: the record data read (an even number of bytes). */
export function encodeReadFileRecordResponse(data: Uint8Array): Buffer {
  check(data.length % 2 === 0 && data.length >= 2 && data.length <= 2 * MAX_READ_FILE_REGISTERS, `record data of ${data.length} bytes`);
  const pdu = Buffer.allocUnsafe(4 + data.length);
  pdu[0] = FC.readFileRecord;
  pdu[1] = data.length + 2;
  pdu[2] = data.length + 1;
  pdu[3] = FILE_REFERENCE_TYPE;
  pdu.set(data, 4);
  return pdu;
}

/** §6.15: the normal response is an echo of the request. */
export function encodeWriteFileRecordResponse(request: Uint8Array): Buffer {
  return Buffer.from(request);
}

export function encodeExceptionResponse(fc: number, exceptionCode: number): Buffer {
  return Buffer.from([(fc | 0x80) & 0xff, exceptionCode]);
}
