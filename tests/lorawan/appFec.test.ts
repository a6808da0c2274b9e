/**
 * TS004 forward error correction: the parity fragments of both versions against published
 * vectors, the shape of the matrix lines, and the node's decoder reassembling a block from any
 * sufficient subset of fragments, in any order, within its memory bound.
 */
import { describe, expect, it } from 'vitest';
import { FragDecoder, fragmentData, matrixLine, parityFragment, type FragVersion } from '../../edge/drivers/lorawan/app/index.js';
import { rng } from '../../edge/sim/modbus/random.js';

const BYTES_0_TO_99 = Buffer.from(Array.from({ length: 100 }, (_, i) => i));
const hex = (s: string): string => s.replace(/\s+/g, '');

describe('parity fragments', () => {
  const { fragments } = fragmentData(BYTES_0_TO_99, 10);

  it('TS004 v1.0.0: data 0x00…0x63, FragSize 10 (M = 10), parity fragments 1 and 2 (the issue\'s interop vector)', () => {
    expect(parityFragment(1, fragments, 1).toString('hex')).toBe(hex('26 26 22 22 2e 2e 22 22 26 26'));
    expect(parityFragment(1, fragments, 2).toString('hex')).toBe(hex('54 55 56 57 58 59 6a 6b 7c 7d'));
  });

  // Rows 1..10 for M = 10: v1.0.0 as brocaar/lorawan applayer/fragmentation encode_test.go lists
  // them, v2.0.0 as ChirpStack's lrwn applayer/fragmentation/v2.rs test_encode does.
  const rows: [n: number, v1: string, v2: string][] = [
    [1, '262622222e2e22222626', '686952535c5d76777071'],
    [2, '5455565758596a6b7c7d', '5455565758596a6b7c7d'],
    [3, '5c5d6e6f101102030405', '5c5d6e6f101102030405'],
    [4, '363632323e3e22223636', '6c6d6e6f606142435455'],
    [5, '3a3a0e0e0a0a06060a0a', '12132425262728293a3b'],
    [6, '0e0e3232363622223e3e', '48497a7b7c7d6e6f7071'],
    [7, '02020e0e727276766262', '1c1d2e2f505152534445'],
    [8, '1e1e1a1a66665a5a4e4e', '585952532c2d16170001'],
    [9, '1a1b1c1d1e1f30312223', '1a1b1c1d1e1f30312223'],
    [10, '22232425262718190a0b', '00013a3b44457e7f6869'],
  ];
  it.each(rows)('row %i in v1.0.0 and v2.0.0', (n, v1, v2) => {
    expect(parityFragment(1, fragments, n).toString('hex')).toBe(v1);
    expect(parityFragment(2, fragments, n).toString('hex')).toBe(v2);
  });

  it('most rows differ between the versions (7 of these 10)', () => {
    expect(rows.filter(([, v1, v2]) => v1 !== v2)).toHaveLength(7);
  });
});

describe('matrix lines', () => {
  const ones = (line: Uint8Array): number => line.reduce((sum, c) => sum + c, 0);

  it.each([7, 10, 16, 33, 64, 200])('M = %i: v2 lines hold exactly M/2 ones, v1 lines at most, and every v1 one is a v2 one', (m) => {
    for (let n = 1; n <= 60; n++) {
      const v1 = matrixLine(1, n, m);
      const v2 = matrixLine(2, n, m);
      expect(ones(v2)).toBe(m >> 1);
      expect(ones(v1)).toBeLessThanOrEqual(m >> 1);
      // v2 keeps drawing from the same sequence after a repeated draw: v1's positions are a prefix of its draws.
      v1.forEach((c, i) => c === 1 && expect(v2[i]).toBe(1));
    }
  });

  it('M = 1 has no coefficient to draw: its parity lines are empty', () => {
    expect(Array.from(matrixLine(2, 1, 1))).toEqual([0]);
  });

  it('refuses an n or m outside 1..16383', () => {
    expect(() => matrixLine(1, 0, 10)).toThrow(RangeError);
    expect(() => matrixLine(1, 1, 16_384)).toThrow(RangeError);
  });
});

