import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import mqtt from 'mqtt';
import { startGateway, type Gateway } from '../../edge/main.js';
import { tempGateway } from '../support/cli.js';
import { startMosquitto, type Mosquitto } from './mosquitto.js';
import { observe, testLogger, type Observer } from './helpers.js';

// Commands from central arrive on the real upstream broker (mosquitto), go through the
// gateway's control path with role `central`, reach the simulated controller, and the final
// outcome is published back upstream.
let broker: Mosquitto;
let gw: Gateway;
let dir: ReturnType<typeof tempGateway>;
let outcomes: Observer;

beforeAll(async () => {
  broker = await startMosquitto();
  dir = tempGateway(`
gateway: { id: gw-central }
storage: { path: data/gw.db }
buses:
  - { id: net, type: tcp, host: 127.0.0.1, port: 0, timeout: 500ms }
devices:
  - { id: lamp-1, bus: net, unit: 1, profile: streetlight-controller, poll: 200ms, groups: [main] }
  - { id: tc-1, bus: net, unit: 2, profile: traffic-controller, poll: 200ms }
broker: { enabled: false }
api: { enabled: false }
sync: { url: '${broker.url}', reconnectMin: 100ms, reconnectMax: 1s }
simulate: true
`);
  gw = await startGateway({ configPath: dir.config, log: testLogger() });
  outcomes = await observe(broker.url, 'streetbox/gw-central/commands/#');
});

afterAll(async () => {
  await outcomes?.close();
  await gw?.stop();
  await broker?.close();
  dir?.cleanup();
});

async function outcome(id: string, ms = 15_000): Promise<Record<string, unknown>> {
  const end = Date.now() + ms;
  for (;;) {
    const m = outcomes.messages.find((x) => x.topic === `streetbox/gw-central/commands/${id}`);
    if (m) return JSON.parse(m.payload.toString()) as Record<string, unknown>;
    if (Date.now() > end) throw new Error(`no outcome for ${id}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function send(message: unknown): Promise<void> {
  const c = await mqtt.connectAsync(broker.url, { reconnectPeriod: 0 });
  await c.publishAsync('streetbox/gw-central/down/commands', typeof message === 'string' ? message : JSON.stringify(message), { qos: 1 });
  await c.endAsync();
}

describe('commands from central', () => {
  it('a dim reaches the controller and comes back verified, recorded with source central', async () => {
    await send({ id: 'c-dim-1', target: { kind: 'group', id: 'main' }, action: 'dim', level: 35 });
    const o = await outcome('c-dim-1');
    expect(o).toMatchObject({ id: 'c-dim-1', status: 'verified' });
    const commandId = (o.result as { commandId: string }).commandId;
    const row = gw.context.store.getCommand(commandId)!;
    expect(row.source).toEqual({ role: 'central', principal: 'upstream' });
    expect(row.target).toEqual({ kind: 'group', id: 'main' });
    // the verified read-back is a reading like any other, committed with the next batch
    await expect.poll(() => gw.context.store.latest('lamp-1').get('ch1_dim_setpoint')?.value, { timeout: 3000 }).toBe(35);
  });

  it('a malformed or forbidden command is rejected with a reason and recorded with source central', async () => {
    await send({ id: 'c-bad-1', action: 'dim', level: 35 });
    expect(await outcome('c-bad-1')).toMatchObject({ status: 'rejected', code: 'E_INVALID_COMMAND' });

    await send({ id: 'c-bad-2', target: { kind: 'device', id: 'lamp-1' }, action: 'dim', level: 150 });
    const o2 = await outcome('c-bad-2');
    expect(o2.status).toBe('rejected');
    expect(String(o2.error)).toMatch(/level/);

    // a traffic controller without allowCommands: refused, never written
    await send({ id: 'c-bad-3', target: { kind: 'device', id: 'tc-1' }, action: 'program', program: 2, expiresInS: 60 });
    expect(await outcome('c-bad-3')).toMatchObject({ status: 'rejected', code: 'E_FORBIDDEN' });

    await send('{ not json');
    const rejected = () => gw.context.store.events({ after: 0, limit: 1000, kind: 'command.rejected' }).items;
    await expect.poll(() => rejected().length, { timeout: 5000 }).toBe(4);
    expect(rejected().every((e) => (e.detail.source as { role?: string } | undefined)?.role === 'central')).toBe(true);
  });
});
