// File records (FC 20 Read File Record, FC 21 Write File Record; MODBUS Application Protocol
// V1.1b3 §6.14/§6.15), one sub-request per PDU: requests against the spec's own examples and
// RTU frames whose CRCs come from pymodbus 3.0's computeCRC, both directions round-tripped,
// malformed answers and requests refused, limits enforced.
import { describe, expect, it } from 'vitest';
import {
  decodeRequest,
  decodeResponse,
  encodeExceptionResponse,
  encodeReadFileRecord,
  encodeReadFileRecordResponse,
  encodeWriteFileRecord,
  encodeWriteFileRecordResponse,
  expectedResponseLength,
  MAX_READ_FILE_REGISTERS,
  MAX_WRITE_FILE_REGISTERS,
  ModbusExceptionError,
  ModbusFrameError,
} from '../../edge/drivers/modbus/index.js';
import { crcOk } from '../../edge/drivers/modbus/crc.js';
import { encodeRtuFrame, rtuRequestLength, rtuResponseLength } from '../../edge/drivers/modbus/framing.js';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

describe('FC 20 / FC 21 requests', () => {
  it('FC 20: the spec example (file 4, record 1, 2 registers) and its RTU frame', () => {
    const pdu = encodeReadFileRecord(4, 1, 2);
    expect(pdu.toString('hex')).toBe('14070600040001' + '0002');
    // [unit 1][pdu][CRC] as pymodbus 3.0 frames ReadFileRecordRequest
    const adu = encodeRtuFrame(1, pdu);
    expect(adu.toString('hex')).toBe('01140706000400010002d8e5');
    expect(rtuRequestLength(adu)).toBe(adu.length);
    expect(rtuRequestLength(adu.subarray(0, 2))).toBeUndefined();
    expect(expectedResponseLength(pdu)).toBe(2 + 2 + 4);
  });

  it('FC 21: the spec example (file 4, record 7, 3 registers) and its RTU frame', () => {
    const pdu = encodeWriteFileRecord(4, 7, hex('06af 04be 100d'));
    expect(pdu.toString('hex')).toBe(hex('15 0d 06 0004 0007 0003 06af 04be 100d').toString('hex'));
    const adu = encodeRtuFrame(1, pdu);
    expect(adu.toString('hex')).toBe('01150d0600040007000306af04be100dd60b');
    expect(rtuRequestLength(adu)).toBe(adu.length);
    expect(expectedResponseLength(pdu)).toBe(pdu.length); // the answer echoes the request
  });

  it('expected response length of a request with two sub-requests (the spec example)', () => {
    const pdu = hex('14 0e 06 0004 0001 0002 06 0003 0009 0002');
    expect(expectedResponseLength(pdu)).toBe(0x0c + 2);
  });

  it.each([
    ['file 0', () => encodeReadFileRecord(0, 0, 1), /file number 0/],
    ['file 65536', () => encodeReadFileRecord(0x10000, 0, 1), /file number/],
    ['record 10000', () => encodeReadFileRecord(1, 10_000, 1), /record number 10000/],
    ['record + length past 9999', () => encodeReadFileRecord(1, 9_990, 20), /runs past record 9999/],
    ['read 0 registers', () => encodeReadFileRecord(1, 0, 0), /record length 0/],
    [`read ${MAX_READ_FILE_REGISTERS + 1} registers`, () => encodeReadFileRecord(1, 0, MAX_READ_FILE_REGISTERS + 1), /record length/],
    ['odd data', () => encodeWriteFileRecord(1, 0, Buffer.alloc(3)), /not whole registers/],
    ['empty data', () => encodeWriteFileRecord(1, 0, Buffer.alloc(0)), /record length 0/],
    [`write ${MAX_WRITE_FILE_REGISTERS + 1} registers`, () => encodeWriteFileRecord(1, 0, Buffer.alloc(2 * MAX_WRITE_FILE_REGISTERS + 2)), /record length/],
  ])('refuses %s', (_name, fn, message) => {
    expect(fn).toThrow(message);
  });

  it('the largest FC 21 fits: byte count 0xF5, an RTU frame of 250 bytes', () => {
    const pdu = encodeWriteFileRecord(0xffff, 0, Buffer.alloc(2 * MAX_WRITE_FILE_REGISTERS, 0xab));
    expect(pdu[1]).toBe(0xf5);
    const adu = encodeRtuFrame(247, pdu);
    expect(adu.length).toBe(250);
    expect(crcOk(adu)).toBe(true);
    expect(rtuRequestLength(adu)).toBe(250);
  });
});

