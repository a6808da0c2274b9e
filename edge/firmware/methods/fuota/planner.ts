/**
 * The plan of one FUOTA session (issue 18 Deliver 4), a pure function of the image, the nodes, the
 * radio facts and the loss observed before: how the image is cut (TS004 fragment size, M), how
 * much parity goes with it, how the fragments are paced under the sub-band's duty cycle, and how
 * long everything may take, each figure derived from the ones before it (never a fixed margin:
 * ChirpStack issue #1029 deleted a multicast group 60 s after enqueueing 34 minutes of fragments).
 *
 * Fragment size: the largest a DataFragment carries at the multicast data rate (its FRMPayload N,
 * RP002 §2.4.6, less the 3 bytes of CID and Index&N, TS004 §3.4), and no larger than the unicast
 * road of the repair carries (a repair fragment is the same size, sent to one node at the repair
 * data rate). Loss is per frame (a collision, a fade), nearly whatever its length, so fewer, larger
 * frames lose the least and spend the least air time on headers and preambles; a node's memory is
 * for the whole block, whatever its cut (TS004 §3.2: a node that lacks it refuses the setup).
 *
 * Parity: enough that each node decodes with probability ≥ DECODE_TARGET, given the fraction of
 * fragments it is expected to miss: the binomial tail of the fragments received, each count weighted
 * by the chance that the parity rows received resolve the missing fragments (the TS004 parity
 * matrix is pseudo-random over GF(2): e rows more than unknowns are independent with probability
 * ∏_{i>e} (1 − 2^-i), 29 % for e = 0, 99 % for e = 7); never less than minRedundancy.
 *
 * The loss planned for is capped at MAX_PLANNED_LOSS: a node that lost more (it missed the window,
 * it sits behind a wall) is an outlier the unicast repair takes up or fails, not a reason to send
 * the whole session's parity for it. The parity and the repair counts are found by binary search
 * on the decode probability, which rises with the fragments sent: a few dozen evaluations of the
 * tail at most, whatever the image and the loss.
 *
 * Pacing: each fragment is followed by its off-time, airtime·(1/dutyCycle − 1), so the sub-band's
 * duty cycle holds for every transmission, not only over the hour (ETSI EN 300 220-2: the
 * ratio over any hour, which a per-transmission off-time implies); the planned multicast lasts the
 * duty-cycle minimum (total air time / duty cycle) and no more.
 */
import type { RadioFacts } from '../../../drivers/lorawan/api.js';
import { DATA_FRAGMENT_OVERHEAD, MAX_FRAG_N } from '../../../drivers/lorawan/app/index.js';
import { FirmwareError } from '../../errors.js';

/** a node decodes the block from the multicast alone with at least this probability */
export const DECODE_TARGET = 0.99;
/** the loss assumed for a node nothing was observed of (nor of its group) */
export const DEFAULT_LOSS = 0.1;
/** the most loss a session's parity is sized for: a node that loses more is repaired by unicast, or fails */
export const MAX_PLANNED_LOSS = 0.5;
/** the most loss a node's own repair is sized for (1 would ask for an infinity of fragments) */
const MAX_REPAIR_LOSS = 0.9;
/** LoRaWAN 1.0.3 §4: MHDR (1) + FHDR without FOpts (7) + FPort (1) + MIC (4) around the FRMPayload */
export const FRAME_OVERHEAD = 13;
/** TS005 §4.5 McClassCSessionReq: SessionTimeOut is 4 bits, the window 2^timeOut s */
export const MAX_TIMEOUT_EXPONENT = 15;
/** the multicast may take this much longer than planned (TX_ACK errors sent again, the ledger holding a frame) */
export const WINDOW_MARGIN = 1.25;
/** answers to a unicast request each step waits for at most (lorawan.fuota.answerTimeout each): version, package, group, fragmentation, class C */
export const SETUP_STEPS = 5;
/** rounds of FragSessionStatusReq and unicast repair before a node that still misses fragments fails */
export const REPAIR_ROUNDS = 3;
/** parity fragments sent beyond what a node reports missing, per repair round (the GF(2) rank margin above) */
export const REPAIR_MARGIN = 2;

