/**
 * Home Assistant MQTT discovery on the embedded broker, against the shipped demo run in this
 * process (on a copy of devices.yaml, so a configuration change can be written): a real mqtt.js
 * client logged in as Home Assistant's broker user subscribes to `homeassistant/#` and gets the
 * configs (lights, sensors with units and classes, alarms, availability, device blocks; nothing
 * that commands the traffic controller), dims a light through the light's brightness command
 * topic (verified on the simulated controller, recorded with its principal), switches it OFF and
 * ON; a viewer's brightness command is refused and recorded; Home Assistant's birth message
 * republishes; the retained `devices` list; a configuration change clears the entities of a device
 * that went away and publishes those of a new one. The builder's templates are rendered by real
 * Jinja in homeAssistantBuilder.test.ts.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { discoveryConfigs } from '../../edge/broker/homeAssistant.js';
import { topicsFor } from '../../edge/broker/topics.js';
import { silentLogger } from '../../edge/log.js';
import { startGateway, type Gateway } from '../../edge/main.js';
import type { CommandRecord } from '../../edge/store/types.js';
import { demoConfig, type DemoConfig } from '../helpers/demoGateway.js';
import { tempDir, type TempDir } from '../helpers/tmp.js';
import { waitFor } from '../helpers/wait.js';
import { connect, subscribeCodes, type Msg, type TestClient } from './support.js';

const GW = 'demo-cabinet-01';
const HA = { username: 'homeassistant', password: 'ha-broker-password-1' };
const VIEWER = { username: 'wallboard', password: 'wallboard-password-1' };
const node = (device: string): string => `streetbox_${GW}_${device}`;
const cfgTopic = (component: string, device: string, object: string): string => `homeassistant/${component}/${node(device)}/${object}/config`;
const sb = (rest: string): string => `streetbox/${GW}/${rest}`;

let dir: TempDir;
let configFile: string;
let gw: Gateway;
let ha: TestClient;

beforeAll(async () => {
  dir = tempDir('streetbox-ha-');
  configFile = demoConfig(dir, (cfg: DemoConfig) => {
    cfg.broker['homeAssistant'] = true;
    (cfg.broker['users'] as unknown[]).push({ ...HA, role: 'maintenance' }, { ...VIEWER, role: 'viewer' });
    cfg.nodeRed['enabled'] = false;
  });
  gw = await startGateway({ configPath: configFile, log: silentLogger() });
  ha = await connect(gw.built.broker!.port(), HA.username, HA.password);
  await ha.client.subscribeAsync('homeassistant/#', { qos: 1 });
  // the retained configs arrive one by one
  const all = discoveryConfigs(gw.context.config, { prefix: 'homeassistant', topics: topicsFor(GW) }).size;
  await waitFor(`${all} configs`, () => new Set(ha.messages.map((m) => m.topic)).size >= all);
});

afterAll(async () => {
  await ha?.end();
  await gw?.stop();
  dir?.remove();
});

/** The latest non-empty payload on `topic`, parsed. */
function config(topic: string): Record<string, unknown> {
  const m = ha.messages.filter((x) => x.topic === topic).at(-1);
  if (!m || m.payload === '') throw new Error(`no config on ${topic}`);
  return JSON.parse(m.payload) as Record<string, unknown>;
}

const configsOf = (device: string): Msg[] => ha.messages.filter((m) => m.topic.includes(`/${node(device)}/`) && m.payload !== '');

/** The first command row of `principal` with `action` (and `level`) after `after`, once final. */
async function commandOf(principal: string, action: string, level?: number): Promise<CommandRecord> {
  return waitFor(
    `${action} ${level ?? ''} by ${principal} verified`,
    () => gw.built.control.list({ limit: 50 }).find((c) => c.source.principal === principal && c.action === action && (level === undefined || c.params['level'] === level) && c.status === 'verified'),
    8000,
  );
}

