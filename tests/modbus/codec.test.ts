// Codec and framing: every request encoder against frames computed by an independent
// implementation (pymodbus 3.0's computeCRC) and the spec's own example, plus response decoding.
import { describe, expect, it } from 'vitest';
import {
  decodeRequest,
  decodeResponse,
  encodeBitsResponse,
  encodeExceptionResponse,
  encodeReadRequest,
  encodeRegistersResponse,
  encodeWriteMultipleCoils,
  encodeWriteMultipleRegisters,
  encodeWriteSingleCoil,
  encodeWriteSingleRegister,
  exceptionName,
  expectedResponseLength,
  ModbusExceptionError,
  ModbusFrameError,
} from '../../edge/drivers/modbus/index.js';
import { crc16, crcOk } from '../../edge/drivers/modbus/crc.js';
import { encodeMbap, encodeRtuFrame, rtuRequestLength, rtuResponseLength, serialTiming, wireMs } from '../../edge/drivers/modbus/framing.js';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

// name, unit, request PDU, the full RTU frame (CRCs from pymodbus.utilities.computeCRC)
const requestFrames: [string, number, Buffer, string][] = [
  ['FC3 read 10 holding at 0', 1, encodeReadRequest(3, 0, 10), '01 03 0000 000a c5cd'],
  ['FC3 spec example (unit 17, 108-110)', 17, encodeReadRequest(3, 107, 3), '11 03 006b 0003 7687'],
  ['FC1 read 37 coils at 19', 2, encodeReadRequest(1, 19, 37), '02 01 0013 0025 0c27'],
  ['FC2 read 22 inputs at 196', 3, encodeReadRequest(2, 196, 22), '03 02 00c4 0016 b9db'],
  ['FC4 read 1 input register at 8', 4, encodeReadRequest(4, 8, 1), '04 04 0008 0001 b05d'],
  ['FC5 coil 172 on', 5, encodeWriteSingleCoil(172, true), '05 05 00ac ff00 4d9f'],
  ['FC6 register 1 = 3', 6, encodeWriteSingleRegister(1, 3), '06 06 0001 0003 99bc'],
  [
    'FC15 10 coils at 19',
    7,
    encodeWriteMultipleCoils(19, [true, false, true, true, false, false, true, true, true, false]),
    '07 0f 0013 000a 02 cd01 596b',
  ],
  ['FC16 2 registers at 1', 8, encodeWriteMultipleRegisters(1, [10, 258]), '08 10 0001 0002 04 000a 0102 bcac'],
];

describe('RTU frames', () => {
  it.each(requestFrames)('%s', (_name, unit, pdu, frame) => {
    const adu = encodeRtuFrame(unit, pdu);
    expect(adu.toString('hex')).toBe(hex(frame).toString('hex'));
    expect(crcOk(adu)).toBe(true);
    expect(rtuRequestLength(adu)).toBe(adu.length);
  });

  it('a flipped bit fails the CRC', () => {
    const adu = encodeRtuFrame(1, encodeReadRequest(3, 0, 10));
    adu[3]! ^= 0x10;
    expect(crcOk(adu)).toBe(false);
  });

  it('response lengths by function code, byte count and exception', () => {
    expect(rtuResponseLength(hex('01 03 04 1234 abcd 0020'))).toBe(9);
    expect(rtuResponseLength(hex('01 03'))).toBeUndefined();
    expect(rtuResponseLength(hex('01 83 02 c0f1'))).toBe(5);
    expect(rtuResponseLength(hex('01 06 0001'))).toBe(8);
    expect(rtuResponseLength(hex('01 2b 00'))).toBe(-1);
    expect(crcOk(hex('01 03 04 1234 abcd 0020'))).toBe(true);
    expect(crcOk(hex('01 83 02 c0f1'))).toBe(true);
    expect(crc16(hex('01 03 00 00 00 0a'))).toBe(0xcdc5);
  });

  it('MBAP header: transaction, protocol 0, length, unit', () => {
    expect(encodeMbap(0x1234, 9, encodeReadRequest(4, 0, 2)).toString('hex')).toBe('123400000006090400000002');
  });

  it('serial timing: character time at 9600 8E1, fixed t1.5/t3.5 above 19200 (2.5.1.1)', () => {
    const t = serialTiming(9600, 8, 'even', 1);
    expect(t.bitsPerChar).toBe(11);
    expect(t.t35Us).toBeCloseTo(3.5 * (11e6 / 9600), 3);
    expect(t.t15Us).toBeCloseTo(1.5 * (11e6 / 9600), 3);
    expect(wireMs(t, 8)).toBeCloseTo((8 * 11 * 1000) / 9600, 6);
    const n = serialTiming(19200, 8, 'none', 1);
    expect(n.bitsPerChar).toBe(10);
    expect(n.t35Us).toBeCloseTo(3.5 * (10e6 / 19200), 3);
    const fast = serialTiming(115200, 8, 'none', 2);
    expect([fast.t15Us, fast.t35Us]).toEqual([750, 1750]);
  });
});

