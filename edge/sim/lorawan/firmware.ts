/**
 * TS006 firmware management v1.0.0 (FPort 203), device side: the version the node runs, the
 * upgrade image it reassembled (TS004, fragmentation.ts) checked as the simulators' images are
 * (`SBFW` + uint16 version, edge/sim/modbus/firmware.ts makeSimImage), and reboots at a GPS time or
 * after a countdown into that image (or the old firmware when the image is not valid). A lying
 * node (fault `lies`) reports the image, reboots, and runs and reports its old version.
 * Reboot requests follow LoRa Basics Modem's lorawan_fmp_package.c: a time already past is
 * refused, 0 reboots at once (here once the answer went up), all-ones cancels.
 */
import { decodeFirmwareDown, encodeFirmwareUp } from '../../drivers/lorawan/app/firmwareManagement.js';
import { FPORT_FIRMWARE, PACKAGE_ID, type FirmwareDown, type FirmwareUp } from '../../drivers/lorawan/app/types.js';
import { SIM_IMAGE_MAGIC } from '../modbus/firmware.js';
import type { PackageHost } from './host.js';

/** TS006 §2: the package version this node implements. */
const FIRMWARE_VERSION = 1;
/** TS006 §3.3, §3.4: all ones cancels a programmed reboot (and answers a refused one) */
const CANCEL_TIME = 0xffff_ffff;
const CANCEL_COUNTDOWN = 0xff_ffff;
/** TS006 §3.5 Table 10: UpImageStatus */
export const IMAGE_STATUS = { none: 0, corrupt: 1, incompatible: 2, valid: 3 } as const;

export interface FirmwareOptions {
  /** the version it runs at start */
  version: number;
  hwVersion: number;
  /** reassembles, reports and reboots, then runs its old version */
  lies: boolean;
}

/** When the node reboots: at once once its answers went up, or after `ms` on its clock. */
export type RebootPlan = { at: 'afterAnswer' } | { at: 'in'; ms: number };

export class FirmwarePackage {
  private readonly host: PackageHost;
  private readonly opts: FirmwareOptions;
  private readonly reboot: (plan: RebootPlan | null) => void;
  /** the version it runs */
  private running: number;
  private image: { data: Buffer; micOk: boolean } | null = null;

  /** `reboot(null)` cancels a programmed reboot. */
  constructor(host: PackageHost, opts: FirmwareOptions, reboot: (plan: RebootPlan | null) => void) {
    this.host = host;
    this.opts = opts;
    this.running = opts.version;
    this.reboot = reboot;
  }

  get version(): number {
    return this.running;
  }

  /** A data block reassembled by the fragmentation package is the next image. */
  setImage(data: Buffer, micOk: boolean): void {
    this.image = { data, micOk };
  }

  /** The upgrade image's status and version (DevUpgradeImageAns). */
  imageStatus(): { status: number; nextFirmwareVersion: number | null } {
    const img = this.image;
    if (!img) return { status: IMAGE_STATUS.none, nextFirmwareVersion: null };
    if (!img.micOk || img.data.length < 6 || img.data.toString('latin1', 0, 4) !== SIM_IMAGE_MAGIC) return { status: IMAGE_STATUS.corrupt, nextFirmwareVersion: null };
    return { status: IMAGE_STATUS.valid, nextFirmwareVersion: img.data.readUInt16BE(4) };
  }

  /** The reboot itself: the valid image becomes the running version (not for a liar); the image slot is free again. */
  boot(): number {
    const { status, nextFirmwareVersion } = this.imageStatus();
    if (status === IMAGE_STATUS.valid && nextFirmwareVersion !== null && !this.opts.lies) this.running = nextFirmwareVersion;
    this.image = null;
    return this.running;
  }

  /** TS006 §3.2: what a node sends after it booted, and when asked. */
  versionAnswer(): Buffer {
    return encodeFirmwareUp([{ cid: 'DevVersionAns', fwVersion: this.running, hwVersion: this.opts.hwVersion }]);
  }

  /** Returns whether the payload decoded in full. */
  handle(payload: Buffer): boolean {
    const { commands, error } = decodeFirmwareDown(payload);
    const answers = commands.flatMap((c) => this.command(c));
    if (answers.length > 0) this.host.send(FPORT_FIRMWARE, encodeFirmwareUp(answers));
    return error === null;
  }

  private command(c: FirmwareDown): FirmwareUp[] {
    switch (c.cid) {
      case 'PackageVersionReq':
        return [{ cid: 'PackageVersionAns', packageIdentifier: PACKAGE_ID.firmware, packageVersion: FIRMWARE_VERSION }];
      case 'DevVersionReq':
        return [{ cid: 'DevVersionAns', fwVersion: this.running, hwVersion: this.opts.hwVersion }];
      case 'DevRebootTimeReq':
        return [{ cid: 'DevRebootTimeAns', rebootTime: this.rebootAt(c.rebootTime) }];
      case 'DevRebootCountdownReq':
        return [{ cid: 'DevRebootCountdownAns', countdown: this.rebootIn(c.countdown) }];
      case 'DevUpgradeImageReq':
        return [{ cid: 'DevUpgradeImageAns', ...this.imageStatus() }];
      case 'DevDeleteImageReq': {
        const { status, nextFirmwareVersion } = this.imageStatus();
        const errorNoValidImage = status !== IMAGE_STATUS.valid;
        const errorInvalidVersion = !errorNoValidImage && nextFirmwareVersion !== c.firmwareToDeleteVersion;
        if (!errorNoValidImage && !errorInvalidVersion) this.image = null;
        return [{ cid: 'DevDeleteImageAns', errorInvalidVersion, errorNoValidImage }];
      }
    }
  }

  /** TS006 §3.3: GPS seconds on the node's clock; 0 at once, all ones cancels, a time past refused (answered all ones). */
  private rebootAt(rebootTime: number): number {
    if (rebootTime === CANCEL_TIME) {
      this.reboot(null);
      return CANCEL_TIME;
    }
    if (rebootTime === 0) {
      this.reboot({ at: 'afterAnswer' });
      return 0;
    }
    const ms = this.host.clock.msUntil(rebootTime);
    if (ms <= 0) return CANCEL_TIME;
    this.reboot({ at: 'in', ms });
    return rebootTime;
  }

  /** TS006 §3.4: seconds from now; 0 at once, all ones cancels. */
  private rebootIn(countdown: number): number {
    if (countdown === CANCEL_COUNTDOWN) this.reboot(null);
    else this.reboot(countdown === 0 ? { at: 'afterAnswer' } : { at: 'in', ms: countdown * 1000 });
    return countdown;
  }
}
