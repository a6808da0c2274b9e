/**
 * Home Assistant discovery on the upstream broker (`sync.homeAssistant`), against a real
 * mosquitto: the configs arrive under the prefix, pointed at the upstream topics (the retained
 * status, which is the sync's last will, state and the new retained availability); a bare level on
 * a device's set topic upstream dims the light through the central command path (role central,
 * verified on the simulated controller) and the retained state follows; a malformed one is refused
 * and recorded; Home Assistant's birth republishes; a traffic controller gets nothing that commands.
 */
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type Gateway } from '../../edge/main.js';
import { tempGateway } from '../support/cli.js';
import { waitFor } from '../helpers/wait.js';
import { observe, testLogger, type Observer } from './helpers.js';
import { startMosquitto, type Mosquitto } from './mosquitto.js';

const GW = 'gw-ha';
const sb = (rest: string): string => `streetbox/${GW}/${rest}`;
const cfgTopic = (component: string, device: string, object: string): string => `hass/${component}/streetbox_${GW}_${device}/${object}/config`;

let broker: Mosquitto;
let gw: Gateway;
let dir: ReturnType<typeof tempGateway>;
let seen: Observer;

beforeAll(async () => {
  broker = await startMosquitto();
  dir = tempGateway(`
gateway: { id: ${GW} }
storage: { path: data/gw.db }
buses:
  - { id: net, type: tcp, host: 127.0.0.1, port: 0, timeout: 500ms }
devices:
  - { id: lamp-1, name: Bridge lamp, bus: net, unit: 1, profile: streetlight-controller, poll: 200ms, groups: [main] }
  - { id: tc-1, bus: net, unit: 2, profile: traffic-controller, poll: 200ms, allowCommands: true }
broker: { enabled: false }
api: { enabled: false }
sync: { url: '${broker.url}', reconnectMin: 100ms, reconnectMax: 1s, linger: 200ms, homeAssistant: { prefix: hass } }
simulate: true
`);
  seen = await observe(broker.url, '#');
  gw = await startGateway({ configPath: dir.config, log: testLogger() });
  // a set published before the gateway subscribed would reach nobody
  await waitFor('the gateway subscribed to the set topics', () => broker.subscriptions({ filter: sb('devices/+/set') }) > 0, 10_000);
});

afterAll(async () => {
  await seen?.close();
  await gw?.stop();
  await broker?.close();
  dir?.cleanup();
});

function latest(topic: string): string | undefined {
  return seen.messages.filter((m) => m.topic === topic).at(-1)?.payload.toString();
}

async function config(topic: string): Promise<Record<string, unknown>> {
  return JSON.parse(await waitFor(`a config on ${topic}`, () => latest(topic))) as Record<string, unknown>;
}

async function publish(topic: string, payload: string): Promise<void> {
  const c = await mqtt.connectAsync(broker.url, { reconnectPeriod: 0 });
  await c.publishAsync(topic, payload, { qos: 1 });
  await c.endAsync();
}

describe('Home Assistant upstream', () => {
  it('the configs arrive under the prefix, pointed at the upstream state, availability and set topics; the traffic controller gets nothing that commands', async () => {
    const light = await config(cfgTopic('light', 'lamp-1', 'light'));
    expect(light).toMatchObject({
      command_topic: sb('devices/lamp-1/set'),
      brightness_command_topic: sb('devices/lamp-1/set'),
      brightness_scale: 100,
      state_topic: sb('devices/lamp-1/state'),
      availability: [{ topic: sb('status') }, { topic: sb('devices/lamp-1/availability') }],
      availability_mode: 'all',
      device: { identifiers: [`streetbox_${GW}_lamp-1`], name: 'Bridge lamp', via_device: `streetbox_${GW}` },
    });
    expect(await config(cfgTopic('sensor', 'lamp-1', 'ch1_power'))).toMatchObject({ unit_of_measurement: 'W', device_class: 'power' });
    expect(await config(cfgTopic('binary_sensor', 'tc-1', 'alarm_signal_conflict'))).toMatchObject({ device_class: 'problem' });
    const tc = seen.messages.filter((m) => m.topic.startsWith('hass/') && m.topic.includes('_tc-1/'));
    expect(tc.length).toBeGreaterThan(10);
    expect(tc.every((m) => !m.topic.startsWith('hass/light/') && !m.payload.toString().includes('command_topic'))).toBe(true);
    // retained: Home Assistant connecting later gets them
    const late = await observe(broker.url, 'hass/light/#');
    try {
      const m = await waitFor('the retained light config', () => late.messages.find((x) => x.topic === cfgTopic('light', 'lamp-1', 'light')));
      expect(m.retain).toBe(true);
    } finally {
      await late.close();
    }
    // the availability the entities read, retained
    await waitFor('lamp-1 online upstream', () => latest(sb('devices/lamp-1/availability')) === 'online');
    expect(latest(sb('status'))).toBe('online');
  });

  it('a bare level on the set topic upstream dims the light through the central path; the retained state follows', async () => {
    await publish(sb('devices/lamp-1/set'), '45');
    const row = await waitFor('the dim verified', () => gw.built.control.list({ limit: 20 }).find((c) => c.action === 'dim' && c.params['level'] === 45 && c.status === 'verified'), 8000);
    expect(row.source.role).toBe('central');
    expect(row.source.principal).toBe('upstream:homeassistant');
    expect(row.target).toEqual({ kind: 'device', id: 'lamp-1' });
    await waitFor('the outcome upstream', () => seen.messages.some((m) => m.topic.startsWith(sb('commands/')) && (JSON.parse(m.payload.toString()) as { status?: string }).status === 'verified'));
    // the controller's registers, read back by the next polls and published as the retained state
    await waitFor('the state upstream at 45', () => {
      const s = latest(sb('devices/lamp-1/state'));
      const v = s === undefined ? undefined : (JSON.parse(s) as { values: Record<string, unknown> }).values;
      return v?.['ch1_dim_setpoint'] === 45 && v['ch2_dim_setpoint'] === 45;
    }, 5000);
    await publish(sb('devices/lamp-1/set'), 'OFF');
    await waitFor('switched off', () => gw.built.control.list({ limit: 20 }).some((c) => c.action === 'off' && c.status === 'verified'), 8000);
  });

  it('a malformed command is refused and recorded; a set for a traffic controller is no way around its rules', async () => {
    await publish(sb('devices/lamp-1/set'), 'brighter please');
    await waitFor('command.rejected recorded', () =>
      gw.context.store.events({ after: 0, limit: 1000, kind: 'command.rejected' }).items.some((e) => (e.detail as { target?: { id?: string } }).target?.id === 'lamp-1'),
    );
    // a level on a traffic controller is no program request: refused by the pipeline, nothing written
    await publish(sb('devices/tc-1/set'), '45');
    await waitFor('the request refused', () => gw.built.control.list({ limit: 50 }).find((c) => c.target.id === 'tc-1' && c.status === 'rejected'));
  });

  it("Home Assistant's birth message republishes the configs", async () => {
    const topic = cfgTopic('light', 'lamp-1', 'light');
    const before = seen.messages.filter((m) => m.topic === topic).length;
    await publish('hass/status', 'online');
    await waitFor('the config again', () => seen.messages.filter((m) => m.topic === topic).length > before);
  });
});
