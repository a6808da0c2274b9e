/**
 * Other components' figures as Prometheus samples for GET /metrics: upstream sync lag and
 * LoRaWAN radio counters. (The API itself adds store, ingest, command, process figures.)
 */
import type { MetricSample } from './api/index.js';
import type { LorawanDriver } from './drivers/lorawan/index.js';
import type { ControlComponent } from './control/index.js';
import type { SyncComponent } from '../cloud-sync/index.js';

export function syncMetrics(sync: SyncComponent): MetricSample[] {
  const s = sync.status();
  return [
    { name: 'streetbox_sync_connected', help: 'Whether the upstream MQTT link is up (1) or not (0).', type: 'gauge', value: s.connected ? 1 : 0 },
    { name: 'streetbox_sync_lag_seq', help: 'Readings and events committed but not yet acknowledged upstream.', type: 'gauge', value: s.lagSeq },
    { name: 'streetbox_sync_lag_seconds', help: 'Age of the oldest item not yet acknowledged upstream.', type: 'gauge', value: s.lagMs / 1000 },
    { name: 'streetbox_sync_acked_seq', help: 'Everything up to this seq is acknowledged by the upstream broker.', type: 'gauge', value: s.ackedSeq },
    { name: 'streetbox_sync_batches_total', help: 'Batches published upstream.', type: 'counter', value: s.sentBatches },
    { name: 'streetbox_sync_resent_total', help: 'Batches published again after a reconnect or an ack timeout.', type: 'counter', value: s.resent },
    { name: 'streetbox_sync_bytes_total', help: 'Payload bytes published upstream.', type: 'counter', value: s.sentBytes },
  ];
}

/** Refused commands: stored in full while a principal is under its limit, counted beyond it. */
export function refusalMetrics(control: Pick<ControlComponent, 'refusalCounts'>): MetricSample[] {
  const r = control.refusalCounts();
  return [
    { name: 'streetbox_command_refusals_recorded_total', help: 'Refused commands stored in full (a command row and a command.rejected event).', type: 'counter', value: r.recorded },
    { name: 'streetbox_command_refusals_suppressed_total', help: 'Refused commands past their principal\'s limit: counted in command.rejected.suppressed events, not stored one by one.', type: 'counter', value: r.suppressed },
    { name: 'streetbox_command_refusal_principals', help: 'Principals whose refusals are being counted.', type: 'gauge', value: r.principals },
  ];
}

export function lorawanMetrics(lora: LorawanDriver): MetricSample[] {
  const m = lora.metrics();
  const samples: MetricSample[] = [
    { name: 'streetbox_lorawan_datagrams_total', help: 'UDP datagrams received from packet forwarders.', type: 'counter', value: m.datagrams },
    { name: 'streetbox_lorawan_rx_total', help: 'LoRaWAN uplink frames accepted (after de-duplication).', type: 'counter', value: m.uplinks },
    { name: 'streetbox_lorawan_duplicates_total', help: 'Extra copies of accepted frames heard by several forwarders.', type: 'counter', value: m.duplicates },
    { name: 'streetbox_lorawan_joins_total', help: 'OTAA joins accepted.', type: 'counter', value: m.joins },
    { name: 'streetbox_lorawan_tx_total', help: 'Downlinks sent to packet forwarders.', type: 'counter', value: m.downlinks },
    { name: 'streetbox_lorawan_tx_ack_errors_total', help: 'TX_ACK errors reported by packet forwarders.', type: 'counter', value: m.txAckErrors },
  ];
  for (const [reason, value] of Object.entries(m.rejected)) {
    samples.push({ name: 'streetbox_lorawan_rejected_total', help: 'Datagrams and frames rejected, by reason; never stored.', type: 'counter', value, labels: { reason } });
  }
  return samples;
}
