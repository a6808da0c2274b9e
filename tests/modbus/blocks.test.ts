// Block reads: the fewest requests per table within 125 registers / 2000 bits and maxGap.
import { describe, expect, it } from 'vitest';
import { pointSchema, type PointConfig } from '../../edge/config/schema.js';
import { planBlocks } from '../../edge/drivers/modbus/blocks.js';
import { loadProfiles } from '../../edge/profiles/index.js';

const pt = (name: string, table: string, address: number, type = 'uint16', extra: Record<string, unknown> = {}): PointConfig =>
  pointSchema.parse({ name, table, address, type, ...extra });
const shape = (points: PointConfig[], maxGap: number) =>
  planBlocks(points, { maxGap }).map((b) => [b.table, b.fc, b.address, b.quantity, b.points.map((p) => p.name)]);

describe('planBlocks', () => {
  it('merges neighbours and bridges holes up to maxGap', () => {
    const points = [pt('a', 'holding', 0), pt('b', 'holding', 1, 'uint32'), pt('c', 'holding', 11), pt('d', 'holding', 30)];
    expect(shape(points, 8)).toEqual([
      ['holding', 3, 0, 12, ['a', 'b', 'c']],
      ['holding', 3, 30, 1, ['d']],
    ]);
    expect(shape(points, 0)).toEqual([
      ['holding', 3, 0, 3, ['a', 'b']],
      ['holding', 3, 11, 1, ['c']],
      ['holding', 3, 30, 1, ['d']],
    ]);
    expect(shape(points, 18)).toEqual([['holding', 3, 0, 31, ['a', 'b', 'c', 'd']]]);
  });

  it('never exceeds 125 registers per request', () => {
    const points = Array.from({ length: 300 }, (_, i) => pt(`r${i}`, 'input', i));
    const blocks = planBlocks(points, { maxGap: 8 });
    expect(blocks.map((b) => [b.address, b.quantity])).toEqual([
      [0, 125],
      [125, 125],
      [250, 50],
    ]);
  });

  it('keeps a 32-bit value whole at the 125-register boundary', () => {
    const points = [pt('a', 'holding', 0), pt('b', 'holding', 124, 'float32')];
    expect(shape(points, 125)).toEqual([
      ['holding', 3, 0, 1, ['a']],
      ['holding', 3, 124, 2, ['b']],
    ]);
  });

  it('one request per table; bit tables bridge maxGap × 16 bits and stop at 2000', () => {
    const points = [
      pt('c1', 'coil', 0, 'bool'),
      pt('c2', 'coil', 100, 'bool'),
      pt('c3', 'coil', 1999, 'bool'),
      pt('c4', 'coil', 2000, 'bool'),
      pt('d1', 'discrete', 5, 'bool'),
      pt('i1', 'input', 5),
      pt('h1', 'holding', 5),
    ];
    expect(shape(points, 8)).toEqual([
      ['holding', 3, 5, 1, ['h1']],
      ['input', 4, 5, 1, ['i1']],
      ['coil', 1, 0, 101, ['c1', 'c2']],
      ['coil', 1, 1999, 2, ['c3', 'c4']],
      ['discrete', 2, 5, 1, ['d1']],
    ]);
  });

  it('points sharing a register (a word and its bits) share the read', () => {
    const points = [pt('status', 'holding', 7), pt('lamp', 'holding', 7, 'bool', { bit: 0 }), pt('fault', 'holding', 7, 'bool', { bit: 1 })];
    expect(shape(points, 0)).toEqual([['holding', 3, 7, 1, ['status', 'lamp', 'fault']]]);
  });

  it('the built-in profiles poll in one (streetlight) and three (traffic) requests', () => {
    const profiles = loadProfiles([]);
    const sl = planBlocks(profiles.require('streetlight-controller').points, { maxGap: 8 });
    expect(sl.map((b) => [b.fc, b.address, b.quantity])).toEqual([[3, 0, 31]]);
    const tc = planBlocks(profiles.require('traffic-controller').points, { maxGap: 8 });
    expect(tc.map((b) => [b.fc, b.address, b.quantity])).toEqual([
      [3, 0, 2],
      [4, 0, 26],
      [2, 0, 1],
    ]);
  });
});
