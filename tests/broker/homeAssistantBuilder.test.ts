/**
 * The Home Assistant discovery builder (edge/broker/homeAssistant.ts) on its own: its templates
 * rendered by real Jinja (python3-jinja2's sandbox, the engine Home Assistant renders them with)
 * against state messages; ids Home Assistant would not take as topic levels; what a custom
 * traffic controller and a device of no kind get; the publisher that keeps a broker in step
 * (only what changed, an empty retained payload for what went away, all again at a birth); and the
 * ACL of the prefix.
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig, parseConfig } from '../../edge/config/loader.js';
import { DiscoveryPublisher } from '../../edge/broker/discoveryPublisher.js';
import { discoveryConfigs, topicLevel } from '../../edge/broker/homeAssistant.js';
import { topicsFor } from '../../edge/broker/topics.js';
import type { Config } from '../../edge/config/schema.js';
import { mqttAllowed } from '../../edge/control/roles.js';
import { ROOT } from '../support/cli.js';

const demo = loadConfig(join(ROOT, 'devices.yaml')).config;
const GW = demo.gateway.id;
const topicOf = (component: string, gw: string, device: string, object: string): string => `homeassistant/${component}/${topicLevel(`streetbox_${gw}_${device}`)}/${object}/config`;
const configsOf = (config: Config): Map<string, Record<string, unknown>> =>
  new Map([...discoveryConfigs(config, { prefix: 'homeassistant', topics: topicsFor(config.gateway.id) })].map(([t, p]) => [t, JSON.parse(p) as Record<string, unknown>]));

/** Renders each [template, state] with Jinja's immutable sandbox, value_json the parsed state. */
function render(cases: [string, unknown][]): string[] {
  const script = [
    'import json, sys',
    'from jinja2.sandbox import ImmutableSandboxedEnvironment',
    'env = ImmutableSandboxedEnvironment()',
    'print(json.dumps([env.from_string(t).render(value_json=s, value=json.dumps(s)).strip() for t, s in json.load(sys.stdin)]))',
  ].join('\n');
  return JSON.parse(execFileSync('/usr/bin/python3', ['-c', script], { input: JSON.stringify(cases), encoding: 'utf8' })) as string[];
}

const CUSTOM = `
gateway: { id: gw.north }
storage: { path: data/gw.db }
buses:
  - { id: net, type: tcp, host: 127.0.0.1, port: 1502 }
profiles:
  - name: city-tlc
    kind: traffic
    points:
      - { name: program_request, table: holding, address: 0, access: rw, role: programRequest }
      - { name: request_expiry, table: holding, address: 1, access: rw, unit: s, role: requestExpiry }
      - { name: mode, table: input, address: 0, role: mode }
      - { name: current, table: input, address: 1, unit: A, scale: 0.01 }
    alarms:
      - { name: conflict, point: mode, bit: 3, severity: critical }
  - name: meter
    points:
      - { name: energy, table: input, address: 0, type: uint32, unit: Wh }
      - { name: level, table: input, address: 2, unit: '%' }
      - { name: door, table: discrete, address: 0, type: bool }
devices:
  - { id: tlc.1, bus: net, unit: 1, profile: city-tlc, allowCommands: true }
  - { id: meter_1, bus: net, unit: 2, profile: meter }
broker: { enabled: false }
api: { enabled: false }
`;
const custom = parseConfig(CUSTOM, { file: 'devices.yaml', dir: '/tmp' }).config;

