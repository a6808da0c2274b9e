/**
 * The key hierarchy of the application-layer packages, for LoRaWAN 1.0.x nodes (whose root for
 * them is the GenAppKey, not the AppKey):
 *
 *   TS005 v1.0.0 §4.3 (Remote Multicast Setup):
 *     McRootKey       = aes128_encrypt(GenAppKey, 0x00 | pad16)
 *     McKEKey         = aes128_encrypt(McRootKey, 0x00 | pad16)
 *     McKey_encrypted = aes128_decrypt(McKEKey, McKey)          (the server, in McGroupSetupReq)
 *     McKey           = aes128_encrypt(McKEKey, McKey_encrypted) (the node: it only needs AES encrypt)
 *     McAppSKey       = aes128_encrypt(McKey, 0x01 | McAddr | pad16)
 *     McNwkSKey       = aes128_encrypt(McKey, 0x02 | McAddr | pad16)   (McAddr little-endian)
 *   TS004 v2.0.0 §3.3, §4 (data block integrity):
 *     DataBlockIntKey = aes128_encrypt(GenAppKey, 0x30 | pad16)
 *     MIC             = aes128_cmac(DataBlockIntKey, B0 | data block)[0..3],
 *     B0              = 0x49 | SessionCnt (2 LE) | FragIndex | Descriptor (4 LE) | 4 × 0x00 | len(data block) (4 LE),
 *     the data block without its padding.
 *
 * Checked against brocaar/lorawan applayer/multicastsetup (GetMcRootKeyForGenAppKey, GetMcKEKey,
 * GetMcAppSKey, GetMcNetSKey and their test vectors) and ChirpStack's lrwn
 * applayer/fragmentation/v2.rs (get_data_block_int_key, calculate_mic), which LoRa Basics Modem's
 * lorawan_fragmentation_package_v2.0.0.c agrees with. The B0 block is the one of TS004-2.0.0
 * Table 12; the 0x30 of DataBlockIntKey is the implementations' (the page of the specification that
 * defines it was not at hand). Keys are secrets: nothing here logs or returns them anywhere else.
 */
import { createCipheriv, createDecipheriv } from 'node:crypto';
import { devAddrLE, fixedBytes, uintLE } from '../commandCodec.js';

const BLOCK = 16;

function aes128(direction: 'encrypt' | 'decrypt', key: Buffer, block: Buffer): Buffer {
  const cipher = direction === 'encrypt' ? createCipheriv('aes-128-ecb', key, null) : createDecipheriv('aes-128-ecb', key, null);
  cipher.setAutoPadding(false);
  return Buffer.concat([cipher.update(block), cipher.final()]);
}

/** aes128_encrypt(key, prefix | pad16): every derivation of this file. */
function derive(name: string, key: Buffer, prefix: Buffer): Buffer {
  return aes128('encrypt', fixedBytes(name, 'key', key, BLOCK), Buffer.concat([prefix, Buffer.alloc(BLOCK - prefix.length)]));
}

export function mcRootKey(genAppKey: Buffer): Buffer {
  return derive('mcRootKey', genAppKey, Buffer.of(0x00));
}

export function mcKEKey(rootKey: Buffer): Buffer {
  return derive('mcKEKey', rootKey, Buffer.of(0x00));
}

/** The server's side: McKey_encrypted for a McGroupSetupReq to the node holding `genAppKey`. */
export function encryptMcKey(genAppKey: Buffer, mcKey: Buffer): Buffer {
  return aes128('decrypt', mcKEKey(mcRootKey(genAppKey)), fixedBytes('encryptMcKey', 'mcKey', mcKey, BLOCK));
}

/** The node's side: the McKey of a McGroupSetupReq's McKey_encrypted. */
export function decryptMcKey(genAppKey: Buffer, mcKeyEncrypted: Buffer): Buffer {
  return aes128('encrypt', mcKEKey(mcRootKey(genAppKey)), fixedBytes('decryptMcKey', 'mcKeyEncrypted', mcKeyEncrypted, BLOCK));
}

