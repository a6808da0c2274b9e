/**
 * The doors on the real command pipeline: the embedded broker and the HTTP API in front of
 * edge/control's createControl, the Modbus driver and the Modbus TCP simulator (the rig of
 * tests/controlPipeline). A command sent with mosquitto_pub, mqtt.js or an HTTP POST changes the
 * simulated controller's registers and comes back verified on commands/<id> and GET
 * /api/v1/commands/:id; refused ones come back with the pipeline's reason and are recorded.
 */
import { execFile } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApi, type ApiComponent } from '../../edge/api/index.js';
import { createBroker, type BrokerComponent } from '../../edge/broker/index.js';
import { settled, startRig, waitFor, type Rig } from '../controlPipeline/rig.js';
import { connect } from './support.js';

const GW = 'gw-e2e';
const TOKEN = { tech: 'e2e-tech-token-0123456789', view: 'e2e-view-token-0123456789', maint: 'e2e-maint-token-0123456789' };

let rig: Rig;
let broker: BrokerComponent;
let api: ApiComponent;

beforeAll(async () => {
  rig = await startRig({
    config: {
      gateway: { id: GW },
      broker: { host: '127.0.0.1', port: 0, users: [{ username: 'maint', password: 'maint-password-1', role: 'maintenance' }, { username: 'city', password: 'city-password-1', role: 'central' }] },
      api: {
        host: '127.0.0.1',
        port: 0,
        tokens: [
          { name: 'tech', token: TOKEN.tech, role: 'technician' },
          { name: 'view', token: TOKEN.view, role: 'viewer' },
          { name: 'maint', token: TOKEN.maint, role: 'maintenance' },
        ],
      },
    },
  });
  await settled(rig);
  broker = createBroker(rig.t.ctx, { commands: rig.control, deviceKind: (id) => rig.control.deviceKind(id) });
  await broker.start();
  api = createApi(rig.t.ctx, { commands: rig.control, status: () => ({ components: [] }), devices: () => rig.modbus.status().flatMap((b) => b.devices) });
  await api.start();
});

afterAll(async () => {
  await api?.stop();
  await broker?.stop();
  await rig?.close();
});

const topic = (rest: string): string => `streetbox/${GW}/${rest}`;

async function post(path: string, token: string, body: unknown): Promise<{ status: number; json: any }> { // eslint-disable-line @typescript-eslint/no-explicit-any
  const r = await fetch(`http://127.0.0.1:${api.port()}${path}`, { method: 'POST', headers: { Authorization: `Bearer ${token}` }, body: JSON.stringify(body) });
  return { status: r.status, json: await r.json() };
}

describe('doors on the real pipeline', () => {
  it('mosquitto_pub dims a light: the simulated registers change and verified is published on commands/<id>', async () => {
    const watcher = await connect(broker.port(), 'city', 'city-password-1');
    try {
      await watcher.client.subscribeAsync(topic('commands/+'), { qos: 1 });
      await new Promise<void>((resolve, reject) =>
        execFile('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(broker.port()), '-u', 'maint', '-P', 'maint-password-1', '-q', '1', '-t', topic('devices/lamp-2/set'), '-m', JSON.stringify({ action: 'dim', level: 35, durationS: 600, transaction: 'e2e-1' })], (err) => (err ? reject(err) : resolve())),
      );
      await waitFor('verified on commands/<id>', () => watcher.messages.some((m) => JSON.parse(m.payload).transaction === 'e2e-1' && JSON.parse(m.payload).status === 'verified'), 5000);
      const statuses = watcher.messages.map((m) => JSON.parse(m.payload)).filter((p) => p.transaction === 'e2e-1');
      expect(statuses[0]).toMatchObject({ status: 'queued', source: { role: 'maintenance', principal: 'maint' } });
      expect(statuses.at(-1)).toMatchObject({ status: 'verified' });
      expect(rig.level(2)).toEqual({ setpoint: 35, on: 1 });
    } finally {
      await watcher.end();
    }
  });

  it('a maintenance user cannot publish to a traffic controller (ACL by device kind); a bad level is rejected with the reason', async () => {
    const m = await connect(broker.port(), 'maint', 'maint-password-1');
    const writesTc = rig.writes.filter((w) => w.unit === 10).length;
    m.client.publish(topic('devices/tc-1/set'), JSON.stringify({ action: 'program', program: 2, expiresInS: 60 }), { qos: 1 });
    await waitFor('disconnect', () => m.closed, 3000);
    expect(rig.writes.filter((w) => w.unit === 10).length).toBe(writesTc);

    const c = await connect(broker.port(), 'city', 'city-password-1');
    try {
      await c.client.subscribeAsync(topic('commands/+'), { qos: 1 });
      await c.client.publishAsync(topic('devices/lamp-1/set'), JSON.stringify({ action: 'dim', level: 150, transaction: 'e2e-150' }), { qos: 1 });
      await c.client.publishAsync(topic('devices/lamp-1/set'), 'not json', { qos: 1 });
      await waitFor('two rejections', () => c.messages.length >= 2, 3000);
      const [high, bad] = c.messages.map((x) => JSON.parse(x.payload));
      expect(high).toMatchObject({ status: 'rejected', transaction: 'e2e-150', code: 'E_INVALID_COMMAND' });
      expect(bad).toMatchObject({ status: 'rejected', code: 'E_INVALID_COMMAND' });
      expect(rig.level(1).setpoint).not.toBe(150);
    } finally {
      await c.end();
    }
  });

  it('HTTP: 202 then verified; 403 for a viewer and for maintenance on a traffic controller; 400 for level 150; 404 for an unknown group', async () => {
    const r = await post('/api/v1/groups/main/commands', TOKEN.tech, { action: 'override', level: 55, durationS: 600, reason: 'e2e' });
    expect(r.status).toBe(202);
    expect(r.json).toMatchObject({ id: expect.any(String), status: 'queued' });
    const done = await rig.final(r.json.id);
    expect(done.status).toBe('verified');
    for (const u of [1, 2, 3]) expect(rig.level(u).setpoint).toBe(55);
    const got = await fetch(`http://127.0.0.1:${api.port()}/api/v1/commands/${r.json.id}`, { headers: { Authorization: `Bearer ${TOKEN.view}` } });
    expect(((await got.json()) as { status: string }).status).toBe('verified');

    const viewer = await post('/api/v1/devices/lamp-1/commands', TOKEN.view, { action: 'on' });
    expect(viewer.status).toBe(403);
    expect(viewer.json).toMatchObject({ status: 'error', code: 'E_FORBIDDEN' });
    expect(rig.t.store.getCommand(viewer.json.id)).toMatchObject({ status: 'rejected', source: { role: 'viewer', principal: 'view' } });
    const tc = await post('/api/v1/devices/tc-1/commands', TOKEN.maint, { action: 'program', program: 2, expiresInS: 60 });
    expect(tc.status).toBe(403);
    const level = await post('/api/v1/devices/lamp-1/commands', TOKEN.tech, { action: 'dim', level: 150 });
    expect(level.status).toBe(400);
    expect(level.json).toMatchObject({ code: 'E_INVALID_COMMAND', error: expect.stringContaining('level') });
    const unknown = await post('/api/v1/groups/nowhere/commands', TOKEN.tech, { action: 'on' });
    expect(unknown.status).toBe(404);
  });
});
