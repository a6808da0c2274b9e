/**
 * The command shorthand every door takes (edge/flows/nodes/commandShorthand.js): a bare level is
 * a dim, a word (ON / off / release, any case) that action. One function, shared by the broker's
 * set topics and the Node-RED command node: the table on the function itself, the node's use of it
 * (its module loaded as Node-RED loads it, with the gateway's runtime handed in through
 * RED.settings), and the set topics on the real pipeline (the control rig's Modbus simulator): a
 * group and a device dimmed by a bare level, OFF / ON, and malformed payloads refused by the
 * pipeline with the reason and recorded.
 */
import { createRequire } from 'node:module';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBroker, type BrokerComponent } from '../../edge/broker/index.js';
import { commandShorthand } from '../../edge/flows/nodes/commandShorthand.js';
import { settled, startRig, waitFor, type Rig } from '../controlPipeline/rig.js';
import { connect, type TestClient } from './support.js';

const require = createRequire(import.meta.url);

describe('commandShorthand', () => {
  it.each([
    ['45', { action: 'dim', level: 45 }],
    [' 100 ', { action: 'dim', level: 100 }],
    [45, { action: 'dim', level: 45 }],
    ['4.5', { action: 'dim', level: 4.5 }],
    ['-3', { action: 'dim', level: -3 }],
    ['ON', { action: 'on' }],
    ['Off', { action: 'off' }],
    ['release', { action: 'release' }],
    ['bogus', { action: 'bogus' }],
    ['{"action":"dim","level":40}', null],
    ['dim 40', null],
    ['', null],
    ['4 5', null],
    ['1e2', null],
    ['x'.repeat(65), null],
    [null, null],
    [{ action: 'on' }, null],
  ] as [unknown, unknown][])('%j → %j', (payload, body) => {
    expect(commandShorthand(payload)).toEqual(body);
  });

  it('is the one the Node-RED nodes use: lib.js hands on the same function', () => {
    const lib = require('../../edge/flows/nodes/lib.js') as { commandShorthand: unknown };
    const own = require('../../edge/flows/nodes/commandShorthand.js') as { commandShorthand: unknown };
    expect(lib.commandShorthand).toBe(own.commandShorthand);
  });

  it('the streetbox command node submits "45" as a dim and "OFF" as off, and an object as it is', () => {
    const submitted: unknown[] = [];
    const handlers: Record<string, (msg: unknown, send: () => void, done: (err?: unknown) => void) => void> = {};
    const sb = {
      submit: (_target: unknown, body: unknown) => {
        submitted.push(body);
        return { row: { id: 'c1', status: 'rejected', target: { id: 'lamp-1' }, action: 'x', params: {} }, outcome: Promise.resolve({}) };
      },
      getCommand: () => undefined,
    };
    let Node: ((config: Record<string, unknown>) => void) | undefined;
    const RED = {
      settings: { streetbox: sb },
      nodes: {
        createNode(node: Record<string, unknown>) {
          node['on'] = (event: string, fn: (typeof handlers)[string]) => (handlers[event] = fn);
          node['status'] = () => undefined;
        },
        registerType: (_name: string, ctor: typeof Node) => (Node = ctor),
      },
    };
    (require('../../edge/flows/nodes/streetbox-command.js') as (red: typeof RED) => void)(RED);
    new (Node as unknown as new (config: Record<string, unknown>) => object)({ targetKind: 'device', target: 'lamp-1', role: 'maintenance', timeout: 1 });
    for (const payload of ['45', 'OFF', 30, { action: 'release' }]) handlers['input']!({ payload }, () => undefined, () => undefined);
    expect(submitted).toEqual([{ action: 'dim', level: 45 }, { action: 'off' }, { action: 'dim', level: 30 }, { action: 'release' }]);
  });
});

describe('set topics take the shorthand, on the real pipeline', () => {
  const GW = 'gw-short';
  const topic = (rest: string): string => `streetbox/${GW}/${rest}`;
  let rig: Rig;
  let broker: BrokerComponent;
  let maint: TestClient;

  beforeAll(async () => {
    rig = await startRig({ config: { gateway: { id: GW }, broker: { host: '127.0.0.1', port: 0, users: [{ username: 'maint', password: 'maint-password-1', role: 'maintenance' }] } } });
    await settled(rig);
    broker = createBroker(rig.t.ctx, { commands: rig.control, deviceKind: (id) => rig.control.deviceKind(id) });
    await broker.start();
    maint = await connect(broker.port(), 'maint', 'maint-password-1');
    await maint.client.subscribeAsync(topic('commands/+'), { qos: 1 });
  });

  afterAll(async () => {
    await maint?.end();
    await broker?.stop();
    await rig?.close();
  });

  /** The rejections published on commands/<id>, in the order their commands were sent. */
  const finals = (): Record<string, unknown>[] => maint.messages.map((m) => JSON.parse(m.payload) as Record<string, unknown>).filter((p) => p['status'] === 'rejected');

  it('a bare level on a group dims every light of it; OFF and On switch a device', async () => {
    await maint.client.publishAsync(topic('groups/main/set'), '30', { qos: 1 });
    await waitFor('the group at 30 %', () => [1, 2, 3].every((u) => rig.level(u).setpoint === 30 && rig.level(u).on === 1), 5000);
    await maint.client.publishAsync(topic('devices/lamp-2/set'), 'OFF', { qos: 1 });
    await waitFor('lamp-2 off', () => rig.level(2).on === 0, 5000);
    await maint.client.publishAsync(topic('devices/lamp-2/set'), 'On', { qos: 1 });
    await waitFor('lamp-2 on at 100 %', () => rig.level(2).on === 1 && rig.level(2).setpoint === 100, 5000);
    const rows = rig.control.list({ limit: 10 }).filter((r) => r.source.principal === 'maint');
    expect(rows.map((r) => [r.action, r.params['level'] ?? null, r.target.id])).toEqual(
      expect.arrayContaining([
        ['dim', 30, 'main'],
        ['off', null, 'lamp-2'],
        ['on', null, 'lamp-2'],
      ]),
    );
  });

  it('what is neither the shorthand nor a command is refused by the pipeline, with the reason, and recorded', async () => {
    const before = finals().length;
    for (const payload of ['150', 'brighter', 'dim 40', '{"action":"dim"']) await maint.client.publishAsync(topic('devices/lamp-1/set'), payload, { qos: 1 });
    const out = (await waitFor('four rejections', () => finals().length >= before + 4 && finals().slice(before), 5000)).map((p) => [p['status'], p['code'], p['error']]);
    expect(out).toEqual([
      ['rejected', 'E_INVALID_COMMAND', expect.stringContaining('level')],
      ['rejected', 'E_INVALID_COMMAND', expect.stringContaining('action')],
      ['rejected', 'E_INVALID_COMMAND', expect.stringContaining('malformed JSON')],
      ['rejected', 'E_INVALID_COMMAND', expect.stringContaining('malformed JSON')],
    ]);
    for (const p of finals().slice(before)) expect(rig.control.get(p['id'] as string)).toMatchObject({ status: 'rejected', source: { principal: 'maint' } });
    expect(rig.level(1).setpoint).not.toBe(150);
  });
});
