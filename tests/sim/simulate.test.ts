/**
 * The demo path: a socat PTY pair, and the simulator component that stands in for every
 * Modbus device of a devices.yaml and points its buses at the simulators.
 */
import { existsSync, realpathSync } from 'node:fs';
import { tempDir } from '../helpers/tmp.js';
import { ModbusRTU } from '../helpers/modbusSerial.js';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { EventBus } from '../../edge/bus.js';
import { systemClock } from '../../edge/clock.js';
import type { GatewayContext } from '../../edge/component.js';
import { configSchema } from '../../edge/config/schema.js';
import { createLogger } from '../../edge/log.js';
import { createModbusSimComponents } from '../../edge/sim/modbus/index.js';
import { openPtyPair } from '../../edge/sim/pty.js';

const cleanups: (() => Promise<void>)[] = [];
const dir = tempDir('streetbox-simulate-');
afterAll(() => dir.remove());
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe('socat PTY pair', () => {
  it('gives two /dev/pts paths joined back to back and removes them on close', async () => {
    const pair = await openPtyPair();
    expect(pair.simPath).toMatch(/^\/dev\/pts\/\d+$/);
    expect(pair.masterPath).toMatch(/^\/dev\/pts\/\d+$/);
    expect(existsSync(pair.masterPath)).toBe(true);
    await pair.close();
    await pair.close();
    expect(existsSync(pair.masterPath)).toBe(false);
  });

  it('fails with a clear error naming apt-get install socat when socat is missing', async () => {
    await expect(openPtyPair({ socat: 'socat-not-installed-here' })).rejects.toThrow(/apt-get install socat/);
  });
});

describe('simulator component (simulate: true)', () => {
  it('simulates every Modbus device of the config and points its buses at the simulators', async () => {
    const config = configSchema.parse({
      gateway: { id: 'gw-test' },
      storage: { path: dir.file('data/streetbox.db') },
      simulate: { speed: 10 },
      buses: [
        { id: 'rs485-1', type: 'serial', path: '/dev/ttyUSB0', baud: 19200, parity: 'even' },
        { id: 'tc-net', type: 'tcp', host: '10.0.0.20', port: 0 },
      ],
      devices: [
        { id: 'lamp-1', bus: 'rs485-1', unit: 1, profile: 'streetlight-controller' },
        { id: 'lamp-2', bus: 'rs485-1', unit: 2, profile: 'streetlight-controller' },
        { id: 'lamp-5', bus: 'rs485-1', unit: 5, profile: 'streetlight-controller' },
        { id: 'tc-1', bus: 'tc-net', unit: 1, profile: 'traffic-controller' },
      ],
    });
    const log = createLogger({ level: 'silent' });
    const ctx = { config, configDir: '/tmp', log, bus: new EventBus(), clock: systemClock } as unknown as GatewayContext;
    const sims = createModbusSimComponents(ctx);
    expect(sims.map((s) => s.bus)).toEqual(['tc-net', 'rs485-1']);
    for (const s of sims) cleanups.push(() => s.stop());
    // the serial bus points at its stable link before anything starts
    const link = dir.file('data/sim/rs485-1.tty');
    expect(config.buses[0]).toMatchObject({ path: link, parity: 'none' });
    for (const s of sims) {
      await s.start();
      await s.start(); // idempotent
    }
    const sim = sims[1]!;

    const serial = config.buses[0]!;
    const tcp = config.buses[1]!;
    expect(serial.type === 'serial' && serial.path).toBe(link);
    expect(realpathSync(link)).toMatch(/^\/dev\/pts\//);
    expect(serial.type === 'serial' && serial.parity).toBe('none');
    expect(tcp.type === 'tcp' && tcp.host).toBe('127.0.0.1');
    expect(tcp.type === 'tcp' && tcp.port).toBeGreaterThan(0);
    expect([...sim.simulators!.bus('rs485-1').models.keys()]).toEqual([1, 2, 5]);

    // an independent client (modbus-serial) finds the devices where the config now points
    const rtu = new ModbusRTU();
    await rtu.connectRTUBuffered(serial.type === 'serial' ? serial.path : '', { baudRate: 19200 });
    cleanups.push(() => new Promise<void>((r) => rtu.close(() => r())));
    rtu.setTimeout(500);
    rtu.setID(5);
    expect((await rtu.readHoldingRegisters(10, 2)).data).toEqual([1, 100]);

    const net = new ModbusRTU();
    await net.connectTCP('127.0.0.1', { port: tcp.type === 'tcp' ? tcp.port : 0 });
    net.setID(1);
    expect((await net.readInputRegisters(0, 1)).data).toEqual([3]);
    await new Promise<void>((r) => net.close(() => r()));

    // the serial line stops on its own; its link goes with it
    await sim.stop();
    expect(existsSync(link)).toBe(false);
  });
});
