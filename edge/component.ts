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

export interface Component {
  readonly name: string;
  start(): Promise<void>;
  stop(): Promise<void>;
}
