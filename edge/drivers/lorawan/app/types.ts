/**
 * The LoRa Alliance application-layer packages a FUOTA needs, on their FPorts, as the server and
 * the simulated node exchange them (codecs in this folder, one file per package):
 *
 *   TS003 clock synchronisation      FPort 202  clockSync.ts
 *   TS005 remote multicast setup     FPort 200  multicast.ts (+ keys.ts: McRootKey, McKEKey, McKey, session keys)
 *   TS004 fragmented data block      FPort 201  fragmentation.ts (+ fec.ts: parity fragments v1.0.0/v2.0.0, decoder)
 *   TS006 firmware management        FPort 203  firmwareManagement.ts
 *
 * Every frame is a sequence of commands (CID byte, then its fields, little-endian as the
 * specifications lay them out). Decoders return the commands before the first byte that does not
 * decode and say why (like mac/types.ts MacDecoded); they never throw on bad input.
 */

export const FPORT_MULTICAST = 200;
export const FPORT_FRAGMENTATION = 201;
export const FPORT_CLOCK_SYNC = 202;
export const FPORT_FIRMWARE = 203;
export const APP_FPORTS = [FPORT_MULTICAST, FPORT_FRAGMENTATION, FPORT_CLOCK_SYNC, FPORT_FIRMWARE] as const;

/** PackageIdentifier per package (PackageVersionAns) */
export const PACKAGE_ID = { clockSync: 1, multicast: 2, fragmentation: 3, firmware: 4 } as const;

export interface AppDecoded<T> {
  commands: T[];
  error: string | null;
}

// ---------------------------------------------------------------------------------------- TS003 (FPort 202)

export type ClockSyncDown =
  | { cid: 'PackageVersionReq' }
  /** correction in whole seconds to add to the device's clock; tokenAns echoes the request's token (4 bits) */
  | { cid: 'AppTimeAns'; timeCorrection: number; tokenAns: number }
  /** period: the device sends AppTimeReq every 128·2^period s (±30 s) */
  | { cid: 'DeviceAppTimePeriodicityReq'; period: number }
  /** nbTransmissions: AppTimeReq the device sends now (1..7) */
  | { cid: 'ForceDeviceResyncReq'; nbTransmissions: number };

export type ClockSyncUp =
  | { cid: 'PackageVersionAns'; packageIdentifier: number; packageVersion: number }
  /** deviceTime: the device's GPS time in whole seconds (mod 2^32); ansRequired: the device wants an answer even when in sync */
  | { cid: 'AppTimeReq'; deviceTime: number; tokenReq: number; ansRequired: boolean }
  /** status bit 0: not supported; timeNow the device's GPS s */
  | { cid: 'DeviceAppTimePeriodicityAns'; notSupported: boolean; time: number };

// ---------------------------------------------------------------------------------------- TS005 (FPort 200)

export type MulticastDown =
  | { cid: 'PackageVersionReq' }
  | { cid: 'McGroupStatusReq'; reqGroupMask: number }
  /** mcKeyEncrypted = aes128_decrypt(McKEKey, McKey) (keys.ts encryptMcKey); mcAddr 8 hex digits */
  | { cid: 'McGroupSetupReq'; mcGroupId: number; mcAddr: string; mcKeyEncrypted: Buffer; minMcFCnt: number; maxMcFCnt: number }
  | { cid: 'McGroupDeleteReq'; mcGroupId: number }
  /** sessionTime: GPS seconds (mod 2^32) the class C window opens; timeOut: 2^timeOut s it stays open; frequency Hz (multiple of 100); dr */
  | { cid: 'McClassCSessionReq'; mcGroupId: number; sessionTime: number; timeOut: number; frequency: number; dr: number };

export type MulticastUp =
  | { cid: 'PackageVersionAns'; packageIdentifier: number; packageVersion: number }
  | { cid: 'McGroupStatusAns'; nbTotalGroups: number; ansGroupMask: number; groups: { mcGroupId: number; mcAddr: string }[] }
  | { cid: 'McGroupSetupAns'; mcGroupId: number; idError: boolean }
  | { cid: 'McGroupDeleteAns'; mcGroupId: number; mcGroupUndefined: boolean }
  /** timeToStart (s) only when no error */
  | { cid: 'McClassCSessionAns'; mcGroupId: number; drError: boolean; freqError: boolean; mcGroupUndefined: boolean; timeToStart: number | null };

