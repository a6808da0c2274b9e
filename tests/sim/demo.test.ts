/**
 * The shipped demo: devices.yaml with `simulate: true`. The simulator component stands in for
 * every Modbus device (an RS-485 line of streetlight controllers on a socat PTY pair, a TCP
 * traffic controller) and the driver, started after it, polls them all.
 */
import { fileURLToPath } from 'node:url';
import { afterAll, expect, it } from 'vitest';
import { loadConfig } from '../../edge/config/index.js';
import { createModbusDriver, type ModbusDriver } from '../../edge/drivers/modbus/index.js';
import { createModbusSimComponents } from '../../edge/sim/modbus/index.js';
import { makeContext, type TestContext } from '../helpers/context.js';
import { waitFor } from '../helpers/wait.js';

const DEMO = fileURLToPath(new URL('../../devices.yaml', import.meta.url));
let t: TestContext | undefined;
let sims: ReturnType<typeof createModbusSimComponents> = [];
let driver: ModbusDriver | undefined;

afterAll(async () => {
  await driver?.stop();
  for (const s of sims) await s.stop();
  await t?.close();
});

it('runs every Modbus device of the demo devices.yaml on the simulators', async () => {
  const demo = loadConfig(DEMO).config;
  // Faster polls than the demo's, same buses, devices and profiles; no LoRaWAN here.
  t = makeContext({
    buses: demo.buses.map((b) => ({ ...b, probeInterval: 1000 })),
    devices: demo.devices.filter((d) => d.bus !== undefined).map((d) => ({ ...d, poll: 200 })),
    profiles: demo.profiles,
    simulate: demo.simulate,
  });
  sims = createModbusSimComponents(t.ctx);
  expect(sims.map((s) => s.name)).toEqual(['modbus-sim:tc-net', 'modbus-sim:rs485-1']);
  driver = createModbusDriver(t.ctx);
  for (const s of sims) await s.start();
  await driver.start();
  const ids = t.config.devices.map((d) => d.id);
  expect(ids).toHaveLength(5);
  await waitFor('readings of every demo device', () => ids.every((id) => t!.store.latest(id).size > 0), 15_000);
  for (const b of driver.status()) {
    expect(b.state, b.id).toBe('connected');
    for (const d of b.devices) expect(d.online, d.id).toBe(true);
  }
  expect(t.store.latest('lamp-ctrl-03').get('ch1_dim_level')?.value).toBe(100);
  expect(t.store.latest('tc-01').get('mode')?.value).toBe(3);
  // a command reaches the simulated controller and is read back
  expect(await driver.write('lamp-ctrl-02', 'ch2_dim_setpoint', 40)).toMatchObject({ status: 'verified', readBack: 40 });
  expect(sims.find((s) => s.bus === 'rs485-1')!.simulators!.model('rs485-1', 2).points.get('ch2_dim_level')).toBe(40);
});
