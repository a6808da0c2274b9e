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
import { MAX_FRAG_N } from '../../edge/drivers/lorawan/app/index.js';
import {
  DECODE_TARGET,
  decodeProbability,
  DEFAULT_LOSS,
  fewestPassing,
  MAX_PLANNED_LOSS,
  MAX_TIMEOUT_EXPONENT,
  parityFor,
  planSession,
  rankProbability,
  remainingMs,
  repairCount,
  REPAIR_MARGIN,
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

/** decodeProbability, counting its evaluations (the planner's work: each is one pass over the tail) */
function counted(): { probability: typeof decodeProbability; readonly calls: number } {
  let calls = 0;
  return {
    probability: (m, sent, loss) => {
      calls++;
      return decodeProbability(m, sent, loss);
    },
    get calls() {
      return calls;
    },
  };
}

/** ⌈log2(n)⌉ + 2: what a binary search over n candidates evaluates, with its first probe and the answer's probability */
const searchBound = (n: number) => Math.ceil(Math.log2(n)) + 2;

describe('the planner in its worst cases', () => {
  it('32 KiB at a loss of 0.9 (a node that missed the window): planned for MAX_PLANNED_LOSS, the others are left to repair', () => {
    const plan = planSession({ ...TEN_KIB, imageBytes: 32 * 1024, repairDr: 0, loss: 0.9 });
    expect(plan.fragments).toBe(Math.ceil((32 * 1024) / 48));
    expect(plan).toMatchObject({ loss: MAX_PLANNED_LOSS, lossObserved: true });
    expect(plan.decodeProbability).toBeGreaterThanOrEqual(DECODE_TARGET);
    // the fewest that do: one parity fragment less would not
    expect(decodeProbability(plan.fragments, plan.fragments + plan.parity - 1, MAX_PLANNED_LOSS)).toBeLessThan(DECODE_TARGET);
  });

  it('the parity is found by binary search: a handful of evaluations of the tail, whatever the image and the loss', () => {
    for (const [m, loss] of [
      [683, MAX_PLANNED_LOSS],
      [47, 0.1],
      [8000, MAX_PLANNED_LOSS],
      [16_000, 0.3],
    ] as const) {
      const c = counted();
      const { parity } = parityFor(m, loss, 0.05, c.probability);
      expect(c.calls, `M = ${m}, loss ${loss}`).toBeLessThanOrEqual(searchBound(MAX_FRAG_N));
      // the same answer a step-by-step walk finds
      const sent = m + parity;
      if (sent < MAX_FRAG_N) expect(decodeProbability(m, sent, loss)).toBeGreaterThanOrEqual(DECODE_TARGET);
      if (parity > Math.ceil(0.05 * m)) expect(decodeProbability(m, sent - 1, loss)).toBeLessThan(DECODE_TARGET);
    }
  });

  it('repair counts too; a count TS004 cannot number is refused before any search', () => {
    const c = counted();
    const count = repairCount(600, 0.9, c.probability);
    expect(c.calls).toBeLessThanOrEqual(searchBound(MAX_FRAG_N));
    expect(decodeProbability(600, count, 0.9)).toBeGreaterThanOrEqual(DECODE_TARGET);
    expect(decodeProbability(600, count - 1, 0.9)).toBeLessThan(DECODE_TARGET);
    const none = counted();
    expect(repairCount(MAX_FRAG_N, 0.5, none.probability)).toBe(MAX_FRAG_N + REPAIR_MARGIN);
    expect(none.calls).toBe(0);
  });

  it('fewestPassing finds the first n a monotone test passes, or the top of the range', () => {
    for (let first = 3; first <= 20; first++) expect(fewestPassing(3, 20, (n) => n >= first)).toBe(first);
    expect(fewestPassing(3, 20, () => false)).toBe(20);
    expect(fewestPassing(5, 5, () => false)).toBe(5);
  });
});

describe("a session's bound once it is under way", () => {
  it("what is left of the plan: the plan's own bound at its start, less with the fragments sent, answers and repairs kept", () => {
    const plan = planSession(TEN_KIB);
    const all = plan.fragments + plan.parity;
    const at = (fragmentsLeft: number, answers = SETUP_STEPS) => remainingMs(plan, { answers, leadMs: TEN_KIB.startLeadMs, fragmentsLeft, answerTimeoutMs: TEN_KIB.answerTimeoutMs });
    expect(at(all)).toBeCloseTo(plan.sessionTimeoutMs, 6);
    // half the fragments sent: half the window's multicast less
    expect(at(all) - at(all / 2)).toBeCloseTo((all / 2) * (plan.airtimeMs + plan.offTimeMs) * 1.25, 6);
    // after the multicast: the repairs and the last answer are still ahead
    expect(at(0, 1)).toBeGreaterThan(REPAIR_ROUNDS * TEN_KIB.answerTimeoutMs);
  });
});
