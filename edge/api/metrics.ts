/**
 * The figures of GET /metrics: what the API counts itself from the bus (readings ingested,
 * comms losses per device, command outcomes by status), the store's depth, the process
 * (event-loop lag from perf_hooks, RSS), and what other components hand over as MetricSample
 * rows (broker, sync lag, LoRa rx/tx/rejected) through deps.metrics.
 */
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import type { EventBus } from '../bus.js';
import type { JsonLimit } from '../jsonLimits.js';
import type { Store } from '../store/api.js';
import type { CommandStatus } from '../store/types.js';
import type { MetricSample } from './metricsText.js';

const STATUSES: readonly CommandStatus[] = ['queued', 'sent', 'verified', 'failed', 'expired', 'rejected'];
const FINAL = new Set<CommandStatus>(['verified', 'failed', 'expired', 'rejected']);
/** commands followed until they end; past this many open ones the oldest are forgotten */
const MAX_OPEN = 10_000;

export interface DeviceCounters {
  commsLost: number;
  commsErrors: number;
}

export class ApiMetrics {
  readingsIngested = 0;
  eventsRecorded = 0;
  /** the live feed (routes/live.ts): readers connected, bytes handed to their sockets, readers dropped for not keeping up */
  liveReaders = 0;
  liveBytes = 0;
  liveDropped = 0;
  private readonly jsonRefusals = new Map<JsonLimit, number>([
    ['bytes', 0],
    ['depth', 0],
  ]);
  private readonly commsLost = new Map<string, number>();
  private readonly commands = new Map<CommandStatus, number>(STATUSES.map((s) => [s, 0]));
  private readonly open = new Map<string, CommandStatus>();
  private readonly http = new Map<string, number>();
  private loop: IntervalHistogram | null = null;

  constructor(private readonly bus: EventBus) {}

  start(): void {
    if (this.loop) return;
    this.loop = monitorEventLoopDelay({ resolution: 20 });
    this.loop.enable();
    this.bus.on(this, 'readings', (rs) => {
      this.readingsIngested += rs.length;
    });
    this.bus.on(this, 'event', (e) => {
      this.eventsRecorded++;
      if (e.kind === 'comms.lost' && e.device !== null) this.commsLost.set(e.device, (this.commsLost.get(e.device) ?? 0) + 1);
    });
    this.bus.on(this, 'command', (c) => {
      // count each status a command reaches once, however often its row is announced
      if (this.open.get(c.id) === c.status) return;
      if (!this.open.has(c.id) && FINAL.has(c.status) && this.finished.has(c.id)) return;
      this.commands.set(c.status, (this.commands.get(c.status) ?? 0) + 1);
      if (FINAL.has(c.status)) {
        this.open.delete(c.id);
        this.finished.add(c.id);
        if (this.finished.size > MAX_OPEN) this.finished.delete(this.finished.values().next().value!);
      } else {
        this.open.set(c.id, c.status);
        if (this.open.size > MAX_OPEN) this.open.delete(this.open.keys().next().value!);
      }
    });
  }

  private readonly finished = new Set<string>();

  stop(): void {
    this.bus.off(this);
    this.loop?.disable();
    this.loop = null;
  }

  /** A request body refused by the JSON limits (edge/jsonLimits.ts). */
  jsonRefused(limit: JsonLimit): void {
    this.jsonRefusals.set(limit, (this.jsonRefusals.get(limit) ?? 0) + 1);
  }

  request(status: number): void {
    const k = String(status);
    this.http.set(k, (this.http.get(k) ?? 0) + 1);
  }

