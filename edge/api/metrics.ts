/**
 * The figures of GET /metrics: what the API counts itself from the bus (readings ingested, values
 * polled, comms losses per device, command outcomes by status), the store's depth, the process
 * (event-loop lag from perf_hooks, RSS), and what other components hand over from their own
 * registries (edge/metrics.ts: broker, sync lag, LoRa rx/tx/rejected, Modbus buses) through
 * deps.metrics.
 */
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import type { EventBus } from '../bus.js';
import type { JsonLimit } from '../jsonLimits.js';
import type { Store } from '../store/api.js';
import { COMMAND_STATUSES as STATUSES, FINAL_STATUSES as FINAL, type Autonomy, type CommandStatus } from '../store/types.js';
import { MetricsRegistry, type MetricSample } from '../metrics.js';

/** commands followed until they end; past this many open ones the oldest are forgotten */
const MAX_OPEN = 10_000;

/**
 * The API's own figures, in one registry: what it counts from the bus and its requests, and
 * what it reads in at each scrape (store, consumers, drivers' device rows, event loop, process).
 */
export class ApiMetrics {
  private readonly registry = new MetricsRegistry();
  private readonly m = {
    readings: this.registry.counter('streetbox_readings_ingested_total', 'readings committed to the store since the gateway started'),
    polled: this.registry.counter(
      'streetbox_readings_polled_total',
      'values polled from the devices since the gateway started, stored or not by the report strategies',
    ),
    events: this.registry.counter('streetbox_events_recorded_total', 'events committed to the store since the gateway started'),
    storeReadings: this.registry.gauge('streetbox_store_readings', 'readings held in the store'),
    storeEvents: this.registry.gauge('streetbox_store_events', 'events held in the store'),
    storeCommands: this.registry.gauge('streetbox_store_commands', 'command rows held in the store'),
    lastSeq: this.registry.gauge('streetbox_store_last_seq', 'the last seq handed out'),
    usedBytes: this.registry.gauge('streetbox_store_used_bytes', 'bytes of data pages in use (what the quota counts)'),
    fileBytes: this.registry.gauge('streetbox_store_file_bytes', 'size of the database file plus its WAL'),
    maxBytes: this.registry.gauge('streetbox_store_max_bytes', 'the storage quota (storage.maxBytes)'),
    dropped: this.registry.counter('streetbox_store_dropped_total', 'unacknowledged readings evicted by the quota'),
    consumerLag: this.registry.gauge('streetbox_consumer_lag', 'seqs not yet acknowledged by a consumer', ['consumer']),
    commands: this.registry.counter('streetbox_commands_total', 'command rows reaching each status since the gateway started', ['status']),
    commsLost: this.registry.counter('streetbox_device_comms_lost_total', 'comms.lost events per device', ['device']),
    commsErrors: this.registry.counter('streetbox_device_comms_errors_total', 'failed requests to a device, as its driver counts them', ['device']),
    http: this.registry.counter('streetbox_http_requests_total', 'HTTP API requests by status code', ['code']),
    jsonRefused: this.registry.counter(
      'streetbox_http_json_refused_total',
      'HTTP request bodies refused by the JSON limits (bytes, nesting depth) before validation',
      ['limit'],
    ),
    liveReaders: this.registry.gauge('streetbox_live_readers', 'readers connected to the live feed (GET /api/v1/live)'),
    liveBytes: this.registry.counter('streetbox_live_bytes_total', 'bytes written to live-feed readers'),
    liveDropped: this.registry.counter('streetbox_live_dropped_total', 'live-feed readers disconnected for not keeping up'),
    loopLag: this.registry.gauge(
      'streetbox_event_loop_lag_seconds',
      'event-loop delay since the previous scrape (perf_hooks monitorEventLoopDelay, 20 ms resolution)',
      ['quantile'],
    ),
    rss: this.registry.gauge('process_resident_memory_bytes', 'resident set size of the gateway process'),
    heap: this.registry.gauge('nodejs_heap_used_bytes', 'V8 heap in use'),
    uptime: this.registry.gauge('process_uptime_seconds', 'seconds since the process started'),
  };
  /** the status each command open reached last */
  private readonly open = new Map<string, CommandStatus>();
  private readonly finished = new Set<string>();
  private loop: IntervalHistogram | null = null;
  /** what samples() reads in at the scrape under way; collect() leaves the figures that may be absent in `optional` */
  private scrape: { store: Store; devices: readonly unknown[]; optional: MetricSample[] } | null = null;

  constructor(private readonly bus: EventBus) {
    for (const limit of ['bytes', 'depth'] as const) this.m.jsonRefused.labels({ limit });
    for (const status of STATUSES) this.m.commands.labels({ status });
    this.registry.onCollect(() => this.collect());
  }

  get readingsIngested(): number {
    return this.m.readings.value;
  }

  get readingsPolled(): number {
    return this.m.polled.value;
  }

  get eventsRecorded(): number {
    return this.m.events.value;
  }

