// The driver end to end over Modbus TCP: real sockets on 127.0.0.1 against the minimal server
// of helpers/tcpServer.ts, readings and events into a real SQLite store (edge/store) in a temp dir.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EventBus } from '../../edge/bus.js';
import { systemClock } from '../../edge/clock.js';
import type { GatewayContext } from '../../edge/component.js';
import { configSchema, type ConfigInput } from '../../edge/config/schema.js';
import {
  createModbusDriver,
  ModbusClient,
  parseUnits,
  parseValue,
  readDevice,
  scanBus,
  writeDevice,
  type ModbusDriver,
} from '../../edge/drivers/modbus/index.js';
import { silentLogger } from '../../edge/log.js';
import { loadProfiles } from '../../edge/profiles/index.js';
import { BatchWriter, openStore, type SqliteStore } from '../../edge/store/index.js';
import type { Reading, StoredEvent } from '../../edge/store/types.js';
import { waitFor } from '../helpers/wait.js';
import { TestModbusServer } from './helpers/tcpServer.js';

let dir: string;
let server: TestModbusServer;
let store: SqliteStore | undefined;
let writer: BatchWriter | undefined;
let driver: ModbusDriver | undefined;

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'sb-modbus-'));
  server = new TestModbusServer();
  await server.listen();
  // unit 1: a streetlight controller
  const sl = server.unit(1);
  sl.holding.set([2301, 5000, 215], 0);
  sl.holding.set([1, 80, 80, 1234, 0x0001, 0x86a0, 0, 5000, 0b01], 10); // ch1, lamp failure set
  sl.holding.set([0, 0, 0, 0, 0, 0, 0, 12, 0], 20); // ch2 off
  sl.limits.set(11, [0, 100]);
  sl.limits.set(21, [0, 100]);
  // unit 2: a traffic controller
  const tc = server.unit(2);
  tc.input.set([3, 7, 0b10, 0, 0], 0); // actuated, program 7, signal conflict
  tc.input.set([0, 120, 0, 130], 10);
  tc.discrete[0] = 1; // door open
});

afterEach(async () => {
  await driver?.stop();
  driver = undefined;
  await writer?.stop();
  writer = undefined;
  store?.close();
  store = undefined;
  await server.close();
  rmSync(dir, { recursive: true, force: true });
});

function config(extra: Partial<ConfigInput> = {}) {
  return configSchema.parse({
    gateway: { id: 'gw-test' },
    buses: [{ id: 'tcp1', type: 'tcp', host: '127.0.0.1', port: server.port, timeout: 200, retries: 0, offlineAfter: 2, probeInterval: 400 }],
    devices: [
      { id: 'lamp-1', bus: 'tcp1', unit: 1, profile: 'streetlight-controller', poll: 100 },
      { id: 'tc-1', bus: 'tcp1', unit: 2, profile: 'traffic-controller', poll: 100 },
    ],
    ...extra,
  });
}

async function startDriver(cfg = config()): Promise<ModbusDriver> {
  const log = silentLogger();
  const bus = new EventBus(log);
  store = openStore({ path: join(dir, 'sb.db'), maxBytes: 64e6, durability: 'normal', log, bus });
  writer = new BatchWriter({ store, bus, log, flushIntervalMs: 10, flushRows: 1000 });
  writer.start();
  const ctx: GatewayContext = { config: cfg, configDir: dir, store, ingest: writer, bus, log, clock: systemClock };
  driver = createModbusDriver(ctx);
  await driver.start();
  return driver;
}

function readings(device: string): Reading[] {
  writer?.flush();
  return store!.readings({ after: 0, limit: 100_000, device }).items;
}
function events(device?: string): StoredEvent[] {
  return store!.events({ after: 0, limit: 10_000, ...(device ? { device } : {}) }).items;
}
const latest = (device: string, point: string) => {
  writer?.flush();
  return store!.latest(device).get(point);
};

