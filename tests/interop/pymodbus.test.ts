/**
 * Interoperability: the driver (createModbusDriver, scheduler + store) against an independent
 * Modbus server, pymodbus 3.0 from Debian's python3-pymodbus under /usr/bin/python3. One
 * contract suite, run over TCP and over RTU through a socat PTY pair (8N1: a PTY refuses
 * parity settings).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ConfigInput, ProfileConfig } from '../../edge/config/schema.js';
import { createModbusDriver, type ModbusDriver } from '../../edge/drivers/modbus/index.js';
import { isEvent } from '../../edge/store/eventKinds.js';
import { makeContext, type TestContext } from '../helpers/context.js';
import { waitFor } from '../helpers/wait.js';
import { expected, startPymodbusRtu, startPymodbusTcp, type Overrides, type PymodbusServer } from '../helpers/pymodbus.js';
import { openPtyPair, type PtyPair } from '../helpers/pty.js';

const pt = (p: Partial<ProfileConfig['points'][number]> & Pick<ProfileConfig['points'][number], 'name' | 'table' | 'address'>) => ({
  type: 'uint16' as const,
  wordOrder: 'big' as const,
  scale: 1,
  offset: 0,
  access: 'r' as const,
  ...p,
});

/** Every point type, both word orders, scale, a bit of a register, all four tables, two writable points. */
const profile: ProfileConfig = {
  name: 'interop',
  transport: 'modbus',
  points: [
    pt({ name: 'plain', table: 'holding', address: 0 }),
    pt({ name: 'signed', table: 'holding', address: 100, type: 'int16' }),
    pt({ name: 'u32_big', table: 'holding', address: 102, type: 'uint32' }),
    pt({ name: 'u32_little', table: 'holding', address: 104, type: 'uint32', wordOrder: 'little' }),
    pt({ name: 'i32', table: 'holding', address: 106, type: 'int32' }),
    pt({ name: 'f32', table: 'holding', address: 108, type: 'float32' }),
    pt({ name: 'volts', table: 'holding', address: 110, scale: 0.1, unit: 'V' }),
    pt({ name: 'flag', table: 'holding', address: 111, type: 'bool', bit: 3 }),
    pt({ name: 'setpoint', table: 'holding', address: 200, access: 'rw' }),
    pt({ name: 'input5', table: 'input', address: 5 }),
    pt({ name: 'coil2', table: 'coil', address: 2, type: 'bool' }),
    pt({ name: 'relay', table: 'coil', address: 300, type: 'bool', access: 'rw' }),
    pt({ name: 'di3', table: 'discrete', address: 3, type: 'bool' }),
  ],
  alarms: [{ name: 'flag_alarm', point: 'volts', bit: 0, severity: 'warning' }],
};

/** A point beyond pymodbus's 1000-register datastore: pymodbus answers exception 2. */
const missing: ProfileConfig = { name: 'missing', transport: 'modbus', points: [pt({ name: 'nowhere', table: 'holding', address: 5000 })], alarms: [] };

const values: Overrides = {
  '1': {
    hr: {
      '100': [0x10000 - 1234],
      '102': [0x0001, 0x86a0],
      '104': [0x86a0, 0x0001],
      '106': [0xfffe, 0x7960],
      '108': [0x4366, 0x8000],
      '110': [2301, 0b1000],
    },
  },
};

const expectedValues: Record<string, number | boolean> = {
  plain: expected.holding(1, 0),
  signed: -1234,
  u32_big: 100_000,
  u32_little: 100_000,
  i32: -100_000,
  f32: 230.5,
  volts: 230.1,
  flag: true,
  setpoint: expected.holding(1, 200),
  input5: expected.input(1, 5),
  coil2: expected.coil(1, 2),
  relay: expected.coil(1, 300),
  di3: expected.discrete(1, 3),
};

interface Transport {
  name: string;
  setup(): Promise<{ bus: NonNullable<ConfigInput['buses']>[number]; server: PymodbusServer; pty?: PtyPair }>;
}