  /**
   * All samples. `devices` are the drivers' per-device rows (`{ id, failures? | commsErrors? }`);
   * `extra` the other components' samples.
   */
  samples(store: Store, devices: readonly unknown[], extra: readonly MetricSample[]): MetricSample[] {
    const s = store.stats();
    const out: MetricSample[] = [
      counter('streetbox_readings_ingested_total', 'readings committed to the store since the gateway started', this.readingsIngested),
      counter('streetbox_events_recorded_total', 'events committed to the store since the gateway started', this.eventsRecorded),
      gauge('streetbox_store_readings', 'readings held in the store', s.readings),
      gauge('streetbox_store_events', 'events held in the store', s.events),
      gauge('streetbox_store_commands', 'command rows held in the store', s.commands),
      gauge('streetbox_store_last_seq', 'the last seq handed out', s.lastSeq),
      gauge('streetbox_store_used_bytes', 'bytes of data pages in use (what the quota counts)', s.usedBytes),
      gauge('streetbox_store_file_bytes', 'size of the database file plus its WAL', s.fileBytes),
      gauge('streetbox_store_max_bytes', 'the storage quota (storage.maxBytes)', s.maxBytes),
      counter('streetbox_store_dropped_total', 'unacknowledged readings evicted by the quota', s.droppedTotal),
    ];
    for (const c of store.consumers()) {
      out.push(gauge('streetbox_consumer_lag', 'seqs not yet acknowledged by a consumer', Math.max(0, s.lastSeq - c.ackedSeq), { consumer: c.name }));
    }
    for (const st of STATUSES) {
      out.push(counter('streetbox_commands_total', 'command rows reaching each status since the gateway started', this.commands.get(st) ?? 0, { status: st }));
    }
    for (const [device, n] of [...this.commsLost].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
      out.push(counter('streetbox_device_comms_lost_total', 'comms.lost events per device', n, { device }));
    }
    for (const d of devices) {
      if (d === null || typeof d !== 'object') continue;
      const row = d as { id?: unknown; failures?: unknown; commsErrors?: unknown };
      const errors = typeof row.commsErrors === 'number' ? row.commsErrors : typeof row.failures === 'number' ? row.failures : undefined;
      if (typeof row.id === 'string' && errors !== undefined) {
        out.push(counter('streetbox_device_comms_errors_total', 'failed requests to a device, as its driver counts them', errors, { device: row.id }));
      }
    }
    for (const [code, n] of [...this.http].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
      out.push(counter('streetbox_http_requests_total', 'HTTP API requests by status code', n, { code }));
    }
    for (const [limit, n] of this.jsonRefusals) {
      out.push(counter('streetbox_http_json_refused_total', 'HTTP request bodies refused by the JSON limits (bytes, nesting depth) before validation', n, { limit }));
    }
    out.push(gauge('streetbox_live_readers', 'readers connected to the live feed (GET /api/v1/live)', this.liveReaders));
    out.push(counter('streetbox_live_bytes_total', 'bytes written to live-feed readers', this.liveBytes));
    out.push(counter('streetbox_live_dropped_total', 'live-feed readers disconnected for not keeping up', this.liveDropped));
    const loop = this.loop;
    const has = loop !== null && loop.count > 0;
    const help = 'event-loop delay since the previous scrape (perf_hooks monitorEventLoopDelay, 20 ms resolution)';
    out.push(gauge('streetbox_event_loop_lag_seconds', help, has ? loop.mean / 1e9 : 0, { quantile: 'mean' }));
    out.push(gauge('streetbox_event_loop_lag_seconds', help, has ? loop.percentile(99) / 1e9 : 0, { quantile: '0.99' }));
    out.push(gauge('streetbox_event_loop_lag_seconds', help, has ? loop.max / 1e9 : 0, { quantile: '1' }));
    if (has) loop.reset();
    const mem = process.memoryUsage();
    out.push(gauge('process_resident_memory_bytes', 'resident set size of the gateway process', mem.rss));
    out.push(gauge('nodejs_heap_used_bytes', 'V8 heap in use', mem.heapUsed));
    out.push(gauge('process_uptime_seconds', 'seconds since the process started', Math.round(process.uptime())));
    out.push(...extra);
    return out;
  }
}

function counter(name: string, help: string, value: number, labels?: Record<string, string>): MetricSample {
  return labels ? { name, help, type: 'counter', value, labels } : { name, help, type: 'counter', value };
}

function gauge(name: string, help: string, value: number, labels?: Record<string, string>): MetricSample {
  return labels ? { name, help, type: 'gauge', value, labels } : { name, help, type: 'gauge', value };
}
