/**
 * The first step of every uplink: one rxpk of a PUSH_DATA as a LoRaWAN frame — checked
 * (CRC, modulation, length), parsed, with the reception it came with and the key its copies
 * from other forwarders share. Throws FrameError.
 */
import type { LoraPacket } from '../loraPacket.js';
import { FrameError } from '../errors.js';
import type { UplinkRx } from '../semtech/backend.js';
import { Deduplicator, type RxMeta } from './dedup.js';
import { mType, MTYPE_JOIN_REQUEST, parsePhy } from './data.js';
import { joinRequestFields } from './join.js';

export interface ReceivedFrame {
  phy: Buffer;
  packet: LoraPacket;
  /** a Join Request (else a data uplink) */
  join: boolean;
  /** what copies of this frame share: (DevAddr, FCnt) of a data uplink, (DevEUI, DevNonce) of a join */
  key: string;
  meta: RxMeta;
}

export function receiveFrame(rx: UplinkRx): ReceivedFrame {
  const { rxpk } = rx;
  // PROTOCOL.TXT §4: stat 1 = CRC ok, −1 = CRC bad, 0 = no CRC (LoRaWAN uplinks always carry one).
  if (rxpk.stat !== 1) throw new FrameError('crc', `rxpk with stat ${rxpk.stat}`);
  if (rxpk.modu !== 'LORA' || typeof rxpk.datr !== 'string') throw new FrameError('not_lora', 'rxpk is not LoRa modulated');
  const phy = Buffer.from(rxpk.data, 'base64');
  // LoRaWAN 1.0.3 §4: the shortest frame is a 12-byte data frame; the longest EU868 one is 255 bytes.
  if (phy.length < 12) throw new FrameError('frame_too_short', `PHYPayload of ${phy.length} bytes`);
  if (phy.length > 255) throw new FrameError('frame_too_long', `PHYPayload of ${phy.length} bytes`);
  const packet = parsePhy(phy);
  const meta: RxMeta = {
    gatewayEui: rx.gatewayEui,
    rssi: rxpk.rssi,
    snr: rxpk.lsnr ?? 0,
    up: { gatewayEui: rx.gatewayEui, tmst: rxpk.tmst, freq: rxpk.freq, datr: rxpk.datr, receivedAt: rx.receivedAt },
  };
  if (mType(packet) === MTYPE_JOIN_REQUEST) {
    const { devEui, devNonce } = joinRequestFields(packet);
    return { phy, packet, join: true, key: `join:${devEui}:${devNonce}`, meta };
  }
  if (!packet.DevAddr || !packet.FCnt) throw new FrameError('malformed_frame', 'data frame without FHDR');
  return { phy, packet, join: false, key: Deduplicator.key(packet.DevAddr.toString('hex'), packet.FCnt.readUInt16BE(0)), meta };
}
