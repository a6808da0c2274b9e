/**
 * The figures of GET /metrics: what the API counts itself from the bus (readings ingested, values
 * polled, comms losses per device, command outcomes by status), the store's depth, the process
 * (event-loop lag from perf_hooks, RSS), the components' states, the devices' values, availability
 * and state (read in at each scrape), and what other components hand over from their own
 * registries (edge/metrics.ts: broker, sync lag, LoRa rx/tx/rejected, Modbus buses) through
 * deps.metrics.
 */
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import type { EventBus } from '../bus.js';
import type { AlarmConfig, Config } from '../config/schema.js';
import type { JsonLimit } from '../jsonLimits.js';
import type { DeviceDescription } from '../profiles/describe.js';
import type { Store } from '../store/api.js';
import { COMMAND_STATUSES as STATUSES, FINAL_STATUSES as FINAL, type Autonomy, type CommandStatus, type LatestValue } from '../store/types.js';
import { MetricsRegistry, type MetricSample } from '../metrics.js';
import { deviceAvailability, deviceState, describedDevices } from './deviceState.js';

/** commands followed until they end; past this many open ones the oldest are forgotten */
const MAX_OPEN = 10_000;

/**
 * At most this many streetbox_device_value series per scrape: a Prometheus server is sized by its
 * series, and a gateway whose devices grow points (a custom profile, values posted for any point)
 * must not grow them without bound. Past it the rest is left out and counted
 * (streetbox_device_series_dropped).
 */
export const MAX_DEVICE_SERIES = 5_000;

/** What a scrape reads in: the store, the configuration, the drivers' device rows, the gateway's status. */
export interface Scrape {
  store: Store;
  config: Config;
  /** the drivers' per-device rows (`{ id, online?, lastSeen?, failures? | commsErrors? }`) */
  devices: readonly unknown[];
  /** online/offline per device from comms.lost / comms.restored (RouteEnv.availability) */
  availability: ReadonlyMap<string, { online: boolean }>;
  /** the gateway's status (main.ts): its `components` are read, `{ name, state, restarts }` each */
  status: unknown;
}