describe('templates, rendered by Jinja', () => {
  it('a light reads its highest channel (a channel switched off counts 0), unknown without a level; alarms read their bit; sensors their point', () => {
    const configs = configsOf(demo);
    const get = (component: string, device: string, object: string): Record<string, string> => configs.get(topicOf(component, GW, device, object)) as Record<string, string>;
    const light = get('light', 'lamp-ctrl-01', 'light');
    const lora = get('light', 'park-light-01', 'light');
    const fault = get('binary_sensor', 'lamp-ctrl-01', 'alarm_ch1_driver_fault');
    const door = get('binary_sensor', 'tc-01', 'alarm_cabinet_door');
    const power = get('sensor', 'lamp-ctrl-01', 'ch1_power');
    const dimmed = { values: { ch1_on: true, ch1_dim_level: 40, ch2_on: false, ch2_dim_level: 70, ch1_status: 2 } };
    const off = { values: { ch1_on: false, ch1_dim_level: 0, ch2_on: 0, ch2_dim_setpoint: 80 } };
    const setpointOnly = { values: { ch1_on: true, ch1_dim_setpoint: 65, ch1_power: 12.5 } };
    const none = { values: {} };
    expect(
      render([
        [light.state_value_template!, dimmed],
        [light.brightness_value_template!, dimmed],
        [light.state_value_template!, off],
        [light.state_value_template!, setpointOnly],
        [light.brightness_value_template!, setpointOnly],
        [light.state_value_template!, none],
        [light.brightness_value_template!, none],
        [lora.brightness_value_template!, { values: { dimLevel: 30, lampOn: true } }],
        [fault.value_template!, dimmed],
        [fault.value_template!, { values: { ch1_status: 1 } }],
        [fault.value_template!, none],
        [door.value_template!, { values: { cabinet_door_open: true } }],
        [door.value_template!, { values: { cabinet_door_open: false } }],
        [power.value_template!, setpointOnly],
        [power.value_template!, none],
      ]),
    ).toEqual(['ON', '40', 'OFF', 'ON', '65', 'None', '', '30', 'ON', 'OFF', 'None', 'ON', 'OFF', '12.5', 'None']);
  });
});

describe('what each device gets', () => {
  it("ids with characters Home Assistant's topic levels do not take are replaced and told apart by a hash; unique ids stay unique", () => {
    expect(topicLevel('lamp-ctrl-01')).toBe('lamp-ctrl-01');
    expect(topicLevel('tlc.1')).toMatch(/^tlc_1_[0-9a-f]{6}$/);
    expect(topicLevel('tlc.1')).not.toBe(topicLevel('tlc_1'));
    const configs = configsOf(custom);
    for (const t of configs.keys()) expect(t).toMatch(/^homeassistant\/(sensor|binary_sensor|light)\/[A-Za-z0-9_-]+\/[A-Za-z0-9_-]+\/config$/);
    const ids = [...configs.values()].map((c) => c['unique_id']);
    expect(new Set(ids).size).toBe(ids.length);
    for (const c of configs.values()) expect(c['default_entity_id']).toMatch(/^(sensor|binary_sensor|light)\.[a-z0-9_]+$/);
    // the device's identifier is its id as configured
    expect(configs.get(topicOf('sensor', 'gw.north', 'tlc.1', 'current'))).toMatchObject({ device: { identifiers: ['streetbox_gw.north_tlc.1'], via_device: 'streetbox_gw.north', model: 'city-tlc' } });
  });

  it('a custom traffic controller that takes program requests: sensors and binary sensors only, its request registers diagnostic', () => {
    const tlc = [...configsOf(custom)].filter(([t]) => t.includes(topicLevel('streetbox_gw.north_tlc.1')));
    expect(new Set(tlc.map(([t]) => t.split('/')[1]))).toEqual(new Set(['sensor', 'binary_sensor']));
    for (const [, c] of tlc) expect(Object.keys(c).filter((k) => k.includes('command'))).toEqual([]);
    const by = (object: string): Record<string, unknown> | undefined => tlc.find(([t]) => t.split('/')[3] === object)?.[1];
    expect(by('request_expiry')).toMatchObject({ entity_category: 'diagnostic', unit_of_measurement: 's' });
    expect(by('request_expiry')).not.toHaveProperty('state_class');
    expect(by('mode')).toMatchObject({ entity_category: 'diagnostic' });
    expect(by('current')).toMatchObject({ device_class: 'current', state_class: 'measurement', unit_of_measurement: 'A' });
    expect(by('alarm_conflict')).toMatchObject({ device_class: 'problem' });
  });

  it('a device of no kind: its energy counts up, a % is no battery, a true/false point a binary sensor without class', () => {
    const c = configsOf(custom);
    expect(c.get(topicOf('sensor', 'gw.north', 'meter_1', 'energy'))).toMatchObject({ device_class: 'energy', state_class: 'total_increasing', unit_of_measurement: 'Wh' });
    expect(c.get(topicOf('sensor', 'gw.north', 'meter_1', 'level'))).not.toHaveProperty('device_class');
    expect(c.get(topicOf('binary_sensor', 'gw.north', 'meter_1', 'door'))).not.toHaveProperty('device_class');
    expect(c.has(topicOf('light', 'gw.north', 'meter_1', 'light'))).toBe(false);
  });
});

