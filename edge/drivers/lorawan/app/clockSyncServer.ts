/**
 * TS003 application-layer clock synchronisation, the server's side (LoRa Alliance TS003-1.0.0
 * §3.3): a node's AppTimeReq on FPort 202 states its GPS time in whole seconds when it sent the
 * uplink; the server answers AppTimeAns with the correction to add (its GPS time of the reception
 * minus the node's, whole seconds, signed 32 bits, modulo 2^32 as DeviceTime is), echoing the
 * request's token — when the node is off by a second or more, or asked for an answer anyway
 * (AnsRequired). The driver sends the answer in the downlink of the same uplink.
 */
import { decodeClockSyncUp, encodeClockSyncDown } from './clockSync.js';
import type { ClockSyncUp } from './types.js';

export interface ClockSyncReply {
  /** the AppTimeAns frame for FPort 202, or null when none is due */
  answer: Buffer | null;
  /** why the payload did not (all) decode, or null */
  error: string | null;
}

/** The answer to an FPort 202 uplink received at `receivedGpsMs` (GPS ms): for its last AppTimeReq, if one is due. */
export function answerClockSync(payload: Buffer, receivedGpsMs: number): ClockSyncReply {
  const decoded = decodeClockSyncUp(payload);
  const reqs = decoded.commands.filter((c): c is Extract<ClockSyncUp, { cid: 'AppTimeReq' }> => c.cid === 'AppTimeReq');
  const req = reqs[reqs.length - 1];
  if (!req) return { answer: null, error: decoded.error };
  const correction = timeCorrection(Math.floor(receivedGpsMs / 1000), req.deviceTime);
  if (correction === 0 && !req.ansRequired) return { answer: null, error: decoded.error };
  return { answer: encodeClockSyncDown([{ cid: 'AppTimeAns', timeCorrection: correction, tokenAns: req.tokenReq }]), error: decoded.error };
}

/** server − device seconds, both modulo 2^32, as a signed 32-bit difference. */
export function timeCorrection(serverGpsS: number, deviceTime: number): number {
  const d = (((serverGpsS - deviceTime) % 2 ** 32) + 2 ** 32) % 2 ** 32;
  return d >= 2 ** 31 ? d - 2 ** 32 : d;
}