/**
 * The API's own figures, in one registry: what it counts from the bus and its requests, and
 * what it reads in at each scrape (store, consumers, drivers' device rows, event loop, process,
 * and as samples of their own the components' states and the devices' values, availability and state).
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
  private scrape: (Scrape & { optional: MetricSample[] }) | null = null;

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

  /** All samples: the API's own, the components' and devices' read in from `scrape`, then `extra` (the other components' samples). */
  samples(scrape: Scrape, extra: readonly MetricSample[]): MetricSample[] {
    this.scrape = { ...scrape, optional: [] };
    try {
      const own = this.registry.samples(); // runs collect(), which fills `optional`
      return [...own, ...this.scrape.optional, ...extra];
    } finally {
      this.scrape = null;
    }
  }

  private collect(): void {
    const { m } = this;
    const scrape = this.scrape!;
    const { store, devices, optional } = scrape;
    const s = store.stats();
    optional.push(...autonomySamples(s.autonomy), ...componentSamples(scrape.status), ...deviceSamples(scrape));
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
    // every configured device's count from 0, so that a rate() sees its first loss (and a dashboard finds the series)
    for (const d of scrape.config.devices) m.commsLost.labels({ device: d.id });
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

/** The components' states (main.ts status().components): up 1 while running, 0 otherwise; their restarts. */
function componentSamples(status: unknown): MetricSample[] {
  const components = status !== null && typeof status === 'object' ? (status as { components?: unknown }).components : undefined;
  if (!Array.isArray(components)) return [];
  const out: MetricSample[] = [];
  for (const c of components as unknown[]) {
    if (c === null || typeof c !== 'object') continue;
    const { name, state, restarts } = c as { name?: unknown; state?: unknown; restarts?: unknown };
    if (typeof name !== 'string') continue;
    out.push({ name: 'streetbox_component_up', help: 'whether a component of the gateway is running (1) or not (0: starting, degraded, stopped)', type: 'gauge', value: state === 'running' ? 1 : 0, labels: { component: name } });
    if (typeof restarts === 'number') {
      out.push({ name: 'streetbox_component_restarts_total', help: 'restarts of a component after it failed, since the gateway started', type: 'counter', value: restarts, labels: { component: name } });
    }
  }
  return out;
}

/** A configured device as its figures label it; described once per configuration object. */
interface DeviceFacts {
  desc: DeviceDescription;
  alarms: readonly AlarmConfig[];
  /** point → its role in the profile */
  roles: ReadonlyMap<string, string>;
  /** the labels of every per-device series */
  labels: { device: string; group: string; groups: string };
}

/** Per configuration object (a configuration change makes a new one): the profile registry is read once, not at each scrape. */
const factsByConfig = new WeakMap<Config, DeviceFacts[]>();

/**
 * A device in several groups: `group` is its first group (as devices.yaml lists them) and `groups`
 * all of them, comma-wrapped (`,stationsplein,night,`). One series per device, not one per group:
 * `sum by (group)` counts each lamp's power once and the totals add up to the gateway's, and the
 * series count does not multiply with the groups; `groups=~".*,night,.*"` still picks every member.
 */
function deviceFacts(config: Config): DeviceFacts[] {
  let facts = factsByConfig.get(config);
  if (!facts) {
    facts = [...describedDevices(config).values()].map(({ device, desc, alarms }) => ({
      desc,
      alarms,
      roles: new Map(desc.roles.map((r) => [r.point, r.role])),
      labels: { device: device.id, group: device.groups[0] ?? '', groups: device.groups.length === 0 ? '' : `,${device.groups.join(',')},` },
    }));
    factsByConfig.set(config, facts);
  }
  return facts;
}

/**
 * A latest value as a gauge: numbers as they are, booleans 0/1; strings, non-finite numbers and
 * values of quality bad or stale are left out (a gap, as the history API shows them, never a 0).
 */
function gaugeValue(v: LatestValue): number | null {
  if (v.quality !== 'good') return null;
  if (typeof v.value === 'boolean') return v.value ? 1 : 0;
  return typeof v.value === 'number' && Number.isFinite(v.value) ? v.value : null;
}

const DEVICE_HELP = {
  value: 'the latest good value of a numeric or boolean (0/1) point of a device; labelled with its unit, its role in the profile and the device\'s first group (group) and all its groups (groups, comma-wrapped)',
  online: 'whether a device answers (1) or not (0); absent while it was never heard of',
  lastSeen: 'when a device was last heard from, in seconds since the epoch',
  level: 'a light\'s level now, 0..100 % (edge/api/deviceState.ts)',
  state: 'what a device is doing now: 1 for its current state (on, dimmed, off, offline, alarm, unknown)',
  limit: 'the cap on streetbox_device_value series',
  dropped: 'streetbox_device_value series left out of this scrape past the cap',
} as const;

/**
 * The devices' figures, read once per scrape (store.latestAll()): every configured device's
 * availability, state and level, and its points' values, up to `max` value series. Points with a
 * role come first, so the cap leaves out a vendor's extra points before the power and levels a
 * dashboard sums.
 */
function deviceSamples(scrape: Scrape, max = MAX_DEVICE_SERIES): MetricSample[] {
  const latestAll = scrape.store.latestAll();
  const rows = new Map<string, Record<string, unknown>>();
  for (const d of scrape.devices) {
    if (d !== null && typeof d === 'object' && typeof (d as { id?: unknown }).id === 'string') rows.set((d as { id: string }).id, d as Record<string, unknown>);
  }
  const out: MetricSample[] = [];
  // the value series in device and point order, each with its place: the cap picks, the order stays
  const withRole: { at: number; s: MetricSample }[] = [];
  const rest: { at: number; s: MetricSample }[] = [];
  for (const f of deviceFacts(scrape.config)) {
    const { labels } = f;
    const latest = latestAll.get(labels.device) ?? new Map<string, LatestValue>();
    let newest: number | null = null;
    for (const [point, v] of latest) {
      newest = Math.max(newest ?? v.ts, v.ts);
      const value = gaugeValue(v);
      if (value === null) continue;
      const role = f.roles.get(point);
      // labels written out: a spread of `labels` costs ~70 times as much in V8, 90 ms a scrape at the cap
      const valueLabels = { device: labels.device, group: labels.group, groups: labels.groups, point, unit: v.unit ?? '', role: role ?? '' };
      const s: MetricSample = { name: 'streetbox_device_value', help: DEVICE_HELP.value, type: 'gauge', value, labels: valueLabels };
      (role === undefined ? rest : withRole).push({ at: withRole.length + rest.length, s });
    }
    const { online, lastSeen } = deviceAvailability(rows.get(labels.device), scrape.availability.get(labels.device), newest);
    if (online !== null) out.push({ name: 'streetbox_device_online', help: DEVICE_HELP.online, type: 'gauge', value: online ? 1 : 0, labels });
    if (lastSeen !== null) out.push({ name: 'streetbox_device_last_seen_timestamp_seconds', help: DEVICE_HELP.lastSeen, type: 'gauge', value: lastSeen / 1000, labels });
    const now = deviceState(f.desc, f.alarms, latest, online);
    if (now.level !== null) out.push({ name: 'streetbox_device_level', help: DEVICE_HELP.level, type: 'gauge', value: now.level, labels });
    out.push({ name: 'streetbox_device_state', help: DEVICE_HELP.state, type: 'gauge', value: 1, labels: { device: labels.device, group: labels.group, groups: labels.groups, state: now.state } });
  }
  const kept = withRole.length >= max ? withRole.slice(0, max) : [...withRole, ...rest.slice(0, max - withRole.length)];
  out.push(
    ...kept.sort((a, b) => a.at - b.at).map((v) => v.s),
    { name: 'streetbox_device_series_limit', help: DEVICE_HELP.limit, type: 'gauge', value: max },
    { name: 'streetbox_device_series_dropped', help: DEVICE_HELP.dropped, type: 'gauge', value: withRole.length + rest.length - kept.length },
  );
  return out;
}
