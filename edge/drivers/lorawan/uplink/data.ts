/**
 * Data uplinks (LoRaWAN 1.0.3 §4): parse the PHYPayload with lora-packet, find the session
 * by DevAddr, reconstruct the 32-bit FCnt, verify the MIC with the NwkSKey (§4.4), then
 * check the counter (§4.3.1.5) and decrypt the FRMPayload (§4.3.3). Pure: the caller
 * commits the new counter once the frame is accepted.
 */
import { loraPacket, type LoraPacket } from '../loraPacket.js';
import { FCntError, FrameError, MicError, UnknownDeviceError } from '../errors.js';
import type { Session } from '../storage/sessions.js';
import { fCntMsb, MAX_FCNT_GAP, reconstructFCnt } from './fcnt.js';

export interface DataUplink {
  session: Session;
  devAddr: string;
  fCnt16: number;
  /** the reconstructed 32-bit counter */
  fCnt: number;
  confirmed: boolean;
  /** FCtrl.ACK: the node acknowledges the last confirmed downlink */
  ack: boolean;
  adr: boolean;
  /** FCtrl.ADRACKReq: the node asks for a downlink (§4.3.1.1) */
  adrAckReq: boolean;
  /** MAC commands in FOpts (plaintext in 1.0.x, §4.3.1.6) */
  fOpts: Buffer;
  fPort: number | null;
  /** decrypted FRMPayload (empty when there is none; FPort 0: MAC commands) */
  payload: Buffer;
}

/** Parses a PHYPayload; throws FrameError('malformed_frame'). */
export function parsePhy(phy: Buffer): LoraPacket {
  try {
    const p = loraPacket.fromWire(phy);
    if (!p.MHDR || !p.MIC || p.MIC.length !== 4) throw new Error('no MHDR or MIC');
    return p;
  } catch (err) {
    throw new FrameError('malformed_frame', 'PHYPayload does not parse as a LoRaWAN frame', { cause: err });
  }
}

/** MHDR.MType (LoRaWAN 1.0.3 §4.2.1). */
export function mType(p: LoraPacket): number {
  return (p.MHDR![0]! >> 5) & 0x07;
}

export const MTYPE_JOIN_REQUEST = 0;
export const MTYPE_UNCONFIRMED_UP = 2;
export const MTYPE_CONFIRMED_UP = 4;

/**
 * The counter whose MSBs signed a refused frame, so that a forged frame counts as a bad MIC
 * and an authentic old one as a replay: behind the last counter for a replay, ahead for a gap.
 */
function candidate(last: number | null, low: number, reason: 'replay' | 'fcnt_gap'): number {
  if (last === null) return low;
  let full = Math.floor(last / 0x10000) * 0x10000 + low;
  if (reason === 'replay' && full > last && full >= 0x10000) full -= 0x10000;
  if (reason === 'fcnt_gap' && full <= last) full += 0x10000;
  return full;
}

export function decodeDataUplink(p: LoraPacket, sessionOf: (devAddr: string) => Session | undefined, maxGap = MAX_FCNT_GAP): DataUplink {
  const mt = mType(p);
  if (mt !== MTYPE_UNCONFIRMED_UP && mt !== MTYPE_CONFIRMED_UP) throw new FrameError('unsupported_mtype', `MType ${mt} is not a data uplink`);
  if (!p.DevAddr || !p.FCnt || !p.FCtrl) throw new FrameError('malformed_frame', 'data frame without FHDR');
  const devAddr = p.DevAddr.toString('hex');
  const session = sessionOf(devAddr);
  if (!session) throw new UnknownDeviceError('unknown_devaddr', `no session for DevAddr ${devAddr}`);
  const fCnt16 = p.FCnt.readUInt16BE(0);

  let fCnt: number;
  let fCntErr: FCntError | null = null;
  try {
    fCnt = reconstructFCnt(session.fCntUp, fCnt16, maxGap, session.activation === 'abp');
  } catch (err) {
    if (!(err instanceof FCntError)) throw err;
    fCntErr = err;
    fCnt = candidate(session.fCntUp, fCnt16, err.reason as 'replay' | 'fcnt_gap');
  }
  const msb = fCntMsb(fCnt);
  // LoRaWAN 1.0.3 §4.4: MIC = aes128_cmac(NwkSKey, B0 | msg)[0..3], B0 carrying the 32-bit FCnt.
  if (!loraPacket.verifyMIC(p, session.nwkSKey, undefined, msb)) throw new MicError(`bad MIC from DevAddr ${devAddr}`);
  if (fCntErr) throw fCntErr;

  const fPort = p.getFPort();
  // §4.3.3: FPort 0 is encrypted with the NwkSKey, other ports with the AppSKey.
  const payload = p.FRMPayload && p.FRMPayload.length > 0 ? loraPacket.decrypt(p, session.appSKey, session.nwkSKey, msb) : Buffer.alloc(0);
  return {
    session,
    devAddr,
    fCnt16,
    fCnt,
    confirmed: mt === MTYPE_CONFIRMED_UP,
    ack: p.getFCtrlACK() === true,
    adr: p.getFCtrlADR() === true,
    adrAckReq: p.getFCtrlADRACKReq() === true,
    fOpts: p.FOpts ?? Buffer.alloc(0),
    fPort,
    payload,
  };
}
