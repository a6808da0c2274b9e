/**
 * What a configuration change touches (edge/reconfig/plan.ts), table-driven from the shipped
 * devices.yaml: each case edits a copy and names what the applier must restart, and nothing
 * else. A new schedule touches no bus; a new device on one of two buses that bus only; a changed
 * broker user the auth table only; the upstream only when `sync` (or the time zone) changed.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parseConfig, type Config } from '../../edge/config/index.js';
import { isSecretPath } from '../../edge/config/redact.js';
import { planChange } from '../../edge/reconfig/plan.js';
import type { ChangePlan } from '../../edge/reconfig/types.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const SHIPPED = readFileSync(join(ROOT, 'devices.yaml'), 'utf8');
const parse = (text: string): Config => parseConfig(text, { file: 'devices.yaml', dir: ROOT, env: {} }).config;
const BASE = parse(SHIPPED);

/** A custom profile (used by lamp-ctrl-03 in the cases that need one). */
const MY_LAMP = {
  name: 'my-lamp',
  transport: 'modbus' as const,
  points: [{ name: 'lamp_power', table: 'input' as const, address: 0, type: 'uint16' as const, wordOrder: 'big' as const, scale: 1, offset: 0, access: 'r' as const }],
  alarms: [],
};

function withMyLamp(c: Config): void {
  c.profiles.push(structuredClone(MY_LAMP));
  device(c, 'lamp-ctrl-03').profile = 'my-lamp';
}

function device(c: Config, id: string): Config['devices'][number] {
  const d = c.devices.find((x) => x.id === id);
  if (!d) throw new Error(`no device ${id}`);
  return d;
}

const SYNC: NonNullable<Config['sync']> = {
  enabled: true,
  url: 'mqtts://central.example:8883',
  username: 'cabinet',
  password: 'sync-secret-password-1',
  rejectUnauthorized: true,
  protocolVersion: 4,
  batchSize: 500,
  batchBytes: 262_144,
  inFlight: 4,
  compress: true,
  linger: 30_000,
  ackTimeout: 30_000,
  reconnectMin: 1000,
  reconnectMax: 60_000,
  configSigningKeys: [],
  homeAssistant: false,
};

/** The plan that touches nothing; each case says what differs from it. */
const NOTHING: Omit<ChangePlan, 'sections' | 'summary' | 'needsRestart' | 'empty'> = {
  buses: [],
  lorawan: false,
  simulate: false,
  control: 'none',
  broker: 'none',
  api: 'none',
  sync: false,
  report: false,
  components: [],
};

interface Case {
  name: string;
  /** edits prev (both start as the shipped config) */
  before?: (c: Config) => void;
  /** edits next */
  edit: (c: Config) => void;
  expect: Partial<typeof NOTHING>;
  sections: string[];
  /** a substring of each needsRestart entry, in order */
  restart?: string[];
  /** exact lines */
  summary: string[];
}

