/**
 * LoRa time on air, Semtech AN1200.13 "LoRa Modem Designer's Guide" §4 / SX1276 datasheet
 * §4.1.1.7:
 *   Tsym = 2^SF / BW
 *   Tpreamble = (nPreamble + 4.25) · Tsym
 *   nPayload = 8 + max(ceil((8·PL − 4·SF + 28 + 16·CRC − 20·IH) / (4·(SF − 2·DE))) · (CR + 4), 0)
 *   ToA = Tpreamble + nPayload · Tsym
 * DE (low data-rate optimisation) is on when Tsym ≥ 16 ms (SF11/SF12 at 125 kHz).
 */

export interface AirtimeParams {
  sf: number;
  /** kHz */
  bw: number;
  /** PHYPayload length in bytes */
  payloadBytes: number;
  /** coding rate 4/(4+cr): 1 for 4/5 (LoRaWAN) */
  cr?: number;
  /** LoRaWAN: uplinks carry a payload CRC, downlinks do not */
  crc?: boolean;
  preamble?: number;
  explicitHeader?: boolean;
}

/** Time on air in milliseconds. */
export function timeOnAirMs(p: AirtimeParams): number {
  const cr = p.cr ?? 1;
  const crc = p.crc ?? true;
  const preamble = p.preamble ?? 8;
  const ih = (p.explicitHeader ?? true) ? 0 : 1;
  const tSym = 2 ** p.sf / p.bw; // ms, since bw is in kHz
  const de = tSym >= 16 ? 1 : 0;
  const tPreamble = (preamble + 4.25) * tSym;
  const num = 8 * p.payloadBytes - 4 * p.sf + 28 + 16 * (crc ? 1 : 0) - 20 * ih;
  const nPayload = 8 + Math.max(Math.ceil(num / (4 * (p.sf - 2 * de))) * (cr + 4), 0);
  return tPreamble + nPayload * tSym;
}

/** Parses "4/5" … "4/8" into the CR of the formula (1..4); defaults to 1. */
export function codingRate(codr: string | undefined): number {
  const m = codr === undefined ? null : /^4\/([5-8])$/.exec(codr);
  return m ? Number(m[1]) - 4 : 1;
}
