/**
 * De-duplication of one frame heard by several forwarders (as ChirpStack's
 * deduplication): an accepted frame opens a window of `windowMs`; copies with the same
 * (DevAddr, FCnt) and the same bytes that arrive in it are merged into it. When the window
 * closes, the promise `open` returned resolves with every copy, best first: the best RSSI/SNR
 * goes into the readings, the best forwarder that can transmit sends the answer.
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

/** What the window saw of one frame. */
export interface Heard {
  /** the copy with the best SNR (then RSSI) */
  best: RxMeta;
  /** every copy, best first */
  copies: readonly RxMeta[];
}

interface Entry {
  phy: Buffer;
  best: RxMeta;
  copies: RxMeta[];
  timer: Timer;
  resolve: (heard: Heard) => void;
}

export class Deduplicator {
  private readonly entries = new Map<string, Entry>();
  private readonly clock: Clock;
  private readonly windowMs: number;

  constructor(clock: Clock, windowMs: number) {
    this.clock = clock;
    this.windowMs = windowMs;
  }

  static key(devAddr: string, fCnt16: number): string {
    return `${devAddr}:${fCnt16}`;
  }

  /** True when this is a copy of a frame whose window is open (merged); false when the caller should process it. */
  merge(key: string, phy: Buffer, meta: RxMeta): boolean {
    const e = this.entries.get(key);
    if (!e || !e.phy.equals(phy)) return false;
    e.copies.push(meta);
    if (better(meta, e.best)) e.best = meta;
    return true;
  }

  /** Opens the window of an accepted frame; resolves with its copies when the window closes. */
  open(key: string, phy: Buffer, meta: RxMeta): Promise<Heard> {
    return new Promise((resolve) => {
      const timer = this.clock.setTimeout(() => this.close(key), this.windowMs);
      timer.unref?.();
      this.entries.set(key, { phy, best: meta, copies: [meta], timer, resolve });
    });
  }

  private close(key: string): void {
    const e = this.entries.get(key);
    if (!e) return;
    this.entries.delete(key);
    e.resolve({ best: e.best, copies: e.copies.sort((a, b) => (better(a, b) ? -1 : better(b, a) ? 1 : 0)) });
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
