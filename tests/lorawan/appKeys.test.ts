/**
 * The key hierarchy of TS005 (multicast) and TS004 v2.0.0 (data block MIC) for LoRaWAN 1.0.x
 * nodes: published vectors where they exist (brocaar/lorawan applayer/multicastsetup keys_test.go,
 * LoRaMac-node's fuota-test-01 log, RFC 4493), otherwise a hand check of the formula with node:crypto.
 */
import { createCipheriv, createDecipheriv } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { dataBlockIntKey, dataBlockMic, decryptMcKey, encryptMcKey, mcKEKey, mcRootKey, mcSessionKeys } from '../../edge/drivers/lorawan/app/index.js';
import { aesCmac } from '../../edge/drivers/lorawan/app/keys.js';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

function ecb(direction: 'encrypt' | 'decrypt', key: Buffer, block: Buffer): Buffer {
  const cipher = direction === 'encrypt' ? createCipheriv('aes-128-ecb', key, null) : createDecipheriv('aes-128-ecb', key, null);
  cipher.setAutoPadding(false);
  return Buffer.concat([cipher.update(block), cipher.final()]);
}

describe('TS005 multicast keys: brocaar/lorawan vectors', () => {
  const genAppKey = hex('03020304 05060708 090a0b0c 0d0e0f10');
  const rootKey = hex('04020304 05060708 090a0b0c 0d0e0f10');
  const mcKey = hex('01020304 05060708 090a0b0c 0d0e0f10');

  it('McRootKey from the GenAppKey', () => {
    expect(mcRootKey(genAppKey).toString('hex')).toBe('55344e82570eaec8bf03b99962d1f445');
  });
  it('McKEKey from a McRootKey', () => {
    expect(mcKEKey(rootKey).toString('hex')).toBe('9083bebf704257883160dbfcde33ad71');
  });
  it('McAppSKey and McNwkSKey of McAddr 01020304 (little-endian in the block)', () => {
    const keys = mcSessionKeys(mcKey, '01020304');
    expect(keys.mcAppSKey.toString('hex')).toBe('95cb4518ee375606735bbacbdce837fa');
    expect(keys.mcNwkSKey.toString('hex')).toBe('c3f6b388bad6c000b23291ad52c11c7b');
  });
});

describe("TS005 multicast keys: LoRaMac-node's fuota-test-01 interop log", () => {
  const mcKey = hex('01020304 05060708 090a0b0c 0d0e0f10');
  it('McAppSKey and McNwkSKey of McAddr 01FFFFFF', () => {
    const keys = mcSessionKeys(mcKey, '01FFFFFF');
    expect(keys.mcAppSKey.toString('hex')).toBe('c3f6c39b6b6496c29629f7e7e9b0cd29');
    expect(keys.mcNwkSKey.toString('hex')).toBe('bb75c362588f5d65fcc61c080b76dba3');
  });
  it('the node recovers the McKey with AES encrypt under the McKEKey (the formula decryptMcKey applies)', () => {
    const mcKEKeyOfLog = hex('2c578f7927a949d3b511ae8fb69145c6');
    expect(ecb('encrypt', mcKEKeyOfLog, hex('015e85f4b99dc0b944066cd07498330b'))).toEqual(mcKey);
  });
});

describe('McKey_encrypted', () => {
  const genAppKey = hex('2b7e1516 28aed2a6 abf71588 09cf4f3c');
  const mcKey = hex('00112233 44556677 8899aabb ccddeeff');

  it('is aes128_decrypt(McKEKey, McKey), and the node gets the McKey back', () => {
    const keKey = ecb('encrypt', ecb('encrypt', genAppKey, Buffer.alloc(16)), Buffer.alloc(16));
    const encrypted = encryptMcKey(genAppKey, mcKey);
    expect(encrypted).toEqual(ecb('decrypt', keKey, mcKey));
    expect(decryptMcKey(genAppKey, encrypted)).toEqual(mcKey);
  });
  it('does not come back under another GenAppKey', () => {
    const other = Buffer.from(genAppKey);
    other[0]! ^= 1;
    expect(decryptMcKey(other, encryptMcKey(genAppKey, mcKey))).not.toEqual(mcKey);
  });
  it('refuses keys that are not 16 bytes', () => {
    expect(() => encryptMcKey(genAppKey, mcKey.subarray(1))).toThrow(/encryptMcKey\.mcKey: expected 16 bytes, got 15/);
    expect(() => mcRootKey(Buffer.alloc(15))).toThrow(RangeError);
    expect(() => mcSessionKeys(mcKey, '0102')).toThrow(/mcSessionKeys\.mcAddr: expected 8 hex digits/);
  });
});

describe('AES-CMAC (RFC 4493 §4 test vectors)', () => {
  const key = hex('2b7e1516 28aed2a6 abf71588 09cf4f3c');
  const message = hex(
    '6bc1bee2 2e409f96 e93d7e11 7393172a ae2d8a57 1e03ac9c 9eb76fac 45af8e51 30c81c46 a35ce411 e5fbc119 1a0a52ef f69f2445 df4f9b17 ad2b417b e66c3710',
  );
  it.each([
    [0, 'bb1d6929 e9593728 7fa37d12 9b756746'],
    [16, '070a16b4 6b4d4144 f79bdd9d d04a287c'],
    [40, 'dfa66747 de9ae630 30ca3261 1497c827'],
    [64, '51f0bebf 7e3b9d92 fc497417 79363cfe'],
  ])('a %i-byte message', (length, mac) => {
    expect(aesCmac(key, message.subarray(0, length))).toEqual(hex(mac));
  });
});

describe('TS004 v2.0.0 data block integrity', () => {
  const genAppKey = hex('2b7e1516 28aed2a6 abf71588 09cf4f3c');

  it('DataBlockIntKey = aes128_encrypt(GenAppKey, 0x30 | pad16)', () => {
    expect(dataBlockIntKey(genAppKey)).toEqual(ecb('encrypt', genAppKey, hex('30000000 00000000 00000000 00000000')));
  });

  it('MIC = aes128_cmac(DataBlockIntKey, B0 | data)[0..3] with the B0 of Table 12', () => {
    const intKey = dataBlockIntKey(genAppKey);
    const data = Buffer.from(Array.from({ length: 100 }, (_, i) => i));
    // 0x49 | SessionCnt 0x0102 LE | FragIndex 1 | Descriptor 0x0a0b0c0d LE | 4 × 0x00 | len 100 LE
    const b0 = hex('49 0201 01 0d0c0b0a 00000000 64000000');
    const mic = dataBlockMic(intKey, { sessionCnt: 0x0102, fragIndex: 1, descriptor: 0x0a0b_0c0d, data });
    expect(mic).toEqual(aesCmac(intKey, Buffer.concat([b0, data])).subarray(0, 4));
    expect(mic).toHaveLength(4);
  });

  it('changes with the session counter, so a replayed block does not verify', () => {
    const intKey = dataBlockIntKey(genAppKey);
    const block = { sessionCnt: 1, fragIndex: 0, descriptor: 0, data: Buffer.from('firmware') };
    expect(dataBlockMic(intKey, block)).not.toEqual(dataBlockMic(intKey, { ...block, sessionCnt: 2 }));
  });

  it('refuses a session counter beyond 16 bits', () => {
    expect(() => dataBlockMic(dataBlockIntKey(genAppKey), { sessionCnt: 65_536, fragIndex: 0, descriptor: 0, data: Buffer.alloc(1) })).toThrow(/dataBlockMic\.sessionCnt/);
  });
});
