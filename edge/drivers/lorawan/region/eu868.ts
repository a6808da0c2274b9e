/**
 * EU863-870 regional parameters (LoRaWAN Regional Parameters RP002-1.0.3 §2.4) as far as a
 * single-cabinet network server needs them: data rates, RX1/RX2 parameters, sub-bands.
 */

export interface DataRate {
  sf: number;
  bw: number; // kHz
}

/** RP002 §2.4.3 Table 14: DR0..DR6 are LoRa (DR6 is SF7BW250); DR7 (FSK) is not used here. */
export const EU868_DATA_RATES: readonly DataRate[] = [
  { sf: 12, bw: 125 },
  { sf: 11, bw: 125 },
  { sf: 10, bw: 125 },
  { sf: 9, bw: 125 },
  { sf: 8, bw: 125 },
  { sf: 7, bw: 125 },
  { sf: 7, bw: 250 },
];

/**
 * RP002 §2.4.6 Table 16: the maximum FRMPayload N (bytes, FOpts empty) per data rate DR0..DR7
 * (repeater-compatible); the MACPayload M is N + 8 (FHDR without FOpts, FPort).
 */
export const EU868_MAX_PAYLOAD: readonly number[] = [51, 51, 51, 115, 222, 222, 222, 222];

/** N of `dr` (0 outside DR0..7). */
export function maxPayload(dr: number): number {
  return EU868_MAX_PAYLOAD[dr] ?? 0;
}

/** Whether a PHYPayload fits `dr`: MHDR (1) + MACPayload (≤ N + 8) + MIC (4). */
export function phyFits(phyBytes: number, dr: number): boolean {
  return phyBytes - 5 <= maxPayload(dr) + 8;
}

/** RP002 §2.4.7: RX2 default frequency 869.525 MHz, DR0. */
export const EU868_RX2_FREQ_MHZ = 869.525;
export const EU868_RX2_DR = 0;
/** RP002 §2.4.6: max EIRP 16 dBm; 14 dBm is what the concentrators ship with. */
export const EU868_TX_POWER_DBM = 14;

/** "SF7BW125" → { sf: 7, bw: 125 }; null when not a LoRa data-rate string. */
export function parseDatr(datr: string): DataRate | null {
  const m = /^SF(\d{1,2})BW(\d{2,3})$/.exec(datr);
  if (!m) return null;
  const sf = Number(m[1]);
  const bw = Number(m[2]);
  if (sf < 7 || sf > 12 || (bw !== 125 && bw !== 250 && bw !== 500)) return null;
  return { sf, bw };
}

export function datrString(dr: DataRate): string {
  return `SF${dr.sf}BW${dr.bw}`;
}

/** The EU868 DR index of a LoRa data rate, or null. */
export function drIndex(dr: DataRate): number | null {
  const i = EU868_DATA_RATES.findIndex((d) => d.sf === dr.sf && d.bw === dr.bw);
  return i < 0 ? null : i;
}

export function dataRate(index: number): DataRate {
  const dr = EU868_DATA_RATES[Math.max(0, Math.min(EU868_DATA_RATES.length - 1, index))];
  return dr!;
}

/** RP002 §2.4.7 Table 17: RX1 DR = max(0, upstream DR − RX1DROffset) (offsets 0..5). RX1 uses the uplink frequency. */
export function rx1DataRate(uplinkDr: number, rx1DrOffset: number): number {
  return Math.max(0, uplinkDr - rx1DrOffset);
}

export interface SubBand {
  name: string;
  minMHz: number;
  maxMHz: number;
  /** duty cycle as a fraction (0.01 = 1 %) */
  dutyCycle: number;
}

/**
 * ETSI EN 300 220-2 (Rec. 70-03 annex 1) sub-bands as RP002 §2.4.3 lists them for EU868:
 * g (863–868) 1 %, g1 (868.0–868.6) 1 %, g2 (868.7–869.2) 0.1 %, g3 (869.4–869.65) 10 %,
 * g4 (869.7–870.0) 1 %. Bounds are inclusive; g1 is checked before g.
 */
export const EU868_SUB_BANDS: readonly SubBand[] = [
  { name: 'g1', minMHz: 868.0, maxMHz: 868.6, dutyCycle: 0.01 },
  { name: 'g2', minMHz: 868.7, maxMHz: 869.2, dutyCycle: 0.001 },
  { name: 'g3', minMHz: 869.4, maxMHz: 869.65, dutyCycle: 0.1 },
  { name: 'g4', minMHz: 869.7, maxMHz: 870.0, dutyCycle: 0.01 },
  { name: 'g', minMHz: 863.0, maxMHz: 868.0, dutyCycle: 0.01 },
];

export function subBandOf(freqMHz: number): SubBand | null {
  const eps = 1e-6;
  return EU868_SUB_BANDS.find((b) => freqMHz >= b.minMHz - eps && freqMHz <= b.maxMHz + eps) ?? null;
}
