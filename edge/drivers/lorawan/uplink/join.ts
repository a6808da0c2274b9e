/**
 * OTAA join (LoRaWAN 1.0.3 §6.2): verify the Join Request MIC with the AppKey (§6.2.4),
 * refuse a DevNonce the device has used before, derive NwkSKey/AppSKey (§6.2.5) and assign
 * a DevAddr from the NetID. The Join Accept itself is built in downlink/join.ts.
 */
import { randomBytes } from 'node:crypto';
import { loraPacket, type LoraPacket } from '../loraPacket.js';
import { DevNonceError, FrameError, MicError, UnknownDeviceError } from '../errors.js';
import type { Session, SessionStore } from '../storage/sessions.js';
import { allocateDevAddr } from './netId.js';

export interface OtaaKeys {
  devEui: string;
  joinEui: string;
  appKey: Buffer;
}

export interface JoinResult {
  /** the keys the Join Request was verified with (its AppKey encrypts the Join Accept) */
  keys: OtaaKeys;
  session: Session;
  devNonce: number;
  appNonce: Buffer;
  netId: Buffer;
}

export function joinRequestFields(p: LoraPacket): { devEui: string; joinEui: string; devNonce: number } {
  if (!p.DevEUI || !p.AppEUI || !p.DevNonce) throw new FrameError('malformed_frame', 'Join Request without DevEUI/JoinEUI/DevNonce');
  return { devEui: p.DevEUI.toString('hex'), joinEui: p.AppEUI.toString('hex'), devNonce: p.DevNonce.readUInt16BE(0) };
}

export function handleJoinRequest(
  p: LoraPacket,
  keysOf: (devEui: string) => OtaaKeys | undefined,
  sessions: SessionStore,
  netIdHex: string,
): JoinResult {
  const { devEui, joinEui, devNonce } = joinRequestFields(p);
  const keys = keysOf(devEui);
  if (!keys) throw new UnknownDeviceError('unknown_deveui', `Join Request from unknown DevEUI ${devEui}`);
  if (keys.joinEui !== joinEui) throw new UnknownDeviceError('unknown_deveui', `Join Request from ${devEui} with JoinEUI ${joinEui} (expected ${keys.joinEui})`);
  // §6.2.4: MIC = aes128_cmac(AppKey, MHDR | AppEUI | DevEUI | DevNonce)
  if (!loraPacket.verifyMIC(p, undefined, keys.appKey)) throw new MicError(`bad Join Request MIC from ${devEui}`);
  // §6.2.4: the server keeps the DevNonces used and ignores a Join Request that repeats one.
  if (sessions.devNonceUsed(devEui, devNonce)) throw new DevNonceError(`DevNonce ${devNonce} already used by ${devEui}`);
  sessions.rememberDevNonce(devEui, devNonce);

  const appNonce = randomBytes(3);
  const netId = Buffer.from(netIdHex, 'hex');
  const devAddr = allocateDevAddr(netIdHex, (a) => sessions.devAddrInUse(a));
  // §6.2.5: NwkSKey = aes128_encrypt(AppKey, 0x01 | AppNonce | NetID | DevNonce | pad16), AppSKey with 0x02.
  const k = loraPacket.generateSessionKeys10(keys.appKey, netId, appNonce, p.DevNonce!);
  const session: Session = {
    devEui,
    devAddr,
    nwkSKey: k.NwkSKey,
    appSKey: k.AppSKey,
    activation: 'otaa',
    fCntUp: null,
    nFCntDown: 0,
  };
  return { keys, session, devNonce, appNonce, netId };
}