export interface PlanInput {
  /** bytes of the image */
  imageBytes: number;
  /** multicast data rate and frequency (lorawan.fuota.dr, .frequency) */
  dr: number;
  frequency: number;
  /** the data rate of the unicast repair road (class C unicast goes on RX2: lorawan.rx2Dr); undefined: no cap */
  repairDr?: number | undefined;
  /** the fraction of fragments the worst node is expected to miss (observed before); null: unknown (DEFAULT_LOSS) */
  loss: number | null;
  /** lorawan.fuota.minRedundancy */
  minRedundancy: number;
  /** lorawan.fuota.answerTimeout (ms) */
  answerTimeoutMs: number;
  /** ms from the McClassCSessionReq to the opening of the class C window (the answers arrive meanwhile) */
  startLeadMs: number;
  radio: Pick<RadioFacts, 'maxPayload' | 'downlinkAirtimeMs' | 'dutyCycleAt'>;
}

export interface FuotaPlan {
  /** bytes of one fragment (FragSize) */
  fragSize: number;
  /** uncoded fragments M (NbFrag) */
  fragments: number;
  /** zero bytes at the end of the last fragment (Padding) */
  padding: number;
  /** parity fragments sent in the multicast after the M uncoded ones */
  parity: number;
  /** the loss the parity is sized for, and whether it was observed */
  loss: number;
  lossObserved: boolean;
  /** the probability that one node decodes from the multicast alone */
  decodeProbability: number;
  dr: number;
  frequency: number;
  /** PHYPayload bytes of one fragment's frame */
  phyBytes: number;
  /** time on air of one fragment (ms) */
  airtimeMs: number;
  /** silence after each fragment (ms): airtime·(1/dutyCycle − 1) */
  offTimeMs: number;
  dutyCycle: number;
  /** of the M + parity fragments (ms) */
  totalAirtimeMs: number;
  /** totalAirtime / dutyCycle: no schedule on this sub-band sends them faster */
  dutyCycleMinimumMs: number;
  /** the multicast as planned: every fragment and its off-time */
  durationMs: number;
  /** the unicast repair road: its data rate, and one repair fragment with its off-time (ms; 869.525 MHz, RX2, shares the multicast's sub-band by default) */
  repairDr: number;
  repairIntervalMs: number;
  /** the class C window opens this long after the McClassCSessionReq (the answers of the setup come meanwhile) */
  startLeadMs: number;
  /** how long the class C window must stay open: start lead + duration × WINDOW_MARGIN */
  windowMs: number;
  /** McClassCSessionReq SessionTimeOut: the window is 2^timeOut s (capped at MAX_TIMEOUT_EXPONENT; a longer multicast reopens it) */
  timeOut: number;
  /** the session's whole bound (ms): setup answers, the window, REPAIR_ROUNDS of status and repair */
  sessionTimeoutMs: number;
}