const CASES: Case[] = [
  // schedules and groups: the control component only
  {
    name: 'a new schedule touches no bus: the schedules swap in place',
    edit: (c) => c.schedules.push({ id: 'late-night', groups: ['stationsplein'], steps: [{ at: '02:00', level: 40 }] }),
    expect: { control: 'schedules', components: ['control schedules'] },
    sections: ['schedules'],
    summary: ['schedules: late-night added'],
  },
  {
    name: 'a changed schedule',
    edit: (c) => (c.schedules[0]!.steps[1]!.level = 50),
    expect: { control: 'schedules', components: ['control schedules'] },
    sections: ['schedules'],
    summary: ['schedules: city-night changed'],
  },
  {
    name: 'schedules in another order (it decides which step wins at one instant)',
    edit: (c) => c.schedules.reverse(),
    expect: { control: 'schedules', components: ['control schedules'] },
    sections: ['schedules'],
    summary: ['schedules: order changed'],
  },
  {
    name: 'a group changed rebuilds the catalog',
    edit: (c) => (c.groups[2]!.defaultLevel = 60),
    expect: { control: 'restart', components: ['control'] },
    sections: ['groups'],
    summary: ['groups: oosterdok-park changed'],
  },
  {
    name: 'a group and a schedule: the catalog is rebuilt (schedules with it)',
    edit: (c) => {
      c.groups.push({ id: 'harbour', defaultLevel: 100 });
      c.schedules.push({ id: 'harbour-night', groups: ['harbour'], steps: [{ at: '22:00', level: 50 }] });
    },
    expect: { control: 'restart', components: ['control'] },
    sections: ['groups', 'schedules'],
    summary: ['groups: harbour added', 'schedules: harbour-night added'],
  },
  // Modbus devices and buses
  {
    name: 'a new device on one of two buses touches only that bus',
    edit: (c) => c.devices.push({ id: 'lamp-ctrl-05', bus: 'rs485-1', unit: 5, profile: 'streetlight-controller', poll: 2000, groups: ['stationsplein'], allowCommands: false }),
    expect: { buses: ['rs485-1'], control: 'restart', report: true, components: ['control', 'modbus bus rs485-1', 'report strategies'] },
    sections: ['devices'],
    summary: ['devices: lamp-ctrl-05 added on bus rs485-1'],
  },
  {
    name: 'a removed device',
    edit: (c) => (c.devices = c.devices.filter((d) => d.id !== 'tc-01')),
    expect: { buses: ['tc-net'], control: 'restart', report: true, components: ['control', 'modbus bus tc-net', 'report strategies'] },
    sections: ['devices'],
    summary: ['devices: tc-01 removed from bus tc-net'],
  },
  {
    name: 'a device moved to the other bus rewires both',
    edit: (c) => Object.assign(device(c, 'lamp-ctrl-04'), { bus: 'tc-net', unit: 2 }),
    expect: { buses: ['rs485-1', 'tc-net'], control: 'restart', components: ['control', 'modbus bus rs485-1', 'modbus bus tc-net'] },
    sections: ['devices'],
    summary: ['devices: lamp-ctrl-04 moved from bus rs485-1 to bus tc-net'],
  },
  {
    name: 'a device polled at another rate rewires its bus',
    edit: (c) => (device(c, 'lamp-ctrl-02').poll = 10_000),
    expect: { buses: ['rs485-1'], control: 'restart', components: ['control', 'modbus bus rs485-1'] },
    sections: ['devices'],
    summary: ['devices: lamp-ctrl-02 changed (poll)'],
  },
  {
    name: "a device's name and groups do not rewire its bus",
    edit: (c) => Object.assign(device(c, 'lamp-ctrl-01'), { name: 'Stationsplein noord', groups: ['stationsplein', 'prins-hendrikkade'] }),
    expect: { control: 'restart', components: ['control'] },
    sections: ['devices'],
    summary: ['devices: lamp-ctrl-01 changed (groups, name)'],
  },
  {
    name: "a device's report rebuilds the strategies, not its bus",
    edit: (c) => Object.assign(device(c, 'lamp-ctrl-01'), { report: 'change' }),
    expect: { control: 'restart', report: true, components: ['control', 'report strategies'] },
    sections: ['devices'],
    summary: ['devices: lamp-ctrl-01 changed (report)'],
  },
  {
    name: 'allowCommands on a traffic controller: the catalog, not its bus (the driver never reads it)',
    edit: (c) => (device(c, 'tc-01').allowCommands = false),
    expect: { control: 'restart', components: ['control'] },
    sections: ['devices'],
    summary: ['devices: tc-01 changed (allowCommands)'],
  },
  {
    name: 'a changed bus is rewired alone (the simulators with it: simulate stays false)',
    edit: (c) => (c.buses[0]!.timeout = 800),
    expect: { buses: ['rs485-1'], components: ['modbus bus rs485-1'] },
    sections: ['buses'],
    summary: ['buses: rs485-1 changed'],
  },
  {
    name: 'a new bus without devices',
    edit: (c) => c.buses.push({ id: 'rs485-2', type: 'tcp', host: '127.0.0.1', port: 15021, timeout: 1000, retries: 1, offlineAfter: 3, probeInterval: 30_000, maxGap: 8, transferShare: 0.9 }),
    expect: { buses: ['rs485-2'], components: ['modbus bus rs485-2'] },
    sections: ['buses'],
    summary: ['buses: rs485-2 added'],
  },
  {
    name: 'no device on a bus any more removes the Modbus driver: a restart',
    edit: (c) => (c.devices = c.devices.filter((d) => d.bus === undefined)),
    expect: { buses: ['rs485-1', 'tc-net'], control: 'restart', report: true, components: ['control', 'modbus bus rs485-1', 'modbus bus tc-net', 'report strategies'] },
    sections: ['devices'],
    restart: ['removes the Modbus driver'],
    summary: ['devices: lamp-ctrl-01 removed from bus rs485-1', 'devices: lamp-ctrl-02 removed from bus rs485-1', 'devices: lamp-ctrl-03 removed from bus rs485-1', 'devices: lamp-ctrl-04 removed from bus rs485-1', 'devices: tc-01 removed from bus tc-net'],
  },
  {
    name: 'the first device on a bus adds the Modbus driver: a restart',
    before: (c) => (c.devices = c.devices.filter((d) => d.bus === undefined)),
    edit: (c) => c.devices.push(structuredClone(device(BASE, 'tc-01'))),
    expect: { buses: ['tc-net'], control: 'restart', report: true, components: ['control', 'modbus bus tc-net', 'report strategies'] },
    sections: ['devices'],
    restart: ['adds the Modbus driver'],
    summary: ['devices: tc-01 added on bus tc-net'],
  },
  // profiles
  {
    name: 'a changed custom profile: the bus of each device using it',
    before: withMyLamp,
    edit: (c) => (c.profiles[0]!.points[0]!.address = 10),
    expect: { buses: ['rs485-1'], control: 'restart', report: true, components: ['control', 'modbus bus rs485-1', 'report strategies'] },
    sections: ['profiles'],
    summary: ['profiles: my-lamp changed (used by 1 device)'],
  },
  {
    name: 'a custom profile nobody uses yet',
    edit: (c) => c.profiles.push(structuredClone(MY_LAMP)),
    expect: { control: 'restart', report: true, components: ['control', 'report strategies'] },
    sections: ['profiles'],
    summary: ['profiles: my-lamp added'],
  },
  // LoRaWAN
  {
    name: 'a new LoRaWAN node restarts the LoRaWAN driver, no bus',
    edit: (c) => {
      c.lorawan!.devices.push({ devEui: '70b3d57ed0000004', activation: 'otaa', class: 'A', joinEui: '70b3d57ed0000000', appKey: 'aabbccddeeff00112233445566778899' });
      c.devices.push({ id: 'park-light-04', devEui: '70b3d57ed0000004', profile: 'lora-streetlight', poll: 5000, groups: ['oosterdok-park'], allowCommands: false });
    },
    expect: { lorawan: true, control: 'restart', report: true, components: ['control', 'lorawan', 'report strategies'] },
    sections: ['devices', 'lorawan'],
    summary: ['devices: park-light-04 added on LoRaWAN', 'lorawan.devices: 70b3d57ed0000004 added'],
  },
  {
    name: 'a changed LoRaWAN key (never shown)',
    edit: (c) => (c.lorawan!.devices[1]!.appKey = 'ffeeddccbbaa99887766554433221100'),
    expect: { lorawan: true, components: ['lorawan'] },
    sections: ['lorawan'],
    summary: ['lorawan.devices: 70b3d57ed0000002 changed'],
  },
  {
    name: 'a LoRaWAN setting',
    edit: (c) => (c.lorawan!.rx1Delay = 2),
    expect: { lorawan: true, components: ['lorawan'] },
    sections: ['lorawan'],
    summary: ['lorawan.rx1Delay changed'],
  },
  {
    name: "a LoRaWAN node's groups do not restart the driver",
    edit: (c) => (device(c, 'park-light-01').groups = ['stationsplein']),
    expect: { control: 'restart', components: ['control'] },
    sections: ['devices'],
    summary: ['devices: park-light-01 changed (groups)'],
  },
  {
    name: 'LoRaWAN disabled removes the driver: a restart',
    edit: (c) => (c.lorawan!.enabled = false),
    expect: { lorawan: true, components: ['lorawan'] },
    sections: ['lorawan'],
    restart: ['removes the LoRaWAN driver'],
    summary: ['lorawan.enabled changed'],
  },
  {
    name: 'the last LoRaWAN node gone stops the simulated nodes: a restart',
    edit: (c) => {
      c.lorawan!.devices = [];
      c.devices = c.devices.filter((d) => d.devEui === undefined);
    },
    expect: { lorawan: true, control: 'restart', report: true, components: ['control', 'lorawan', 'report strategies'] },
    sections: ['devices', 'lorawan'],
    restart: ['removes the simulated LoRaWAN nodes'],
    summary: [
      'devices: park-light-01 removed from LoRaWAN',
      'devices: park-light-02 removed from LoRaWAN',
      'devices: park-light-03 removed from LoRaWAN',
      'lorawan.devices: 70b3d57ed0000001 removed',
      'lorawan.devices: 70b3d57ed0000002 removed',
      'lorawan.devices: 70b3d57ed0000003 removed',
    ],
  },
  // gateway and storage
  {
    name: 'gateway.id takes a restart',
    edit: (c) => (c.gateway.id = 'demo-cabinet-02'),
    expect: {},
    sections: ['gateway'],
    restart: ['gateway.id'],
    summary: ['gateway.id changed'],
  },
  {
    name: 'gateway.timezone: the catalog and the upstream (bytes per day in that zone)',
    before: (c) => (c.nodeRed.enabled = false),
    edit: (c) => (c.gateway.timezone = 'UTC'),
    expect: { control: 'restart', sync: true, components: ['control', 'sync'] },
    sections: ['gateway'],
    summary: ['gateway.timezone changed'],
  },
  {
    name: "the gateway's position: the catalog (sun steps)",
    before: (c) => (c.nodeRed.enabled = false),
    edit: (c) => (c.gateway.lat = 52.38),
    expect: { control: 'restart', components: ['control'] },
    sections: ['gateway'],
    summary: ['gateway.lat changed'],
  },
  {
    name: "the gateway's position with Node-RED on takes a restart (its flows read the site when they start)",
    edit: (c) => (c.gateway.lat = 52.38),
    expect: { control: 'restart', components: ['control'] },
    sections: ['gateway'],
    summary: ['gateway.lat changed'],
    restart: ["gateway.lat: Node-RED's flows read it when they start, which takes a restart of the gateway"],
  },
  {
    name: 'gateway.confirmTimeout: nothing to restart',
    edit: (c) => (c.gateway.confirmTimeout = 300_000),
    expect: {},
    sections: ['gateway'],
    summary: ['gateway.confirmTimeout changed'],
  },
  {
    name: 'storage.maxBytes takes a restart',
    edit: (c) => (c.storage.maxBytes = 128_000_000),
    expect: {},
    sections: ['storage'],
    restart: ['storage.maxBytes takes a restart of the gateway'],
    summary: ['storage.maxBytes changed'],
  },
  {
    name: 'storage.minAutonomyDays is read when asked: nothing to restart',
    edit: (c) => (c.storage.minAutonomyDays = 14),
    expect: {},
    sections: ['storage'],
    summary: ['storage.minAutonomyDays changed'],
  },
  // broker
  {
    name: "a changed broker user swaps the auth table only (never the password in the summary)",
    edit: (c) => (c.broker.users[1]!.password = 'new-maintenance-password'),
    expect: { broker: 'users', components: ['broker users'] },
    sections: ['broker'],
    summary: ['broker.users: 1 changed'],
  },
  {
    name: 'a broker user added and one changed',
    edit: (c) => {
      c.broker.users.push({ username: 'viewer', password: 'demo-viewer-password', role: 'viewer' });
      c.broker.users[0]!.role = 'maintenance';
    },
    expect: { broker: 'users', components: ['broker users'] },
    sections: ['broker'],
    summary: ['broker.users: 1 added, 1 changed'],
  },
  {
    name: 'broker.allowAnonymous is part of the auth table',
    edit: (c) => (c.broker.allowAnonymous = true),
    expect: { broker: 'users', components: ['broker users'] },
    sections: ['broker'],
    summary: ['broker.allowAnonymous changed'],
  },
  {
    name: 'broker.port relistens',
    edit: (c) => (c.broker.port = 1884),
    expect: { broker: 'restart', components: ['broker'] },
    sections: ['broker'],
    summary: ['broker.port changed'],
  },
  {
    name: 'broker disabled takes a restart',
    edit: (c) => (c.broker.enabled = false),
    expect: {},
    sections: ['broker'],
    restart: ['stops the MQTT broker'],
    summary: ['broker.enabled changed'],
  },
  // api and Node-RED
  {
    name: 'an API token added swaps the token table (never the token in the summary)',
    edit: (c) => c.api.tokens.push({ name: 'central-ops', token: 'central-ops-token-000000001', role: 'central' }),
    expect: { api: 'tokens', components: ['api tokens'] },
    sections: ['api'],
    summary: ['api.tokens: 1 added'],
  },
  {
    name: "api.port with Node-RED on: Node-RED runs on the API's server",
    edit: (c) => (c.api.port = 8081),
    expect: {},
    sections: ['api'],
    restart: ["Node-RED runs on the API's server"],
    summary: ['api.port changed'],
  },
  {
    name: 'api.port without Node-RED relistens',
    before: (c) => (c.nodeRed.enabled = false),
    edit: (c) => {
      c.nodeRed.enabled = false;
      c.api.port = 8081;
    },
    expect: { api: 'restart', components: ['api'] },
    sections: ['api'],
    summary: ['api.port changed'],
  },
  {
    name: 'api disabled takes a restart',
    edit: (c) => (c.api.enabled = false),
    expect: {},
    sections: ['api'],
    restart: ['stops the API'],
    summary: ['api.enabled changed'],
  },
  {
    name: 'a Node-RED setting takes a restart',
    edit: (c) => (c.nodeRed.path = '/node-red'),
    expect: {},
    sections: ['nodeRed'],
    restart: ['nodeRed.path takes a restart of the gateway'],
    summary: ['nodeRed.path changed'],
  },
  {
    name: 'Node-RED off before and after: its settings run nowhere',
    before: (c) => (c.nodeRed.enabled = false),
    edit: (c) => {
      c.nodeRed.enabled = false;
      c.nodeRed.users[0]!.password = 'another-password-here';
    },
    expect: {},
    sections: ['nodeRed'],
    summary: ['nodeRed.users: 1 changed'],
  },
  // sync
  {
    name: 'sync added restarts the upstream',
    edit: (c) => (c.sync = structuredClone(SYNC)),
    expect: { sync: true, components: ['sync'] },
    sections: ['sync'],
    summary: ['sync added'],
  },
  {
    name: 'sync.password changed (never shown)',
    before: (c) => (c.sync = structuredClone(SYNC)),
    edit: (c) => (c.sync = { ...structuredClone(SYNC), password: 'sync-secret-password-2' }),
    expect: { sync: true, components: ['sync'] },
    sections: ['sync'],
    summary: ['sync.password changed'],
  },
  {
    name: 'sync.configSigningKeys changed',
    before: (c) => (c.sync = structuredClone(SYNC)),
    edit: (c) => (c.sync = { ...structuredClone(SYNC), configSigningKeys: ['Qd9KoUZcP5DWqYtCKW8UoeuuTtphjX4wCQId+/boH1g='] }),
    expect: { sync: true, components: ['sync'] },
    sections: ['sync'],
    summary: ['sync.configSigningKeys changed'],
  },
  // firmware (issue 17): read by the engine when it needs it; a bus's transferShare rewires that bus
  {
    name: 'the firmware section touches nothing that runs',
    edit: (c) => {
      c.firmware.signingKeys = ['Qd9KoUZcP5DWqYtCKW8UoeuuTtphjX4wCQId+/boH1g='];
      c.firmware.lights.maxGroupShare = 0.5;
      c.firmware.traffic.windows = [{ from: '01:00', to: '04:00', days: ['sun'] }];
    },
    expect: {},
    sections: ['firmware'],
    summary: ['firmware.lights changed', 'firmware.signingKeys changed', 'firmware.traffic changed'],
  },
  {
    name: "a bus's transferShare rewires that bus alone",
    edit: (c) => (c.buses[0]!.transferShare = 0.5),
    expect: { buses: ['rs485-1'], components: ['modbus bus rs485-1'] },
    sections: ['buses'],
    summary: ['buses: rs485-1 changed'],
  },
  // simulate
  {
    name: 'simulate off takes a restart (every simulator)',
    edit: (c) => (c.simulate = false),
    expect: { simulate: true, components: ['simulators'] },
    sections: ['simulate'],
    restart: ['simulate takes a restart of the gateway'],
    summary: ['simulate changed'],
  },
];

