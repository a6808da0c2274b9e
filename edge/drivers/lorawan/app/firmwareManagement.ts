/**
 * TS006 Firmware Management Protocol v1.0.0 (LoRa Alliance, 2022), FPort 203, unicast only: the
 * server asks the node its firmware and hardware versions (before and after a FUOTA: done means
 * the node reports the new version), programs a reboot at a GPS time or after a countdown, and asks
 * about or deletes the upgrade image the node holds. Layouts per §3.1–§3.6, cross-checked against
 * brocaar/lorawan applayer/firmwaremanagement and LoRa Basics Modem's lorawan_fmp_package.c.
 */
import { bare, bytes, checkInt, commandTable, statusBits, uintLE, type Layout } from '../commandCodec.js';
import { packageVersionAns, packageVersionReq } from './packageVersion.js';
import type { FirmwareDown, FirmwareUp } from './types.js';

/** A command whose payload is one unsigned little-endian field. */
function oneField<C extends string, F extends string>(name: C, cid: number, field: F, width: number): Layout<{ cid: C } & Record<F, number>> {
  return {
    cid,
    size: width,
    write: (c) => uintLE(name, field, c[field], width),
    read: (p) => ({ cid: name, [field]: p.readUIntLE(0, width) }) as { cid: C } & Record<F, number>,
  };
}

const DOWN = commandTable<FirmwareDown>('TS006', {
  PackageVersionReq: packageVersionReq,
  // §3.2: no payload
  DevVersionReq: bare('DevVersionReq', 0x01),
  // §3.3: RebootTime (uint32 LE, GPS s; 0 now, 0xFFFFFFFF cancels)
  DevRebootTimeReq: oneField('DevRebootTimeReq', 0x02, 'rebootTime', 4),
  // §3.4: Countdown (24 bits LE, s; 0 now, 0xFFFFFF cancels)
  DevRebootCountdownReq: oneField('DevRebootCountdownReq', 0x03, 'countdown', 3),
  // §3.5: no payload
  DevUpgradeImageReq: bare('DevUpgradeImageReq', 0x04),
  // §3.6: FirmwareToDeleteVersion (uint32 LE)
  DevDeleteImageReq: oneField('DevDeleteImageReq', 0x05, 'firmwareToDeleteVersion', 4),
});

/** §3.5 Table 10: UpImageStatus 3, a valid image: only then NextFirmwareVersion follows. */
const IMAGE_VALID = 3;

const UP = commandTable<FirmwareUp>('TS006', {
  PackageVersionAns: packageVersionAns,
  // §3.2: FW_version, HW_version (uint32 LE each)
  DevVersionAns: {
    cid: 0x01,
    size: 8,
    write: (c) => bytes(uintLE('DevVersionAns', 'fwVersion', c.fwVersion, 4), uintLE('DevVersionAns', 'hwVersion', c.hwVersion, 4)),
    read: (p) => ({ cid: 'DevVersionAns', fwVersion: p.readUInt32LE(0), hwVersion: p.readUInt32LE(4) }),
  },
  // §3.3: RebootTime as programmed (0xFFFFFFFF: refused or cancelled)
  DevRebootTimeAns: oneField('DevRebootTimeAns', 0x02, 'rebootTime', 4),
  // §3.4: Countdown as programmed (0xFFFFFF: none)
  DevRebootCountdownAns: oneField('DevRebootCountdownAns', 0x03, 'countdown', 3),
  // §3.5: Status (7:2 RFU, 1:0 UpImageStatus), NextFirmwareVersion (uint32 LE) only when UpImageStatus = 3
  DevUpgradeImageAns: {
    cid: 0x04,
    size: (rest) => (rest.length === 0 ? null : (rest[0]! & 0x03) === IMAGE_VALID ? 5 : 1),
    write: (c) => {
      const status = checkInt('DevUpgradeImageAns', 'status', c.status, 0, 3);
      if ((status === IMAGE_VALID) !== (c.nextFirmwareVersion !== null)) {
        throw new RangeError(`DevUpgradeImageAns.nextFirmwareVersion: expected ${status === IMAGE_VALID ? 'a version with status 3' : 'null unless status is 3'}, got ${c.nextFirmwareVersion}`);
      }
      return c.nextFirmwareVersion === null ? bytes(status) : bytes(status, uintLE('DevUpgradeImageAns', 'nextFirmwareVersion', c.nextFirmwareVersion, 4));
    },
    read: (p) => ({ cid: 'DevUpgradeImageAns', status: p[0]! & 0x03, nextFirmwareVersion: p.length === 5 ? p.readUInt32LE(1) : null }),
  },
  // §3.6: Status (7:2 RFU, 1 ErrorInvalidVersion, 0 ErrorNoValidImage)
  DevDeleteImageAns: statusBits('DevDeleteImageAns', 0x05, ['errorNoValidImage', 'errorInvalidVersion']),
});

/** Server → node commands as one FPort 203 payload, in the order given. */
export const encodeFirmwareDown = DOWN.encode;
/** The simulated node's side: the commands of a FPort 203 downlink. */
export const decodeFirmwareDown = DOWN.decode;
/** The simulated node's side. */
export const encodeFirmwareUp = UP.encode;
/** The commands of a FPort 203 uplink. */
export const decodeFirmwareUp = UP.decode;
