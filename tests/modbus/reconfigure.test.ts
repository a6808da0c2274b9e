// The Modbus driver rewiring some of its buses while it runs (a configuration applied live,
// issue 16): a real driver polling two Modbus TCP buses served by the built-in simulator, its
// configuration replaced and reconfigure() called with the bus ids to rewire. A rewired bus
// polls its new devices; a bus not named keeps its scheduler, its connection and its cycle;
// a removed bus stops being polled, and one reported lost is reported back when removed. The
// demo's simulator of one bus (simulate: true) restarts on the new configuration and points
// its bus object at itself, the way the coordinator rewires a simulated bus.
import { afterEach, describe, expect, it } from 'vitest';
import { configSchema, type Config, type ConfigInput } from '../../edge/config/schema.js';
import { createModbusDriver, type ModbusDriver } from '../../edge/drivers/modbus/index.js';
import { StreetboxError } from '../../edge/errors.js';
import { createModbusSimComponent, createModbusSimComponents, modbusSimName, startModbusSimulators, type ModbusSimulators } from '../../edge/sim/modbus/index.js';
import type { Reading } from '../../edge/store/types.js';
import { Supervisor } from '../../edge/supervisor.js';
import { makeContext, type TestContext } from '../helpers/context.js';
import { freePort } from '../helpers/ports.js';
import { waitFor } from '../helpers/wait.js';

const POLL = 100;
const LAMP = 'streetlight-controller';

let cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const fn of cleanup.reverse()) await fn();
  cleanup = [];
});

type BusInput = NonNullable<ConfigInput['buses']>[number];
type DeviceInput = NonNullable<ConfigInput['devices']>[number];

/** A bus on the simulator's TCP server `id`. */
function tcpBus(sims: ModbusSimulators, id: string): BusInput {
  return { id, type: 'tcp', host: '127.0.0.1', port: sims.bus(id).port!, timeout: 300, retries: 1, probeInterval: 1000 };
}

function lamp(id: string, bus: string, unit: number): DeviceInput {
  return { id, bus, unit, profile: LAMP, poll: POLL };
}

/** A new configuration for the running context (its store path kept), as the coordinator makes ctx.config. */
function nextConfig(t: TestContext, buses: BusInput[], devices: DeviceInput[]): Config {
  return configSchema.parse({ gateway: { id: 'gw-test' }, buses, devices, storage: { path: t.config.storage.path } });
}

/** The driver's runtime of one bus (private: the test checks which objects a rewire replaced). */
function runtime(driver: ModbusDriver, bus: string): { scheduler: object; transport: object } | undefined {
  return (driver as unknown as { buses: Map<string, { scheduler: object; transport: object }> }).buses.get(bus);
}

async function twoBuses(): Promise<{ sims: ModbusSimulators; t: TestContext; driver: ModbusDriver }> {
  const devices = [
    { unit: 1, profile: LAMP },
    { unit: 2, profile: LAMP },
  ];
  const sims = await startModbusSimulators({ tcp: [{ id: 'A', devices }, { id: 'B', devices }] });
  cleanup.push(() => sims.stop());
  const t = makeContext({ buses: [tcpBus(sims, 'A'), tcpBus(sims, 'B')], devices: [lamp('a1', 'A', 1), lamp('b1', 'B', 1)] });
  cleanup.push(() => t.close());
  const driver = createModbusDriver(t.ctx);
  await driver.start();
  cleanup.push(() => driver.stop());
  return { sims, t, driver };
}

const rowsOf = (t: TestContext, device: string, point = 'mains_voltage'): Reading[] => t.readings.filter((r) => r.device === device && r.point === point);

