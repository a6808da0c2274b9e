/**
 * A real gateway for the data-economy tests of the page and of /metrics: two simulated
 * streetlight controllers on Modbus TCP polled every 250 ms, the upstream sync to a real
 * mosquitto, the API with one technician token, and a wall clock the test moves forward by hand
 * (timers run in real time) to end the buffer's measuring of its load.
 */
import type { SyncStatus } from '../../cloud-sync/index.js';
import { systemClock, type Clock } from '../../edge/clock.js';
import { createLogger } from '../../edge/log.js';
import { startGateway, type Gateway } from '../../edge/main.js';
import type { Autonomy } from '../../edge/store/types.js';
import { startMosquitto } from '../sync/mosquitto.js';
import { tempGateway } from './cli.js';

export interface EconomyGateway {
  gw: Gateway;
  /** http://127.0.0.1:<port> of the API */
  base: string;
  token: string;
  /** moves the gateway's wall clock forward */
  advance(ms: number): void;
  /** the gateway's wall clock */
  now(): number;
  /** GET /api/v1/status as the technician */
  status(): Promise<{ store: { autonomy: Autonomy }; sync: SyncStatus }>;
  stop(): Promise<void>;
}

export async function startEconomyGateway(id: string, zone: string, token: string): Promise<EconomyGateway> {
  const broker = await startMosquitto();
  let offset = 0;
  const clock: Clock = { ...systemClock, now: () => Date.now() + offset };
  const dir = tempGateway(`
gateway: { id: ${id}, timezone: ${zone} }
storage: { path: data/gw.db }
buses:
  - { id: net, type: tcp, host: 127.0.0.1, port: 0, timeout: 500ms }
devices:
  - { id: lamp-1, bus: net, unit: 1, profile: streetlight-controller, poll: 250ms, groups: [main] }
  - { id: lamp-2, bus: net, unit: 2, profile: streetlight-controller, poll: 250ms, groups: [main] }
broker: { enabled: false }
api:
  host: 127.0.0.1
  port: 0
  tokens:
    - { name: tech, token: ${token}, role: technician }
sync: { url: "${broker.url}", reconnectMin: 100ms, reconnectMax: 1s }
simulate: true
`);
  let gw: Gateway;
  try {
    gw = await startGateway({ configPath: dir.config, log: createLogger({ level: 'silent' }), clock });
  } catch (err) {
    dir.cleanup();
    await broker.close();
    throw err;
  }
  const base = `http://127.0.0.1:${gw.built.api!.port()}`;
  return {
    gw,
    base,
    token,
    advance: (ms) => {
      offset += ms;
    },
    now: () => clock.now(),
    status: async () => (await (await fetch(`${base}/api/v1/status`, { headers: { Authorization: `Bearer ${token}` } })).json()) as never,
    stop: async () => {
      await gw.stop();
      dir.cleanup();
      await broker.close();
    },
  };
}
