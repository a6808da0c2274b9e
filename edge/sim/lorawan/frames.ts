/**
 * Downlink data frames as a device checks and reads them (LoRaWAN 1.0.3 §4.3.1.5, §4.4, §4.3.3),
 * for the node's own session and for its multicast groups (TS005 §: a multicast frame is a data
 * down frame whose DevAddr is McAddr, signed with McNwkSKey and encrypted with McAppSKey).
 */
import { loraPacket, type LoraPacket } from '../../drivers/lorawan/loraPacket.js';
import { fCntMsb } from '../../drivers/lorawan/uplink/fcnt.js';

/** The smallest 32-bit counter at or above `min` whose low 16 bits are `low` (§4.3.1.5: only those travel). */
export function counterAtLeast(min: number, low: number): number {
  let full = Math.floor(min / 0x10000) * 0x10000 + (low & 0xffff);
  if (full < min) full += 0x10000;
  return full;
}

/** The frame's 16-bit FCnt as sent. */
export function fCnt16(p: LoraPacket): number {
  return p.FCnt!.readUInt16BE(0);
}

/** §4.4: the MIC over the frame with the full counter. */
export function micOk(p: LoraPacket, nwkSKey: Buffer, fCnt: number): boolean {
  return loraPacket.verifyMIC(p, nwkSKey, undefined, fCntMsb(fCnt));
}

/** §4.3.3: FRMPayload in clear (FPort 0: NwkSKey, else AppSKey); empty when there is none. */
export function plainPayload(p: LoraPacket, appSKey: Buffer, nwkSKey: Buffer, fCnt: number): Buffer {
  if (!p.FRMPayload || p.FRMPayload.length === 0) return Buffer.alloc(0);
  return loraPacket.decrypt(p, appSKey, nwkSKey, fCntMsb(fCnt));
}
