/**
 * A real control plane on real parts: the Modbus TCP simulator (streetlight controllers and
 * traffic controllers) on 127.0.0.1, the Modbus driver, a SQLite store in a temp dir, and the
 * control component; optionally a fake clock for the control plane's own timers (schedules,
 * expiry, ramps) and simulated units whose time the test moves (`simTime: 'manual'`). Every write that reaches a simulated unit is logged, refused ones included.
 */
import type { Clock } from '../../edge/clock.js';
import type { ConfigInput } from '../../edge/config/schema.js';
import { createControl, type ControlComponent, type ControlDeps } from '../../edge/control/index.js';
import { createModbusDriver, type ModbusDriver } from '../../edge/drivers/modbus/index.js';
import { startModbusSimulators, type ModbusSimulators, type StreetlightModel, type TrafficModel } from '../../edge/sim/modbus/index.js';
import type { CommandRecord } from '../../edge/store/types.js';
import { makeContext, type TestContext } from '../helpers/context.js';
import { waitFor } from '../helpers/wait.js';

export const TECH = { role: 'technician', principal: 'tech-anna' } as const;
export const MAINT = { role: 'maintenance', principal: 'maint-bob' } as const;
export const CENTRAL = { role: 'central', principal: 'central-city' } as const;
export const VIEWER = { role: 'viewer', principal: 'viewer-vic' } as const;

export interface WireWrite {
  unit: number;
  table: 'coil' | 'holding';
  address: number;
  values: number[];
}

export interface RigOptions {
  /** extra config merged over the default (groups, schedules, gateway, devices …) */
  config?: Partial<Omit<ConfigInput, 'buses'>>;
  poll?: number;
  clock?: Clock;
  deps?: Omit<ControlDeps, 'modbus'>;
  /** do not start the control component */
  noControl?: boolean;
  /** 'manual': the simulated units' time moves only by `sims.tick(ms)` (default: with real time) */
  simTime?: 'real' | 'manual';
}

/** setInterval's longest delay: a simulator ticking this rarely never ticks on its own within a test */
const NEVER_MS = 2_147_483_647;

export interface Rig {
  t: TestContext;
  sims: ModbusSimulators;
  modbus: ModbusDriver;
  control: ControlComponent;
  writes: WireWrite[];
  lamp(unit: number): StreetlightModel;
  tc(unit: number): TrafficModel;
  /** channel setpoint / on of a simulated streetlight unit, as its registers hold them */
  level(unit: number, ch?: number): { setpoint: number; on: number };
  /** waits until the row is final; returns it */
  final(id: string, timeoutMs?: number): Promise<CommandRecord>;
  startControl(clock?: Clock): Promise<ControlComponent>;
  close(): Promise<void>;
}

export const LAMP_UNITS = [1, 2, 3];

export async function startRig(opts: RigOptions = {}): Promise<Rig> {
  const sims = await startModbusSimulators({
    tcp: [
      {
        id: 'tcp',
        devices: [
          ...LAMP_UNITS.map((unit) => ({ unit, profile: 'streetlight-controller' })),
          { unit: 10, profile: 'traffic-controller' },
          { unit: 11, profile: 'traffic-controller' },
        ],
      },
    ],
    ...(opts.simTime === 'manual' ? { tickMs: NEVER_MS } : {}),
  });
  const writes: WireWrite[] = [];
  for (const [unit, bank] of sims.bus('tcp').units.banks) {
    const orig = bank.writeFromWire.bind(bank);
    bank.writeFromWire = (table, address, values) => {
      writes.push({ unit, table, address, values: [...values] });
      return orig(table, address, values);
    };
  }
  const port = sims.bus('tcp').port!;
  const poll = opts.poll ?? 60_000;
  const t = makeContext({
    buses: [{ id: 'tcp', type: 'tcp', host: '127.0.0.1', port, timeout: 300, retries: 0, offlineAfter: 2, probeInterval: 150 }],
    devices: [
      ...LAMP_UNITS.map((unit) => ({ id: `lamp-${unit}`, bus: 'tcp', unit, profile: 'streetlight-controller', poll, groups: ['main'] })),
      { id: 'tc-1', bus: 'tcp', unit: 10, profile: 'traffic-controller', poll, allowCommands: true, groups: ['main'] },
      { id: 'tc-2', bus: 'tcp', unit: 11, profile: 'traffic-controller', poll },
    ],
    groups: [{ id: 'main', defaultLevel: 80 }],
    ...opts.config,
  });
  const modbus = createModbusDriver(t.ctx);
  await modbus.start();
  let control: ControlComponent | null = null;
  const rig: Rig = {
    t,
    sims,
    modbus,
    get control() {
      if (!control) throw new Error('control not started');
      return control;
    },
    writes,
    lamp: (unit) => sims.model<StreetlightModel>('tcp', unit),
    tc: (unit) => sims.model<TrafficModel>('tcp', unit),
    level(unit, ch = 1) {
      const pts = sims.model<StreetlightModel>('tcp', unit).points;
      return { setpoint: pts.get(`ch${ch}_dim_setpoint`), on: pts.get(`ch${ch}_on`) };
    },
    async final(id, timeoutMs = 5000) {
      let row: CommandRecord | undefined;
      await waitFor(`command ${id} to finish`, () => {
        row = t.store.getCommand(id);
        return row !== undefined && ['verified', 'failed', 'expired', 'rejected'].includes(row.status);
      }, timeoutMs);
      return row!;
    },
    async startControl(clock) {
      const ctx = clock ? { ...t.ctx, clock } : t.ctx;
      control = createControl(ctx, { modbus, ...opts.deps });
      await control.start();
      return control;
    },
    async close() {
      await control?.stop();
      await modbus.stop();
      await sims.stop();
      await t.close();
    },
  };
  if (!opts.noControl) await rig.startControl(opts.clock);
  return rig;
}

/** The asserts issued at start are done (every light verified or failed). */
export async function settled(rig: Rig, timeoutMs = 5000): Promise<void> {
  await waitFor('commands to settle', () => rig.t.store.listCommands({ limit: 10_000 }).every((c) => c.status !== 'queued' && c.status !== 'sent'), timeoutMs);
}

export { waitFor };