// ---------------------------------------------------------------------------------------- TS004 (FPort 201)

/** 1: TS004 v1.0.0, 2: TS004 v2.0.0 (negotiated with PackageVersionReq: the node's PackageVersion) */
export type FragVersion = 1 | 2;

export type FragDown =
  | { cid: 'PackageVersionReq' }
  /** participants: only nodes still missing fragments answer (v1/v2 §) */
  | { cid: 'FragSessionStatusReq'; fragIndex: number; participants: boolean }
  /**
   * v1 and v2 share the first fields; v2 adds sessionCnt and mic (of the whole data block, keys.ts
   * dataBlockMic). fragAlgo 0 = the specification's parity; blockAckDelay: answers spread over 2^(d+4)..2^(d+5) s.
   */
  | {
      cid: 'FragSessionSetupReq';
      fragIndex: number;
      mcGroupBitMask: number;
      nbFrag: number;
      fragSize: number;
      fragAlgo: number;
      blockAckDelay: number;
      padding: number;
      descriptor: number;
      /** v2 only */
      sessionCnt?: number;
      /** v2 only: 4-byte MIC of the data block */
      mic?: Buffer;
      /** v2 only (Control bit 6): the node sends FragDataBlockReceivedReq once it has the block */
      ackReception?: boolean;
    }
  | { cid: 'FragSessionDeleteReq'; fragIndex: number }
  /** v2 only: the server's acknowledgement of FragDataBlockReceivedReq (the node repeats the request until it comes) */
  | { cid: 'FragDataBlockReceivedAns'; fragIndex: number }
  /** n: 1-based fragment number; 1..M are the data, above M the parity fragments */
  | { cid: 'DataFragment'; fragIndex: number; n: number; payload: Buffer };

export type FragUp =
  | { cid: 'PackageVersionAns'; packageIdentifier: number; packageVersion: number }
  /**
   * missingFrag: what the node still needs (255: 255 or more); notEnoughMemory: its decoder ran out.
   * v2 only: micError (the block is complete but its MIC is wrong), sessionDoesNotExist (then
   * fragIndex, nbFragReceived and missingFrag are not on the wire and read as 0).
   */
  | {
      cid: 'FragSessionStatusAns';
      fragIndex: number;
      nbFragReceived: number;
      missingFrag: number;
      notEnoughMemory: boolean;
      micError?: boolean;
      sessionDoesNotExist?: boolean;
    }
  | {
      cid: 'FragSessionSetupAns';
      fragIndex: number;
      encodingUnsupported: boolean;
      notEnoughMemory: boolean;
      fragIndexUnsupported: boolean;
      wrongDescriptor: boolean;
      /** v2: the session counter was not above the last one */
      sessionCntReplay?: boolean;
    }
  | { cid: 'FragSessionDeleteAns'; fragIndex: number; sessionDoesNotExist: boolean }
  /** v2: the node reassembled the block and checked its MIC */
  | { cid: 'FragDataBlockReceivedReq'; fragIndex: number; micOk: boolean };

// ---------------------------------------------------------------------------------------- TS006 (FPort 203)

export type FirmwareDown =
  | { cid: 'PackageVersionReq' }
  | { cid: 'DevVersionReq' }
  /** rebootTime: GPS seconds; 0 reboots now, 0xFFFFFFFF cancels */
  | { cid: 'DevRebootTimeReq'; rebootTime: number }
  /** countdown seconds (24 bits); 0 now, 0xFFFFFF cancels */
  | { cid: 'DevRebootCountdownReq'; countdown: number }
  | { cid: 'DevUpgradeImageReq' }
  | { cid: 'DevDeleteImageReq'; firmwareToDeleteVersion: number };

export type FirmwareUp =
  | { cid: 'PackageVersionAns'; packageIdentifier: number; packageVersion: number }
  | { cid: 'DevVersionAns'; fwVersion: number; hwVersion: number }
  | { cid: 'DevRebootTimeAns'; rebootTime: number }
  | { cid: 'DevRebootCountdownAns'; countdown: number }
  /** status: 0 no image, 1 corrupt, 2 incompatible, 3 valid image (nextFirmwareVersion set) */
  | { cid: 'DevUpgradeImageAns'; status: number; nextFirmwareVersion: number | null }
  | { cid: 'DevDeleteImageAns'; errorInvalidVersion: boolean; errorNoValidImage: boolean };
