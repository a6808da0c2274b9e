// The pipeline over a real serial path: a socat PTY pair, the RTU simulator holding frames for
// their time on the wire at 19200 baud (8N2), the driver's RTU transport. A group dim of four
// controllers on one line comes back verified with every register set.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createControl, type ControlComponent } from '../../edge/control/index.js';
import { createModbusDriver, type ModbusDriver } from '../../edge/drivers/modbus/index.js';
import { startModbusSimulators, type ModbusSimulators, type StreetlightModel } from '../../edge/sim/modbus/index.js';
import { makeContext, type TestContext } from '../helpers/context.js';
import { waitFor } from '../helpers/wait.js';
import { CENTRAL } from './rig.js';

const UNITS = [1, 2, 3, 4];
let sims: ModbusSimulators;
let t: TestContext;
let modbus: ModbusDriver;
let control: ControlComponent;

beforeAll(async () => {
  sims = await startModbusSimulators({
    rtu: [{ id: 'line', baud: 19200, stopBits: 2, wireTime: true, devices: UNITS.map((unit) => ({ unit, profile: 'streetlight-controller' })) }],
  });
  t = makeContext({
    buses: [{ id: 'line', type: 'serial', path: sims.bus('line').path!, baud: 19200, parity: 'none', stopBits: 2, timeout: 500 }],
    devices: UNITS.map((unit) => ({ id: `pole-${unit}`, bus: 'line', unit, profile: 'streetlight-controller', poll: 60_000, groups: ['quay'] })),
    groups: [{ id: 'quay', defaultLevel: 90 }],
  });
  modbus = createModbusDriver(t.ctx);
  await modbus.start();
  control = createControl(t.ctx, { modbus });
  await control.start();
});

afterAll(async () => {
  await control.stop();
  await modbus.stop();
  await sims.stop();
  await t.close();
});

describe('commands over Modbus RTU (PTY)', () => {
  it('start asserts the defaultLevel, then a group override is verified on every controller', async () => {
    await waitFor('start asserts', () => t.store.listCommands({ limit: 100 }).every((c) => c.status === 'verified'), 15_000);
    const sp = (unit: number, ch: number) => sims.model<StreetlightModel>('line', unit).points.get(`ch${ch}_dim_setpoint`);
    for (const u of UNITS) expect([sp(u, 1), sp(u, 2)]).toEqual([90, 90]);
    const row = control.submit({ kind: 'group', id: 'quay' }, { action: 'override', level: 35, durationS: 600, reason: 'festival' }, CENTRAL).row;
    await waitFor('the group override', () => ['verified', 'failed'].includes(t.store.getCommand(row.id)!.status), 15_000);
    const done = t.store.getCommand(row.id)!;
    expect(done.status).toBe('verified');
    for (const u of UNITS) expect([sp(u, 1), sp(u, 2)]).toEqual([35, 35]);
    const devices = (done.result as { devices: Record<string, { status: string }> }).devices;
    expect(Object.keys(devices).sort()).toEqual(UNITS.map((u) => `pole-${u}`));
    expect(Object.values(devices).every((d) => d.status === 'verified')).toBe(true);
  });
});
