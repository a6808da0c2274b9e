/**
 * Data downlinks (LoRaWAN 1.0.3 §4): FHDR with the 32-bit FCntDown's low 16 bits and the MAC
 * commands of FOpts (plaintext in 1.0.x, at most 15 bytes, §4.3.1.6), FRMPayload encrypted with
 * the AppSKey (FPort > 0) or the NwkSKey (FPort 0: MAC commands, §4.3.3), MIC with the NwkSKey over
 * B0 carrying the full counter (§4.4). An ACK-only frame has no FPort and no payload. Multicast
 * frames are built the same way with McAddr and the group's keys (TS005 §3).
 */
import { loraPacket, type LoraPacketFields } from '../loraPacket.js';
import { fCntMsb } from '../uplink/fcnt.js';

export interface DataDownlink {
  devAddr: string;
  nwkSKey: Buffer;
  appSKey: Buffer;
  fCntDown: number;
  confirmed: boolean;
  /** FCtrl.ACK: acknowledges a confirmed uplink */
  ack: boolean;
  /** FCtrl.FPending: more downlinks are queued */
  fPending: boolean;
  fPort: number | null;
  payload: Buffer;
  /** encoded MAC commands (mac/commands.ts); never with FPort 0 (§4.3.1.6) */
  fOpts?: Buffer;
}

export function buildDataDownlink(d: DataDownlink): Buffer {
  const msb = fCntMsb(d.fCntDown);
  const fields: LoraPacketFields = {
    MType: d.confirmed ? 'Confirmed Data Down' : 'Unconfirmed Data Down',
    DevAddr: Buffer.from(d.devAddr, 'hex'),
    FCtrl: { ADR: false, ACK: d.ack, ADRACKReq: false, FPending: d.fPending },
    FCnt: d.fCntDown & 0xffff,
    payload: d.payload,
  };
  if (d.fOpts && d.fOpts.length > 0) {
    if (d.fPort === 0) throw new RangeError('MAC commands in FOpts and on FPort 0 in one frame (LoRaWAN 1.0.3 §4.3.1.6)');
    fields.FOpts = d.fOpts;
  }
  if (d.fPort !== null) fields.FPort = d.fPort;
  const p = loraPacket.fromFields(fields, d.appSKey, d.nwkSKey, undefined, msb);
  // fromFields signs only frames with an FPort; sign every frame (ACK-only ones too).
  loraPacket.recalculateMIC(p, d.nwkSKey, undefined, msb);
  const phy = p.getPHYPayload();
  if (!phy) throw new Error('lora-packet built no PHYPayload');
  return phy;
}