describe('discovery configs on homeassistant/#', () => {
  it('a light per lighting controller on the default schema: ON/OFF and a bare brightness 0..100 on its set topic, state and level from the retained state, availability of the gateway and the device', async () => {
    await ha.waitMessages(cfgTopic('light', 'lamp-ctrl-01', 'light'));
    const light = config(cfgTopic('light', 'lamp-ctrl-01', 'light'));
    expect(light).toMatchObject({
      name: null,
      unique_id: `${node('lamp-ctrl-01')}_light`,
      default_entity_id: 'light.lamp_ctrl_01_light',
      command_topic: sb('devices/lamp-ctrl-01/set'),
      payload_on: 'ON',
      payload_off: 'OFF',
      brightness_command_topic: sb('devices/lamp-ctrl-01/set'),
      brightness_scale: 100,
      on_command_type: 'brightness',
      state_topic: sb('devices/lamp-ctrl-01/state'),
      brightness_state_topic: sb('devices/lamp-ctrl-01/state'),
      availability: [
        { topic: sb('status'), payload_available: 'online', payload_not_available: 'offline' },
        { topic: sb('devices/lamp-ctrl-01/availability'), payload_available: 'online', payload_not_available: 'offline' },
      ],
      availability_mode: 'all',
      origin: { name: 'streetbox' },
      device: { identifiers: [`streetbox_${GW}_lamp-ctrl-01`], name: 'Stationsplein north', manufacturer: 'streetbox', model: 'streetlight-controller', via_device: `streetbox_${GW}` },
    });
    // the LoRaWAN nodes are lights too, with their DevEUI as serial number
    expect(config(cfgTopic('light', 'park-light-01', 'light'))).toMatchObject({ brightness_command_topic: sb('devices/park-light-01/set'), device: { model: 'lora-streetlight', serial_number: '70b3d57ed0000001' } });
    // the gateway is a device of its own, the one every controller is connected through
    expect(config(`homeassistant/binary_sensor/streetbox_${GW}/connectivity/config`)).toMatchObject({
      device_class: 'connectivity',
      state_topic: sb('status'),
      payload_on: 'online',
      payload_off: 'offline',
      device: { identifiers: [`streetbox_${GW}`], name: 'Stationsplein demo cabinet' },
    });
  });

  it('numeric points are sensors with their unit and device class, counters total_increasing; radio points and status words diagnostic; alarms binary_sensors of class problem', () => {
    const sensor = (device: string, point: string): Record<string, unknown> => config(cfgTopic('sensor', device, point));
    expect(sensor('lamp-ctrl-01', 'ch1_power')).toMatchObject({ unit_of_measurement: 'W', device_class: 'power', state_class: 'measurement', value_template: "{{ value_json['values'].get('ch1_power') }}" });
    expect(sensor('lamp-ctrl-01', 'ch1_energy')).toMatchObject({ unit_of_measurement: 'kWh', device_class: 'energy', state_class: 'total_increasing' });
    expect(sensor('lamp-ctrl-01', 'ch1_burning_hours')).toMatchObject({ unit_of_measurement: 'h', device_class: 'duration', state_class: 'total_increasing' });
    expect(sensor('lamp-ctrl-01', 'mains_voltage')).toMatchObject({ unit_of_measurement: 'V', device_class: 'voltage' });
    expect(sensor('lamp-ctrl-01', 'mains_frequency')).toMatchObject({ unit_of_measurement: 'Hz', device_class: 'frequency' });
    expect(sensor('lamp-ctrl-01', 'temperature')).toMatchObject({ unit_of_measurement: '°C', device_class: 'temperature' });
    expect(sensor('lamp-ctrl-01', 'ch1_status')).toMatchObject({ entity_category: 'diagnostic' });
    expect(sensor('lamp-ctrl-01', 'ch1_status')).not.toHaveProperty('state_class');
    expect(sensor('park-light-01', 'rssi')).toMatchObject({ unit_of_measurement: 'dBm', device_class: 'signal_strength', entity_category: 'diagnostic' });
    expect(sensor('park-light-01', 'battery')).toMatchObject({ unit_of_measurement: '%', device_class: 'battery' });
    // a level in % is no battery
    expect(sensor('park-light-01', 'dimLevel')).not.toHaveProperty('device_class');
    expect(config(cfgTopic('binary_sensor', 'lamp-ctrl-01', 'alarm_ch1_driver_fault'))).toMatchObject({ name: 'Ch1 driver fault', device_class: 'problem', state_topic: sb('devices/lamp-ctrl-01/state') });
    expect(config(cfgTopic('binary_sensor', 'park-light-01', 'lampFailure'))).toMatchObject({ device_class: 'problem' });
    // a switch is the light's, not an entity of its own
    expect(ha.messages.some((m) => m.topic.includes('/ch1_on/'))).toBe(false);
  });

  it('the traffic controller has sensors and binary sensors only: no entity that could command it', () => {
    const tc = configsOf('tc-01');
    expect(tc.length).toBeGreaterThan(10);
    expect(new Set(tc.map((m) => m.topic.split('/')[1]))).toEqual(new Set(['sensor', 'binary_sensor']));
    for (const m of tc) expect(Object.keys(JSON.parse(m.payload) as object).filter((k) => k.includes('command'))).toEqual([]);
    expect(config(cfgTopic('binary_sensor', 'tc-01', 'alarm_signal_conflict'))).toMatchObject({ device_class: 'problem' });
    expect(config(cfgTopic('binary_sensor', 'tc-01', 'alarm_cabinet_door'))).toMatchObject({ device_class: 'problem' });
  });

  it('every config is retained, has a unique_id of its own, and topic levels Home Assistant takes', () => {
    const latest = new Map(ha.messages.filter((m) => m.topic.startsWith('homeassistant/')).map((m) => [m.topic, m]));
    expect(latest.size).toBe(discoveryConfigs(gw.context.config, { prefix: 'homeassistant', topics: topicsFor(GW) }).size);
    const ids = [...latest.values()].map((m) => (JSON.parse(m.payload) as { unique_id: string }).unique_id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const t of latest.keys()) expect(t).toMatch(/^homeassistant\/(light|sensor|binary_sensor)\/[A-Za-z0-9_-]+\/[A-Za-z0-9_-]+\/config$/);
  });
});

