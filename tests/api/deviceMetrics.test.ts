/**
 * The devices on GET /metrics, over real HTTP on an API whose store is fed readings: every good
 * numeric or boolean point a gauge labelled device, point, unit, role, group(s); strings, bad and
 * stale values left out (never a 0); availability (online, last seen) from the drivers' rows or
 * the comms events; each device's state and a light's level (deviceState); label values escaped
 * as the text format says; and the cap on value series, with what it leaves out counted.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { MAX_DEVICE_SERIES } from '../../edge/api/metrics.js';
import type { NewReading } from '../../edge/store/types.js';
import { waitFor } from '../helpers/wait.js';
import { DEVICES } from './support/context.js';
import { startApi, type Api } from './support/http.js';

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const LABEL_RE = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"(?:,|$)/y;

/** The text format's samples with their label values unescaped (\\ \" \n); HELP/TYPE lines skipped. */
function samples(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`not a sample line: ${line}`);
    const labels: Record<string, string> = {};
    const body = m[2] ?? '';
    LABEL_RE.lastIndex = 0;
    while (LABEL_RE.lastIndex < body.length) {
      const l = LABEL_RE.exec(body);
      if (!l) throw new Error(`bad labels: ${body}`);
      labels[l[1]!] = l[2]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    }
    out.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return out;
}

/** The samples of `name` whose labels include `want`. */
function find(all: Sample[], name: string, want: Record<string, string> = {}): Sample[] {
  return all.filter((s) => s.name === name && Object.entries(want).every(([k, v]) => s.labels[k] === v));
}

const T0 = Date.UTC(2025, 5, 1, 12, 0, 0);
/** a point name and a unit that need every escape of the text format */
const ODD_POINT = 'odd "quoted" \\ back\nline';
const ODD_UNIT = '"µ\\';

const scrape = async (a: Api): Promise<{ text: string; all: Sample[] }> => {
  const r = await a.call('GET', '/metrics', { role: 'viewer' });
  expect(r.status).toBe(200);
  return { text: r.text, all: samples(r.text) };
};

const feed = async (a: Api, rows: NewReading[]): Promise<void> => {
  const before = a.t.committed;
  a.t.ctx.ingest.pushMany(rows);
  a.t.ctx.ingest.flush();
  await waitFor('readings committed', () => a.t.committed >= before + rows.length);
};