/** Every secret value of a config (passwords, tokens, keys), to check none is in a plan. */
function secretsOf(value: unknown, path: PropertyKey[] = []): string[] {
  if (typeof value === 'string') return isSecretPath(path) ? [value] : [];
  if (Array.isArray(value)) return value.flatMap((v, i) => secretsOf(v, [...path, i]));
  if (value !== null && typeof value === 'object') return Object.entries(value).flatMap(([k, v]) => secretsOf(v, [...path, k]));
  return [];
}

describe('planChange', () => {
  it.each(CASES)('$name', (c) => {
    const prev = structuredClone(BASE);
    c.before?.(prev);
    const next = structuredClone(prev);
    c.edit(next);
    const plan = planChange(prev, next);
    expect(plan).toEqual({
      ...NOTHING,
      ...c.expect,
      empty: false,
      sections: c.sections,
      needsRestart: (c.restart ?? []).map((s) => expect.stringContaining(s)),
      summary: c.summary,
    });
    const text = JSON.stringify(plan);
    for (const secret of [...secretsOf(prev), ...secretsOf(next)]) expect(text).not.toContain(secret);
    // deterministic: the same two configs give the same plan
    expect(planChange(structuredClone(prev), structuredClone(next))).toEqual(plan);
  });

  it('the same configuration: an empty plan', () => {
    expect(planChange(BASE, structuredClone(BASE))).toEqual({ ...NOTHING, empty: true, sections: [], needsRestart: [], summary: [] });
  });

  it('reordered keys, comments and blank lines, a reordered list of devices: empty', () => {
    const text = SHIPPED.replace(
      'gateway:\n  id: demo-cabinet-01\n  site: Stationsplein demo cabinet\n',
      '# moved the site up\ngateway:\n  site: Stationsplein demo cabinet   # the sign on the cabinet\n\n  id: demo-cabinet-01\n',
    ).replace(/^( {2}- \{ id: lamp-ctrl-01.*\n)( {2}- \{ id: lamp-ctrl-02.*\n)/m, '$2$1');
    expect(text).not.toBe(SHIPPED);
    const next = parse(text);
    expect(next.devices[0]!.id).toBe('lamp-ctrl-02');
    expect(planChange(BASE, next)).toMatchObject({ empty: true, sections: [], components: [], summary: [] });
  });

  it('`$schema` is for editors: a change of it is empty', () => {
    const next = { ...structuredClone(BASE), $schema: './other.schema.json' };
    expect(planChange(BASE, next).empty).toBe(true);
  });

  it('`simulate: true` and `{ enabled: true, speed: 1 }` are the same', () => {
    expect(planChange(BASE, { ...structuredClone(BASE), simulate: { enabled: true, speed: 1, radioTimeScale: 1 } }).empty).toBe(true);
  });

  it('sync is untouched unless `sync` differs (or the time zone)', () => {
    const prev = { ...structuredClone(BASE), sync: structuredClone(SYNC) };
    for (const c of CASES.filter((x) => !x.sections.includes('sync') && x.name !== 'gateway.timezone: the catalog and the upstream (bytes per day in that zone)')) {
      const p = structuredClone(prev);
      c.before?.(p);
      const next = structuredClone(p);
      c.edit(next);
      expect(planChange(p, next).sync, c.name).toBe(false);
    }
  });

  it('several changes at once: sorted, each part once', () => {
    const next = structuredClone(BASE);
    next.schedules.push({ id: 'a-night', groups: ['stationsplein'], steps: [{ at: '01:00', level: 20 }] });
    next.devices.push({ id: 'lamp-ctrl-06', bus: 'tc-net', unit: 6, profile: 'streetlight-controller', poll: 2000, groups: [], allowCommands: false });
    next.devices.push({ id: 'lamp-ctrl-05', bus: 'rs485-1', unit: 5, profile: 'streetlight-controller', poll: 2000, groups: [], allowCommands: false });
    next.api.tokens[1]!.role = 'maintenance';
    next.broker.users = next.broker.users.filter((u) => u.username !== 'central');
    const plan = planChange(BASE, next);
    expect(plan).toMatchObject({
      sections: ['api', 'broker', 'devices', 'schedules'],
      buses: ['rs485-1', 'tc-net'],
      control: 'restart',
      broker: 'users',
      api: 'tokens',
      components: ['api tokens', 'broker users', 'control', 'modbus bus rs485-1', 'modbus bus tc-net', 'report strategies'],
      summary: ['api.tokens: 1 changed', 'broker.users: 1 removed', 'devices: lamp-ctrl-05 added on bus rs485-1', 'devices: lamp-ctrl-06 added on bus tc-net', 'schedules: a-night added'],
    });
  });
});
