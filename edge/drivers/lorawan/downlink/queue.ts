/**
 * The downlink queue: one FIFO per device of what the gateway sends it on an application port —
 * streetlight commands from the control plane (FPort 10), application-layer messages (TS003–TS006,
 * enqueueApp). The head is `queued` until it is handed to a forwarder, then `sent` until the node
 * ACKs it (confirmed), reports the commanded state (an unconfirmed command) or the forwarder
 * transmitted it (an unconfirmed application message); a miss sends it again, up to MAX_ATTEMPTS.
 * Each item carries the resolver of its caller's outcome promise (enqueueDownlink, enqueueApp).
 */
import type { Timer } from '../../../clock.js';
import type { StreetlightCommand } from '../../../profiles/loraStreetlight.js';
import type { DownlinkOutcome } from '../api.js';

export const MAX_ATTEMPTS = 3;
export const MAX_QUEUE_PER_DEVICE = 32;

export interface QueueItem {
  id: string;
  device: string;
  devEui: string;
  /** names it in the lorawan.downlink.* events: the command's action, or the application message ("AppTimeAns") */
  label: string;
  /** a streetlight command (FPort 10), whose status report can verify it; null for an application message */
  command: StreetlightCommand | null;
  fPort: number;
  payload: Buffer;
  confirmed: boolean;
  /** wall-clock ms; null: no expiry (MAX_ATTEMPTS still bounds it) */
  expiresAt: number | null;
  attempts: number;
  state: 'queued' | 'sent';
  /** class C: retry / ACK-timeout timer */
  timer: Timer | null;
  /** settles the caller's outcome; the first call counts, later ones are ignored */
  readonly settle: (outcome: Settled) => void;
}

/** An outcome as the sender states it (id and device come from the item). */
export type Settled = Omit<DownlinkOutcome, 'id' | 'device'>;

export type NewQueueItem = Omit<QueueItem, 'attempts' | 'state' | 'timer' | 'settle'>;

/** A queued item and the promise of its outcome, which never rejects. */
export function queueItem(init: NewQueueItem): { item: QueueItem; outcome: Promise<DownlinkOutcome> } {
  let resolve: (o: DownlinkOutcome) => void = () => {};
  const outcome = new Promise<DownlinkOutcome>((r) => (resolve = r));
  let settled = false;
  const settle = (o: Settled): void => {
    if (settled) return;
    settled = true;
    resolve({ id: init.id, device: init.device, ...o });
  };
  return { item: { ...init, attempts: 0, state: 'queued', timer: null, settle }, outcome };
}

export class DownlinkQueue {
  private readonly byDevice = new Map<string, QueueItem[]>();

  push(item: QueueItem): boolean {
    let list = this.byDevice.get(item.devEui);
    if (!list) this.byDevice.set(item.devEui, (list = []));
    if (list.length >= MAX_QUEUE_PER_DEVICE) return false;
    list.push(item);
    return true;
  }

  head(devEui: string): QueueItem | undefined {
    return this.byDevice.get(devEui)?.[0];
  }

  size(devEui: string): number {
    return this.byDevice.get(devEui)?.length ?? 0;
  }

  /** Items of the device still to be sent, `item` (going out now) left out. */
  waiting(devEui: string, item: QueueItem | null): number {
    return (this.byDevice.get(devEui) ?? []).filter((i) => i !== item && i.state === 'queued').length;
  }

  remove(item: QueueItem): void {
    const list = this.byDevice.get(item.devEui);
    if (!list) return;
    const i = list.indexOf(item);
    if (i >= 0) list.splice(i, 1);
    if (list.length === 0) this.byDevice.delete(item.devEui);
  }

  /** Removes and returns every item whose expiresAt has passed. */
  expire(now: number): QueueItem[] {
    const out: QueueItem[] = [];
    for (const list of this.byDevice.values()) {
      for (const item of list) if (item.expiresAt !== null && item.expiresAt <= now) out.push(item);
    }
    for (const item of out) this.remove(item);
    return out;
  }

  all(): QueueItem[] {
    return [...this.byDevice.values()].flat();
  }

  /** Empties the queue; returns what it held. */
  clear(): QueueItem[] {
    const out = this.all();
    this.byDevice.clear();
    return out;
  }
}
