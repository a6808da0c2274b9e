/**
 * GET /metrics: Prometheus text exposition format 0.0.4, parsed line by line here (HELP and
 * TYPE once per family, before its samples; every sample line well-formed), the figures the
 * issue asks for present, and moving after an ingest, an event and a command outcome. Other
 * components' samples (sync lag, LoRa, broker) arrive through deps.metrics.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderMetrics, type MetricSample } from '../../edge/api/index.js';
import { MetricsRegistry } from '../../edge/metrics.js';
import { waitFor } from '../helpers/wait.js';
import { startApi, type Api } from './support/http.js';

interface Parsed {
  help: Map<string, string>;
  type: Map<string, string>;
  /** `name{labels}` → value */
  samples: Map<string, number>;
}

const SAMPLE_RE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*",?)*\})? (-?[0-9.e+-]+|NaN|[+-]Inf)$/;

/** A strict reader of the text format: throws on any line it does not understand. */
function parse(text: string): Parsed {
  const p: Parsed = { help: new Map(), type: new Map(), samples: new Map() };
  expect(text.endsWith('\n')).toBe(true);
  for (const line of text.slice(0, -1).split('\n')) {
    const help = /^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/.exec(line);
    const type = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/.exec(line);
    if (help) {
      expect(p.help.has(help[1]!), `HELP twice for ${help[1]}`).toBe(false);
      p.help.set(help[1]!, help[2]!);
    } else if (type) {
      expect(p.type.has(type[1]!), `TYPE twice for ${type[1]}`).toBe(false);
      expect(p.help.has(type[1]!), `HELP before TYPE for ${type[1]}`).toBe(true);
      p.type.set(type[1]!, type[2]!);
    } else {
      const m = SAMPLE_RE.exec(line);
      if (!m) throw new Error(`not a sample line: ${line}`);
      expect(p.type.has(m[1]!), `TYPE before samples of ${m[1]}`).toBe(true);
      p.samples.set(`${m[1]}${m[2] ?? ''}`, Number(m[3]!.replace('Inf', 'Infinity')));
    }
  }
  return p;
}

let a: Api;
let lag = 12;

beforeAll(async () => {
  const extra = (): MetricSample[] => [
    { name: 'streetbox_sync_lag_seconds', help: 'age of the oldest unsynced reading', type: 'gauge', value: lag },
    { name: 'streetbox_lorawan_rx_total', help: 'LoRaWAN uplinks accepted', type: 'counter', value: 5 },
    { name: 'streetbox_lorawan_tx_total', help: 'LoRaWAN downlinks sent', type: 'counter', value: 2 },
    { name: 'streetbox_lorawan_rejected_total', help: 'LoRaWAN frames rejected', type: 'counter', value: 1, labels: { reason: 'mic' } },
    { name: 'streetbox_lorawan_rejected_total', help: 'LoRaWAN frames rejected', type: 'counter', value: 3, labels: { reason: 'replay' } },
  ];
  a = await startApi({}, { metrics: extra, devices: () => [{ id: 'lamp-1', online: true, lastSeen: 1, failures: 4 }] });
});
afterAll(async () => a?.close());

