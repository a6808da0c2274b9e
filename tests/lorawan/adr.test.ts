/**
 * ADR decisions (mac/adr.ts): ChirpStack's default algorithm, nStep = trunc((snrMax − requiredSnr
 * − margin) / 3), plus lowering the data rate when raising the power is not enough. Each row's
 * comment shows the arithmetic.
 */
import { describe, expect, it } from 'vitest';
import { configSchema } from '../../edge/config/schema.js';
import { adrDecide, EU868_TX_POWER_DBM_OF, eu868TxPowerDbmOrNull, REQUIRED_SNR_DB } from '../../edge/drivers/lorawan/mac/adr.js';
import type { AdrDecision, AdrInput } from '../../edge/drivers/lorawan/mac/types.js';

const BASE: Omit<AdrInput, 'snrHistory'> = { dr: 0, txPowerIndex: 0, nbTrans: 1, maxDr: 5, minDr: 0, maxTxPowerIndex: 7, margin: 10, historySize: 20 };

/** `length` uplinks whose best SNR is `snrMax`, the best one in the middle (not the last). */
function history(snrMax: number, length = 20): number[] {
  return Array.from({ length }, (_, i) => (i === Math.floor(length / 2) ? snrMax : snrMax - 5));
}

type Expected = Pick<AdrDecision, 'dr' | 'txPowerIndex' | 'nStep'> | null;

// name, input overrides, snrHistory, expected (null: no LinkADRReq)
const rows: [string, Partial<AdrInput>, number[], Expected][] = [
  ['19 of 20 uplinks: not enough history', {}, history(11, 19), null],
  // SF12 needs −20 dB: −10 − (−20) − 10 = 0
  ['SNR right at the margin: nothing to do', {}, history(-10), null],
  // −7 + 20 − 10 = 3 → 1 step
  ['3 dB above: one data rate up', {}, history(-7), { dr: 1, txPowerIndex: 0, nStep: 1 }],
  // 2.9 / 3 truncates to 0
  ['2.9 dB above is no step', {}, history(-7.1), null],
  // 11 + 20 − 10 = 21 → 7 steps: DR0→DR5 (5), then TX power index 0→2 (2)
  ['far above at SF12: data rate up to maxDr, then power down', {}, history(11), { dr: 5, txPowerIndex: 2, nStep: 7 }],
  // SF7 needs −7.5: 30 + 7.5 − 10 = 27.5 → 9 steps, power index stops at 7
  ['at maxDr: power down, no further than maxTxPowerIndex', { dr: 5 }, history(30), { dr: 5, txPowerIndex: 7, nStep: 9 }],
  // SF10 needs −15: 5 + 15 − 10 = 10 → 3 steps: DR2→DR3 (maxDr), then power index 0→2
  ['maxDr 3 is the ceiling', { dr: 2, maxDr: 3 }, history(5), { dr: 3, txPowerIndex: 2, nStep: 3 }],
  // 2.5 + 7.5 − 10 = 0 steps, but DR5 > maxDr 3: brought down as ChirpStack does
  ['a node above maxDr comes down to it', { dr: 5, maxDr: 3 }, history(2.5), { dr: 3, txPowerIndex: 0, nStep: 0 }],
  // −3.5 + 7.5 − 10 = −6 → −2: power index 4→2, data rate kept
  ['bad SNR: the power goes up first', { dr: 5, txPowerIndex: 4 }, history(-3.5), { dr: 5, txPowerIndex: 2, nStep: -2 }],
  // −9.5 + 7.5 − 10 = −12 → −4: already at full power, DR5→DR1
  ['bad SNR at full power: the data rate comes down', { dr: 5 }, history(-9.5), { dr: 1, txPowerIndex: 0, nStep: -4 }],
  // SF8 needs −10: −9 + 10 − 10 = −9 → −3: power index 1→0, then DR4→DR2
  ['power up, then data rate down', { dr: 4, txPowerIndex: 1 }, history(-9), { dr: 2, txPowerIndex: 0, nStep: -3 }],
  // SF9 needs −12.5: −30 + 12.5 − 10 = −27.5 → −9: DR3→DR2 and no lower
  ['minDr is the floor', { dr: 3, minDr: 2 }, history(-30), { dr: 2, txPowerIndex: 0, nStep: -9 }],
  // −12.9 + 20 − 10 = −2.9 → −0.97 truncates toward zero (not floor's −1)
  ['2.9 dB below is no step', {}, history(-12.9), null],
  ['full power at minDr: nothing left to do', {}, history(-40), null],
  ['fastest and quietest already: nothing left to do', { dr: 5, txPowerIndex: 7 }, history(30), null],
  // the oldest uplink (30 dB) is the 21st: only the last 20 count, their best is −10 → 0 steps
  ['only the last historySize uplinks count', {}, [30, ...history(-10)], null],
  ['a shorter historySize decides sooner', { historySize: 5 }, history(-7, 5), { dr: 1, txPowerIndex: 0, nStep: 1 }],
];