describe('PDU decoding', () => {
  it('registers (FC3/4) and bits (FC1/2), least significant bit first', () => {
    const rq = encodeReadRequest(3, 0, 2);
    expect(decodeResponse(rq, hex('03 04 1234 abcd'))).toEqual({ kind: 'registers', registers: [0x1234, 0xabcd] });
    const bq = encodeReadRequest(1, 19, 10);
    expect(decodeResponse(bq, hex('01 02 cd 01'))).toEqual({
      kind: 'bits',
      bits: [true, false, true, true, false, false, true, true, true, false],
    });
    expect(expectedResponseLength(bq)).toBe(4);
  });

  it('write echoes are checked', () => {
    const wq = encodeWriteSingleRegister(1, 3);
    expect(decodeResponse(wq, wq)).toEqual({ kind: 'written', address: 1, value: 3 });
    expect(() => decodeResponse(wq, hex('06 0001 0004'))).toThrow(ModbusFrameError);
    const mq = encodeWriteMultipleRegisters(1, [1, 2]);
    expect(decodeResponse(mq, hex('10 0001 0002'))).toMatchObject({ kind: 'written' });
  });

  it('a wrong byte count or length is a frame error', () => {
    const rq = encodeReadRequest(3, 0, 2);
    expect(() => decodeResponse(rq, hex('03 02 1234'))).toThrow(ModbusFrameError);
    expect(() => decodeResponse(rq, hex('04 04 1234 abcd'))).toThrow(/function code 4/);
  });

  const names: [number, string][] = [
    [1, 'ILLEGAL FUNCTION'],
    [2, 'ILLEGAL DATA ADDRESS'],
    [3, 'ILLEGAL DATA VALUE'],
    [4, 'SERVER DEVICE FAILURE'],
    [5, 'ACKNOWLEDGE'],
    [6, 'SERVER DEVICE BUSY'],
    [7, 'NEGATIVE ACKNOWLEDGE'],
    [8, 'MEMORY PARITY ERROR'],
    [10, 'GATEWAY PATH UNAVAILABLE'],
    [11, 'GATEWAY TARGET DEVICE FAILED TO RESPOND'],
  ];
  it.each(names)('exception %i is reported as %s', (code, name) => {
    const rq = encodeReadRequest(3, 0, 1);
    let caught: unknown;
    try {
      decodeResponse(rq, encodeExceptionResponse(3, code));
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(ModbusExceptionError);
    expect((caught as ModbusExceptionError).exceptionName).toBe(name);
    expect((caught as ModbusExceptionError).code).toBe('E_MODBUS_EXCEPTION');
    expect((caught as ModbusExceptionError).message).toContain(name);
  });

  it('exception 9 is undefined', () => {
    expect(exceptionName(9)).toBe('UNDEFINED EXCEPTION 9');
  });

  it('limits: 125 registers, 2000 bits, 123 registers per write', () => {
    expect(() => encodeReadRequest(3, 0, 126)).toThrow(RangeError);
    expect(() => encodeReadRequest(1, 0, 2001)).toThrow(RangeError);
    expect(() => encodeReadRequest(3, 65535, 2)).toThrow(RangeError);
    expect(() => encodeWriteMultipleRegisters(0, new Array<number>(124).fill(0))).toThrow(RangeError);
    expect(encodeReadRequest(3, 0, 125)).toHaveLength(5);
  });
});

describe('server side', () => {
  it('decodes requests and encodes answers', () => {
    expect(decodeRequest(encodeReadRequest(4, 10, 3))).toEqual({ fc: 4, address: 10, quantity: 3 });
    expect(decodeRequest(encodeWriteSingleCoil(7, true))).toEqual({ fc: 5, address: 7, value: true });
    expect(decodeRequest(encodeWriteMultipleRegisters(2, [5, 6]))).toEqual({ fc: 16, address: 2, values: [5, 6] });
    expect(decodeRequest(encodeWriteMultipleCoils(2, [true, false, true]))).toEqual({ fc: 15, address: 2, values: [true, false, true] });
    expect(encodeRegistersResponse(3, [1, 2]).toString('hex')).toBe('030400010002');
    expect(encodeBitsResponse(1, [true, false, false, true]).toString('hex')).toBe('010109');
    expect(() => decodeRequest(hex('2b 0e 01 00 00'))).toThrow(/ILLEGAL FUNCTION/);
    expect(() => decodeRequest(hex('03 0000 0000'))).toThrow(/ILLEGAL DATA VALUE/);
  });
});
