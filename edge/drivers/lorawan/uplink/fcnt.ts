/**
 * 32-bit frame counters from the 16 bits on the air (LoRaWAN 1.0.3 §4.3.1.5): the server
 * keeps the full counter and infers the 16 MSBs; a counter that does not move forward is a
 * replay; a jump of MAX_FCNT_GAP or more is rejected (LoRaWAN 1.0.1 §4.3.1.5, MAX_FCNT_GAP).
 */
import { FCntError } from '../errors.js';

export const MAX_FCNT_GAP = 16_384;

/**
 * The full counter for `fCnt16` given the last accepted one (null: none yet in this
 * session). Throws FCntError('replay') or FCntError('fcnt_gap').
 */
export function reconstructFCnt(last: number | null, fCnt16: number, maxGap = MAX_FCNT_GAP, firstAnywhere = false): number {
  const low = fCnt16 & 0xffff;
  if (last === null) {
    // First uplink of the session. OTAA counters start at 0 (§6.2.5), so a jump is refused;
    // an ABP node may have been counting long before this gateway knew it (`firstAnywhere`).
    if (low >= maxGap && !firstAnywhere) throw new FCntError('fcnt_gap', `first FCnt ${low} is ${maxGap} or more past 0`);
    return low;
  }
  // Forward distance, modulo 2^16, from the last accepted counter.
  const delta = (low - (last & 0xffff) + 0x10000) & 0xffff;
  if (delta === 0) throw new FCntError('replay', `FCnt ${low} repeats the last accepted counter ${last}`);
  if (delta > 0x10000 - maxGap) throw new FCntError('replay', `FCnt ${low} is behind the last accepted counter ${last}`);
  if (delta >= maxGap) throw new FCntError('fcnt_gap', `FCnt ${low} jumps ${delta} past ${last} (MAX_FCNT_GAP ${maxGap})`);
  const full = last + delta;
  if (full > 0xffffffff) throw new FCntError('replay', 'the 32-bit uplink counter rolled over: the session must be renewed');
  return full;
}

/** The two most significant bytes of a 32-bit counter as lora-packet expects them (little-endian, as in B0/Ai). */
export function fCntMsb(full: number): Buffer {
  const hi = Math.floor(full / 0x10000) & 0xffff;
  return Buffer.from([hi & 0xff, hi >> 8]);
}
