// Point values: raw registers ⇄ engineering values for every type, word order, bit, scale, offset.
import { describe, expect, it } from 'vitest';
import { pointSchema, type PointConfig } from '../../edge/config/schema.js';
import { decodeRegisters, encodeRegisters, rawFromRegisters } from '../../edge/drivers/modbus/values.js';

const pt = (p: Record<string, unknown>): PointConfig => pointSchema.parse({ name: 'p', table: 'holding', address: 0, ...p });

describe('decoding', () => {
  const rows: [string, Record<string, unknown>, number[], number | boolean][] = [
    ['uint16', { type: 'uint16' }, [0xfffe], 65534],
    ['int16 negative', { type: 'int16' }, [0xfffe], -2],
    ['bool register, non-zero', { type: 'bool' }, [2], true],
    ['bool register, zero', { type: 'bool' }, [0], false],
    ['bit 3 set', { bit: 3, type: 'bool' }, [0b1000], true],
    ['bit 2 clear', { bit: 2, type: 'bool' }, [0b1000], false],
    ['uint32 big-endian words', { type: 'uint32' }, [0x0001, 0x0002], 65538],
    ['uint32 little-endian words', { type: 'uint32', wordOrder: 'little' }, [0x0002, 0x0001], 65538],
    ['uint32 max', { type: 'uint32' }, [0xffff, 0xffff], 4294967295],
    ['int32 negative', { type: 'int32' }, [0xffff, 0xfffe], -2],
    ['int32 little', { type: 'int32', wordOrder: 'little' }, [0xfffe, 0xffff], -2],
    ['float32 1.1', { type: 'float32' }, [0x3f8c, 0xcccd], 1.1],
    ['float32 little', { type: 'float32', wordOrder: 'little' }, [0xcccd, 0x3f8c], 1.1],
    ['scale 0.1 without float noise', { type: 'uint16', scale: 0.1 }, [2301], 230.1],
    ['scale and offset', { type: 'int16', scale: 0.5, offset: -40 }, [100], 10],
    ['scale 0.01 on uint32', { type: 'uint32', scale: 0.01 }, [0x0001, 0x0000], 655.36],
  ];
  it.each(rows)('%s', (_n, cfg, words, value) => {
    expect(decodeRegisters(pt(cfg), words, 0)).toBe(value);
  });

  it('reads at an offset inside a block', () => {
    expect(decodeRegisters(pt({ type: 'uint32' }), [9, 9, 0, 7], 2)).toBe(7);
  });

  it('raw values for alarms ignore scaling', () => {
    expect(rawFromRegisters(pt({ scale: 0.1 }), [0b101], 0)).toBe(5);
  });
});

describe('encoding for writes', () => {
  const rows: [string, Record<string, unknown>, number | boolean, number[]][] = [
    ['uint16', { type: 'uint16' }, 40, [40]],
    ['int16 negative', { type: 'int16' }, -2, [0xfffe]],
    ['bool true', { type: 'bool' }, true, [1]],
    ['bool 0', { type: 'bool' }, 0, [0]],
    ['uint32 big', { type: 'uint32' }, 65538, [1, 2]],
    ['uint32 little', { type: 'uint32', wordOrder: 'little' }, 65538, [2, 1]],
    ['int32 negative', { type: 'int32' }, -2, [0xffff, 0xfffe]],
    ['float32', { type: 'float32' }, 1.1, [0x3f8c, 0xcccd]],
    ['scale: 23.4 at 0.1 is 234', { type: 'uint16', scale: 0.1 }, 23.4, [234]],
    ['offset', { type: 'int16', scale: 0.5, offset: -40 }, 10, [100]],
  ];
  it.each(rows)('%s', (_n, cfg, value, words) => {
    expect(encodeRegisters(pt(cfg), value)).toEqual(words);
  });

  it('round-trips every type', () => {
    for (const [type, v] of [['int16', -1234], ['uint16', 4321], ['int32', -123456789], ['uint32', 3000000000], ['float32', 3.25]] as const) {
      for (const wordOrder of ['big', 'little'] as const) {
        const p = pt({ type, wordOrder });
        expect(decodeRegisters(p, encodeRegisters(p, v), 0)).toBe(v);
      }
    }
  });

  it('refuses values the type cannot hold', () => {
    expect(() => encodeRegisters(pt({ type: 'uint16' }), -1)).toThrow(/outside uint16/);
    expect(() => encodeRegisters(pt({ type: 'int16' }), 40000)).toThrow(RangeError);
    expect(() => encodeRegisters(pt({ type: 'uint16', scale: 0.1 }), 7000)).toThrow(/raw 70000/);
    expect(() => encodeRegisters(pt({ type: 'bool' }), 2)).toThrow(/true\/false or 1\/0/);
    expect(() => encodeRegisters(pt({ type: 'uint16' }), true)).toThrow(RangeError);
    expect(() => encodeRegisters(pt({ type: 'uint16' }), Number.NaN)).toThrow(RangeError);
  });
});
