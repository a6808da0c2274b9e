/**
 * A vendor's light from its profile alone (README "Kinds and roles"): acme-lc200 keeps its own
 * register names (`lamp_level` in per mille, a `relay` coil, a `fade_s` ramp register), and says
 * what they are with `kind: lighting` and point roles. A real gateway (startGateway: control,
 * Modbus driver, HTTP API, embedded broker) dims it over HTTP and over MQTT; the Modbus TCP
 * simulator, started by the test as the controller, shows the registers written, and each
 * command comes back verified.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deviceKindFromConfig } from '../../edge/broker/index.js';
import { parseConfig } from '../../edge/config/index.js';
import { silentLogger } from '../../edge/log.js';
import { startGateway, type Gateway } from '../../edge/main.js';
import { loadProfiles } from '../../edge/profiles/index.js';
import { startModbusSimulators, type ModbusSimulators } from '../../edge/sim/modbus/index.js';
import { connect, type TestClient } from '../broker/support.js';
import { freePort } from '../helpers/ports.js';
import { waitFor } from '../helpers/wait.js';
import { tempGateway } from '../support/cli.js';

const GW = 'gw-vendor';
const UNIT = 5;
const MAINT_TOKEN = 'vendor-maint-token-0123456789';

const PROFILE = `profiles:
  - name: acme-lc200
    kind: lighting
    description: ACME LC200 single-channel lamp controller
    points:
      - { name: lamp_level, table: holding, address: 100, scale: 0.1, unit: '%', access: rw, role: targetLightLevel }
      - { name: relay, table: coil, address: 3, type: bool, access: rw, role: switch }
      - { name: fade_s, table: holding, address: 101, unit: s, access: rw, role: rampTime }
      - { name: power, table: input, address: 4, type: float32, wordOrder: little, unit: W, role: activePower }
      - { name: status, table: holding, address: 7 }
      - { name: lamp_fail, table: holding, address: 7, bit: 0, type: bool, role: lampFailure }
    alarms:
      - { name: lamp_failure, point: status, bit: 0, severity: warning }
`;

interface WireWrite {
  table: 'coil' | 'holding';
  address: number;
  values: number[];
}

let sims: ModbusSimulators;
let gw: Gateway;
let dir: ReturnType<typeof tempGateway>;
const writes: WireWrite[] = [];

const bank = () => sims.bus('tcp').units.banks.get(UNIT)!;

beforeAll(async () => {
  // the simulated controller serves exactly the profile's registers (GenericModel)
  const { config: profileOnly } = parseConfig(`gateway: { id: ${GW} }\n${PROFILE}`, { file: 'profile.yaml' });
  const profiles = loadProfiles(profileOnly.profiles);
  sims = await startModbusSimulators({ tcp: [{ id: 'tcp', devices: [{ unit: UNIT, profile: 'acme-lc200' }] }], profiles: (name) => profiles.require(name) });
  const b = bank();
  const orig = b.writeFromWire.bind(b);
  b.writeFromWire = (table, address, values) => {
    writes.push({ table, address, values: [...values] });
    return orig(table, address, values);
  };
  const [apiPort, brokerPort] = [await freePort(), await freePort()];
  dir = tempGateway(`gateway: { id: ${GW} }
storage: { path: data/gw.db }
buses:
  - { id: net, type: tcp, host: 127.0.0.1, port: ${sims.bus('tcp').port!}, timeout: 500ms }
devices:
  - { id: acme-1, bus: net, unit: ${UNIT}, profile: acme-lc200, poll: 200ms, groups: [street] }
groups:
  - { id: street, defaultLevel: 80 }
${PROFILE}broker:
  host: 127.0.0.1
  port: ${brokerPort}
  users: [{ username: maint, password: maint-password-1, role: maintenance }]
api:
  host: 127.0.0.1
  port: ${apiPort}
  tokens: [{ name: maint, token: ${MAINT_TOKEN}, role: maintenance }]
`);
  gw = await startGateway({ configPath: dir.config, log: silentLogger() });
  // at start the light goes to its group's defaultLevel: 80 % is 800 per mille, relay on
  await waitFor('the start-up level asserted', () => bank().holding[100] === 800 && bank().coils[3] === 1);
});

afterAll(async () => {
  await gw?.stop();
  await sims?.stop();
  dir?.cleanup();
});

describe('a vendor profile with its own register names is dimmable from its profile alone', () => {
  it('the control plane and the broker see a light', () => {
    expect(gw.built.control.deviceKind('acme-1')).toBe('lighting');
    // the broker's own answer, from the same config, when it is not handed the control plane's
    expect(deviceKindFromConfig(gw.context.config)('acme-1')).toBe('lighting');
  });

  it('over HTTP: a dim writes lamp_level (scaled) and the relay coil, and the command is verified', async () => {
    const before = writes.length;
    const api = `http://127.0.0.1:${gw.built.api!.port()}`;
    const auth = { Authorization: `Bearer ${MAINT_TOKEN}` };
    const r = await fetch(`${api}/api/v1/devices/acme-1/commands`, { method: 'POST', headers: auth, body: JSON.stringify({ action: 'dim', level: 40, durationS: 600 }) });
    expect(r.status).toBe(202);
    const { id } = (await r.json()) as { id: string };
    const row = await waitFor('the HTTP command verified', async () => {
      const got = (await (await fetch(`${api}/api/v1/commands/${id}`, { headers: auth })).json()) as { status: string; result: unknown };
      return ['verified', 'failed', 'rejected'].includes(got.status) && got;
    });
    expect(row).toMatchObject({ status: 'verified', result: { devices: { 'acme-1': { status: 'verified', level: 40 } } } });
    // 40 % with scale 0.1 is 400 on the wire (FC 6), then the relay coil on (FC 5)
    expect(writes.slice(before)).toEqual([
      { table: 'holding', address: 100, values: [400] },
      { table: 'coil', address: 3, values: [1] },
    ]);
    expect(bank().holding[100]).toBe(400);
    expect(bank().coils[3]).toBe(1);
    await waitFor('the polled level stored', () => gw.context.store.latest('acme-1').get('lamp_level')?.value === 40);
  });

  it('over MQTT: a dim with a ramp writes fade_s, then lamp_level and the relay; verified is published on commands/<id>', async () => {
    let client: TestClient | undefined;
    try {
      client = await connect(gw.built.broker!.port(), 'maint', 'maint-password-1');
      await client.client.subscribeAsync(`streetbox/${GW}/commands/+`, { qos: 1 });
      const before = writes.length;
      await client.client.publishAsync(`streetbox/${GW}/devices/acme-1/set`, JSON.stringify({ action: 'dim', level: 25, rampS: 5, durationS: 600, transaction: 'vendor-1' }), { qos: 1 });
      const statuses = () => client!.messages.map((m) => JSON.parse(m.payload) as { transaction?: string; status: string; result?: unknown }).filter((p) => p.transaction === 'vendor-1');
      const last = await waitFor('verified on commands/<id>', () => statuses().find((p) => ['verified', 'failed', 'rejected'].includes(p.status)));
      expect(last).toMatchObject({ status: 'verified', result: { devices: { 'acme-1': { status: 'verified', level: 25 } } } });
      expect(statuses()[0]).toMatchObject({ status: 'queued' });
      // the controller ramps by itself: its ramp register first, then the level and the switch
      expect(writes.slice(before)).toEqual([
        { table: 'holding', address: 101, values: [5] },
        { table: 'holding', address: 100, values: [250] },
        { table: 'coil', address: 3, values: [1] },
      ]);
      expect(bank().holding[101]).toBe(5);
      expect(bank().holding[100]).toBe(250);
    } finally {
      await client?.end();
    }
  });
});
