/**
 * TS003 Application Layer Clock Synchronization v1.0.0 (LoRa Alliance, 2018), FPort 202, unicast
 * only: the node sends its GPS time (AppTimeReq), the server answers with a correction in whole
 * seconds. Layouts per §3.1–§3.4, cross-checked against ChirpStack's lrwn applayer/clocksync/v1.rs
 * and LoRaMac-node's LmhpClockSync.c. The server's side of the exchange is app/clockSyncServer.ts.
 */
import { bit, bytes, checkInt, commandTable, flags, intLE, lowNibble, uintLE } from '../commandCodec.js';
import { packageVersionAns, packageVersionReq } from './packageVersion.js';
import type { ClockSyncDown, ClockSyncUp } from './types.js';

const DOWN = commandTable<ClockSyncDown>('TS003', {
  PackageVersionReq: packageVersionReq,
  // §3.2 Tables 5–6: TimeCorrection (int32 LE, seconds), Param (7:4 RFU, 3:0 TokenAns)
  AppTimeAns: {
    cid: 0x01,
    size: 5,
    write: (c) => bytes(intLE('AppTimeAns', 'timeCorrection', c.timeCorrection, 4), checkInt('AppTimeAns', 'tokenAns', c.tokenAns, 0, 15)),
    read: (p) => ({ cid: 'AppTimeAns', timeCorrection: p.readInt32LE(0), tokenAns: p[4]! & 0x0f }),
  },
  // §3.3: Periodicity (7:4 RFU, 3:0 Period): AppTimeReq every 128·2^Period s
  DeviceAppTimePeriodicityReq: lowNibble('DeviceAppTimePeriodicityReq', 0x02, 'period'),
  // §3.4: ForceConf (7:3 RFU, 2:0 NbTransmissions)
  ForceDeviceResyncReq: {
    cid: 0x03,
    size: 1,
    write: (c) => bytes(checkInt('ForceDeviceResyncReq', 'nbTransmissions', c.nbTransmissions, 0, 7)),
    read: (p) => ({ cid: 'ForceDeviceResyncReq', nbTransmissions: p[0]! & 0x07 }),
  },
});

const UP = commandTable<ClockSyncUp>('TS003', {
  PackageVersionAns: packageVersionAns,
  // §3.2 Tables 3–4: DeviceTime (uint32 LE, GPS seconds), Param (7:5 RFU, 4 AnsRequired, 3:0 TokenReq)
  AppTimeReq: {
    cid: 0x01,
    size: 5,
    write: (c) => bytes(uintLE('AppTimeReq', 'deviceTime', c.deviceTime, 4), checkInt('AppTimeReq', 'tokenReq', c.tokenReq, 0, 15) | (c.ansRequired ? 0x10 : 0)),
    read: (p) => ({ cid: 'AppTimeReq', deviceTime: p.readUInt32LE(0), tokenReq: p[4]! & 0x0f, ansRequired: bit(p[4]!, 4) }),
  },
  // §3.3: Status (7:1 RFU, 0 NotSupported), Time (uint32 LE, the device's GPS seconds)
  DeviceAppTimePeriodicityAns: {
    cid: 0x02,
    size: 5,
    write: (c) => bytes(flags(c.notSupported), uintLE('DeviceAppTimePeriodicityAns', 'time', c.time, 4)),
    read: (p) => ({ cid: 'DeviceAppTimePeriodicityAns', notSupported: bit(p[0]!, 0), time: p.readUInt32LE(1) }),
  },
});

/** Server → node commands as one FPort 202 payload, in the order given. */
export const encodeClockSyncDown = DOWN.encode;
/** The simulated node's side: the commands of a FPort 202 downlink. */
export const decodeClockSyncDown = DOWN.decode;
/** The simulated node's side. */
export const encodeClockSyncUp = UP.encode;
/** The commands of a FPort 202 uplink. */
export const decodeClockSyncUp = UP.decode;
