/**
 * Counters of the LoRaWAN driver, in its own registry (edge/metrics.ts). Every rejected
 * datagram, frame or downlink is counted under its reason (`rejected.mic`, `rejected.replay`, …)
 * and never stored; MAC commands per command and outcome, multicast frames per outcome. The API
 * renders these on /metrics.
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
  /**
   * MAC commands by command, then outcome: a request `sent` (per downlink carrying it), `answered`,
   * `refused` (a NACK), `failed` (unanswered); a node's request (LinkCheckReq, DeviceTimeReq)
   * `answered` once the downlink with its answer went. An answer nothing asked for is a rejection
   * (`rejected.mac_unsolicited`), a stored request that cannot go one too (`rejected.mac_stored_invalid`)
   */
  mac: Record<string, Record<string, number>>;
  /** multicast frames by outcome (sent, txError, dutyCycle, noForwarder) */
  multicast: Record<string, number>;
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
    mac: this.registry.counter('streetbox_lorawan_mac_total', 'MAC commands by command and outcome (sent, answered, refused, failed).', ['command', 'outcome']),
    multicast: this.registry.counter('streetbox_lorawan_multicast_total', 'Multicast frames by outcome (sent, txError, dutyCycle, noForwarder).', ['outcome']),
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
    for (const [command, outcomes] of Object.entries(s.mac)) {
      for (const [outcome, n] of Object.entries(outcomes)) m.m.mac.labels({ command, outcome }).set(n);
    }
    for (const [outcome, n] of Object.entries(s.multicast)) m.m.multicast.labels({ outcome }).set(n);
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

  /** A MAC command's outcome (see LorawanMetricsSnapshot.mac). */
  mac(command: string, outcome: string): void {
    this.m.mac.labels({ command, outcome }).inc();
  }

  multicast(outcome: string): void {
    this.m.multicast.labels({ outcome }).inc();
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
      rejected: sortedRecord(this.m.rejected.entries().map((e) => [e.labels.reason, e.value])),
      mac: this.macByCommand(),
      multicast: sortedRecord(this.m.multicast.entries().map((e) => [e.labels.outcome, e.value])),
    };
  }

  private macByCommand(): Record<string, Record<string, number>> {
    const out: Record<string, Record<string, number>> = {};
    for (const e of this.m.mac.entries()) (out[e.labels.command] ??= {})[e.labels.outcome] = e.value;
    return out;
  }

  /** The samples of GET /metrics. */
  samples(): MetricSample[] {
    return this.registry.samples();
  }
}

function sortedRecord<T>(entries: [string, T][]): Record<string, T> {
  return Object.fromEntries(entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}
