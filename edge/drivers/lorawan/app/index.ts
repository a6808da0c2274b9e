/**
 * The LoRa Alliance application-layer packages as pure codecs (bytes in, commands out, no state),
 * for the network server, the FUOTA session and the simulated node alike: TS003 clock sync
 * (FPort 202), TS005 multicast setup (200), TS004 fragmentation in v1.0.0 and v2.0.0 (201) with its
 * parity fragments and decoder, TS006 firmware management (203), and the key hierarchy they use.
 */
export * from './types.js';
export { encodeClockSyncDown, decodeClockSyncDown, encodeClockSyncUp, decodeClockSyncUp } from './clockSync.js';
export { encodeMulticastDown, decodeMulticastDown, encodeMulticastUp, decodeMulticastUp } from './multicast.js';
export { encodeFragDown, decodeFragDown, encodeFragUp, decodeFragUp, MAX_FRAG_N, DATA_FRAGMENT_OVERHEAD } from './fragmentation.js';
export { encodeFirmwareDown, decodeFirmwareDown, encodeFirmwareUp, decodeFirmwareUp } from './firmwareManagement.js';
export { mcRootKey, mcKEKey, encryptMcKey, decryptMcKey, mcSessionKeys, dataBlockIntKey, dataBlockMic, type DataBlockMicInput } from './keys.js';
export { fragmentData, parityFragment, matrixLine, FragDecoder, type FragAddResult } from './fec.js';