describe('Modbus driver over TCP', () => {
  it('polls both profiles into the store with decoded values, and raises set alarms on the first read', async () => {
    await startDriver();
    await waitFor('three polls of each device', () => driver!.status()[0]!.devices.every((d) => d.polls >= 3));
    expect(latest('lamp-1', 'mains_voltage')).toMatchObject({ value: 230.1, unit: 'V', quality: 'good' });
    expect(latest('lamp-1', 'ch1_energy')?.value).toBe(1000);
    expect(latest('lamp-1', 'ch1_burning_hours')?.value).toBe(5000);
    expect(latest('lamp-1', 'ch1_on')?.value).toBe(true);
    expect(latest('lamp-1', 'ch1_lamp_failure')?.value).toBe(true);
    expect(latest('lamp-1', 'ch2_on')?.value).toBe(false);
    expect(latest('lamp-1', 'temperature')?.value).toBe(21.5);
    expect(latest('tc-1', 'mode')?.value).toBe(3);
    expect(latest('tc-1', 'loop1_count')?.value).toBe(120);
    expect(latest('tc-1', 'cabinet_door_open')?.value).toBe(true);
    // every poll pushes every point
    const polls = driver!.status()[0]!.devices.find((d) => d.id === 'lamp-1')!.polls;
    const n = readings('lamp-1').filter((r) => r.point === 'mains_voltage').length;
    expect(n).toBeGreaterThanOrEqual(polls - 1);

    const raised = events().filter((e) => e.kind === 'alarm.raised');
    expect(raised.map((e) => `${e.device}:${String(e.detail.alarm)}:${e.severity}`).sort()).toEqual([
      'lamp-1:ch1_lamp_failure:warning',
      'tc-1:cabinet_door:warning',
      'tc-1:signal_conflict:critical',
    ]);
    // one request per poll for the streetlight, three for the traffic controller
    const seen1 = server.seen.filter((s) => s.unit === 1).map((s) => s.fc);
    expect(new Set(seen1)).toEqual(new Set([3]));
    const st = driver!.status()[0]!;
    expect(st).toMatchObject({ id: 'tcp1', type: 'tcp', state: 'connected' });
    expect(st.devices.find((d) => d.id === 'tc-1')).toMatchObject({ unit: 2, profile: 'traffic-controller', online: true, failures: 0 });
  });

  it('turns alarm bit changes into raised / cleared events, once per change', async () => {
    await startDriver();
    await waitFor('first alarm', () => events('lamp-1').find((e) => e.kind === 'alarm.raised'));
    server.unit(1).holding[18] = 0b10; // lamp failure clears, driver fault rises
    await waitFor('cleared', () => events('lamp-1').find((e) => e.kind === 'alarm.cleared'));
    const before = driver!.status()[0]!.devices[0]!.polls;
    await waitFor('more polls', () => driver!.status()[0]!.devices[0]!.polls >= before + 3);
    const kinds = events('lamp-1')
      .filter((e) => e.kind.startsWith('alarm.'))
      .map((e) => `${e.kind}:${'alarm' in e.detail ? e.detail.alarm : ''}`);
    expect(kinds).toEqual(['alarm.raised:ch1_lamp_failure', 'alarm.cleared:ch1_lamp_failure', 'alarm.raised:ch1_driver_fault']);
    expect(events('lamp-1').find((e) => 'alarm' in e.detail && e.detail.alarm === 'ch1_driver_fault')?.severity).toBe('error');
  });

  it('writes with read-back: verified, refused, read-only and mismatch', async () => {
    await startDriver();
    await waitFor('online', () => driver!.status()[0]!.devices[0]!.polls >= 1);
    await expect(driver!.write('lamp-1', 'ch1_dim_setpoint', 40)).resolves.toEqual({
      status: 'verified',
      point: 'ch1_dim_setpoint',
      value: 40,
      readBack: 40,
    });
    expect(server.unit(1).holding[11]).toBe(40);
    await expect(driver!.write('lamp-1', 'ch2_on', true)).resolves.toMatchObject({ status: 'verified', readBack: true });
    expect(server.unit(1).holding[20]).toBe(1);

    const refused = await driver!.write('lamp-1', 'ch1_dim_setpoint', 150);
    expect(refused).toMatchObject({ status: 'failed', code: 'E_MODBUS_EXCEPTION' });
    expect(refused.reason).toContain('ILLEGAL DATA VALUE');

    const ro = await driver!.write('lamp-1', 'ch1_power', 10);
    expect(ro).toMatchObject({ status: 'failed', code: 'E_FORBIDDEN' });
    expect(ro.reason).toMatch(/read-only/);
    expect(await driver!.write('lamp-1', 'ch1_on', 7)).toMatchObject({ status: 'failed', code: 'E_INVALID_COMMAND' });

    server.faults.set(1, { kind: 'mangleWrites' });
    const mismatch = await driver!.write('lamp-1', 'ch1_dim_setpoint', 30);
    expect(mismatch).toMatchObject({ status: 'failed', code: 'E_MODBUS_VERIFY', readBack: 31 });
    expect(mismatch.reason).toBe('read back 31, expected 30');

    await expect(driver!.write('nope', 'x', 1)).rejects.toThrow(/no Modbus device "nope"/);
    await expect(driver!.write('lamp-1', 'nope', 1)).rejects.toThrow(/has no point "nope"/);

    // a traffic-controller program request with its dead-man expiry
    await expect(driver!.write('tc-1', 'program_request', 4)).resolves.toMatchObject({ status: 'verified' });
    await expect(driver!.write('tc-1', 'request_expiry', 300)).resolves.toMatchObject({ status: 'verified', readBack: 300 });
  });

  it('reads on demand: all points or one', async () => {
    await startDriver();
    const all = await driver!.read('tc-1');
    expect(all).toHaveLength(loadProfiles([]).require('traffic-controller').points.length);
    expect(all.find((v) => v.point === 'active_program')).toMatchObject({ value: 7, quality: 'good', unit: null });
    const [one] = await driver!.read('lamp-1', 'mains_voltage');
    expect(one).toMatchObject({ point: 'mains_voltage', value: 230.1, unit: 'V', quality: 'good' });
    expect(typeof one!.ts).toBe('number');
  });

  it('a silent device: bad once, comms.error once, offline after offlineAfter, probed slowly; the other keeps its cycle; restored', async () => {
    server.faults.set(2, { kind: 'silent' });
    const cfg = config();
    cfg.buses[0]!.probeInterval = 1000;
    await startDriver(cfg);
    await waitFor('comms.lost', () => events('tc-1').find((e) => e.kind === 'comms.lost'), 5000);
    const lost = events('tc-1').find((e) => e.kind === 'comms.lost')!;
    expect(lost).toMatchObject({ severity: 'warning', detail: { bus: 'tcp1', unit: 2 } });
    const errors = events('tc-1').filter((e) => e.kind === 'comms.error');
    expect(errors).toHaveLength(1);
    expect(errors[0]!.detail.code).toBe('E_MODBUS_TIMEOUT');
    const lampPollsBefore = driver!.status()[0]!.devices.find((d) => d.id === 'lamp-1')!.polls;
    // A window of time, not a condition: what is asserted is the lamp's poll rate in it, and that
    // the bad readings of tc-1 were not pushed again during it.
    await new Promise((r) => setTimeout(r, 1000));
    // bad pushed once per point, not every cycle
    const bad = readings('tc-1').filter((r) => r.quality === 'bad');
    expect(bad.filter((r) => r.point === 'mode')).toHaveLength(1);
    expect(bad[0]!.value).toBeNull();
    const status = driver!.status()[0]!;
    expect(status.devices.find((d) => d.id === 'tc-1')).toMatchObject({ online: false });
    // one short probe (200 ms) per second: the streetlight keeps (nearly) its 100 ms cycle
    const lamp = status.devices.find((d) => d.id === 'lamp-1')!;
    expect(lamp.online).toBe(true);
    expect(lamp.polls - lampPollsBefore).toBeGreaterThanOrEqual(7);
    const probes = server.seen.filter((s) => s.unit === 2).length;
    await new Promise((r) => setTimeout(r, 500)); // a window: at most one probe of the offline unit in it
    expect(server.seen.filter((s) => s.unit === 2).length - probes).toBeLessThanOrEqual(1);

    server.faults.delete(2);
    await waitFor('comms.restored', () => events('tc-1').find((e) => e.kind === 'comms.restored'), 3000);
    await waitFor('good again', () => latest('tc-1', 'mode')?.quality === 'good');
    expect(events('lamp-1').filter((e) => e.kind.startsWith('comms.'))).toEqual([]);
  });

  it('an exception answer: the block goes bad with the exception name, reported once', async () => {
    server.faults.set(2, { kind: 'exception', code: 2, fc: 4 });
    await startDriver();
    await waitFor('polls', () => driver!.status()[0]!.devices.find((d) => d.id === 'tc-1')!.polls >= 4);
    const errs = events('tc-1').filter((e) => e.kind === 'comms.error');
    expect(errs).toHaveLength(1);
    expect(errs[0]!.detail).toMatchObject({ code: 'E_MODBUS_EXCEPTION', exception: 'ILLEGAL DATA ADDRESS', exceptionCode: 2, function: 4, table: 'input' });
    expect(latest('tc-1', 'mode')?.quality).toBe('bad');
    expect(latest('tc-1', 'program_request')?.quality).toBe('good'); // other blocks still read
    expect(driver!.status()[0]!.devices.find((d) => d.id === 'tc-1')!.online).toBe(true);
    const [v] = await driver!.read('tc-1', 'mode');
    expect(v).toMatchObject({ quality: 'bad', value: null, error: 'ILLEGAL DATA ADDRESS' });
  });

  it('discards and counts answers with a wrong transaction id or unit id', async () => {
    server.faults.set(1, { kind: 'wrongTidFirst' });
    server.faults.set(2, { kind: 'wrongUnitFirst' });
    await startDriver();
    await waitFor('polls', () => driver!.status()[0]!.devices.every((d) => d.polls >= 3));
    const c = driver!.status()[0]!.counters;
    expect(c.discardedTransaction).toBeGreaterThanOrEqual(3);
    expect(c.discardedUnit).toBeGreaterThanOrEqual(3);
    expect(latest('lamp-1', 'mains_voltage')).toMatchObject({ value: 230.1, quality: 'good' });
    expect(events().filter((e) => e.kind.startsWith('comms.'))).toEqual([]);
  });

  it('garbage instead of an MBAP header is skipped; that unit fails, the others on the connection do not', async () => {
    await startDriver();
    await waitFor('polls', () => driver!.status()[0]!.devices[0]!.polls >= 2);
    server.faults.set(1, { kind: 'badHeader' });
    await waitFor('frame error', () => driver!.status()[0]!.counters.frameErrors >= 1);
    await waitFor('lamp-1 bad', () => latest('lamp-1', 'mains_voltage')?.quality === 'bad');
    const tcPolls = driver!.status()[0]!.devices.find((d) => d.id === 'tc-1')!.polls;
    await waitFor('tc-1 polls on', () => driver!.status()[0]!.devices.find((d) => d.id === 'tc-1')!.polls >= tcPolls + 5);
    expect(latest('tc-1', 'mode')).toMatchObject({ value: 3, quality: 'good' });
    expect(driver!.status()[0]!.counters.connects).toBe(1);
    server.faults.delete(1);
    await waitFor('lamp-1 good again', () => latest('lamp-1', 'mains_voltage')?.quality === 'good', 5000);
  });

  it('resynchronises the stream: garbage before an answer, and a truncated frame before the next answer', async () => {
    await startDriver();
    await waitFor('polls', () => driver!.status()[0]!.devices.every((d) => d.polls >= 2));
    server.faults.set(1, { kind: 'garbageThenAnswer' });
    const polls = driver!.status()[0]!.devices[0]!.polls;
    await waitFor('more polls', () => driver!.status()[0]!.devices[0]!.polls >= polls + 3);
    expect(latest('lamp-1', 'mains_voltage')).toMatchObject({ value: 230.1, quality: 'good' });
    expect(driver!.status()[0]!.counters.frameErrors).toBeGreaterThan(0);
    server.faults.set(1, { kind: 'truncatedThenSilent' });
    await waitFor('lamp-1 bad', () => latest('lamp-1', 'mains_voltage')?.quality === 'bad');
    const tcPolls = driver!.status()[0]!.devices.find((d) => d.id === 'tc-1')!.polls;
    await waitFor('tc-1 polls on', () => driver!.status()[0]!.devices.find((d) => d.id === 'tc-1')!.polls >= tcPolls + 5);
    expect(latest('tc-1', 'mode')).toMatchObject({ value: 3, quality: 'good' });
    expect(events('tc-1').filter((e) => e.kind.startsWith('comms.'))).toEqual([]);
    server.faults.delete(1);
    await waitFor('lamp-1 good again', () => latest('lamp-1', 'mains_voltage')?.quality === 'good', 5000);
  });

  it('re-establishes a dropped connection and polls on', async () => {
    await startDriver();
    await waitFor('polls', () => driver!.status()[0]!.devices[0]!.polls >= 2);
    server.dropClients();
    await waitFor('reconnected', () => driver!.status()[0]!.counters.connects >= 2, 5000);
    const polls = driver!.status()[0]!.devices[0]!.polls;
    await waitFor('polling again', () => driver!.status()[0]!.devices[0]!.polls >= polls + 3);
    expect(driver!.status()[0]!.state).toBe('connected');
  });

  it('counts per bus into its registry, as /metrics shows it', async () => {
    await startDriver();
    await waitFor('polls', () => driver!.status()[0]!.devices.every((d) => d.polls >= 2));
    const samples = driver!.metrics();
    const value = (name: string) => samples.find((s) => s.name === name && s.labels?.bus === 'tcp1')?.value;
    const c = driver!.status()[0]!.counters;
    expect(value('streetbox_modbus_connects_total')).toBe(1);
    expect(value('streetbox_modbus_requests_total')).toBeGreaterThanOrEqual(c.requests);
    expect(value('streetbox_modbus_responses_total')).toBeGreaterThanOrEqual(4);
    expect(samples.find((s) => s.name === 'streetbox_modbus_timeouts_total')).toMatchObject({ type: 'counter', value: 0, labels: { bus: 'tcp1' } });
  });

  it('scans a bus for the units that answer', async () => {
    server.unit(9).holding[0] = 1;
    server.faults.set(9, { kind: 'exception', code: 2 }); // an exception still proves the unit is there
    await startDriver();
    await expect(driver!.scan('tcp1', [1, 2, 3, 4, 9], { timeoutMs: 100 })).resolves.toEqual([1, 2, 9]);
    await expect(driver!.scan('nope', [1])).rejects.toThrow(/no bus "nope"/);
  });

  it('a bus that cannot be opened is degraded and named; the other bus runs', async () => {
    const cfg = config({
      buses: [
        { id: 'tcp1', type: 'tcp', host: '127.0.0.1', port: server.port, timeout: 200, retries: 0 },
        { id: 'rs485-9', type: 'serial', path: join(dir, 'no-such-tty'), parity: 'none' },
      ],
      devices: [
        { id: 'lamp-1', bus: 'tcp1', unit: 1, profile: 'streetlight-controller', poll: 100 },
        { id: 'lamp-9', bus: 'rs485-9', unit: 1, profile: 'streetlight-controller', poll: 100 },
      ],
    });
    await startDriver(cfg);
    await waitFor('polls', () => driver!.status()[0]!.devices[0]!.polls >= 2);
    const serial = driver!.status().find((b) => b.id === 'rs485-9')!;
    expect(serial.state).toBe('degraded');
    expect(serial.lastError).toContain('bus "rs485-9"');
    expect(serial.lastError).toContain('no-such-tty');
    const r = await driver!.write('lamp-9', 'ch1_on', true);
    expect(r).toMatchObject({ status: 'failed', code: 'E_MODBUS_TRANSPORT' });
  });
});

