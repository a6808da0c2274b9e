// A bus lost after start, with real parts, one row per transport: the built-in simulator's
// TCP server stopped and restarted on its port, and the simulated RS-485 line (a socat PTY
// pair behind a stable link) killed and made again. The supervisor shows the modbus component
// degraded (bus 'component' and its status, which /api/v1/status serves) while the bus is
// gone, and running once the driver has reopened it and it stayed open `stableMs` (1 s here,
// 10 s by default: busFlap.test.ts); the component is never restarted.
import { afterEach, describe, expect, it } from 'vitest';
import type { ComponentStateChange } from '../../edge/bus.js';
import type { ConfigInput } from '../../edge/config/schema.js';
import { createModbusDriver } from '../../edge/drivers/modbus/index.js';
import { startModbusSimulators, type ModbusSimulators } from '../../edge/sim/modbus/index.js';
import { Supervisor } from '../../edge/supervisor.js';
import { makeContext } from '../helpers/context.js';
import { tempDir, type TempDir } from '../helpers/tmp.js';
import { waitFor } from '../helpers/wait.js';

const DEVICES = [{ unit: 1, profile: 'streetlight-controller' }];

interface Row {
  name: string;
  /** starts the peer; `again` restarts it where the driver looks for it */
  peer(dir: TempDir, again?: ModbusSimulators): Promise<ModbusSimulators>;
  bus(sims: ModbusSimulators): ConfigInput['buses'];
  /** what the lost bus's error says */
  lost: RegExp;
}

const ROWS: Row[] = [
  {
    name: 'Modbus TCP: the peer stopped and restarted',
    peer: (_dir, again) => startModbusSimulators({ tcp: [{ id: 'tcp1', port: again?.bus('tcp1').port ?? 0, devices: DEVICES }] }),
    bus: (sims) => [{ id: 'tcp1', type: 'tcp', host: '127.0.0.1', port: sims.bus('tcp1').port!, timeout: 200, retries: 0, probeInterval: 1000 }],
    lost: /bus "tcp1": connection closed/,
  },
  {
    name: 'Modbus RTU: the serial line (socat PTY pair) killed and made again',
    peer: (dir) => startModbusSimulators({ rtu: [{ id: 'rs485-1', link: dir.file('ttyRS485'), devices: DEVICES }] }),
    bus: (sims) => [{ id: 'rs485-1', type: 'serial', path: sims.bus('rs485-1').path!, baud: 9600, parity: 'none', timeout: 200, retries: 0, probeInterval: 1000 }],
    lost: /bus "rs485-1": serial port .*ttyRS485 closed/,
  },
];

let cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const fn of cleanup.reverse()) await fn();
  cleanup = [];
});

describe('a bus lost after start', () => {
  it.each(ROWS)('$name: the component shows degraded, then running when the bus is back', async (row) => {
    const dir = tempDir('streetbox-busloss-');
    cleanup.push(async () => dir.remove());
    let sims = await row.peer(dir);
    cleanup.push(() => sims.stop());
    const t = makeContext({
      buses: row.bus(sims),
      devices: [{ id: 'lamp-1', bus: row.bus(sims)![0]!.id, unit: 1, profile: 'streetlight-controller', poll: 100 }],
    });
    cleanup.push(() => t.close());
    const changes: ComponentStateChange[] = [];
    t.ctx.bus.on('test', 'component', (c) => changes.push(c));
    const supervisor = new Supervisor({ log: t.ctx.log, bus: t.ctx.bus, clock: t.ctx.clock });
    const driver = createModbusDriver(t.ctx, { stableMs: 1000 });
    supervisor.add(driver);
    await supervisor.startAll();
    cleanup.push(() => supervisor.stopAll());
    const modbus = () => supervisor.status().find((s) => s.name === 'modbus')!;
    const polls = () => driver.status()[0]!.devices[0]!.polls;

    await waitFor('first polls', () => polls() >= 2);
    expect(modbus().state).toBe('running');

    await sims.stop();
    await waitFor('modbus degraded', () => modbus().state === 'degraded');
    expect(modbus().lastError).toMatch(row.lost);
    expect(changes.at(-1)).toMatchObject({ name: 'modbus', state: 'degraded', error: expect.stringMatching(row.lost) as unknown });
    expect(driver.status()[0]!.state).toBe('degraded');

    sims = await row.peer(dir, sims);
    // the connection reopens on its own backoff (0.5 s, 1 s, 2 s, …), reported back 1 s later
    await waitFor('modbus running again', () => modbus().state === 'running', 15_000);
    // the device went offline with its bus: it is polled again after its next probe (1 s)
    const back = polls();
    await waitFor('polling again', () => polls() >= back + 2);
    expect(driver.status()[0]!.state).toBe('connected');
    expect(changes.filter((c) => c.name === 'modbus').map((c) => c.state)).toEqual(['starting', 'running', 'degraded', 'running']);
    expect(modbus()).toMatchObject({ restarts: 0, failures: 0 });
  }, 30_000);
});