describe('fragmentData', () => {
  it('cuts whole fragments without padding', () => {
    const { fragments, padding } = fragmentData(BYTES_0_TO_99, 10);
    expect(fragments).toHaveLength(10);
    expect(padding).toBe(0);
    expect(fragments[9]!.toString('hex')).toBe('5a5b5c5d5e5f60616263');
  });
  it('pads the last fragment with zeros and says how many', () => {
    const { fragments, padding } = fragmentData(BYTES_0_TO_99.subarray(0, 95), 10);
    expect(fragments).toHaveLength(10);
    expect(padding).toBe(5);
    expect(fragments[9]!.toString('hex')).toBe('5a5b5c5d5e0000000000');
  });
  it('refuses an empty block and a FragSize beyond a byte', () => {
    expect(() => fragmentData(Buffer.alloc(0), 10)).toThrow(RangeError);
    expect(() => fragmentData(BYTES_0_TO_99, 256)).toThrow(RangeError);
  });
});

/** A block and its fragments as the server would send them: M uncoded then `parity` parity ones. */
function session(version: FragVersion, random: () => number, size: number, fragSize: number, parity: number) {
  const data = Buffer.from(Array.from({ length: size }, () => Math.floor(random() * 256)));
  const { fragments, padding } = fragmentData(data, fragSize);
  const m = fragments.length;
  const all = fragments.map((payload, i) => ({ n: i + 1, payload })).concat(Array.from({ length: parity }, (_, i) => ({ n: m + i + 1, payload: parityFragment(version, fragments, i + 1) })));
  return { data, padding, m, all };
}

/** Fisher–Yates with the seeded source. */
function shuffle<T>(items: T[], random: () => number): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

/** The rank over GF(2) of fragment rows, computed apart from the decoder (BigInt rows, M ≤ 64). */
function rankTracker(version: FragVersion, m: number): (n: number) => number {
  const basis = new Map<number, bigint>();
  return (n) => {
    let row = 0n;
    if (n <= m) row = 1n << BigInt(n - 1);
    else matrixLine(version, n - m, m).forEach((c, i) => (row |= BigInt(c) << BigInt(i)));
    while (row !== 0n) {
      const top = row.toString(2).length - 1;
      const pivot = basis.get(top);
      if (pivot === undefined) {
        basis.set(top, row);
        break;
      }
      row ^= pivot;
    }
    return basis.size;
  };
}