/** The multicast group's session keys; mcAddr as printed, 8 hex digits. */
export function mcSessionKeys(mcKey: Buffer, mcAddr: string): { mcAppSKey: Buffer; mcNwkSKey: Buffer } {
  const addr = devAddrLE('mcSessionKeys', 'mcAddr', mcAddr);
  return {
    mcAppSKey: derive('mcAppSKey', mcKey, Buffer.concat([Buffer.of(0x01), addr])),
    mcNwkSKey: derive('mcNwkSKey', mcKey, Buffer.concat([Buffer.of(0x02), addr])),
  };
}

export function dataBlockIntKey(genAppKey: Buffer): Buffer {
  return derive('dataBlockIntKey', genAppKey, Buffer.of(0x30));
}

/** What the MIC of a data block covers besides its bytes (the FragSessionSetupReq fields of v2.0.0). */
export interface DataBlockMicInput {
  sessionCnt: number;
  fragIndex: number;
  descriptor: number;
  /** the data block without padding */
  data: Buffer;
}

/** TS004 v2.0.0 §3.3: the 4-byte MIC of FragSessionSetupReq, which the node checks on the reassembled block. */
export function dataBlockMic(intKey: Buffer, block: DataBlockMicInput): Buffer {
  const b0 = Buffer.concat([
    Buffer.of(0x49),
    uintLE('dataBlockMic', 'sessionCnt', block.sessionCnt, 2),
    uintLE('dataBlockMic', 'fragIndex', block.fragIndex, 1),
    uintLE('dataBlockMic', 'descriptor', block.descriptor, 4),
    Buffer.alloc(4),
    uintLE('dataBlockMic', 'data.length', block.data.length, 4),
  ]);
  return aesCmac(fixedBytes('dataBlockMic', 'intKey', intKey, BLOCK), Buffer.concat([b0, block.data])).subarray(0, 4);
}

// ---------------------------------------------------------------------------------------
// AES-CMAC (RFC 4493), which node:crypto does not offer

/** RFC 4493 §2.3: a subkey is the previous one shifted left by one bit, xored with Rb if a bit fell off. */
function nextSubkey(k: Buffer): Buffer {
  const out = Buffer.alloc(BLOCK);
  for (let i = 0; i < BLOCK; i++) out[i] = ((k[i]! << 1) | (i + 1 < BLOCK ? k[i + 1]! >> 7 : 0)) & 0xff;
  if (k[0]! & 0x80) out[BLOCK - 1]! ^= 0x87;
  return out;
}

function xorInto(target: Buffer, other: Buffer): void {
  for (let i = 0; i < BLOCK; i++) target[i]! ^= other[i]!;
}

/** RFC 4493 §2.4: the 16-byte CMAC of `message` under `key` (CBC-MAC, last block xored with K1 or padded and xored with K2). */
export function aesCmac(key: Buffer, message: Buffer): Buffer {
  const k1 = nextSubkey(aes128('encrypt', key, Buffer.alloc(BLOCK)));
  const k2 = nextSubkey(k1);
  const blocks = Math.max(1, Math.ceil(message.length / BLOCK));
  const complete = message.length > 0 && message.length % BLOCK === 0;
  const last = Buffer.alloc(BLOCK);
  message.copy(last, 0, (blocks - 1) * BLOCK);
  if (!complete) last[message.length - (blocks - 1) * BLOCK] = 0x80;
  xorInto(last, complete ? k1 : k2);

  const cipher = createCipheriv('aes-128-cbc', key, Buffer.alloc(BLOCK));
  cipher.setAutoPadding(false);
  const encrypted = Buffer.concat([cipher.update(Buffer.concat([message.subarray(0, (blocks - 1) * BLOCK), last])), cipher.final()]);
  return encrypted.subarray(encrypted.length - BLOCK);
}
