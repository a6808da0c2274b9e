/**
 * A simulated LoRaWAN node's configuration (its lorawan.devices entry), its options (behaviour
 * and faults) and what it counts (node.ts).
 */
import type { Clock } from '../../clock.js';
import type { FragVersion } from '../../drivers/lorawan/app/types.js';
import type { MacDownlink } from '../../drivers/lorawan/mac/types.js';
import type { StreetlightCommand } from '../../profiles/loraStreetlight.js';
import type { ClockSyncRecords } from './clockSync.js';
import type { FragmentationRecords } from './fragmentation.js';
import type { MacRecords, NodeMacOptions } from './mac.js';
import type { MulticastRecords } from './multicast.js';

/** A lorawan.devices entry with its devices.yaml id. */
export interface SimNodeConfig {
  id: string;
  devEui: string;
  activation: 'abp' | 'otaa';
  class?: 'A' | 'C';
  devAddr?: string | undefined;
  nwkSKey?: string | undefined;
  appSKey?: string | undefined;
  joinEui?: string | undefined;
  appKey?: string | undefined;
  /** TS005 GenAppKey (default: the AppKey) */
  genAppKey?: string | undefined;
  /** the node sets the ADR bit */
  adr?: boolean | undefined;
}

/**
 * How a simulated node behaves; every option is optional. The MAC's (NodeMacOptions): `dr`,
 * `battery`, `refuseAdr`, `adr` (default the device's `adr`, else off), and an ABP node's RX
 * parameters `rx1DrOffset`, `rx2Dr`, `rx2FreqHz`, `rx1Delay` (OTAA: from the Join Accept).
 */
export interface SimNodeOptions extends NodeMacOptions {
  /** all of its timing: answers, class C sessions, reboots (default the system clock) */
  clock?: Clock;
  /** seed of its random choices (channels, answer spreading) and of its downlink loss (default from the DevEUI) */
  seed?: number;
  /** uplink SNR (dB) at TX power index 0; each index step takes 2 dB off (settable at run time: `node.snr`) */
  snr?: number;
  /** uplink RSSI (dBm) at TX power index 0 */
  rssi?: number;
  /** SNR (dB) of the downlinks at the node: the DevStatusAns margin (default `snr`) */
  downlinkSnr?: number;
  /** from a request that needs an answer (or a downlink with FPending) to the uplink that answers (default 1 s) */
  answerDelayMs?: number;
  /** its clock is this far ahead of GPS time (negative: behind) until corrected */
  clockOffsetMs?: number;
  /** sends TS003 AppTimeReq after a join or a boot (ABP: in its first uplink) */
  clockSync?: boolean;
  /** firmware version it runs (default 0x0100) and hardware version (default 1) */
  version?: number;
  hwVersion?: number;
  /** silent after a reboot (default 2000 ms) */
  rebootMs?: number;
  /** bytes for a TS004 data block and its decoder (default 128 KiB) */
  memoryBytes?: number;
  /** TS004 version it implements (default 1) */
  fragVersion?: FragVersion;
  /** TS005/TS004 v2 GenAppKey (hex), over the device's */
  genAppKey?: string;
  /** fault: reassembles, reports the image, reboots, and runs and reports its old version */
  lies?: boolean;
  /** fault: never answers FragSessionStatusReq */
  mute?: boolean;
  /** fault: misses each frame on the air with this probability (0..1) */
  downlinkLoss?: number;
}

export interface SimNodeStats extends MacRecords, ClockSyncRecords, MulticastRecords, FragmentationRecords {
  uplinks: number;
  joinRequests: number;
  joined: boolean;
  downlinks: number;
  commands: StreetlightCommand[];
  acksReceived: number;
  badDownlinks: number;
  /** MAC commands received, in order (the last 200) */
  macReceived: MacDownlink['cid'][];
  /** FOpts / FPort 0 payloads that did not decode in full */
  macErrors: number;
  /** application-layer payloads (FPorts 200–203) that did not decode in full */
  appErrors: number;
  reboots: number;
  /** frames for it that the air lost (downlinkLoss) */
  lostDownlinks: number;
  /** frames for it heard while not listening: rebooting, or on a radio none of its windows uses */
  missedDownlinks: number;
  /** answers dropped because its uplink queue was full */
  droppedAnswers: number;
}

/** The defaults of SimNodeOptions. */
export const NODE_DEFAULTS = {
  snr: 7,
  rssi: -72,
  answerDelayMs: 1000,
  version: 0x0100,
  hwVersion: 1,
  rebootMs: 2000,
  memoryBytes: 128 * 1024,
  fragVersion: 1 as FragVersion,
};

export function newNodeStats(): SimNodeStats {
  return {
    uplinks: 0,
    joinRequests: 0,
    joined: false,
    downlinks: 0,
    commands: [],
    acksReceived: 0,
    badDownlinks: 0,
    macReceived: [],
    macErrors: 0,
    appErrors: 0,
    reboots: 0,
    lostDownlinks: 0,
    missedDownlinks: 0,
    droppedAnswers: 0,
    linkChecks: [],
    deviceTimes: [],
    appTimeCorrections: [],
    appTimeRequests: 0,
    multicastFrames: 0,
    multicastMissed: {},
    fragments: 0,
    fragmentsIgnored: 0,
    blocks: [],
  };
}