describe('device values, availability and state on /metrics', () => {
  let a: Api;

  beforeAll(async () => {
    // lamp-2 is in two groups; lamp-1 and lamp-2 have driver rows, tlc-1 none (its availability comes from comms events)
    const devices = DEVICES.devices.map((d) => (d.id === 'lamp-2' ? { ...d, groups: ['street-a', 'night'] } : d));
    a = await startApi(
      { devices, groups: [{ id: 'street-a' }, { id: 'night' }] },
      {
        devices: () => [
          { id: 'lamp-1', online: true, lastSeen: T0 + 5_000, failures: 0 },
          { id: 'lamp-2', online: false, lastSeen: T0 + 1_500, failures: 3 },
        ],
      },
    );
    const good = (device: string, point: string, value: NewReading['value'], unit: string | null, dt = 0): NewReading => ({ ts: T0 + dt, device, point, value, unit, quality: 'good' });
    await feed(a, [
      good('lamp-1', 'ch1_power', 120.5, 'W'),
      good('lamp-1', 'ch1_dim_setpoint', 40, '%'),
      good('lamp-1', 'ch1_dim_level', 40, '%'),
      good('lamp-1', 'ch1_on', true, null),
      good('lamp-1', 'mains_frequency', 50.01, 'Hz'),
      good('lamp-1', 'label', 'north side', null), // a string: never a gauge
      { ts: T0, device: 'lamp-1', point: 'ch2_power', value: null, unit: 'W', quality: 'bad' },
      { ts: T0, device: 'lamp-1', point: 'temperature', value: 21.5, unit: '°C', quality: 'stale' },
      good('lamp-1', ODD_POINT, 7, ODD_UNIT),
      good('lamp-2', 'ch1_power', 80, 'W'),
      good('lamp-2', 'ch1_dim_level', 100, '%'),
      good('lamp-2', 'ch1_on', true, null),
      good('tlc-1', 'mode', 3, null, 2_000),
      good('tlc-1', 'active_program', 2, null, 2_500),
      good('not-configured', 'x', 1, null), // only configured devices are exported
    ]);
    a.t.store.appendEvent({ device: 'tlc-1', kind: 'comms.restored', severity: 'info', detail: { bus: 'tcp-1', unit: 3 } });
    await waitFor('tlc-1 online from its comms event', async () => find((await scrape(a)).all, 'streetbox_device_online', { device: 'tlc-1' }).length === 1);
  });
  afterAll(async () => a?.close());

  it('exports each good numeric and boolean point as a gauge labelled device, point, unit, role and group', async () => {
    const { all } = await scrape(a);
    const values = find(all, 'streetbox_device_value');
    expect(find(values, 'streetbox_device_value', { device: 'lamp-1', point: 'ch1_power' })).toEqual([
      { name: 'streetbox_device_value', labels: { device: 'lamp-1', group: 'street-a', groups: ',street-a,', point: 'ch1_power', unit: 'W', role: 'activePower' }, value: 120.5 },
    ]);
    // booleans as 0/1; a point without a role has role=""; a point without a unit unit=""
    expect(find(values, 'streetbox_device_value', { device: 'lamp-1', point: 'ch1_on' })[0]).toMatchObject({ value: 1, labels: { role: 'switch', unit: '' } });
    expect(find(values, 'streetbox_device_value', { device: 'lamp-1', point: 'mains_frequency' })[0]).toMatchObject({ value: 50.01, labels: { role: '', unit: 'Hz' } });
    // a device in two groups: one series, its first group in `group`, all in `groups`
    expect(find(values, 'streetbox_device_value', { device: 'lamp-2', point: 'ch1_power' })).toEqual([
      { name: 'streetbox_device_value', labels: { device: 'lamp-2', group: 'street-a', groups: ',street-a,night,', point: 'ch1_power', unit: 'W', role: 'activePower' }, value: 80 },
    ]);
    // a device in no group
    expect(find(values, 'streetbox_device_value', { device: 'tlc-1', point: 'mode' })[0]).toMatchObject({ value: 3, labels: { group: '', groups: '', role: 'mode' } });
    // power summed per group whatever the vendor calls the point
    const perGroup = new Map<string, number>();
    for (const s of find(values, 'streetbox_device_value', { role: 'activePower' })) perGroup.set(s.labels.group!, (perGroup.get(s.labels.group!) ?? 0) + s.value);
    expect(Object.fromEntries(perGroup)).toEqual({ 'street-a': 200.5 });
  });

  it('leaves out strings, bad and stale values (no 0 in their place) and devices not configured', async () => {
    const { all } = await scrape(a);
    const points = find(all, 'streetbox_device_value', { device: 'lamp-1' }).map((s) => s.labels.point);
    expect(points.sort()).toEqual(['ch1_dim_level', 'ch1_dim_setpoint', 'ch1_on', 'ch1_power', 'mains_frequency', ODD_POINT].sort());
    expect(find(all, 'streetbox_device_value', { device: 'not-configured' })).toEqual([]);
    // still in the store: left out of the metrics only
    expect(a.t.store.latest('lamp-1').get('ch2_power')?.quality).toBe('bad');
    expect(a.t.store.latest('lamp-1').get('label')?.value).toBe('north side');
  });

  it('escapes label values as the text format says', async () => {
    const { text, all } = await scrape(a);
    expect(text).toContain('point="odd \\"quoted\\" \\\\ back\\nline",unit="\\"µ\\\\"');
    expect(find(all, 'streetbox_device_value', { point: ODD_POINT, unit: ODD_UNIT })).toHaveLength(1);
    // every sample line is one line: the newline in the point name did not break it
    for (const line of text.split('\n')) if (line.includes('odd')) expect(line).toMatch(/^streetbox_device_value\{.*\} 7$/);
  });

  it('exports availability: online 1/0 and last seen in seconds, from the driver or the comms events and values', async () => {
    const { all } = await scrape(a);
    const one = (name: string, device: string): number | undefined => {
      const s = find(all, name, { device });
      expect(s.length, `${name} ${device}`).toBeLessThanOrEqual(1);
      return s[0]?.value;
    };
    expect(one('streetbox_device_online', 'lamp-1')).toBe(1);
    expect(one('streetbox_device_online', 'lamp-2')).toBe(0);
    expect(one('streetbox_device_online', 'tlc-1')).toBe(1); // comms.restored
    expect(one('streetbox_device_last_seen_timestamp_seconds', 'lamp-1')).toBe((T0 + 5_000) / 1000);
    expect(one('streetbox_device_last_seen_timestamp_seconds', 'lamp-2')).toBe((T0 + 1_500) / 1000);
    expect(one('streetbox_device_last_seen_timestamp_seconds', 'tlc-1')).toBe((T0 + 2_500) / 1000); // its newest value
    expect(find(all, 'streetbox_device_online', { device: 'lamp-1' })[0]!.labels).toEqual({ device: 'lamp-1', group: 'street-a', groups: ',street-a,' });
  });

  it("exports each device's state (1 for the current one) and a light's level", async () => {
    const { all } = await scrape(a);
    const states = Object.fromEntries(find(all, 'streetbox_device_state').map((s) => [s.labels.device, [s.labels.state, s.value]]));
    expect(states).toEqual({ 'lamp-1': ['dimmed', 1], 'lamp-2': ['offline', 1], 'tlc-1': ['on', 1] });
    const levels = Object.fromEntries(find(all, 'streetbox_device_level').map((s) => [s.labels.device, s.value]));
    expect(levels).toEqual({ 'lamp-1': 40, 'lamp-2': 100 }); // a traffic controller has no level
    expect(find(all, 'streetbox_device_level', { device: 'lamp-2' })[0]!.labels).toEqual({ device: 'lamp-2', group: 'street-a', groups: ',street-a,night,' });
  });

  it('reads the latest values once per scrape, and exports the components up', async () => {
    const spy = vi.spyOn(a.t.store, 'latestAll');
    try {
      const { all } = await scrape(a);
      expect(spy).toHaveBeenCalledTimes(1);
      expect(find(all, 'streetbox_component_up')).toEqual([{ name: 'streetbox_component_up', labels: { component: 'api' }, value: 1 }]);
    } finally {
      spy.mockRestore();
    }
  });
});