  /** the live feed (routes/live.ts): readers connected, bytes handed to their sockets, readers dropped for not keeping up */
  get liveReaders(): number {
    return this.m.liveReaders.value;
  }

  set liveReaders(n: number) {
    this.m.liveReaders.set(n);
  }

  get liveBytes(): number {
    return this.m.liveBytes.value;
  }

  set liveBytes(n: number) {
    this.m.liveBytes.set(n);
  }

  get liveDropped(): number {
    return this.m.liveDropped.value;
  }

  set liveDropped(n: number) {
    this.m.liveDropped.set(n);
  }

  start(): void {
    if (this.loop) return;
    this.loop = monitorEventLoopDelay({ resolution: 20 });
    this.loop.enable();
    this.bus.on(this, 'readings', (rs) => this.m.readings.inc(rs.length));
    this.bus.on(this, 'polled', (rs) => this.m.polled.inc(rs.length));
    this.bus.on(this, 'event', (e) => {
      this.m.events.inc();
      if (e.kind === 'comms.lost' && e.device !== null) this.m.commsLost.labels({ device: e.device }).inc();
    });
    this.bus.on(this, 'command', (c) => {
      // count each status a command reaches once, however often its row is announced
      if (this.open.get(c.id) === c.status) return;
      if (!this.open.has(c.id) && FINAL.has(c.status) && this.finished.has(c.id)) return;
      this.m.commands.labels({ status: c.status }).inc();
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

  stop(): void {
    this.bus.off(this);
    this.loop?.disable();
    this.loop = null;
  }

  /** A request body refused by the JSON limits (edge/jsonLimits.ts). */
  jsonRefused(limit: JsonLimit): void {
    this.m.jsonRefused.labels({ limit }).inc();
  }

  request(status: number): void {
    this.m.http.labels({ code: String(status) }).inc();
  }

  /**
   * All samples. `devices` are the drivers' per-device rows (`{ id, failures? | commsErrors? }`);
   * `extra` the other components' samples.
   */
  samples(store: Store, devices: readonly unknown[], extra: readonly MetricSample[]): MetricSample[] {
    this.scrape = { store, devices, optional: [] };
    try {
      const own = this.registry.samples(); // runs collect(), which fills `optional`
      return [...own, ...this.scrape.optional, ...extra];
    } finally {
      this.scrape = null;
    }
  }

  private collect(): void {
    const { m } = this;
    const { store, devices, optional } = this.scrape!;
    const s = store.stats();
    optional.push(...autonomySamples(s.autonomy));
    m.storeReadings.set(s.readings);
    m.storeEvents.set(s.events);
    m.storeCommands.set(s.commands);
    m.lastSeq.set(s.lastSeq);
    m.usedBytes.set(s.usedBytes);
    m.fileBytes.set(s.fileBytes);
    m.maxBytes.set(s.maxBytes);
    m.dropped.set(s.droppedTotal);
    m.consumerLag.clear();
    for (const c of store.consumers()) m.consumerLag.labels({ consumer: c.name }).set(Math.max(0, s.lastSeq - c.ackedSeq));
    m.commsErrors.clear();
    for (const d of devices) {
      if (d === null || typeof d !== 'object') continue;
      const row = d as { id?: unknown; failures?: unknown; commsErrors?: unknown };
      const errors = typeof row.commsErrors === 'number' ? row.commsErrors : typeof row.failures === 'number' ? row.failures : undefined;
      if (typeof row.id === 'string' && errors !== undefined) m.commsErrors.labels({ device: row.id }).set(errors);
    }
    const loop = this.loop;
    const has = loop !== null && loop.count > 0;
    m.loopLag.labels({ quantile: 'mean' }).set(has ? loop.mean / 1e9 : 0);
    m.loopLag.labels({ quantile: '0.99' }).set(has ? loop.percentile(99) / 1e9 : 0);
    m.loopLag.labels({ quantile: '1' }).set(has ? loop.max / 1e9 : 0);
    if (has) loop.reset();
    const mem = process.memoryUsage();
    m.rss.set(mem.rss);
    m.heap.set(mem.heapUsed);
    m.uptime.set(Math.round(process.uptime()));
  }
}

/**
 * The buffer's offline autonomy (edge/store/autonomy.ts). The load and the days are absent
 * while the store is still measuring: a scrape never shows a made-up 0 or a NaN.
 */
function autonomySamples(a: Autonomy | undefined): MetricSample[] {
  if (!a) return [];
  const out: MetricSample[] = [
    { name: 'streetbox_storage_bytes_per_reading', help: 'bytes one stored reading takes in the buffer', type: 'gauge', value: a.bytesPerReading },
  ];
  if (a.readingsPerDay !== null) {
    out.push({ name: 'streetbox_storage_readings_per_day', help: 'readings stored per day at the load measured', type: 'gauge', value: a.readingsPerDay });
  }
  if (a.days !== null) {
    out.push({ name: 'streetbox_storage_autonomy_days', help: 'days of readings the buffer holds offline at the load measured', type: 'gauge', value: a.days });
  }
  return out;
}