describe('ModbusClient (standalone, for the CLI and benchmarks)', () => {
  it('reads, writes, reads points and scans', async () => {
    const bus = configSchema.parse({
      gateway: { id: 'g' },
      buses: [{ id: 'tcp1', type: 'tcp', host: '127.0.0.1', port: server.port, timeout: 200, retries: 0 }],
    }).buses[0]!;
    const client = new ModbusClient({ bus });
    await client.open();
    try {
      expect(await client.readHoldingRegisters(1, 0, 3)).toEqual([2301, 5000, 215]);
      expect(await client.readInputRegisters(2, 0, 2)).toEqual([3, 7]);
      expect(await client.readDiscreteInputs(2, 0, 2)).toEqual([true, false]);
      await client.writeCoil(1, 5, true);
      expect(await client.readCoils(1, 4, 3)).toEqual([false, true, false]);
      await client.writeRegisters(1, 100, [1, 2, 3]);
      expect(await client.readHoldingRegisters(1, 100, 3)).toEqual([1, 2, 3]);
      await expect(client.readHoldingRegisters(1, 999, 5)).rejects.toThrow(/ILLEGAL DATA ADDRESS/);
      const profile = loadProfiles([]).require('streetlight-controller');
      const values = await client.readPoints(1, profile, ['mains_voltage', 'ch1_energy']);
      expect(values.map((v) => v.value)).toEqual([230.1, 1000]);
      await expect(client.writePoint(1, profile, 'ch2_dim_setpoint', 55)).resolves.toMatchObject({ status: 'verified', readBack: 55 });
      expect(await client.scan([1, 2, 3], { timeoutMs: 100 })).toEqual([1, 2]);
    } finally {
      await client.close();
    }
  });

  it('a refused connection is a clear error naming the bus', async () => {
    const port = server.port;
    await server.close();
    const bus = configSchema.parse({ gateway: { id: 'g' }, buses: [{ id: 'plc-net', type: 'tcp', host: '127.0.0.1', port }] }).buses[0]!;
    const client = new ModbusClient({ bus });
    await expect(client.open()).rejects.toThrow(new RegExp(`bus "plc-net": cannot connect to 127.0.0.1:${port}: .*ECONNREFUSED`));
    await client.close();
  });
});