describe('commands from Home Assistant go through the command pipeline', () => {
  it('a brightness of 45 on the light dims the controller: verified on its registers, recorded with the client as principal', async () => {
    const light = config(cfgTopic('light', 'lamp-ctrl-02', 'light'));
    await ha.client.publishAsync(light['brightness_command_topic'] as string, '45', { qos: 1 });
    const row = await commandOf(HA.username, 'dim', 45);
    expect(row).toMatchObject({ target: { kind: 'device', id: 'lamp-ctrl-02' }, source: { role: 'maintenance', principal: HA.username }, priority: 50 });
    // the pipeline read the level back from the simulated controller; so does the next poll
    const setpoints = (): unknown[] => ['ch1_dim_setpoint', 'ch2_dim_setpoint'].map((p) => gw.context.store.latest('lamp-ctrl-02').get(p)?.value);
    await waitFor('both setpoints read from the controller', () => setpoints().every((v) => v === 45), 6000);
  });

  it('OFF and on switch it (any case), as the light entity sends them on its command topic', async () => {
    const topic = config(cfgTopic('light', 'lamp-ctrl-03', 'light'))['command_topic'] as string;
    await ha.client.publishAsync(topic, 'OFF', { qos: 1 });
    await commandOf(HA.username, 'off');
    await waitFor('switched off on the controller', () => gw.context.store.latest('lamp-ctrl-03').get('ch1_on')?.value === false, 6000);
    await ha.client.publishAsync(topic, 'on', { qos: 1 });
    await commandOf(HA.username, 'on');
    await waitFor('switched on at 100 %', () => gw.context.store.latest('lamp-ctrl-03').get('ch1_on')?.value === true && gw.context.store.latest('lamp-ctrl-03').get('ch1_dim_setpoint')?.value === 100, 6000);
  });

  it("a viewer's brightness command is refused (its connection closed) and recorded as command.rejected with its principal; the light is not dimmed", async () => {
    const viewer = await connect(gw.built.broker!.port(), VIEWER.username, VIEWER.password);
    const seq = gw.context.store.stats().lastSeq;
    viewer.client.publish(sb('devices/lamp-ctrl-01/set'), '12', { qos: 1 });
    await waitFor('the viewer disconnected', () => viewer.closed, 3000);
    const rejected = await waitFor('command.rejected recorded', () =>
      gw.context.store.events({ after: seq, limit: 100 }).items.find((e) => e.kind === 'command.rejected' && (e.detail as { source?: { principal?: string } }).source?.principal === VIEWER.username),
    );
    expect(rejected).toMatchObject({ device: 'lamp-ctrl-01', detail: { code: 'E_FORBIDDEN', source: { role: 'viewer' }, action: 'dim', target: { kind: 'device', id: 'lamp-ctrl-01' } } });
    expect(gw.built.control.list({ limit: 50 }).some((c) => c.source.principal === VIEWER.username)).toBe(false);
    await viewer.end();
  });

  it('a malformed payload is refused by the pipeline with the reason and recorded', async () => {
    await ha.client.subscribeAsync(sb('commands/+'), { qos: 1 });
    await ha.client.publishAsync(sb('devices/lamp-ctrl-01/set'), 'brighter please', { qos: 1 });
    const results = (): Record<string, unknown>[] => ha.messages.filter((x) => x.topic.startsWith(sb('commands/'))).map((x) => JSON.parse(x.payload) as Record<string, unknown>);
    const out = await waitFor('the rejection on commands/<id>', () => results().find((p) => p['status'] === 'rejected'));
    expect(out).toMatchObject({ code: 'E_INVALID_COMMAND', error: expect.stringContaining('malformed JSON'), source: { principal: HA.username } });
    expect(gw.built.control.get(out['id'] as string)).toMatchObject({ status: 'rejected' });
  });
});

