/**
 * Other components' figures for GET /metrics, read from their status at each scrape into a
 * registry (edge/metrics.ts): upstream sync lag, command refusals, LoRaWAN radio counters (frames,
 * rejections by reason, MAC commands by command and outcome, multicast frames by outcome).
 * (The API itself adds store, ingest, command, process figures.)
 */
import { LorawanMetrics, type LorawanDriver } from './drivers/lorawan/index.js';
import type { ControlComponent } from './control/index.js';
import { MetricsRegistry, type MetricSample } from './metrics.js';
import type { SyncComponent } from '../cloud-sync/index.js';

export function syncMetrics(sync: SyncComponent): MetricSample[] {
  const s = sync.status();
  const r = new MetricsRegistry();
  r.gauge('streetbox_sync_connected', 'Whether the upstream MQTT link is up (1) or not (0).').set(s.connected ? 1 : 0);
  r.gauge('streetbox_sync_lag_seq', 'Readings and events committed but not yet acknowledged upstream.').set(s.lagSeq);
  r.gauge('streetbox_sync_lag_seconds', 'Age of the oldest item not yet acknowledged upstream.').set(s.lagMs / 1000);
  r.gauge('streetbox_sync_acked_seq', 'Everything up to this seq is acknowledged by the upstream broker.').set(s.ackedSeq);
  r.counter('streetbox_sync_batches_total', 'Batches published upstream.').set(s.sentBatches);
  r.counter('streetbox_sync_resent_total', 'Batches published again after a reconnect or an ack timeout.').set(s.resent);
  r.counter('streetbox_sync_bytes_total', 'Payload bytes published upstream.').set(s.sentBytes);
  r.gauge('streetbox_sync_bytes_today', "Payload bytes published upstream today (the gateway's time zone), kept across restarts.").set(s.bytesToday);
  const out = r.samples();
  // absent before the first full day: no made-up figure
  if (s.bytesPerMonthEstimate !== null) {
    out.push({ name: 'streetbox_sync_bytes_per_month_estimate', help: 'Mean payload bytes of the full days counted (last 31) × 30.', type: 'gauge', value: s.bytesPerMonthEstimate });
  }
  return out;
}

/** Refused commands: stored in full while a principal is under its limit, counted beyond it. */
export function refusalMetrics(control: Pick<ControlComponent, 'refusalCounts'>): MetricSample[] {
  const c = control.refusalCounts();
  const r = new MetricsRegistry();
  r.counter('streetbox_command_refusals_recorded_total', 'Refused commands stored in full (a command row and a command.rejected event).').set(c.recorded);
  r.counter(
    'streetbox_command_refusals_suppressed_total',
    "Refused commands past their principal's limit: counted in command.rejected.suppressed events, not stored one by one.",
  ).set(c.suppressed);
  r.gauge('streetbox_command_refusal_principals', 'Principals whose refusals are being counted.').set(c.principals);
  return r.samples();
}

export function lorawanMetrics(lora: LorawanDriver): MetricSample[] {
  return LorawanMetrics.fromSnapshot(lora.metrics()).samples();
}
