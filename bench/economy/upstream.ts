/**
 * Upstream bytes of the simulated day: the exact payloads the sync would publish, built by the
 * sync's own Batcher, Linger and encodePayload over the store, plus the MQTT framing of each
 * batch. Online, the sync looks after every commit (cloud-sync/sync.ts: the store's bus wakes
 * it): an event, a full batch or one an event closed goes at once, an open readings batch waits
 * until its oldest reading has waited `linger` on the day's clock (one timer, as the sync arms
 * it). After an outage it sends the backlog in full batches.
 */
import { Batcher, type BuiltBatch } from '../../cloud-sync/batcher.js';
import { Linger } from '../../cloud-sync/linger.js';
import { encodePayload } from '../../cloud-sync/payload.js';
import { gatewayTopics } from '../../cloud-sync/topics.js';
import type { Clock, Timer } from '../../edge/clock.js';
import type { Store } from '../../edge/store/api.js';

/** MQTT 3.1.1 §3.4: PUBACK is a 2-byte fixed header and the packet identifier */
const PUBACK_BYTES = 4;

/**
 * MQTT framing of one QoS 1 batch (protocolVersion 4, the sync's default), both ways: PUBLISH
 * (§3.3) = fixed header (1 byte + the remaining length, 1–4 bytes, §2.2.3) + topic (2-byte
 * length + UTF-8) + packet identifier (2), and the broker's PUBACK (4). TCP/IP, TLS and
 * keepalive PINGREQs are not counted.
 */
export function mqttBatchOverhead(topic: string, payloadBytes: number): number {
  const variable = 2 + Buffer.byteLength(topic) + 2;
  const remaining = variable + payloadBytes;
  const lengthBytes = remaining < 128 ? 1 : remaining < 16_384 ? 2 : remaining < 2_097_152 ? 3 : 4;
  return 1 + lengthBytes + variable + PUBACK_BYTES;
}

export interface SyncSettings {
  batchSize: number;
  batchBytes: number;
  compress: boolean;
  /** ms an open readings batch waits (sync.linger); 0: one batch per commit */
  linger: number;
}

export interface UpstreamTally {
  batches: number;
  /** readings and events sent */
  items: number;
  /** payload bytes with the sync's `compress` setting: what the sync counts as sentBytes */
  payloadBytes: number;
  /** MQTT framing of those batches, PUBACKs included */
  mqttBytes: number;
  /** payload and framing bytes had `compress` been the other way */
  otherPayloadBytes: number;
  otherMqttBytes: number;
}

/**
 * Drains the store's stream into batches from `after`, as the sync's pump does when every batch
 * is acknowledged at once; each batch is encoded both ways (plain JSON and deflate). With a
 * clock it is the online sync (open readings batches linger on it); without, a backlog drain.
 */
export class UpstreamCounter {
  readonly tally: UpstreamTally = { batches: 0, items: 0, payloadBytes: 0, mqttBytes: 0, otherPayloadBytes: 0, otherMqttBytes: 0 };
  private readonly batcher: Batcher;
  private readonly linger: Linger;
  private readonly topics: ReturnType<typeof gatewayTopics>;
  private timer: Timer | undefined;
  private after = 0;

  constructor(
    store: Store,
    private readonly gateway: string,
    private readonly sync: SyncSettings,
    private readonly clock?: Clock,
  ) {
    this.batcher = new Batcher({ store, gateway, batchSize: sync.batchSize, batchBytes: sync.batchBytes });
    this.linger = new Linger(clock ? sync.linger : 0);
    this.topics = gatewayTopics(gateway);
  }

  /**
   * `upTo`: a commit up to that seq, seen now: send what may go now, arm the timer for a
   * lingering batch. Without: the end (of the day, or a backlog): send everything.
   */
  pump(upTo?: number): void {
    if (upTo === undefined || !this.clock) {
      this.clearTimer();
      for (let b = this.batcher.next(this.after); b; b = this.batcher.next(this.after)) this.send(b);
      return;
    }
    this.linger.seen(upTo, this.clock.monotonic());
    this.drain(this.clock);
  }

  private drain(clock: Clock): void {
    for (let b = this.batcher.next(this.after); b; b = this.batcher.next(this.after)) {
      const wait = this.linger.waitMs(b, clock.monotonic());
      if (wait > 0) {
        // one timer, as the sync arms it: the lingering batch's due time does not move
        this.timer ??= clock.setTimeout(() => {
          this.timer = undefined;
          this.drain(clock);
        }, wait);
        return;
      }
      this.clearTimer();
      this.send(b);
    }
  }

  private clearTimer(): void {
    if (this.timer) this.clock?.clearTimeout(this.timer);
    this.timer = undefined;
  }

  private send(b: BuiltBatch): void {
    const topic = this.topics.up(b.kind);
    const payload = encodePayload(this.gateway, b.fromSeq, b.toSeq, b.itemsJson, this.sync.compress).length;
    const other = encodePayload(this.gateway, b.fromSeq, b.toSeq, b.itemsJson, !this.sync.compress).length;
    const t = this.tally;
    t.batches++;
    t.items += b.itemsJson.length;
    t.payloadBytes += payload;
    t.mqttBytes += mqttBatchOverhead(topic, payload);
    t.otherPayloadBytes += other;
    t.otherMqttBytes += mqttBatchOverhead(topic, other);
    this.after = b.toSeq;
    // acknowledged at once
    this.linger.acked(b.toSeq);
  }
}
