import type { EventBus } from './bus.js';
import type { Clock } from './clock.js';
import type { Config } from './config/schema.js';
import type { Logger } from './log.js';
import type { Ingest, Store } from './store/api.js';

/**
 * What every long-lived component receives: one named context object. Components do no
 * work in their constructor; start() and stop() are idempotent.
 */
export interface GatewayContext {
  config: Config;
  /** the directory of the devices.yaml, for relative paths */
  configDir: string;
  store: Store;
  ingest: Ingest;
  bus: EventBus;
  log: Logger;
  clock: Clock;
}

/**
 * A long-lived part of the gateway, run by the supervisor (edge/supervisor.ts): a start that
 * throws leaves it degraded and restarted with backoff. At run time it reports on the bus:
 * - `health` `{ name, part, ok: false, error }` when it lost a part that it restores by itself
 *   (a Modbus bus reopening with backoff), `{ name, part, ok: true }` when that part is back:
 *   it shows degraded meanwhile, running again once every part is back, and is not restarted;
 * - `component` `{ name, state: 'degraded', error }` when it cannot go on: it is restarted.
 */
export interface Component {
  readonly name: string;
  start(): Promise<void>;
  stop(): Promise<void>;
}
