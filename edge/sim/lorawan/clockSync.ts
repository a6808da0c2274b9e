/**
 * TS003 application layer clock synchronisation v1.0.0 (FPort 202), device side: AppTimeReq with
 * the node's own GPS time, AppTimeAns applied when its token matches, ForceDeviceResyncReq and
 * DeviceAppTimePeriodicityReq. The server side is the driver's app/clockSyncServer.ts.
 */
import { decodeClockSyncDown, encodeClockSyncUp } from '../../drivers/lorawan/app/clockSync.js';
import { FPORT_CLOCK_SYNC, PACKAGE_ID, type ClockSyncDown, type ClockSyncUp } from '../../drivers/lorawan/app/types.js';
import type { PackageHost } from './host.js';

/** TS003 §2: the package version this node implements. */
const CLOCK_SYNC_VERSION = 1;
/** TS003 §3.4: the periodic AppTimeReq comes every 128·2^Period s, ±30 s of jitter. */
const PERIOD_UNIT_S = 128;
const PERIOD_JITTER_S = 30;

export interface ClockSyncRecords {
  /** each correction applied, in seconds */
  appTimeCorrections: number[];
  appTimeRequests: number;
}

export class ClockSyncPackage {
  private readonly host: PackageHost;
  private readonly records: ClockSyncRecords;
  /** TS003 §3.2: 4-bit TokenReq, incremented after each AppTimeAns applied */
  private token = 0;
  /** the current DeviceAppTimePeriodicityReq's chain of timers (an older one stops) */
  private period = 0;

  constructor(host: PackageHost, records: ClockSyncRecords) {
    this.host = host;
    this.records = records;
  }

  /** Sends AppTimeReq (its DeviceTime read when the frame goes out) in the node's next uplink. */
  request(ansRequired = true): void {
    this.host.send(FPORT_CLOCK_SYNC, () => this.appTimeReq(ansRequired));
  }

  /** Returns whether the payload decoded in full. */
  handle(payload: Buffer): boolean {
    const { commands, error } = decodeClockSyncDown(payload);
    const answers: ClockSyncUp[] = [];
    for (const c of commands) {
      const a = this.command(c);
      if (a) answers.push(a);
    }
    if (answers.length > 0) this.host.send(FPORT_CLOCK_SYNC, encodeClockSyncUp(answers));
    return error === null;
  }

  private command(c: ClockSyncDown): ClockSyncUp | null {
    switch (c.cid) {
      case 'PackageVersionReq':
        return { cid: 'PackageVersionAns', packageIdentifier: PACKAGE_ID.clockSync, packageVersion: CLOCK_SYNC_VERSION };
      case 'AppTimeAns':
        // TS003 §3.2: an answer to an older request (another token) is ignored
        if (c.tokenAns !== this.token) return null;
        this.host.clock.correct(c.timeCorrection * 1000);
        this.records.appTimeCorrections.push(c.timeCorrection);
        this.token = (this.token + 1) & 0x0f;
        return null;
      case 'ForceDeviceResyncReq': {
        // TS003 §3.5: NbTransmissions AppTimeReq, until one is answered
        const token = this.token;
        for (let i = 0; i < c.nbTransmissions; i++) {
          this.host.send(FPORT_CLOCK_SYNC, () => (this.token === token ? this.appTimeReq(false) : null));
        }
        return null;
      }
      case 'DeviceAppTimePeriodicityReq':
        this.periodic(c.period);
        return { cid: 'DeviceAppTimePeriodicityAns', notSupported: false, time: this.host.clock.gpsS() };
    }
  }

  /** TS003 §3.4: AppTimeReq every 128·2^period s (±30 s). */
  private periodic(period: number): void {
    const chain = ++this.period;
    const next = (): void => {
      const s = PERIOD_UNIT_S * 2 ** period + (this.host.random() * 2 - 1) * PERIOD_JITTER_S;
      this.host.after(s * 1000, () => {
        if (chain !== this.period) return;
        this.request(false);
        next();
      });
    };
    next();
  }

  private appTimeReq(ansRequired: boolean): Buffer {
    this.records.appTimeRequests++;
    return encodeClockSyncUp([{ cid: 'AppTimeReq', deviceTime: this.host.clock.gpsS(), tokenReq: this.token, ansRequired }]);
  }
}