describe('ModbusDriver.reconfigure', () => {
  it('polls a device added on the bus it rewires, and leaves the other bus polling without a gap', async () => {
    const { sims, t, driver } = await twoBuses();
    await waitFor('both buses polled', () => rowsOf(t, 'a1').length >= 3 && rowsOf(t, 'b1').length >= 3);
    const schedulerA = runtime(driver, 'A')!.scheduler;
    const schedulerB = runtime(driver, 'B')!.scheduler;
    const transportB = runtime(driver, 'B')!.transport;
    const connectsB = driver.status().find((b) => b.id === 'B')!.counters.connects;
    const requestsA = driver.status().find((b) => b.id === 'A')!.counters.requests;
    const before = Date.now();

    t.ctx.config = nextConfig(t, [tcpBus(sims, 'A'), tcpBus(sims, 'B')], [lamp('a1', 'A', 1), lamp('a2', 'A', 2), lamp('b1', 'B', 1)]);
    await driver.reconfigure(['A']);
    const after = Date.now();

    await waitFor('the new device polled', () => rowsOf(t, 'a2').length >= 3);
    await waitFor('the rewired bus polling its old device again', () => rowsOf(t, 'a1').some((r) => r.ts > after));
    // time for B to poll a few more times after the rewire
    await waitFor('bus B polled past the rewire', () => rowsOf(t, 'b1').filter((r) => r.ts > after).length >= 5);

    // bus B untouched: the same scheduler and transport, no reconnect, and its cycle went on
    expect(runtime(driver, 'B')!.scheduler).toBe(schedulerB);
    expect(runtime(driver, 'B')!.transport).toBe(transportB);
    expect(driver.status().find((b) => b.id === 'B')!.counters.connects).toBe(connectsB);
    const b1 = rowsOf(t, 'b1')
      .map((r) => r.ts)
      .filter((ts) => ts >= before - 5 * POLL);
    const gaps = b1.slice(1).map((ts, i) => ts - b1[i]!);
    expect(b1.length).toBeGreaterThanOrEqual(8);
    expect(Math.max(...gaps)).toBeLessThanOrEqual(2.5 * POLL);

    // bus A rewired: a new scheduler, both devices in its status, its counters' series kept
    expect(runtime(driver, 'A')!.scheduler).not.toBe(schedulerA);
    const a = driver.status().find((b) => b.id === 'A')!;
    expect(a.devices.map((d) => d.id)).toEqual(['a1', 'a2']);
    expect(a.counters.requests).toBeGreaterThan(requestsA);
    expect(driver.metrics().find((s) => s.name === 'streetbox_modbus_requests_total' && s.labels?.bus === 'A')?.value).toBeGreaterThan(requestsA);
    expect(sims.stats('A', 2).requests).toBeGreaterThan(0);
    expect(driver.status().map((b) => b.id)).toEqual(['A', 'B']);
  }, 20_000);

  it('stops polling a removed bus and forgets its devices; the other bus runs on', async () => {
    const { sims, t, driver } = await twoBuses();
    await waitFor('both buses polled', () => rowsOf(t, 'b1').length >= 2 && rowsOf(t, 'a1').length >= 2);
    const schedulerA = runtime(driver, 'A')!.scheduler;

    t.ctx.config = nextConfig(t, [tcpBus(sims, 'A')], [lamp('a1', 'A', 1)]);
    await driver.reconfigure(['B']);
    const served = sims.stats('B', 1).requests;
    const seen = rowsOf(t, 'a1').length;
    await waitFor('bus A polled on', () => rowsOf(t, 'a1').length >= seen + 5);

    expect(sims.stats('B', 1).requests).toBe(served);
    expect(driver.status().map((b) => b.id)).toEqual(['A']);
    expect(runtime(driver, 'A')!.scheduler).toBe(schedulerA);
    const err = await driver.read('b1').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StreetboxError);
    expect((err as StreetboxError).code).toBe('E_NOT_FOUND');
    await expect(driver.scan('B', [1])).rejects.toMatchObject({ code: 'E_NOT_FOUND' });
  }, 20_000);

  it('moves a device between two buses rewired together', async () => {
    const { sims, t, driver } = await twoBuses();
    await waitFor('both buses polled', () => rowsOf(t, 'b1').length >= 2 && rowsOf(t, 'a1').length >= 2);

    // a1 moves to bus B (unit 2 there)
    t.ctx.config = nextConfig(t, [tcpBus(sims, 'A'), tcpBus(sims, 'B')], [lamp('a1', 'B', 2), lamp('b1', 'B', 1)]);
    await driver.reconfigure(['A', 'B']);
    const servedA = sims.stats('A', 1).requests;
    const seen = rowsOf(t, 'a1').length;
    await waitFor('a1 polled on bus B', () => rowsOf(t, 'a1').length >= seen + 3 && sims.stats('B', 2).requests > 0);
    expect(sims.stats('A', 1).requests).toBe(servedA);
    const status = driver.status();
    expect(status.find((b) => b.id === 'A')!.devices).toEqual([]);
    expect(status.find((b) => b.id === 'B')!.devices.map((d) => d.id).sort()).toEqual(['a1', 'b1']);
    expect((await driver.read('a1', 'mains_voltage'))[0]).toMatchObject({ point: 'mains_voltage' });
  }, 20_000);

  it('reports a lost bus back when it is removed, so the driver is running again', async () => {
    const { sims, t, driver: first } = await twoBuses();
    await first.stop();
    const dead = await freePort(); // nothing listens there
    t.ctx.config = nextConfig(
      t,
      [tcpBus(sims, 'A'), { id: 'C', type: 'tcp', host: '127.0.0.1', port: dead, timeout: 300, retries: 0, probeInterval: 1000 }],
      [lamp('a1', 'A', 1), lamp('c1', 'C', 1)],
    );
    const health: string[] = [];
    t.ctx.bus.on('test', 'health', (h) => health.push(`${h.part} ${h.ok ? 'ok' : 'lost'}`));
    const supervisor = new Supervisor({ log: t.ctx.log, bus: t.ctx.bus, clock: t.ctx.clock });
    const driver = createModbusDriver(t.ctx);
    supervisor.add(driver);
    await supervisor.startAll();
    cleanup.push(() => supervisor.stopAll());
    const modbus = () => supervisor.status().find((s) => s.name === 'modbus')!;
    await waitFor('modbus degraded by bus C', () => modbus().state === 'degraded');
    expect(health).toEqual(['bus C lost']);

    t.ctx.config = nextConfig(t, [tcpBus(sims, 'A')], [lamp('a1', 'A', 1)]);
    await driver.reconfigure(['C']);
    expect(health).toEqual(['bus C lost', 'bus C ok']);
    expect(modbus()).toMatchObject({ state: 'running', restarts: 0, failures: 0 });
    expect(driver.status().map((b) => b.id)).toEqual(['A']);
  }, 20_000);

  it('does nothing while the driver is not running, and rewires nothing but the buses named', async () => {
    const { sims, t, driver } = await twoBuses();
    await waitFor('both buses polled', () => rowsOf(t, 'b1').length >= 2);
    await driver.stop();
    t.ctx.config = nextConfig(t, [tcpBus(sims, 'A')], [lamp('a1', 'A', 1)]);
    await driver.reconfigure(['A', 'B']);
    expect(driver.status()).toEqual([]);
    // started again, it reads the new configuration whole
    await driver.start();
    expect(driver.status().map((b) => b.id)).toEqual(['A']);
    // a bus named that neither runs nor is configured: nothing happens
    const schedulerA = runtime(driver, 'A')!.scheduler;
    await driver.reconfigure(['nope']);
    expect(runtime(driver, 'A')!.scheduler).toBe(schedulerA);
  }, 20_000);

  it('rewires a simulated bus: its simulator restarted on the new configuration points the new bus object at itself', async () => {
    const declared = (port: number, units: number[]): Config => {
      const input: ConfigInput = {
        gateway: { id: 'gw-test' },
        simulate: true,
        buses: [
          { id: 'S', type: 'tcp', host: '10.0.0.20', port, timeout: 300, retries: 1 },
          { id: 'empty', type: 'tcp', host: '10.0.0.21', port },
        ],
        devices: units.map((u) => lamp(`s${u}`, 'S', u)),
      };
      return configSchema.parse({ ...input, storage: { path: t.config.storage.path } });
    };
    const port = await freePort();
    const t = makeContext({ buses: [], devices: [] });
    cleanup.push(() => t.close());
    t.ctx.config = declared(port, [1]);
    expect(createModbusSimComponents(t.ctx).map((c) => c.name)).toEqual([modbusSimName('S')]);
    expect(createModbusSimComponent(t.ctx, 'empty')).toBeNull(); // no device to simulate
    let sim = createModbusSimComponent(t.ctx, 'S')!;
    expect(sim.name).toBe('modbus-sim:S');
    await sim.start();
    cleanup.push(() => sim.stop());
    expect(t.ctx.config.buses[0]).toMatchObject({ host: '127.0.0.1', port });
    const driver = createModbusDriver(t.ctx);
    await driver.start();
    cleanup.push(() => driver.stop());
    await waitFor('s1 polled', () => rowsOf(t, 's1').length >= 2);

    // the coordinator's road: ctx.config replaced by the declared one, the simulator made anew, the bus rewired
    t.ctx.config = declared(port, [1, 2]);
    await sim.stop();
    sim = createModbusSimComponent(t.ctx, 'S')!;
    await sim.start();
    expect(t.ctx.config.buses[0]).toMatchObject({ host: '127.0.0.1', port });
    expect([...sim.simulators!.bus('S').models.keys()]).toEqual([1, 2]);
    await driver.reconfigure(['S']);
    await waitFor('s2 polled through the re-pointed bus', () => rowsOf(t, 's2').length >= 2);

    // restarted again (a supervisor's restart) after another change: it reads ctx.config at start
    t.ctx.config = declared(port, [2]);
    await sim.stop();
    await sim.start();
    expect(t.ctx.config.buses[0]).toMatchObject({ host: '127.0.0.1', port });
    expect([...sim.simulators!.bus('S').models.keys()]).toEqual([2]);

    t.ctx.config = { ...declared(port, [1]), simulate: false };
    expect(createModbusSimComponent(t.ctx, 'S')).toBeNull();
  }, 20_000);
});