describe.each([1, 2] as const)('FragDecoder, TS004 v%i', (version) => {
  it('reassembles from the uncoded fragments alone, in order', () => {
    const s = session(version, rng(1), 95, 10, 0);
    const decoder = new FragDecoder(version, s.m, 10);
    const results = s.all.map((f) => decoder.add(f.n, f.payload));
    expect(results).toEqual([...Array<string>(9).fill('new'), 'complete']);
    expect(decoder.data(s.padding)).toEqual(s.data);
    // padding comes from the air: more than the block leaves nothing, it does not throw
    expect(decoder.data(255)).toEqual(Buffer.alloc(0));
  });

  it.each([11, 22, 33, 44, 55, 66, 77, 88])('completes exactly when the fragments received reach rank M (seed %i, random losses and order)', (seed) => {
    const random = rng(seed * version);
    const s = session(version, random, 40 * 12 - 7, 12, 40);
    const decoder = new FragDecoder(version, s.m, 12);
    const rank = rankTracker(version, s.m);
    const received = shuffle(s.all, random).filter(() => random() > 0.3);
    let completedAt = -1;
    received.forEach((f, i) => {
      const reached = rank(f.n) === s.m;
      const result = decoder.add(f.n, f.payload);
      if (completedAt < 0 && reached) {
        expect(result).toBe('complete');
        completedAt = i;
      } else if (completedAt < 0) {
        expect(result === 'new' || result === 'useless').toBe(true);
        expect(decoder.complete()).toBe(false);
      }
    });
    // 80 fragments sent, about 56 received: every seed here has enough (not before the 40th)
    expect(completedAt).toBeGreaterThanOrEqual(s.m - 1);
    expect(decoder.data(s.padding)).toEqual(s.data);
  });

  it('replaces lost uncoded fragments with parity ones', () => {
    const s = session(version, rng(3), 100, 10, 10);
    const decoder = new FragDecoder(version, s.m, 10);
    for (const f of s.all.slice(0, s.m).filter((f) => f.n !== 3 && f.n !== 7)) decoder.add(f.n, f.payload);
    expect(decoder.missing).toBe(2);
    const results: string[] = [];
    for (const f of s.all.slice(s.m)) {
      results.push(decoder.add(f.n, f.payload));
      if (decoder.complete()) break;
    }
    expect(results.at(-1)).toBe('complete');
    expect(decoder.missing).toBe(0);
    expect(decoder.data(s.padding)).toEqual(s.data);
  });

  it('a block of 200 fragments (10 KiB at 50 bytes) with 10 % loss and 15 % parity', () => {
    const random = rng(200 + version);
    const s = session(version, random, 10_240, 52, 30);
    const decoder = new FragDecoder(version, s.m, 52, { maxParityRows: 40 });
    for (const f of s.all.filter(() => random() > 0.1)) {
      decoder.add(f.n, f.payload);
      if (decoder.complete()) break;
    }
    expect(decoder.complete()).toBe(true);
    expect(decoder.data(s.padding)).toEqual(s.data);
  });

  it('counts a repeated fragment once in the block and twice in received', () => {
    const s = session(version, rng(4), 100, 10, 2);
    const decoder = new FragDecoder(version, s.m, 10);
    expect(decoder.add(1, s.all[0]!.payload)).toBe('new');
    expect(decoder.add(1, s.all[0]!.payload)).toBe('duplicate');
    expect(decoder.add(11, s.all[10]!.payload)).toBe('new');
    expect(decoder.add(11, s.all[10]!.payload)).toBe('duplicate');
    expect(decoder.received).toBe(4);
    expect(decoder.missing).toBe(8);
  });

  it('finds nothing in an N out of range or a payload of the wrong size', () => {
    const decoder = new FragDecoder(version, 10, 10);
    const ten = Buffer.alloc(10);
    expect(decoder.add(0, ten)).toBe('useless');
    expect(decoder.add(16_384, ten)).toBe('useless');
    expect(decoder.add(1.5, ten)).toBe('useless');
    expect(decoder.add(1, Buffer.alloc(9))).toBe('useless');
    expect(decoder.received).toBe(0);
    expect(decoder.missing).toBe(10);
  });

  it('stays incomplete with too few fragments', () => {
    const s = session(version, rng(5), 100, 10, 10);
    const decoder = new FragDecoder(version, s.m, 10);
    for (const f of s.all.slice(1, s.m)) decoder.add(f.n, f.payload);
    expect(decoder.complete()).toBe(false);
    expect(decoder.missing).toBe(1);
    expect(decoder.data(s.padding)).toBeNull();
  });

  it('takes nothing more once the block is complete', () => {
    const s = session(version, rng(6), 100, 10, 1);
    const decoder = new FragDecoder(version, s.m, 10);
    for (const f of s.all.slice(0, s.m)) decoder.add(f.n, f.payload);
    expect(decoder.add(s.m + 1, s.all[s.m]!.payload)).toBe('useless');
  });

  it('aborts when more equations must be kept than maxParityRows, and says so from then on', () => {
    const s = session(version, rng(7), 200, 10, 20);
    const bounded = new FragDecoder(version, s.m, 10, { maxParityRows: 2 });
    const unbounded = new FragDecoder(version, s.m, 10);
    for (const f of s.all.slice(5, s.m)) {
      bounded.add(f.n, f.payload);
      unbounded.add(f.n, f.payload);
    }
    const results = s.all.slice(s.m).map((f) => {
      unbounded.add(f.n, f.payload);
      return bounded.add(f.n, f.payload);
    });
    const first = results.indexOf('memory');
    expect(first).toBeGreaterThan(1);
    expect(results.slice(0, first).every((r) => r === 'new' || r === 'useless')).toBe(true);
    expect(results.slice(first).every((r) => r === 'memory')).toBe(true);
    expect(bounded.memoryError).toBe(true);
    expect(bounded.add(1, s.all[0]!.payload)).toBe('memory');
    // the same fragments suffice without the bound: the bound is what stopped it
    expect(unbounded.data(s.padding)).toEqual(s.data);
  });
});

it('a v1 parity fragment misleads a v2 decoder where the lines differ', () => {
  const s = session(1, rng(8), 100, 10, 1);
  const decoder = new FragDecoder(2, s.m, 10);
  for (const f of s.all.slice(0, s.m).filter((f) => f.n !== 3)) decoder.add(f.n, f.payload);
  // Row 1 is fragments 3 and 6 in v1.0.0 but 2, 3, 4, 6 and 10 in v2.0.0 (see the vectors): the v2 decoder solves fragment 3 wrongly.
  expect(decoder.add(s.m + 1, s.all[s.m]!.payload)).toBe('complete');
  expect(decoder.data(s.padding)).not.toEqual(s.data);
});
