/**
 * Application-layer uplinks: an accepted frame on an application port goes to the listeners of
 * that port (onAppUplink: FUOTA listens on 200, 201, 203), each called in turn, its error caught
 * and logged (one listener cannot break the radio path or the others). TS003 clock sync (FPort
 * 202) is answered here, before the downlink of the same uplink is built (app/clockSyncServer.ts).
 */
import type { Logger } from '../../../log.js';
import type { AppUplink, QueuedDownlink } from '../api.js';
import { answerClockSync } from '../app/clockSyncServer.js';
import { FPORT_CLOCK_SYNC } from '../app/types.js';
import type { DeviceEntry } from '../devices.js';
import { appQueueItem, isAppPort } from '../downlink/app.js';
import type { NewQueueItem } from '../downlink/queue.js';
import type { LorawanMetrics } from '../metrics.js';
import { unixToGpsMs } from '../mac/types.js';
import type { DataUplink } from './data.js';
import type { RxMeta } from './dedup.js';

export type AppListener = (u: AppUplink) => void;

export interface AppRouterDeps {
  /** queues a downlink for the device (DownlinkSender.enqueue) */
  enqueue: (item: NewQueueItem) => QueuedDownlink;
  metrics: LorawanMetrics;
  log: Logger;
}

export class AppUplinkRouter {
  private readonly d: AppRouterDeps;
  private readonly listeners = new Map<number, Set<AppListener>>();

  constructor(deps: AppRouterDeps) {
    this.d = deps;
  }

  /** Listens to every device's uplinks on `fPort`; returns the function that stops listening. */
  on(fPort: number, listener: AppListener): () => void {
    let set = this.listeners.get(fPort);
    if (!set) this.listeners.set(fPort, (set = new Set()));
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size === 0) this.listeners.delete(fPort);
    };
  }

  /** An accepted uplink of `device` received at `receivedAt` (wall ms, the driver's clock): TS003 answered, listeners called. */
  route(device: DeviceEntry, dec: DataUplink, first: RxMeta, dr: number | null, receivedAt: number): void {
    if (dec.fPort === null || !isAppPort(dec.fPort)) return;
    const gpsMs = unixToGpsMs(receivedAt);
    if (dec.fPort === FPORT_CLOCK_SYNC) this.answerClockSync(device, dec.payload, gpsMs);
    const listeners = this.listeners.get(dec.fPort);
    if (!listeners) return;
    const u: AppUplink = { device: device.id, devEui: device.devEui, fPort: dec.fPort, payload: dec.payload, fCnt: dec.fCnt, receivedAt, gpsMs, snr: first.snr, rssi: first.rssi, dr };
    for (const listener of [...listeners]) this.call(listener, u);
  }

  private call(listener: AppListener, u: AppUplink): void {
    try {
      // a listener typed `void` may still be async: its rejection is caught too
      const r: unknown = listener(u);
      if (r instanceof Promise) r.catch((err: unknown) => this.failed(err, u));
    } catch (err) {
      this.failed(err, u);
    }
  }

  private failed(err: unknown, u: AppUplink): void {
    this.d.log.error({ err, device: u.device, fPort: u.fPort }, 'an application uplink listener failed');
  }

  private answerClockSync(device: DeviceEntry, payload: Buffer, gpsMs: number): void {
    const reply = answerClockSync(payload, gpsMs);
    if (reply.error !== null) {
      this.d.metrics.reject('clock_sync_malformed');
      this.d.log.debug({ device: device.id, error: reply.error }, 'TS003 payload does not decode');
    }
    if (!reply.answer) return;
    try {
      this.d.enqueue(appQueueItem(device, { fPort: FPORT_CLOCK_SYNC, payload: reply.answer, label: 'AppTimeAns' }));
    } catch (err) {
      // a full queue: the node asks again (TS003 §3.3)
      this.d.log.warn({ err, device: device.id }, 'AppTimeAns not queued');
    }
  }
}
