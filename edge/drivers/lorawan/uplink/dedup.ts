/**
 * De-duplication of one frame heard by several forwarders (as ChirpStack's
 * deduplication): copies with the same (DevAddr, FCnt) and the same bytes within a short
 * window are merged into the first; the best RSSI/SNR is kept for the readings that are
 * written when the window closes, and for the answer, which the forwarder that heard the
 * device best then transmits.
 */
import type { Clock, Timer } from '../../../clock.js';
import type { UplinkContext } from '../downlink/scheduler.js';

export interface RxMeta {
  gatewayEui: string;
  rssi: number;
  snr: number;
  /** this copy's reception (its forwarder's tmst, frequency, data rate) */
  up: UplinkContext;
}

interface Entry<T> {
  phy: Buffer;
  best: RxMeta;
  /** every copy, best first once the window closes */
  heard: RxMeta[];
  copies: number;
  payload: T;
  timer: Timer;
}

export class Deduplicator<T> {
  private readonly entries = new Map<string, Entry<T>>();
  private readonly clock: Clock;
  private readonly windowMs: number;
  private readonly onClose: (payload: T, best: RxMeta, copies: number, heard: readonly RxMeta[]) => void;

  constructor(clock: Clock, windowMs: number, onClose: (payload: T, best: RxMeta, copies: number, heard: readonly RxMeta[]) => void) {
    this.clock = clock;
    this.windowMs = windowMs;
    this.onClose = onClose;
  }

  static key(devAddr: string, fCnt16: number): string {
    return `${devAddr}:${fCnt16}`;
  }

  /** True when this is a copy of an open frame (merged); false when the caller should process it. */
  merge(key: string, phy: Buffer, meta: RxMeta): boolean {
    const e = this.entries.get(key);
    if (!e || !e.phy.equals(phy)) return false;
    e.copies++;
    e.heard.push(meta);
    if (better(meta, e.best)) e.best = meta;
    return true;
  }

  /** Opens a window for an accepted frame. */
  open(key: string, phy: Buffer, meta: RxMeta, payload: T): void {
    const timer = this.clock.setTimeout(() => this.close(key), this.windowMs);
    timer.unref?.();
    this.entries.set(key, { phy, best: meta, heard: [meta], copies: 1, payload, timer });
  }

  private close(key: string): void {
    const e = this.entries.get(key);
    if (!e) return;
    this.entries.delete(key);
    this.onClose(e.payload, e.best, e.copies, e.heard.sort((a, b) => (better(a, b) ? -1 : better(b, a) ? 1 : 0)));
  }

  /** Closes every open window now (on stop). */
  flush(): void {
    for (const [key, e] of [...this.entries]) {
      this.clock.clearTimeout(e.timer);
      this.close(key);
    }
  }

  get size(): number {
    return this.entries.size;
  }
}

function better(a: RxMeta, b: RxMeta): boolean {
  return a.snr > b.snr || (a.snr === b.snr && a.rssi > b.rssi);
}