const transports: Transport[] = [
  {
    name: 'TCP',
    async setup() {
      const server = await startPymodbusTcp({ units: [1, 3], values });
      return { server, bus: { id: 'bus', type: 'tcp', host: '127.0.0.1', port: server.port, timeout: 500, retries: 0, offlineAfter: 2, probeInterval: 1000 } };
    },
  },
  {
    name: 'RTU over a socat PTY pair (8N1, 19200 baud)',
    async setup() {
      const pty = await openPtyPair();
      const server = await startPymodbusRtu(pty.simPath, { units: [1, 3], values, baud: 19200 });
      return {
        server,
        pty,
        bus: { id: 'bus', type: 'serial', path: pty.masterPath, baud: 19200, parity: 'none', stopBits: 1, timeout: 1000, retries: 0, offlineAfter: 2, probeInterval: 1000 },
      };
    },
  },
];

describe.each(transports)('driver against pymodbus over $name', (transport) => {
  let t: TestContext;
  let driver: ModbusDriver;
  let server: PymodbusServer;
  let pty: PtyPair | undefined;

  beforeAll(async () => {
    const s = await transport.setup();
    server = s.server;
    pty = s.pty;
    t = makeContext({
      profiles: [profile, missing],
      buses: [s.bus],
      devices: [
        { id: 'dev1', bus: 'bus', unit: 1, profile: 'interop', poll: 300 },
        { id: 'gone', bus: 'bus', unit: 2, profile: 'interop', poll: 300 },
        { id: 'far', bus: 'bus', unit: 3, profile: 'missing', poll: 300 },
      ],
    });
    driver = createModbusDriver(t.ctx);
    await driver.start();
  });

  afterAll(async () => {
    await driver?.stop();
    await t?.close();
    await server?.stop();
    await pty?.close();
  });

  it('polls every point type of every table into the store with the values pymodbus holds', async () => {
    await waitFor('all points of dev1', () => Object.keys(expectedValues).every((p) => t.store.latest('dev1').get(p)?.quality === 'good'), 10_000);
    const latest = t.store.latest('dev1');
    for (const [point, want] of Object.entries(expectedValues)) {
      const got = latest.get(point)!.value;
      if (typeof want === 'number' && !Number.isInteger(want)) expect(got, point).toBeCloseTo(want, 5);
      else expect(got, point).toBe(want);
    }
    expect(latest.get('volts')!.unit).toBe('V');
  });

  it('reads on demand and writes with read-back verification (register and coil)', async () => {
    const now = await driver.read('dev1', 'i32');
    expect(now).toEqual([expect.objectContaining({ point: 'i32', value: -100_000, quality: 'good' })]);
    const w = await driver.write('dev1', 'setpoint', 4321);
    expect(w).toMatchObject({ status: 'verified', readBack: 4321 });
    const c = await driver.write('dev1', 'relay', !expected.coil(1, 300));
    expect(c).toMatchObject({ status: 'verified', readBack: !expected.coil(1, 300) });
    const again = await driver.read('dev1');
    expect(again.find((p) => p.point === 'setpoint')!.value).toBe(4321);
    expect(again.find((p) => p.point === 'relay')!.value).toBe(!expected.coil(1, 300));
  });

  it('reports pymodbus exception 2 by name and keeps the device online', async () => {
    await waitFor('comms.error of far', () => t.events.some((e) => e.device === 'far' && e.kind === 'comms.error'), 10_000);
    const e = t.events.filter((x) => isEvent(x, 'comms.error')).find((x) => x.device === 'far')!;
    expect(e.detail.exceptionCode).toBe(2);
    expect(String(e.detail.exception)).toMatch(/ILLEGAL.?DATA.?ADDRESS/i);
    expect(t.store.latest('far').get('nowhere')?.quality).toBe('bad');
    const far = driver.status()[0]!.devices.find((d) => d.id === 'far')!;
    expect(far.online).toBe(true);
  });

  it('marks a unit pymodbus does not serve offline with comms.lost, and scans the units that answer', async () => {
    await waitFor('comms.lost of gone', () => t.events.some((e) => e.device === 'gone' && e.kind === 'comms.lost'), 15_000);
    expect(driver.status()[0]!.devices.find((d) => d.id === 'gone')!.online).toBe(false);
    expect(t.store.latest('gone').get('plain')?.quality).toBe('bad');
    expect(await driver.scan('bus', [1, 2, 3, 4], { timeoutMs: 300 })).toEqual([1, 3]);
  });
});