describe('the broker side of discovery', () => {
  it("Home Assistant's birth message on homeassistant/status republishes every config", async () => {
    const topic = cfgTopic('light', 'lamp-ctrl-01', 'light');
    const before = ha.messages.filter((m) => m.topic === topic).length;
    await ha.client.publishAsync('homeassistant/status', 'online', { qos: 1 });
    await ha.waitMessages(topic, before + 1);
    await ha.waitMessages(cfgTopic('sensor', 'tc-01', 'mode'), 2);
  });

  it('any reading role may subscribe to homeassistant/#; nobody publishes a config, anyone logged in may publish homeassistant/status', async () => {
    const viewer = await connect(gw.built.broker!.port(), VIEWER.username, VIEWER.password);
    expect(await subscribeCodes(viewer, ['homeassistant/#', 'homeassistant/+/+/+/config'])).toEqual([1, 1]);
    await viewer.client.publishAsync('homeassistant/status', 'offline', { qos: 1 });
    expect(viewer.closed).toBe(false);
    viewer.client.publish(cfgTopic('light', 'lamp-ctrl-01', 'light'), '', { qos: 1, retain: true });
    await waitFor('the config publish refused', () => viewer.closed, 3000);
    await viewer.end();
    const tech = await connect(gw.built.broker!.port(), 'technician', 'demo-technician-password');
    tech.client.publish('homeassistant/light/x/y/config', '{}', { qos: 1, retain: true });
    await waitFor("a technician's config publish refused", () => tech.closed, 3000);
    await tech.end();
  });

  it('the retained devices topic lists every device with its kind, profile, transport, groups and points', async () => {
    await ha.client.subscribeAsync(sb('devices'), { qos: 1 });
    const [m] = await ha.waitMessages(sb('devices'));
    expect(m!.retain).toBe(true);
    const list = JSON.parse(m!.payload) as { id: string; points: Record<string, unknown>[] }[];
    expect(list.map((d) => d.id)).toEqual(['lamp-ctrl-01', 'lamp-ctrl-02', 'lamp-ctrl-03', 'lamp-ctrl-04', 'tc-01', 'park-light-01', 'park-light-02', 'park-light-03']);
    const lamp = list[0]!;
    expect(lamp).toMatchObject({ name: 'Stationsplein north', kind: 'lighting', profile: 'streetlight-controller', transport: 'modbus', groups: ['stationsplein'] });
    expect(lamp.points).toContainEqual({ name: 'ch1_power', unit: 'W', type: 'number', access: 'r', role: 'activePower', channel: 1 });
    expect(lamp.points).toContainEqual({ name: 'ch2_on', unit: null, type: 'bool', access: 'rw', role: 'switch', channel: 2 });
    expect(list[4]).toMatchObject({ id: 'tc-01', kind: 'traffic' });
    expect(list[5]).toMatchObject({ kind: 'lighting', transport: 'lorawan', groups: ['oosterdok-park'] });
    expect(list[5]!.points).toContainEqual({ name: 'rssi', unit: 'dBm', type: 'number', access: 'r', role: null, channel: null, radio: true });
    expect(list[5]!.points).toContainEqual({ name: 'dimLevel', unit: '%', type: 'number', access: 'r', role: 'actualLightLevel', channel: 1 });
  });

  it('a configuration change: the entities of a device that went away are cleared (empty retained payload), a new device gets its configs, the list follows', async () => {
    const cfg = parse(readFileSync(configFile, 'utf8')) as DemoConfig & { devices: Record<string, unknown>[] };
    cfg.devices = cfg.devices.filter((d) => d['id'] !== 'lamp-ctrl-04');
    cfg.devices.push({ id: 'lamp-ctrl-05', name: 'Tunnel entrance', bus: 'tc-net', unit: 2, profile: 'streetlight-controller', poll: '2s', groups: ['stationsplein'] });
    writeFileSync(configFile, stringify(cfg));
    const gone = configsOf('lamp-ctrl-04').map((m) => m.topic);
    expect(gone.length).toBeGreaterThan(10);
    gw.reload('test');
    await waitFor('the new device discovered', () => ha.messages.some((m) => m.topic === cfgTopic('light', 'lamp-ctrl-05', 'light') && m.payload !== ''), 8000);
    await waitFor('every entity of the removed device cleared', () => gone.every((t) => ha.messages.filter((m) => m.topic === t).at(-1)?.payload === ''), 3000);
    expect(config(cfgTopic('light', 'lamp-ctrl-05', 'light'))).toMatchObject({ device: { name: 'Tunnel entrance' }, brightness_command_topic: sb('devices/lamp-ctrl-05/set') });
    // nothing else was published again
    expect(ha.messages.filter((m) => m.topic === cfgTopic('light', 'lamp-ctrl-01', 'light')).length).toBe(ha.messages.filter((m) => m.topic === cfgTopic('sensor', 'tc-01', 'mode')).length);
    const [, m] = await ha.waitMessages(sb('devices'), 2);
    expect((JSON.parse(m!.payload) as { id: string }[]).map((d) => d.id)).toEqual(['lamp-ctrl-01', 'lamp-ctrl-02', 'lamp-ctrl-03', 'tc-01', 'park-light-01', 'park-light-02', 'park-light-03', 'lamp-ctrl-05']);
  });
});
