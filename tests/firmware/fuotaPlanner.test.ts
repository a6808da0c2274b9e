/**
 * The FUOTA planner (edge/firmware/methods/fuota/planner.ts), a pure function: its figures for a
 * 10 KiB image at DR5 on 869.525 MHz checked against figures worked out by hand here, the parity
 * for the loss it is told, the pacing under the sub-band's duty cycle, and the timeouts it derives
 * from its own plan. The radio facts are the driver's own EU868 functions (RP002 payload sizes,
 * Semtech time on air, the ETSI sub-bands), not a stand-in.
 */
import { describe, expect, it } from 'vitest';
import type { RadioFacts } from '../../edge/drivers/lorawan/api.js';
import { airtime } from '../../edge/drivers/lorawan/downlink/scheduler.js';
import { maxPayload, subBandOf } from '../../edge/drivers/lorawan/region/eu868.js';
import { FirmwareError } from '../../edge/firmware/errors.js';
import {
  DECODE_TARGET,
  decodeProbability,
  DEFAULT_LOSS,
  MAX_TIMEOUT_EXPONENT,
  planSession,
  rankProbability,
  REPAIR_ROUNDS,
  SETUP_STEPS,
  sessionLoss,
  timeOutExponent,
  type PlanInput,
} from '../../edge/firmware/methods/fuota/planner.js';

const radio: Pick<RadioFacts, 'maxPayload' | 'downlinkAirtimeMs' | 'dutyCycleAt'> = {
  maxPayload,
  downlinkAirtimeMs: airtime,
  dutyCycleAt: (hz) => subBandOf(hz / 1e6)?.dutyCycle ?? null,
};

const TEN_KIB: PlanInput = {
  imageBytes: 10 * 1024,
  nodes: 3,
  dr: 5,
  frequency: 869_525_000,
  loss: null,
  minRedundancy: 0.05,
  answerTimeoutMs: 600_000,
  startLeadMs: 10_000,
  radio,
};

/** P(X ≥ m) for X ~ Binomial(n, p), summed term by term from the pmf's recurrence: an independent check of the planner's tail. */
function binomialTail(n: number, p: number, m: number, weight: (extra: number) => number = () => 1): number {
  let pmf = (1 - p) ** n; // P(X = 0)
  let sum = 0;
  for (let k = 0; k <= n; k++) {
    if (k > 0) pmf *= ((n - k + 1) / k) * (p / (1 - p));
    if (k >= m) sum += pmf * weight(k - m);
  }
  return sum;
}

describe('a 10 KiB image at DR5 (SF7BW125) on 869.525 MHz (sub-band g3, 10 %)', () => {
  const plan = planSession(TEN_KIB);

  it('cuts it into the largest fragments DR5 carries: 222 − 3 = 219 bytes, M = ceil(10240 / 219) = 47, 53 bytes of padding', () => {
    // RP002 §2.4.6: N = 222 at DR5; TS004 §3.4: DataFragment = CID + Index&N (3 bytes) + the fragment
    expect(plan.fragSize).toBe(219);
    expect(plan.fragments).toBe(47);
    expect(plan.padding).toBe(47 * 219 - 10_240);
    expect(plan.padding).toBe(53);
  });

  it('one fragment is a 235-byte PHYPayload: 368.896 ms on air, followed by 9 × that off the air', () => {
    // 13 (MHDR, FHDR, FPort, MIC) + 3 + 219 = 235 bytes; SF7 BW125: Tsym = 1.024 ms,
    // payload symbols 8 + ceil((8·235 − 28 + 28) / 28) · 5 = 8 + 68 · 5 = 348, preamble 12.25
    expect(plan.phyBytes).toBe(235);
    expect(plan.airtimeMs).toBeCloseTo((12.25 + 348) * 1.024, 9);
    expect(plan.airtimeMs).toBeCloseTo(368.896, 9);
    expect(plan.dutyCycle).toBe(0.1);
    // airtime · (1 / 0.1 − 1)
    expect(plan.offTimeMs).toBeCloseTo(plan.airtimeMs * 9, 9);
  });

  it('sends enough parity for 10 % loss (nothing observed): each node decodes with ≥ 0.99, one fragment fewer would not', () => {
    expect(plan.loss).toBe(DEFAULT_LOSS);
    expect(plan.lossObserved).toBe(false);
    // the binomial tail of the fragments received, each count weighted by the chance the parity rows
    // among them resolve the missing fragments over GF(2) (29 % with none to spare, 99 % with 7)
    const tail = (parity: number) => binomialTail(47 + parity, 0.9, 47, rankProbability);
    expect(plan.parity).toBe(16);
    expect(tail(16)).toBeGreaterThanOrEqual(DECODE_TARGET);
    expect(tail(15)).toBeLessThan(DECODE_TARGET);
    expect(plan.decodeProbability).toBeCloseTo(tail(16), 9);
    // the plain tail (every count of M or more decodes) would ask fewer: 12
    expect(binomialTail(59, 0.9, 47)).toBeGreaterThanOrEqual(0.99);
    expect(binomialTail(58, 0.9, 47)).toBeLessThan(0.99);
    // at least minRedundancy: ceil(0.05 · 47) = 3, far below
    expect(plan.parity).toBeGreaterThanOrEqual(Math.ceil(0.05 * 47));
  });

  it('lasts the duty-cycle minimum: total air time / duty cycle, no more than 1.25 × it', () => {
    expect(plan.totalAirtimeMs).toBeCloseTo(63 * 368.896, 6);
    expect(plan.dutyCycleMinimumMs).toBeCloseTo(63 * 368.896 * 10, 6);
    expect(plan.durationMs).toBeGreaterThanOrEqual(plan.dutyCycleMinimumMs - 1e-6);
    expect(plan.durationMs).toBeLessThanOrEqual(1.25 * plan.dutyCycleMinimumMs);
    // about 3 min 52 s for 63 fragments
    expect(Math.round(plan.durationMs / 1000)).toBe(232);
  });

  it('derives the class C window from the plan: 2^9 s = 512 s covers the lead and 1.25 × the multicast (300.5 s), 2^8 would not', () => {
    expect(plan.windowMs).toBeCloseTo(10_000 + 1.25 * plan.durationMs, 6);
    expect(plan.timeOut).toBe(9);
    expect(2 ** plan.timeOut * 1000).toBeGreaterThanOrEqual(plan.windowMs);
    expect(2 ** (plan.timeOut - 1) * 1000).toBeLessThan(plan.windowMs);
  });

  it("derives the session's bound from the plan, never a fixed margin: setup answers, the window, the repair rounds", () => {
    expect(plan.sessionTimeoutMs).toBeGreaterThan(SETUP_STEPS * TEN_KIB.answerTimeoutMs + plan.windowMs + REPAIR_ROUNDS * TEN_KIB.answerTimeoutMs);
    // a slower multicast (a bigger image) gets a longer bound by its own figures
    const bigger = planSession({ ...TEN_KIB, imageBytes: 320 * 1024 });
    expect(bigger.sessionTimeoutMs - plan.sessionTimeoutMs).toBeGreaterThan(bigger.windowMs - plan.windowMs - 1);
    expect(bigger.timeOut).toBeGreaterThan(plan.timeOut);
  });
});