/** The plan of a session; throws FirmwareError E_FW_ARTIFACT for an image no TS004 session carries. */
export function planSession(input: PlanInput): FuotaPlan {
  const { radio, dr, frequency } = input;
  const dutyCycle = radio.dutyCycleAt(frequency);
  if (dutyCycle === null || !(dutyCycle > 0)) throw new FirmwareError('E_FW_TRANSFER', `lorawan.fuota.frequency ${frequency} Hz is in no EU868 sub-band`);
  const fragSize = fragmentSize(input);
  const fragments = Math.ceil(input.imageBytes / fragSize);
  if (input.imageBytes < 1 || fragments > MAX_FRAG_N) {
    throw new FirmwareError('E_FW_ARTIFACT', `an image of ${input.imageBytes} bytes is not 1..${MAX_FRAG_N * fragSize} bytes, what one TS004 session carries in fragments of ${fragSize} bytes`);
  }
  const lossObserved = input.loss !== null;
  const loss = clampLoss(input.loss ?? DEFAULT_LOSS, MAX_PLANNED_LOSS);
  const { parity, probability } = parityFor(fragments, loss, input.minRedundancy);
  const phyBytes = fragSize + DATA_FRAGMENT_OVERHEAD + FRAME_OVERHEAD;
  const airtimeMs = radio.downlinkAirtimeMs(phyBytes, dr);
  const offTimeMs = airtimeMs * (1 / dutyCycle - 1);
  const total = fragments + parity;
  const totalAirtimeMs = total * airtimeMs;
  const durationMs = total * (airtimeMs + offTimeMs);
  const windowMs = input.startLeadMs + durationMs * WINDOW_MARGIN;
  const repairDr = input.repairDr ?? dr;
  const plan = {
    fragSize,
    fragments,
    padding: fragments * fragSize - input.imageBytes,
    parity,
    loss,
    lossObserved,
    decodeProbability: probability,
    dr,
    frequency,
    phyBytes,
    airtimeMs,
    offTimeMs,
    dutyCycle,
    totalAirtimeMs,
    dutyCycleMinimumMs: totalAirtimeMs / dutyCycle,
    durationMs,
    repairDr,
    repairIntervalMs: radio.downlinkAirtimeMs(phyBytes, repairDr) / dutyCycle,
    startLeadMs: input.startLeadMs,
    windowMs,
    timeOut: timeOutExponent(windowMs),
  };
  return { ...plan, sessionTimeoutMs: remainingMs(plan, { answers: SETUP_STEPS, leadMs: input.startLeadMs, fragmentsLeft: total, answerTimeoutMs: input.answerTimeoutMs }) };
}

/**
 * How long what is left of a session may take from now (ms), by its plan: `answers` unicast
 * answers first (the setup's, a status), the window's lead, the fragments left with the window's
 * margin, REPAIR_ROUNDS of status and repair, and the last answer (the bound a session sets when it
 * is planned, and again when it resumes or reopens its window: an outage or a wait is not the plan's).
 */
export function remainingMs(
  plan: Pick<FuotaPlan, 'airtimeMs' | 'offTimeMs' | 'fragments' | 'parity' | 'loss' | 'repairIntervalMs'>,
  o: { answers: number; leadMs: number; fragmentsLeft: number; answerTimeoutMs: number },
): number {
  const multicastMs = Math.max(0, o.fragmentsLeft) * (plan.airtimeMs + plan.offTimeMs) * WINDOW_MARGIN;
  const repairMs = REPAIR_ROUNDS * (o.answerTimeoutMs + repairRoundMs(plan, missingAfter(plan.fragments + plan.parity, plan.loss, plan.fragments)));
  return o.answers * o.answerTimeoutMs + o.leadMs + multicastMs + repairMs + o.answerTimeoutMs;
}

/** The largest fragment the multicast data rate (and the repair road) carries after the DataFragment header. */
function fragmentSize(input: PlanInput): number {
  const roads = [input.radio.maxPayload(input.dr), ...(input.repairDr === undefined ? [] : [input.radio.maxPayload(input.repairDr)])];
  // FragSize is one octet (TS004 §3.2)
  const size = Math.min(255, ...roads) - DATA_FRAGMENT_OVERHEAD;
  if (size < 1) throw new FirmwareError('E_FW_TRANSFER', `data rate ${input.dr} carries no DataFragment (FRMPayload ${Math.min(...roads)} bytes)`);
  return size;
}

function clampLoss(loss: number, max: number): number {
  return Number.isFinite(loss) ? Math.min(max, Math.max(0, loss)) : DEFAULT_LOSS;
}

/** The fewest parity fragments (at least minRedundancy·M, at most what TS004 numbers) that let a node decode with DECODE_TARGET. */
export function parityFor(m: number, loss: number, minRedundancy: number, probability = decodeProbability): { parity: number; probability: number } {
  const least = Math.min(Math.ceil(minRedundancy * m), MAX_FRAG_N - m);
  const sent = fewestPassing(m + least, MAX_FRAG_N, (n) => probability(m, n, loss) >= DECODE_TARGET);
  return { parity: sent - m, probability: probability(m, sent, loss) };
}