describe('FC 20 / FC 21 answers (client side)', () => {
  it('FC 20: the spec example first sub-response decodes to its record data', () => {
    const rq = encodeReadFileRecord(4, 1, 2);
    const rs = hex('14 06 05 06 0dfe 0020');
    expect(decodeResponse(rq, rs)).toEqual({ kind: 'file', data: hex('0dfe 0020') });
    const frame = hex('01140605060dfe00208b4e'); // CRC from pymodbus computeCRC
    expect(crcOk(frame)).toBe(true);
    expect(rtuResponseLength(frame)).toBe(frame.length);
    expect(rtuResponseLength(frame.subarray(0, 2))).toBeUndefined();
  });

  it('FC 20 / 21 answers round-trip through the server side encoders', () => {
    const data = Buffer.from(Array.from({ length: 200 }, (_, i) => i));
    const rq = encodeReadFileRecord(3, 500, 100);
    expect(decodeResponse(rq, encodeReadFileRecordResponse(data))).toEqual({ kind: 'file', data });
    const wr = encodeWriteFileRecord(3, 500, data);
    expect(decodeResponse(wr, encodeWriteFileRecordResponse(wr))).toEqual({ kind: 'fileWritten' });
    expect(rtuResponseLength(encodeRtuFrame(1, encodeWriteFileRecordResponse(wr)))).toBe(wr.length + 3);
  });

  it('exception answers throw ModbusExceptionError with the code and function', () => {
    const rq = encodeWriteFileRecord(1, 0, Buffer.alloc(4));
    const err = (() => {
      try {
        decodeResponse(rq, encodeExceptionResponse(21, 4));
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(ModbusExceptionError);
    expect(err).toMatchObject({ functionCode: 21, exceptionCode: 4, exceptionName: 'SERVER DEVICE FAILURE' });
    expect(rtuResponseLength(hex('01 94 02'))).toBe(5);
  });

  const rq20 = encodeReadFileRecord(4, 1, 2);
  const rq21 = encodeWriteFileRecord(4, 7, hex('06af 04be 100d'));
  it.each([
    ['FC 20 too short', rq20, hex('14 06 05 06 0dfe'), /response of 6 bytes, expected 8/],
    ['FC 20 too long', rq20, hex('14 06 05 06 0dfe 0020 00'), /response of 9 bytes/],
    ['FC 20 wrong data length', rq20, hex('14 07 05 06 0dfe 0020'), /data length 7/],
    ['FC 20 wrong sub-response length', rq20, hex('14 06 04 06 0dfe 0020'), /sub-response length 4/],
    ['FC 20 wrong reference type', rq20, hex('14 06 05 07 0dfe 0020'), /reference type 7/],
    ['FC 20 answered with FC 21', rq20, hex('15 06 05 06 0dfe 0020'), /function code 21/],
    ['FC 21 echo differs', rq21, hex('15 0d 06 0004 0007 0003 06af 04be 100e'), /does not echo/],
    ['FC 21 echo truncated', rq21, hex('15 0d 06 0004 0007 0003 06af 04be'), /response of 13 bytes, expected 15/],
  ])('%s → ModbusFrameError', (_name, rq, rs, message) => {
    expect(() => decodeResponse(rq, rs)).toThrow(ModbusFrameError);
    expect(() => decodeResponse(rq, rs)).toThrow(message);
  });

  it('an FC 20 request with two sub-requests is not decoded (one per PDU)', () => {
    const rq = hex('14 0e 06 0004 0001 0002 06 0003 0009 0002');
    expect(() => decodeResponse(rq, hex('14 0c 05 06 0dfe 0020 05 06 33cd 0040'))).toThrow(/one sub-request/);
  });
});

describe('FC 20 / FC 21 requests (server side)', () => {
  it('decodes one sub-request of each', () => {
    expect(decodeRequest(encodeReadFileRecord(4, 1, 2))).toEqual({ fc: 20, file: 4, record: 1, length: 2 });
    expect(decodeRequest(encodeWriteFileRecord(4, 7, hex('06af 04be 100d')))).toEqual({ fc: 21, file: 4, record: 7, data: hex('06af 04be 100d') });
  });

  const code = (pdu: Buffer): number => {
    try {
      decodeRequest(pdu);
    } catch (err) {
      if (err instanceof ModbusExceptionError) return err.exceptionCode;
      throw err;
    }
    return 0;
  };

  it.each([
    ['FC 20 with no sub-request', hex('14 00'), 3],
    ['FC 20 byte count past the PDU', hex('14 07 06 0004 0001 00'), 3],
    ['FC 20 two sub-requests', hex('14 0e 06 0004 0001 0002 06 0003 0009 0002'), 3],
    ['FC 20 record length 0', hex('14 07 06 0004 0001 0000'), 3],
    ['FC 20 record length 122', hex('14 07 06 0004 0001 007a'), 3],
    ['FC 20 reference type 5', hex('14 07 05 0004 0001 0002'), 2],
    ['FC 20 file 0', hex('14 07 06 0000 0001 0002'), 2],
    ['FC 20 record 10000', hex('14 07 06 0004 2710 0001'), 2],
    ['FC 20 record 9999 + 2 registers', hex('14 07 06 0004 270f 0002'), 2],
    ['FC 21 length disagrees with its data', hex('15 0b 06 0004 0007 0003 06af 04be'), 3],
    ['FC 21 byte count past 0xF5', Buffer.concat([hex('15 f7 06 0001 0000 0078'), Buffer.alloc(240)]), 3],
    ['FC 21 reference type 0', hex('15 09 00 0004 0007 0001 06af'), 2],
    ['FC 21 just a function code', hex('15'), 3],
  ])('%s → exception %i', (_name, pdu, exception) => {
    expect(code(pdu)).toBe(exception);
  });
});