describe('fragment size and loss', () => {
  it('the unicast repair road caps the fragment: with RX2 at DR0 (51 bytes) fragments are 48 bytes', () => {
    const capped = planSession({ ...TEN_KIB, repairDr: 0 });
    expect(capped.fragSize).toBe(48);
    expect(capped.fragments).toBe(Math.ceil(10_240 / 48));
    // the repair road's own pacing: a DR0 frame's air time over the duty cycle
    expect(capped.repairIntervalMs).toBeCloseTo(airtime(48 + 16, 0) / 0.1, 6);
  });

  it('an observed loss sizes the parity: less loss, less parity; never below minRedundancy', () => {
    const low = planSession({ ...TEN_KIB, loss: 0.01 });
    const high = planSession({ ...TEN_KIB, loss: 0.3 });
    expect(low.lossObserved).toBe(true);
    expect(low.parity).toBeLessThan(16);
    expect(high.parity).toBeGreaterThan(16);
    expect(decodeProbability(high.fragments, high.fragments + high.parity, 0.3)).toBeGreaterThanOrEqual(DECODE_TARGET);
    const none = planSession({ ...TEN_KIB, loss: 0, minRedundancy: 0.2 });
    expect(none.parity).toBe(Math.ceil(0.2 * 47));
  });

  it("a session plans for its worst node: a node's own loss, else its groups', else the default", () => {
    expect(sessionLoss([{ own: null, group: null }])).toBeNull();
    expect(sessionLoss([{ own: 0.02, group: 0.5 }, { own: null, group: 0.04 }])).toBe(0.04);
    expect(sessionLoss([{ own: 0.02, group: null }, { own: null, group: null }])).toBe(DEFAULT_LOSS);
  });

  it('an image no TS004 session carries (more than 16383 fragments) is refused with E_FW_ARTIFACT', () => {
    let thrown: unknown;
    try {
      planSession({ ...TEN_KIB, imageBytes: 16_384 * 219 });
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(FirmwareError);
    expect((thrown as FirmwareError).code).toBe('E_FW_ARTIFACT');
  });

  it('a frequency in no sub-band is refused', () => {
    expect(() => planSession({ ...TEN_KIB, frequency: 870_500_000 })).toThrow(/no EU868 sub-band/);
  });

  it('the class C exponent is the smallest that covers, at most 15 (TS005: 4 bits)', () => {
    expect(timeOutExponent(1000)).toBe(0);
    expect(timeOutExponent(1001)).toBe(1);
    expect(timeOutExponent(300_506)).toBe(9);
    expect(timeOutExponent(1e9)).toBe(MAX_TIMEOUT_EXPONENT);
  });
});