/**
 * The smallest n in [lo, hi] for which `passes` holds, `passes` being monotone (false … false
 * true … true); hi when none does. ⌈log2(hi − lo + 1)⌉ + 1 evaluations at most.
 */
export function fewestPassing(lo: number, hi: number, passes: (n: number) => boolean): number {
  if (lo >= hi || passes(lo)) return Math.min(lo, hi);
  // passes(lo) is false; find the first true in (lo, hi], hi standing in when none is
  let below = lo;
  let above = hi;
  while (above - below > 1) {
    const mid = below + Math.floor((above - below) / 2);
    if (passes(mid)) above = mid;
    else below = mid;
  }
  return above;
}

/**
 * The probability that a node missing each of `sent` fragments independently with `loss` can
 * reassemble M: Σ_k P(k received) · P(the k − M extra rows leave no unknown unresolved).
 */
export function decodeProbability(m: number, sent: number, loss: number): number {
  if (sent < m) return 0;
  if (loss <= 0) return 1;
  const lnP = Math.log(1 - loss);
  const lnQ = Math.log(loss);
  let lnChoose = 0; // ln C(sent, sent) … walked down
  let sum = 0;
  for (let k = sent; k >= m; k--) {
    if (k < sent) lnChoose += Math.log((k + 1) / (sent - k));
    sum += Math.exp(lnChoose + k * lnP + (sent - k) * lnQ) * rankProbability(k - m);
  }
  return Math.min(1, sum);
}

/** ∏_{i>extra} (1 − 2^-i): the chance that random GF(2) rows, `extra` more than the unknowns, resolve them all. */
export function rankProbability(extra: number): number {
  return extra < RANK_TABLE.length ? RANK_TABLE[extra]! : 1;
}

/** rankProbability by its extra rows, computed once: past 64 extra rows it is 1 to double precision */
const RANK_TABLE: readonly number[] = Array.from({ length: 64 }, (_, extra) => {
  let p = 1;
  for (let i = extra + 1; i <= extra + 64; i++) p *= 1 - 2 ** -i;
  return p;
});

/** The smallest exponent whose window 2^e s covers `ms` (at most MAX_TIMEOUT_EXPONENT). */
export function timeOutExponent(ms: number): number {
  const e = Math.max(0, Math.ceil(Math.log2(Math.max(1, ms / 1000))));
  return Math.min(MAX_TIMEOUT_EXPONENT, e);
}

/** The repair fragments a node is expected to need after the multicast: for its expected shortfall (at least one fragment). */
function missingAfter(sent: number, loss: number, m: number): number {
  return repairCount(Math.max(1, Math.ceil(m - sent * (1 - loss))), loss);
}

/**
 * The parity fragments a repair round sends a node that misses `missing`: enough that it gets what
 * it needs with DECODE_TARGET at the loss it showed (the same tail as the multicast's, its unknowns
 * now `missing`), and never fewer than missing + REPAIR_MARGIN; at most MAX_FRAG_N (more than TS004
 * numbers: the caller refuses it).
 */
export function repairCount(missing: number, loss: number, probability = decodeProbability): number {
  const l = clampLoss(loss, MAX_REPAIR_LOSS);
  const least = missing + REPAIR_MARGIN;
  if (least >= MAX_FRAG_N) return least;
  return fewestPassing(least, MAX_FRAG_N, (n) => probability(missing, n, l) >= DECODE_TARGET);
}

/** How long sending `fragments` repair fragments takes, each followed by its off-time on the repair road. */
export function repairRoundMs(plan: Pick<FuotaPlan, 'repairIntervalMs'>, fragments: number): number {
  return fragments * plan.repairIntervalMs;
}

/**
 * The loss a session plans for: the worst of its nodes', each the node's own observation, else its
 * groups' (the mean of their members observed), else unknown (null when nothing at all is known).
 */
export function sessionLoss(nodes: readonly { own: number | null; group: number | null }[]): number | null {
  const known = nodes.map((n) => n.own ?? n.group);
  if (known.every((l) => l === null)) return null;
  // a node nothing is known of counts with the default loss
  return Math.max(...known.map((l) => l ?? DEFAULT_LOSS));
}