describe('the cap on device value series', () => {
  let a: Api;
  const EXTRA = MAX_DEVICE_SERIES + 150;

  beforeAll(async () => {
    a = await startApi();
    const rows: NewReading[] = [];
    // lamp-1: more vendor points (no role) than the cap allows; lamp-2: a few points with roles, fed after them
    for (let i = 0; i < EXTRA; i++) rows.push({ ts: T0, device: 'lamp-1', point: `vendor_${i}`, value: i, unit: null, quality: 'good' });
    rows.push(
      { ts: T0, device: 'lamp-2', point: 'ch1_power', value: 55, unit: 'W', quality: 'good' },
      { ts: T0, device: 'lamp-2', point: 'ch2_power', value: 45, unit: 'W', quality: 'good' },
      { ts: T0, device: 'lamp-2', point: 'ch1_dim_level', value: 70, unit: '%', quality: 'good' },
    );
    await feed(a, rows);
  });
  afterAll(async () => a?.close());

  it('exports at most MAX_DEVICE_SERIES values, points with a role first, and counts what it leaves out', async () => {
    const { all } = await scrape(a);
    const values = find(all, 'streetbox_device_value');
    expect(values).toHaveLength(MAX_DEVICE_SERIES);
    expect(new Set(values.map((s) => `${s.labels.device}/${s.labels.point}`)).size).toBe(MAX_DEVICE_SERIES);
    // the power and level a dashboard sums survived the cap
    expect(find(values, 'streetbox_device_value', { role: 'activePower' }).map((s) => s.value).sort()).toEqual([45, 55]);
    expect(find(values, 'streetbox_device_value', { device: 'lamp-2', role: 'actualLightLevel' })).toHaveLength(1);
    expect(find(all, 'streetbox_device_series_dropped')[0]!.value).toBe(EXTRA + 3 - MAX_DEVICE_SERIES);
    expect(find(all, 'streetbox_device_series_limit')[0]!.value).toBe(MAX_DEVICE_SERIES);
    // availability and state are per device, not capped
    expect(find(all, 'streetbox_device_state').map((s) => s.labels.device).sort()).toEqual(['lamp-1', 'lamp-2', 'tlc-1']);
  });
});
