/**
 * A real GatewayContext for driver tests and benchmarks: the config parsed by the zod
 * schema, a SQLite store in a temp dir, the batched writer as ingest, the event bus,
 * a silent logger and the system clock. close() stops the writer and removes everything.
 */
import { EventBus } from '../../edge/bus.js';
import { systemClock } from '../../edge/clock.js';
import type { GatewayContext } from '../../edge/component.js';
import { configSchema, type Config, type ConfigInput } from '../../edge/config/schema.js';
import { createLogger, type Logger } from '../../edge/log.js';
import { BatchWriter, openStore, type Store } from '../../edge/store/index.js';
import type { Reading, StoredEvent } from '../../edge/store/types.js';
import { tempDir } from './tmp.js';

export interface TestContext {
  ctx: GatewayContext;
  config: Config;
  store: Store;
  writer: BatchWriter;
  /** readings committed so far (via the bus), in order */
  readings: Reading[];
  events: StoredEvent[];
  /** stops counting readings in `readings` (benchmarks count only) */
  keepReadings: boolean;
  committed: number;
  close(): Promise<void>;
}

export function makeContext(input: Omit<ConfigInput, 'gateway'> & { gateway?: ConfigInput['gateway'] }, opts: { log?: Logger; flushIntervalMs?: number } = {}): TestContext {
  const dir = tempDir('streetbox-modbus-');
  const config = configSchema.parse({ gateway: { id: 'gw-test' }, ...input, storage: { path: dir.file('streetbox.db') } });
  const log = opts.log ?? createLogger({ level: process.env.STREETBOX_TEST_LOG ?? 'silent' });
  const bus = new EventBus(log);
  const store = openStore({ path: config.storage.path, maxBytes: 512 * 1024 * 1024, durability: 'normal', log, bus, clock: systemClock });
  const writer = new BatchWriter({ store, bus, log, clock: systemClock, flushIntervalMs: opts.flushIntervalMs ?? 20, flushRows: 1000 });
  writer.start();
  const t: TestContext = {
    ctx: { config, configDir: dir.path, store, ingest: writer, bus, log, clock: systemClock },
    config,
    store,
    writer,
    readings: [],
    events: [],
    keepReadings: true,
    committed: 0,
    async close() {
      bus.off(t);
      await writer.stop();
      store.close();
      dir.remove();
    },
  };
  bus.on(t, 'readings', (rs) => {
    t.committed += rs.length;
    if (t.keepReadings) t.readings.push(...rs);
  });
  bus.on(t, 'event', (e) => t.events.push(e));
  return t;
}