describe('one-shot operations for the CLI (scan, read, write)', () => {
  it('scan, read and write through the configuration', async () => {
    const cfg = config();
    expect(await scanBus(cfg, 'tcp1', parseUnits('1-4'), { timeoutMs: 100 })).toEqual([1, 2]);
    const values = await readDevice(cfg, 'lamp-1');
    expect(values).toHaveLength(22);
    expect(await readDevice(cfg, 'lamp-1', 'ch1_dim_level')).toMatchObject([{ point: 'ch1_dim_level', value: 80, unit: '%', quality: 'good' }]);
    await expect(writeDevice(cfg, 'lamp-1', 'ch1_on', parseValue('off'))).resolves.toMatchObject({ status: 'verified', readBack: false });
    await expect(readDevice(cfg, 'lamp-9')).rejects.toThrow(/no device "lamp-9"/);
    await expect(readDevice(cfg, 'lamp-1', 'nope')).rejects.toThrow(/has no point "nope"/);
    await expect(scanBus(cfg, 'nope', [1])).rejects.toThrow(/no bus "nope"; buses: tcp1/);
  });

  it('parses unit ranges and values', () => {
    expect(parseUnits('1-3,7,2')).toEqual([1, 2, 3, 7]);
    expect(parseUnits('1-247')).toHaveLength(247);
    expect(() => parseUnits('0-5')).toThrow(/inside 1..247/);
    expect(() => parseUnits('a')).toThrow(/expected a list/);
    expect([parseValue('on'), parseValue('FALSE'), parseValue('40'), parseValue('-1.5')]).toEqual([true, false, 40, -1.5]);
    expect(() => parseValue('x')).toThrow(/expected a number/);
  });
});
