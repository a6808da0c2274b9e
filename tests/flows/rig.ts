/**
 * A gateway slice on real parts for the flows tests: the Modbus TCP simulator (two streetlight
 * controllers in group "street", a traffic controller), the real Modbus driver, a SQLite store in
 * a temp dir, the real control pipeline, the real HTTP API on 127.0.0.1 port 0, and embedded
 * Node-RED on the API's server with a test userDir and a copy of the default flow whose
 * environment variables shorten the adaptive threshold to about a second.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createApi, type ApiComponent } from '../../edge/api/index.js';
import { createControl, type ControlComponent } from '../../edge/control/index.js';
import { createModbusDriver, type ModbusDriver } from '../../edge/drivers/modbus/index.js';
import { createFlowsComponent, DEFAULT_FLOW_FILE, type FlowsComponent } from '../../edge/flows/index.js';
import { startModbusSimulators, type ModbusSimulators, type StreetlightModel, type TrafficModel } from '../../edge/sim/modbus/index.js';
import type { ConfigInput } from '../../edge/config/schema.js';
import { createLogger } from '../../edge/log.js';
import { makeContext, type TestContext } from '../helpers/context.js';
import { tempDir, type TempDir } from '../helpers/tmp.js';

export const USER = { username: 'anna', password: 'flows-test-password-1' } as const;
export const LAMPS = [1, 2];
export const TC_UNIT = 10;

export interface FlowsRig {
  t: TestContext;
  sims: ModbusSimulators;
  modbus: ModbusDriver;
  control: ControlComponent;
  api: ApiComponent;
  flows: FlowsComponent;
  dir: TempDir;
  base: string;
  /** warn and error log lines (JSON) of the whole slice, Node-RED's included */
  logLines: string[];
  tc(): TrafficModel;
  setpoint(unit: number): number;
  close(): Promise<void>;
}

/** The default flow with its tab's environment variables replaced (shortened thresholds). */
export function flowWithEnv(env: Record<string, string>): unknown[] {
  const flows = JSON.parse(readFileSync(DEFAULT_FLOW_FILE, 'utf8')) as { type: string; env?: { name: string; value: string; type: string }[] }[];
  for (const n of flows) {
    if (n.type !== 'tab' || !n.env) continue;
    n.env = n.env.map((e) => (env[e.name] !== undefined ? { ...e, value: env[e.name]! } : e));
  }
  return flows;
}

export const FAST_ENV = {
  ADAPTIVE_TRAFFIC_DEVICE: 'tc-1',
  ADAPTIVE_GROUP: 'street',
  ADAPTIVE_THRESHOLD: '5',
  ADAPTIVE_QUIET_S: '1',
  ADAPTIVE_SAMPLE_S: '1',
  ADAPTIVE_LEVEL: '30',
  ADAPTIVE_HOLD_S: '600',
  ADAPTIVE_NIGHT: 'always',
};

export async function startFlowsRig(opts: { nodeRed?: Partial<NonNullable<ConfigInput['nodeRed']>>; flow?: unknown[] } = {}): Promise<FlowsRig> {
  const dir = tempDir('streetbox-flows-');
  const sims = await startModbusSimulators({
    tcp: [{ id: 'tcp', devices: [...LAMPS.map((unit) => ({ unit, profile: 'streetlight-controller' })), { unit: TC_UNIT, profile: 'traffic-controller' }] }],
    tickMs: 100,
  });
  const port = sims.bus('tcp').port!;
  const flowFile = join(dir.path, 'flows.json');
  writeFileSync(flowFile, JSON.stringify(opts.flow ?? flowWithEnv(FAST_ENV), null, 2));
  const logLines: string[] = [];
  const log = createLogger({ level: 'warn', destination: { write: (line: string) => void logLines.push(line) } });
  const t = makeContext({
    buses: [{ id: 'tcp', type: 'tcp', host: '127.0.0.1', port, timeout: 500, retries: 0 }],
    devices: [
      ...LAMPS.map((unit) => ({ id: `lamp-${unit}`, bus: 'tcp', unit, profile: 'streetlight-controller', poll: 1000, groups: ['street'] })),
      { id: 'tc-1', bus: 'tcp', unit: TC_UNIT, profile: 'traffic-controller', poll: 200 },
    ],
    groups: [{ id: 'street', defaultLevel: 80 }],
    api: { host: '127.0.0.1', port: 0, tokens: [] },
    nodeRed: { enabled: true, userDir: join(dir.path, 'node-red'), flowFile, users: [{ username: USER.username, password: USER.password }], ...opts.nodeRed },
  }, { log });
  const modbus = createModbusDriver(t.ctx);
  await modbus.start();
  const control = createControl(t.ctx, { modbus });
  await control.start();
  const api = createApi(t.ctx, { commands: control, status: () => ({}) });
  await api.start();
  const flows = createFlowsComponent(t.ctx, { api, commands: control, modbus, env: {} });
  await flows.start();
  return {
    t,
    sims,
    modbus,
    control,
    api,
    flows,
    dir,
    logLines,
    base: `http://127.0.0.1:${api.port()}`,
    tc: () => sims.model<TrafficModel>('tcp', TC_UNIT),
    setpoint: (unit) => sims.model<StreetlightModel>('tcp', unit).points.get('ch1_dim_setpoint'),
    async close() {
      await flows.stop();
      await api.stop();
      await control.stop();
      await modbus.stop();
      await sims.stop();
      await t.close();
      dir.remove();
    },
  };
}
