/**
 * Counters of the LoRaWAN driver, in its own registry (edge/metrics.ts). Every rejected
 * datagram, frame or downlink is counted under its reason (`rejected.mic`, `rejected.replay`, …)
 * and never stored; the API renders these on /metrics.
 */
import { MetricsRegistry, type MetricSample } from '../../metrics.js';

export interface LorawanMetricsSnapshot {
  /** datagrams received on the UDP port, of any kind */
  datagrams: number;
  /** rxpk frames in PUSH_DATA */
  frames: number;
  /** uplink frames accepted (after de-duplication) */
  uplinks: number;
  /** extra copies of an accepted frame, merged by (DevAddr, FCnt) */
  duplicates: number;
  joins: number;
  downlinks: number;
  txAckErrors: number;
  /** rejections by reason: mic, replay, fcnt_gap, malformed_json, too_short, too_long, unknown_forwarder, forwarders_full, … */
  rejected: Record<string, number>;
}

export class LorawanMetrics {
  private readonly registry = new MetricsRegistry();
  private readonly m = {
    datagrams: this.registry.counter('streetbox_lorawan_datagrams_total', 'UDP datagrams received from packet forwarders.'),
    frames: this.registry.counter('streetbox_lorawan_frames_total', 'rxpk frames received in PUSH_DATA, before de-duplication.'),
    uplinks: this.registry.counter('streetbox_lorawan_rx_total', 'LoRaWAN uplink frames accepted (after de-duplication).'),
    duplicates: this.registry.counter('streetbox_lorawan_duplicates_total', 'Extra copies of accepted frames heard by several forwarders.'),
    joins: this.registry.counter('streetbox_lorawan_joins_total', 'OTAA joins accepted.'),
    downlinks: this.registry.counter('streetbox_lorawan_tx_total', 'Downlinks sent to packet forwarders.'),
    txAckErrors: this.registry.counter('streetbox_lorawan_tx_ack_errors_total', 'TX_ACK errors reported by packet forwarders.'),
    rejected: this.registry.counter('streetbox_lorawan_rejected_total', 'Datagrams and frames rejected, by reason; never stored.', ['reason']),
  };

  /** Counters read back from a snapshot (the driver's `metrics()`), to render them. */
  static fromSnapshot(s: LorawanMetricsSnapshot): LorawanMetrics {
    const m = new LorawanMetrics();
    m.datagrams = s.datagrams;
    m.frames = s.frames;
    m.uplinks = s.uplinks;
    m.duplicates = s.duplicates;
    m.joins = s.joins;
    m.downlinks = s.downlinks;
    m.txAckErrors = s.txAckErrors;
    for (const [reason, n] of Object.entries(s.rejected)) m.m.rejected.labels({ reason }).set(n);
    return m;
  }

  get datagrams(): number {
    return this.m.datagrams.value;
  }

  set datagrams(n: number) {
    this.m.datagrams.set(n);
  }

  get frames(): number {
    return this.m.frames.value;
  }

  set frames(n: number) {
    this.m.frames.set(n);
  }

  get uplinks(): number {
    return this.m.uplinks.value;
  }

  set uplinks(n: number) {
    this.m.uplinks.set(n);
  }

  get duplicates(): number {
    return this.m.duplicates.value;
  }

  set duplicates(n: number) {
    this.m.duplicates.set(n);
  }

  get joins(): number {
    return this.m.joins.value;
  }

  set joins(n: number) {
    this.m.joins.set(n);
  }

  get downlinks(): number {
    return this.m.downlinks.value;
  }

  set downlinks(n: number) {
    this.m.downlinks.set(n);
  }

  get txAckErrors(): number {
    return this.m.txAckErrors.value;
  }

  set txAckErrors(n: number) {
    this.m.txAckErrors.set(n);
  }

  reject(reason: string): void {
    this.m.rejected.labels({ reason }).inc();
  }

  rejected(reason: string): number {
    return this.m.rejected.get({ reason });
  }

  totalRejected(): number {
    return this.m.rejected.entries().reduce((n, e) => n + e.value, 0);
  }

  snapshot(): LorawanMetricsSnapshot {
    return {
      datagrams: this.datagrams,
      frames: this.frames,
      uplinks: this.uplinks,
      duplicates: this.duplicates,
      joins: this.joins,
      downlinks: this.downlinks,
      txAckErrors: this.txAckErrors,
      rejected: Object.fromEntries(
        this.m.rejected
          .entries()
          .map((e) => [e.labels.reason, e.value] as const)
          .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
      ),
    };
  }

  /** The samples of GET /metrics. */
  samples(): MetricSample[] {
    return this.registry.samples();
  }
}
