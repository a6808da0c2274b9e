/**
 * Join Accept (LoRaWAN 1.0.3 §6.2.5): AppNonce | NetID | DevAddr | DLSettings | RxDelay |
 * CFList, MIC = aes128_cmac(AppKey, MHDR | …)[0..3]; the network server *decrypts* the
 * message with the AppKey (AES-128 ECB) so the device can use an AES encrypt to read it.
 */
import { createDecipheriv } from 'node:crypto';
import { loraPacket } from '../loraPacket.js';

export interface JoinAcceptFields {
  appNonce: Buffer;
  netId: Buffer;
  devAddr: string;
  rx1DrOffset: number;
  rx2Dr: number;
  /** seconds, 1..15 (0 means 1) */
  rx1Delay: number;
  /** RP002 §2.4.4: optional 16-byte CFList (EU868: five extra channel frequencies) */
  cfList?: Buffer;
}

export function buildJoinAccept(f: JoinAcceptFields, appKey: Buffer): Buffer {
  // MIC over the plaintext, computed by lora-packet.
  const plain = loraPacket.fromFields(
    {
      MType: 'Join Accept',
      AppNonce: f.appNonce,
      NetID: f.netId,
      DevAddr: Buffer.from(f.devAddr, 'hex'),
      // §5.4 DLSettings: RFU(1) | RX1DRoffset(3) | RX2DataRate(4)
      DLSettings: ((f.rx1DrOffset & 0x07) << 4) | (f.rx2Dr & 0x0f),
      RxDelay: f.rx1Delay & 0x0f,
      ...(f.cfList ? { CFList: f.cfList } : {}),
    },
    undefined,
    undefined,
    undefined,
  );
  loraPacket.recalculateMIC(plain, undefined, appKey);
  const mhdr = Buffer.from([0x20]);
  const body = Buffer.concat([plain.MACPayload!, plain.MIC!]); // 16 or 32 bytes: whole AES blocks
  const decipher = createDecipheriv('aes-128-ecb', appKey, null);
  decipher.setAutoPadding(false);
  return Buffer.concat([mhdr, decipher.update(body), decipher.final()]);
}
