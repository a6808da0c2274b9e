/**
 * Issue 19: the device rows of the live feed say what each device is doing now, as the map
 * colours it and the controls start from (edge/api/deviceState.ts): kind, position, state, level
 * and active alarms, read from the profiles and the store's latest values; the snapshot carries
 * the gateway's position, the map's tiles and what the role may command. On a real API and store,
 * the drivers' rows given by the test: a dimmed light, an offline one, one in alarm that no driver
 * reports (a LoRaWAN node just after a restart: last seen when its newest value came), a traffic
 * controller that runs; then a light turned up, in the next status.
 */
import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApi, type ApiComponent } from '../../edge/api/index.js';
import type { NewReading } from '../../edge/store/types.js';
import { makeContext, type TestContext } from '../helpers/context.js';
import { RecordingCommands } from './support/commands.js';

const TECH = 'rows-technician-token-000001';
const VIEWER = 'rows-viewer-token-00000000001';
const TILES = 'https://tiles.example.org/{z}/{x}/{y}.png';
const T0 = Date.now() - 60_000;

interface Frame {
  event: string;
  data: Record<string, unknown>;
}

describe('the device rows of the live feed', () => {
  let t: TestContext;
  let api: ApiComponent;
  const driverRows: Record<string, unknown>[] = [
    { id: 'lamp-1', online: true, lastSeen: T0 + 5000, failures: 0 },
    { id: 'lamp-2', online: false, lastSeen: T0, lastError: 'timeout', failures: 3 },
    { id: 'tlc-1', online: true, lastSeen: T0 + 5000 },
  ];

  beforeAll(async () => {
    t = makeContext(
      {
        gateway: { id: 'rows-gw', lat: 52.3791, lon: 4.9003 },
        buses: [{ id: 'tcp-1', type: 'tcp', host: '127.0.0.1', port: 1 }],
        devices: [
          { id: 'lamp-1', name: 'Damrak 1', bus: 'tcp-1', unit: 1, profile: 'streetlight-controller', groups: ['street-a'], lat: 52.3775, lon: 4.898 },
          { id: 'lamp-2', bus: 'tcp-1', unit: 2, profile: 'streetlight-controller', groups: ['street-a'], lat: 52.378, lon: 4.899 },
          { id: 'lamp-3', bus: 'tcp-1', unit: 3, profile: 'streetlight-controller', groups: ['street-a'] },
          { id: 'tlc-1', bus: 'tcp-1', unit: 4, profile: 'traffic-controller', allowCommands: true, lat: 52.377, lon: 4.8985 },
        ],
        groups: [{ id: 'street-a' }],
        api: {
          host: '127.0.0.1',
          port: 0,
          mapTiles: TILES,
          mapAttribution: '© the city',
          tokens: [
            { name: 'tech', token: TECH, role: 'technician' },
            { name: 'viewer', token: VIEWER, role: 'viewer' },
          ],
        },
      },
      { flushIntervalMs: 10 },
    );
    const light = (device: string, ts: number, level: number, status = 0): NewReading[] => [
      { ts, device, point: 'ch1_on', value: level > 0, quality: 'good' },
      { ts, device, point: 'ch1_dim_setpoint', value: level, unit: '%', quality: 'good' },
      { ts, device, point: 'ch1_dim_level', value: level, unit: '%', quality: 'good' },
      { ts, device, point: 'ch1_status', value: status, quality: 'good' },
    ];
    t.store.appendReadings([...light('lamp-1', T0, 40), ...light('lamp-2', T0, 100), ...light('lamp-3', T0 + 1000, 100, 0b1)]);
    const commands = new RecordingCommands(t.store, { devices: { 'lamp-1': 'lighting', 'lamp-2': 'lighting', 'lamp-3': 'lighting', 'tlc-1': 'traffic' }, groups: ['street-a'] });
    api = createApi(t.ctx, { commands, status: () => ({ components: [] }), devices: () => driverRows });
    await api.start();
  });

  afterAll(async () => {
    await api?.stop();
    await t?.close();
  });

  /** The frames of the live stream (bearer `token`) until `done` says it has what it needs. */
  function live(token: string, done: (frames: Frame[]) => boolean): Promise<Frame[]> {
    return new Promise((resolve, reject) => {
      let text = '';
      const timer = setTimeout(() => {
        req.destroy();
        reject(new Error(`not what was waited for within 5 s:\n${text.slice(0, 2000)}`));
      }, 5000);
      const req = request(`http://127.0.0.1:${api.port()}/api/v1/live`, { headers: { Authorization: `Bearer ${token}` } }, (res) => {
        res.setEncoding('utf8');
        res.on('data', (d: string) => {
          text += d;
          const frames = text
            .split('\n\n')
            .filter((f) => f.startsWith('event:'))
            .map((f) => ({ event: /^event: (\w+)/.exec(f)![1]!, data: JSON.parse(/\ndata: (.*)$/m.exec(f)![1]!) as Record<string, unknown> }));
          if (!done(frames)) return;
          clearTimeout(timer);
          req.destroy();
          resolve(frames);
        });
      });
      req.on('error', (err) => (req.destroyed ? undefined : reject(err)));
      req.end();
    });
  }

  const snapshotOf = async (token: string): Promise<Record<string, unknown>> => (await live(token, (f) => f.length > 0))[0]!.data;
  const rowsOf = (data: Record<string, unknown>): Record<string, Record<string, unknown>> => Object.fromEntries((data['devices'] as { id: string }[]).map((d) => [d.id, d]));

  it('say each device’s kind, position, state, level and alarms; the snapshot the gateway’s position, the tiles and what the role may', async () => {
    const s = await snapshotOf(TECH);
    expect(s['gateway']).toMatchObject({ id: 'rows-gw', lat: 52.3791, lon: 4.9003 });
    expect(s).toMatchObject({ mapTiles: TILES, mapAttribution: '© the city', may: { commandLighting: true, commandTraffic: true } });
    const rows = rowsOf(s);
    expect(rows['lamp-1']).toMatchObject({ name: 'Damrak 1', kind: 'lighting', lat: 52.3775, lon: 4.898, state: 'dimmed', level: 40, alarms: [], online: true, lastSeen: T0 + 5000 });
    // the driver says it does not answer: offline, whatever its last values say
    expect(rows['lamp-2']).toMatchObject({ kind: 'lighting', state: 'offline', level: 100, alarms: [], online: false, lastError: 'timeout' });
    // no driver row (a node not heard since a restart): no position, its alarm from the stored status bits, last seen when its newest value came
    expect(rows['lamp-3']).toMatchObject({ kind: 'lighting', lat: null, lon: null, state: 'alarm', level: 100, alarms: ['ch1_lamp_failure'], online: null, lastSeen: T0 + 1000 });
    expect(rows['tlc-1']).toMatchObject({ kind: 'traffic', state: 'on', level: null, alarms: [] });

    const viewer = await snapshotOf(VIEWER);
    expect(viewer['may']).toEqual({ commandLighting: false, commandTraffic: false });
    const ticket = await fetch(`http://127.0.0.1:${api.port()}/api/v1/live/ticket`, { method: 'POST', headers: { Authorization: `Bearer ${TECH}` } });
    expect(((await ticket.json()) as { may: unknown }).may).toEqual({ commandLighting: true, commandTraffic: true });
  });

  it('follow the store: a light turned up is on in the next status', async () => {
    const ts = Date.now();
    t.store.appendReadings([
      { ts, device: 'lamp-1', point: 'ch1_dim_setpoint', value: 100, unit: '%', quality: 'good' },
      { ts, device: 'lamp-1', point: 'ch1_dim_level', value: 100, unit: '%', quality: 'good' },
    ]);
    const frames = await live(TECH, (f) => f.some((x) => x.event === 'update' && Array.isArray(x.data['devices'])));
    const status = frames.find((x) => x.event === 'update' && Array.isArray(x.data['devices']))!;
    expect(rowsOf(status.data)['lamp-1']).toMatchObject({ state: 'on', level: 100 });
  });
});