describe('DiscoveryPublisher', () => {
  const topics = topicsFor(GW);
  const run = (pub: DiscoveryPublisher, how: 'update' | 'republish'): Map<string, string> => {
    const sent = new Map<string, string>();
    pub[how]((t, p) => sent.set(t, p));
    return sent;
  };
  const on = { enabled: true, prefix: 'homeassistant' };

  it('publishes what changed, clears what went away, all again at a birth, nothing while off but the clearing', () => {
    const pub = new DiscoveryPublisher(topics);
    expect(pub.isBirth('homeassistant/status', 'online')).toBe(false);
    pub.want(demo, on);
    const all = run(pub, 'update');
    expect(all.size).toBe(pub.size);
    expect(run(pub, 'update').size).toBe(0);
    expect(pub.isBirth('homeassistant/status', 'online')).toBe(true);
    expect(pub.isBirth('homeassistant/status', 'offline')).toBe(false);
    expect(run(pub, 'republish').size).toBe(all.size);

    const fewer = structuredClone(demo);
    fewer.devices = fewer.devices.filter((d) => d.id !== 'tc-01');
    fewer.devices[0]!.name = 'Renamed';
    pub.want(fewer, on);
    const change = run(pub, 'update');
    const cleared = [...change].filter(([, p]) => p === '').map(([t]) => t);
    expect(cleared.length).toBeGreaterThan(10);
    expect(cleared.every((t) => t.includes('_tc-01/'))).toBe(true);
    // the renamed device's configs carry the new name; nothing else went again
    const republished = [...change].filter(([, p]) => p !== '');
    expect(republished.every(([t, p]) => t.includes('_lamp-ctrl-01/') && p.includes('"Renamed"'))).toBe(true);

    // a publish that did not reach the broker goes again at the next update
    const lost = republished[0]![0];
    pub.forget(lost);
    expect([...run(pub, 'update').keys()]).toEqual([lost]);

    // discovery turned off: every entity published is cleared, once
    pub.want(fewer, { enabled: false, prefix: 'homeassistant' });
    const off = run(pub, 'update');
    expect(off.size).toBe(pub.size + all.size - cleared.length);
    expect([...off.values()].every((p) => p === '')).toBe(true);
    expect(run(pub, 'update').size).toBe(0);
    expect(pub.isBirth('homeassistant/status', 'online')).toBe(false);
  });
});

describe('the ACL of the discovery prefix', () => {
  const ha = { homeAssistantPrefix: 'homeassistant', deviceKind: () => 'lighting' as const };
  it('readable by every role that reads, only while discovery is on; only <prefix>/status is published by clients, by any role', () => {
    for (const r of ['viewer', 'maintenance', 'central', 'technician'] as const) {
      expect(mqttAllowed(r, 'subscribe', 'homeassistant/#', GW, ha), r).toBe(true);
      expect(mqttAllowed(r, 'publish', 'homeassistant/status', GW, ha), r).toBe(true);
      expect(mqttAllowed(r, 'publish', 'homeassistant/light/x/light/config', GW, ha), r).toBe(false);
      expect(mqttAllowed(r, 'publish', 'homeassistant', GW, ha), r).toBe(false);
    }
    expect(mqttAllowed('viewer', 'subscribe', 'homeassistant/#', GW)).toBe(false);
    // without discovery the prefix is any other topic: the technician's alone
    expect(mqttAllowed('technician', 'publish', 'homeassistant/light/x/light/config', GW)).toBe(true);
  });

  it("a prefix named like the gateway's namespace changes nothing in it", () => {
    const odd = { homeAssistantPrefix: 'streetbox', deviceKind: () => 'lighting' as const };
    expect(mqttAllowed('maintenance', 'publish', `streetbox/${GW}/devices/lamp-ctrl-01/set`, GW, odd)).toBe(true);
    expect(mqttAllowed('maintenance', 'publish', `streetbox/${GW}/status`, GW, odd)).toBe(false);
    expect(mqttAllowed('viewer', 'publish', 'streetbox/status', GW, odd)).toBe(true);
  });
});