const scrape = async (): Promise<Parsed> => {
  const r = await a.call('GET', '/metrics', { role: 'viewer' });
  expect(r.status).toBe(200);
  expect(r.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
  return parse(r.text);
};

describe('/metrics', () => {
  it('is Prometheus text with every figure the gateway promises', async () => {
    const p = await scrape();
    for (const [name, type] of [
      ['streetbox_readings_ingested_total', 'counter'],
      ['streetbox_store_readings', 'gauge'],
      ['streetbox_store_events', 'gauge'],
      ['streetbox_store_used_bytes', 'gauge'],
      ['streetbox_store_max_bytes', 'gauge'],
      ['streetbox_store_dropped_total', 'counter'],
      ['streetbox_commands_total', 'counter'],
      ['streetbox_device_comms_errors_total', 'counter'],
      ['streetbox_event_loop_lag_seconds', 'gauge'],
      ['process_resident_memory_bytes', 'gauge'],
      ['streetbox_sync_lag_seconds', 'gauge'],
      ['streetbox_lorawan_rx_total', 'counter'],
      ['streetbox_lorawan_tx_total', 'counter'],
      ['streetbox_lorawan_rejected_total', 'counter'],
    ]) {
      expect(p.type.get(name!), name).toBe(type);
      expect(p.help.get(name!)!.length).toBeGreaterThan(5);
    }
    expect(p.samples.get('streetbox_device_comms_errors_total{device="lamp-1"}')).toBe(4);
    expect(p.samples.get('streetbox_lorawan_rejected_total{reason="replay"}')).toBe(3);
    expect(p.samples.get('streetbox_sync_lag_seconds')).toBe(12);
    expect(p.samples.get('process_resident_memory_bytes')).toBeGreaterThan(10_000_000);
    expect(p.samples.get('streetbox_store_max_bytes')).toBe(512 * 1024 * 1024);
    expect(p.samples.get('streetbox_event_loop_lag_seconds{quantile="0.99"}')).toBeGreaterThanOrEqual(0);
  });

  it('moves after an ingest, a comms loss and a command outcome', async () => {
    const before = await scrape();
    const v = (p: Parsed, k: string): number => p.samples.get(k) ?? 0;
    a.t.ctx.ingest.pushMany(Array.from({ length: 25 }, (_, i) => ({ ts: 1_700_000_000_000 + i, device: 'lamp-2', point: 'level', value: i })));
    a.t.ctx.ingest.flush();
    a.t.store.appendEvent({ device: 'lamp-2', kind: 'comms.lost', severity: 'warning', detail: { bus: 'tcp-1', unit: 2, error: 'timeout' } });
    const r = await a.call('POST', '/api/v1/devices/lamp-1/commands', { role: 'technician', body: { action: 'on' } });
    a.commands.finish(r.json.id, 'sent');
    a.commands.finish(r.json.id, 'verified');
    a.commands.finish(r.json.id, 'verified'); // announced twice: counted once
    await a.call('POST', '/api/v1/devices/lamp-1/commands', { role: 'technician', body: { action: 'dim', level: 500 } });
    lag = 30;
    // a scrape once the event-loop delay has samples (20 ms resolution; each scrape resets them)
    const after = await waitFor('event-loop delay samples', async () => {
      const p = await scrape();
      return v(p, 'streetbox_event_loop_lag_seconds{quantile="0.99"}') > 0 && p;
    });
    expect(v(after, 'streetbox_event_loop_lag_seconds{quantile="0.99"}')).toBeGreaterThan(0);
    expect(v(after, 'streetbox_readings_ingested_total') - v(before, 'streetbox_readings_ingested_total')).toBe(25);
    expect(v(after, 'streetbox_store_readings') - v(before, 'streetbox_store_readings')).toBe(25);
    expect(v(after, 'streetbox_store_used_bytes')).toBeGreaterThanOrEqual(v(before, 'streetbox_store_used_bytes'));
    expect(v(after, 'streetbox_device_comms_lost_total{device="lamp-2"}')).toBe(1);
    for (const [status, n] of [['queued', 1], ['sent', 1], ['verified', 1], ['rejected', 1]] as const) {
      expect(v(after, `streetbox_commands_total{status="${status}"}`) - v(before, `streetbox_commands_total{status="${status}"}`), status).toBe(n);
    }
    expect(v(after, 'streetbox_sync_lag_seconds')).toBe(30);
  });

  it('needs a token with read unless api.metricsAuth is false', async () => {
    expect((await a.call('GET', '/metrics')).status).toBe(401);
    const open = await startApi({ api: { metricsAuth: false } });
    try {
      const r = await open.call('GET', '/metrics');
      expect(r.status).toBe(200);
      parse(r.text);
      expect((await open.call('GET', '/api/v1/status')).status).toBe(401);
    } finally {
      await open.close();
    }
  });

  it('one registry builds them all: counters and gauges, labelled series made on first use', () => {
    const r = new MetricsRegistry();
    const refused = r.counter('x_refused_total', 'refused, by reason', ['reason']);
    const level = r.gauge('x_level', 'a level');
    const seen: number[] = [];
    r.onCollect(() => level.set(seen.length));
    refused.labels({ reason: 'busy' });
    refused.labels({ reason: 'credentials' }).inc();
    refused.labels({ reason: 'credentials' }).inc(2);
    seen.push(1, 2);
    expect(r.samples()).toEqual([
      { name: 'x_refused_total', help: 'refused, by reason', type: 'counter', value: 0, labels: { reason: 'busy' } },
      { name: 'x_refused_total', help: 'refused, by reason', type: 'counter', value: 3, labels: { reason: 'credentials' } },
      { name: 'x_level', help: 'a level', type: 'gauge', value: 2 },
    ]);
    expect(refused.get({ reason: 'credentials' })).toBe(3);
    refused.clear();
    expect(r.samples().filter((s) => s.name === 'x_refused_total')).toEqual([]);
    expect(() => r.gauge('x_level', 'again')).toThrow('metric x_level is made twice');
    expect(() => r.counter('bad name', 'h')).toThrow('metric name "bad name"');
    expect(() => r.counter('y_total', 'h', ['__reserved'])).toThrow('label name "__reserved" of y_total');
    parse(renderMetrics(r.samples()));
  });

  it('escapes label values and help text, and skips malformed names', () => {
    const text = renderMetrics([
      { name: 'x_total', help: 'a \\ b\nc', type: 'counter', value: 1, labels: { device: 'la"mp\\1\n' } },
      { name: 'bad name', help: 'h', type: 'gauge', value: 1 },
      { name: 'y', help: 'h', type: 'gauge', value: Infinity },
    ]);
    expect(text).toBe('# HELP x_total a \\\\ b\\nc\n# TYPE x_total counter\nx_total{device="la\\"mp\\\\1\\n"} 1\n# HELP y h\n# TYPE y gauge\ny +Inf\n');
    parse(text);
  });
});
