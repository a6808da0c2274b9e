/**
 * De-duplication of one frame heard by several forwarders (as ChirpStack's deduplication), in
 * one call: `claim` says whether a frame is a copy of one whose window is open (the same key —
 * (DevAddr, FCnt) or (DevEUI, DevNonce) — and the same bytes: merged, nothing more to do) or
 * the first of its kind, and then hands back its window, still closed. The uplink opens it
 * once the frame is accepted (MIC, counter, DevNonce), so a rejected frame's copies are
 * decoded and counted by their own reason, and a forged frame never holds a window. The open
 * window collects copies for `windowMs`; `heard` then resolves with every copy, best first:
 * the best RSSI/SNR goes into the readings, the best forwarder that can transmit answers.
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

/** What `claim` says of a frame: a copy merged into an open window, or the first, with its window. */
export type Claim = { copy: true } | { copy: false; window: DedupWindow };

/** The window of a frame seen first: `open` it once the frame is accepted. */
export interface DedupWindow {
  /** Opens the window (once; later calls return the same promise): resolves with every copy when it closes. */
  open(): Promise<Heard>;
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

  /**
   * A copy of a frame whose window is open (same key, same bytes) is merged into it; any other
   * frame gets its window, closed until the caller accepts the frame and opens it.
   */
  claim(key: string, phy: Buffer, meta: RxMeta): Claim {
    const e = this.entries.get(key);
    if (e && e.phy.equals(phy)) {
      e.copies.push(meta);
      if (better(meta, e.best)) e.best = meta;
      return { copy: true };
    }
    let heard: Promise<Heard> | null = null;
    return { copy: false, window: { open: () => (heard ??= this.open(key, phy, meta)) } };
  }

  /**
   * Opens the window of an accepted frame. A window still open under the same key (another
   * frame with the same key, accepted too) closes first: its chain gets the copies it had
   * rather than a promise that never settles.
   */
  private open(key: string, phy: Buffer, meta: RxMeta): Promise<Heard> {
    const old = this.entries.get(key);
    if (old) {
      this.clock.clearTimeout(old.timer);
      this.close(key);
    }
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