describe('adrDecide', () => {
  it.each(rows)('%s', (_name, over, snrHistory, expected) => {
    const input: AdrInput = { ...BASE, ...over, snrHistory };
    const decision = adrDecide(input);
    if (expected === null) {
      expect(decision).toBeNull();
      return;
    }
    expect(decision).toMatchObject(expected);
    expect(decision!.snrMax).toBe(Math.max(...snrHistory.slice(-input.historySize)));
    expect(decision!.requiredSnr).toBe(REQUIRED_SNR_DB[12 - input.dr]);
  });

  it('nbTrans stays as it is', () => {
    expect(adrDecide({ ...BASE, nbTrans: 3, snrHistory: history(11) })).toMatchObject({ dr: 5, nbTrans: 3 });
  });

  it('closed loop: good SNR raises the data rate then lowers the power and settles; a worse link brings the power back, then the data rate down', () => {
    // A link model, not a mock: the SNR measured at the gateway is the path's, less 2 dB per TX power index (RP002 §2.4.3); the SF does not change it.
    let radio = { dr: 0, txPowerIndex: 0 };
    const round = (pathSnr: number) => {
      const decision = adrDecide({ ...BASE, ...radio, snrHistory: history(pathSnr - 2 * radio.txPowerIndex) });
      if (decision) radio = { dr: decision.dr, txPowerIndex: decision.txPowerIndex };
      return decision && radio;
    };
    // 6 + 20 − 10 = 16 → 5 steps; then 6 + 7.5 − 10 = 3.5 → 1 step; then (6 − 2) + 7.5 − 10 = 1.5 → 0
    expect([round(6), round(6), round(6)]).toEqual([{ dr: 5, txPowerIndex: 0 }, { dr: 5, txPowerIndex: 1 }, null]);
    // the link loses 10 dB: (−4 − 2) + 7.5 − 10 = −8.5 → −2; −4 + 10 − 10 = −4 → −1; −4 + 12.5 − 10 = −1.5 → 0
    expect([round(-4), round(-4), round(-4)]).toEqual([{ dr: 4, txPowerIndex: 0 }, { dr: 3, txPowerIndex: 0 }, null]);
  });
});

describe('EU868 TX power (RP002 §2.4.3: MaxEIRP 16 dBm − 2 dB per index)', () => {
  it.each([
    [0, 16],
    [1, 14],
    [5, 6],
    [7, 2],
  ])('index %i is %i dBm', (index, dbm) => {
    expect(EU868_TX_POWER_DBM_OF(index)).toBe(dbm);
  });
  it.each([-1, 8, 15, 1.5])('index %d is a RangeError', (index) => {
    expect(() => EU868_TX_POWER_DBM_OF(index)).toThrow(RangeError);
  });
  it.each([
    [0, 16],
    [7, 2],
    [8, null],
    [15, null],
    [null, null],
  ])('as status() and the readings read it: index %s is %s dBm (null: none EU868 defines)', (index, dbm) => {
    expect(eu868TxPowerDbmOrNull(index)).toBe(dbm);
  });
});

describe('lorawan.adr in the configuration', () => {
  it('refuses minDr above maxDr, naming the field', () => {
    const r = configSchema.safeParse({ gateway: { id: 'gw' }, lorawan: { adr: { minDr: 4, maxDr: 2 } } });
    expect(r.success).toBe(false);
    expect(r.error?.issues).toEqual([expect.objectContaining({ path: ['lorawan', 'adr', 'minDr'], message: expect.stringContaining('"minDr" (4) is above "maxDr" (2)') })]);
  });
});

describe('required SNR per spreading factor', () => {
  it('SF7 −7.5 dB … SF12 −20 dB, 2.5 dB a step', () => {
    expect(REQUIRED_SNR_DB).toEqual({ 7: -7.5, 8: -10, 9: -12.5, 10: -15, 11: -17.5, 12: -20 });
  });
});
