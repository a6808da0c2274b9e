/**
 * Adaptive data rate, network side. LoRaWAN 1.0.3 §4.3.1.1 defines the mechanism (the ADR bit,
 * LinkADRReq) but leaves the algorithm to the network server; this is ChirpStack's default one
 * (chirpstack/src/adr/default.rs), extended as issue 18 asks: when the SNR drops, the power goes
 * back up first and then the data rate comes down. Pure: the handler (`mac/handler.ts`) keeps the
 * SNR history and turns a decision into a LinkADRReq.
 */
import { dataRate } from '../region/eu868.js';
import type { AdrDecision, AdrInput } from './types.js';

/**
 * The SNR (dB) a LoRa demodulator needs per spreading factor (Semtech SX127x datasheet, the
 * figures ChirpStack's region configuration carries as `required_snr_for_dr`).
 */
export const REQUIRED_SNR_DB: Record<number, number> = { 7: -7.5, 8: -10, 9: -12.5, 10: -15, 11: -17.5, 12: -20 };

/** dB a step is worth: one data rate is ~2.5 dB of required SNR, one TX power index 2 dB (ChirpStack's step). */
const STEP_DB = 3;

/** RP002-1.0.3 §2.4.3, EU868 TXPower table: index 0 is MaxEIRP (16 dBm by default), each index 2 dB less, 7 the last defined. */
export const EU868_MAX_TX_POWER_INDEX = 7;
const EU868_MAX_EIRP_DBM = 16;

/** dBm of an EU868 TXPower index (0..7). */
export function EU868_TX_POWER_DBM_OF(index: number): number {
  if (!Number.isInteger(index) || index < 0 || index > EU868_MAX_TX_POWER_INDEX) {
    throw new RangeError(`txPowerIndex: expected an integer 0..${EU868_MAX_TX_POWER_INDEX}, got ${index}`);
  }
  return EU868_MAX_EIRP_DBM - 2 * index;
}

/** dBm of a TX power index as stored or reported: null for none, or one EU868 does not define. */
export function eu868TxPowerDbmOrNull(index: number | null): number | null {
  return index !== null && Number.isInteger(index) && index >= 0 && index <= EU868_MAX_TX_POWER_INDEX ? EU868_TX_POWER_DBM_OF(index) : null;
}

interface Radio {
  dr: number;
  txPowerIndex: number;
}

/** Positive steps: the data rate up to maxDr, then the power down (the index up) to maxTxPowerIndex. */
function stepUp(from: Radio, steps: number, input: AdrInput): Radio {
  let { dr, txPowerIndex } = from;
  for (let i = 0; i < steps; i++) {
    if (dr < input.maxDr) dr++;
    else if (txPowerIndex < input.maxTxPowerIndex) txPowerIndex++;
    else break;
  }
  return { dr, txPowerIndex };
}

/**
 * Negative steps: the power up (the index down) to 0, then the data rate down to minDr. ChirpStack
 * stops after the power and leaves a node with a worsening link at its data rate until it loses
 * it; lowering the data rate here is the "raises it back when SNR drops".
 */
function stepDown(from: Radio, steps: number, input: AdrInput): Radio {
  let { dr, txPowerIndex } = from;
  for (let i = 0; i < steps; i++) {
    if (txPowerIndex > 0) txPowerIndex--;
    else if (dr > input.minDr) dr--;
    else break;
  }
  return { dr, txPowerIndex };
}

/**
 * What the node should run at, from the best SNR of its last `historySize` uplinks; null while
 * the history is shorter (ChirpStack waits for a full history too) or when nothing changes.
 */
export function adrDecide(input: AdrInput): AdrDecision | null {
  if (input.snrHistory.length < input.historySize) return null;
  const snrMax = Math.max(...input.snrHistory.slice(-input.historySize));
  if (!Number.isFinite(snrMax)) return null;
  const requiredSnr = REQUIRED_SNR_DB[dataRate(input.dr).sf]!;
  // Truncated toward zero as ChirpStack's `as isize`: 2.9 dB above or below the margin is no step.
  // `+ 0` turns −0 into 0.
  const nStep = Math.trunc((snrMax - requiredSnr - input.margin) / STEP_DB) + 0;
  // ChirpStack: a node above the allowed maximum comes down to it, whatever the SNR says.
  const from: Radio = { dr: Math.min(input.dr, input.maxDr), txPowerIndex: input.txPowerIndex };
  const to = nStep >= 0 ? stepUp(from, nStep, input) : stepDown(from, -nStep, input);
  if (to.dr === input.dr && to.txPowerIndex === input.txPowerIndex) return null;
  // nbTrans stays as it is: ChirpStack derives it from the uplink loss rate, which this input
  // does not carry; the node keeps its repetitions until something else changes them.
  return { dr: to.dr, txPowerIndex: to.txPowerIndex, nbTrans: input.nbTrans, nStep, snrMax, requiredSnr };
}
