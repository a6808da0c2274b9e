/**
 * The composition root: loads the configuration, opens the store, starts the components in
 * order and stops them in reverse. Nothing else creates long-lived components.
 */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { EventBus } from './bus.js';
import { systemClock, type Clock } from './clock.js';
import type { Component, GatewayContext } from './component.js';
import { loadConfig } from './config/index.js';
import type { Config } from './config/schema.js';
import { createLogger, type Logger } from './log.js';
import { acquirePidLock, type PidLock } from './pidLock.js';
import { reportPolicy } from './report/policy.js';
import { openStore, BatchWriter } from './store/index.js';
import type { Store } from './store/api.js';
import { Supervisor, type ComponentStatus } from './supervisor.js';
import { buildComponents, type BuiltComponents } from './components.js';
import { GatewayApplier } from './reconfig/applier.js';
import { ConfigManager } from './reconfig/manager.js';
import { ConfigVersions } from './reconfig/versions.js';
import { createFirmware, type FirmwareEngine } from './firmware/index.js';

export interface GatewayOptions {
  configPath: string;
  log?: Logger;
  clock?: Clock;
  env?: NodeJS.ProcessEnv;
  /** overrides applied after loading (tests: ports, paths) */
  override?: (config: Config) => void;
  /** how long the components may take to stop, all together (default: each up to 10 s) */
  stopBudgetMs?: number;
  /** aborted (a signal during start-up): the components not started yet are not started */
  signal?: AbortSignal;
}

export interface Gateway {
  readonly config: Config;
  readonly context: GatewayContext;
  readonly components: readonly Component[];
  /** the components by role, for tests and tools */
  readonly built: BuiltComponents;
  /** configuration changes (edge/reconfig); undefined with a store that keeps no module tables */
  readonly configChanges: ConfigManager | undefined;
  /** firmware deployments (edge/firmware); undefined with a store that keeps no module tables */
  readonly firmware: FirmwareEngine | undefined;
  /** SIGHUP / `streetbox reload`: devices.yaml as it is on disk now goes the road of a change */
  reload(principal?: string): void;
  status(): GatewayStatus;
  /** `budgetMs`: how long the components may take to stop, all together (default: the start option) */
  stop(budgetMs?: number): Promise<void>;
}

export interface GatewayStatus {
  gateway: string;
  startedAt: number;
  components: ComponentStatus[];
  store: ReturnType<Store['stats']>;
  ingestPending: number;
  /** the configuration version that runs, and one awaiting a manual confirm */
  config: { version: number | null; sha256: string | null; awaitingConfirm: { version: number; confirmBy: number } | null };
}

/**
 * Starts a gateway. Throws ConfigError (bad devices.yaml: nothing is started) or a
 * StreetboxError when the store cannot be opened; once started, a failing component is
 * degraded and restarted, never fatal.
 */
export async function startGateway(opts: GatewayOptions): Promise<Gateway> {
  const clock = opts.clock ?? systemClock;
  const loaded = loadConfig(opts.configPath, opts.env ? { env: opts.env } : {});
  const config = loaded.config;
  // as the text declares it (what a change is compared with), before the start-up overrides
  const declared = structuredClone(config);
  opts.override?.(config);
  const log = (opts.log ?? createLogger()).child({ gateway: config.gateway.id });

  mkdirSync(dirname(config.storage.path), { recursive: true });
  const lock: PidLock = acquirePidLock(`${config.storage.path}.pid`);
  const bus = new EventBus(log.child({ module: 'bus' }));
  let store: Store;
  try {
    store = openStore({
      path: config.storage.path,
      maxBytes: config.storage.maxBytes,
      durability: config.storage.durability,
      log: log.child({ module: 'store' }),
      clock,
      bus,
    });
  } catch (err) {
    lock.release();
    throw err;
  }
  const writer = new BatchWriter({
    store,
    bus,
    log: log.child({ module: 'ingest' }),
    clock,
    flushIntervalMs: config.storage.flushInterval,
    flushRows: config.storage.flushRows,
    report: reportPolicy(config),
  });
  const context: GatewayContext = { config, configDir: loaded.dir, store, ingest: writer, bus, log, clock };

  const supervisor = new Supervisor({ log: log.child({ module: 'supervisor' }), bus, clock });
  const startedAt = clock.now();
  let configChanges: ConfigManager | undefined;
  let firmware: FirmwareEngine | undefined;
  const status = (): GatewayStatus => {
    const running = configChanges?.running();
    return {
      gateway: context.config.gateway.id,
      startedAt,
      components: supervisor.status(),
      store: store.stats(),
      ingestPending: writer.pending,
      config: { version: running?.version ?? null, sha256: running?.sha256 ?? null, awaitingConfirm: configChanges?.awaitingConfirm() ?? null },
    };
  };
  let built: BuiltComponents;
  let components: Component[];
  try {
    const versions = ConfigVersions.open(store, log);
    if (versions) {
      configChanges = new ConfigManager({ ctx: context, file: loaded.file, dir: loaded.dir, ...(opts.env ? { env: opts.env } : {}), versions, startText: loaded.source });
    }
    const changes = configChanges;
    firmware = createFirmware(context);
    const fw = firmware;
    built = await buildComponents(context, {
      status,
      ...(changes ? { config: changes, configMetrics: () => changes.metrics() } : {}),
      ...(fw ? { firmware: fw } : {}),
    });
    components = [
      {
        name: 'ingest',
        start: async () => writer.start(),
        stop: async () => writer.stop(),
      },
      ...built.components,
    ];
    for (const c of components) supervisor.add(c);
    store.appendEvent({ kind: 'gateway.started', severity: 'info', detail: { pid: process.pid, config: loaded.file } });
    if (configChanges) {
      configChanges.attach(new GatewayApplier({ ctx: context, supervisor, built, writer, declared, override: opts.override }));
      // the version record agrees with the file the gateway starts from (a change cut short by a crash included)
      configChanges.reconcile();
    }
    const b = built;
    const engine = firmware;
    // a traffic controller being activated takes no program request until its job ends
    if (engine) b.control.setFirmwareGuard((id) => engine.updating(id));
    firmware?.attach({
      modbus: b.modbus,
      lorawan: b.lorawan,
      control: b.control,
      health: () => {
        const down = supervisor.status().filter((c) => c.state !== 'running');
        if (down.length > 0) return { ok: false, reason: `not running: ${down.map((c) => `${c.name} (${c.state})`).join(', ')}` };
        const sync = context.config.sync;
        if (sync && sync.enabled !== false && !b.sync.status().connected) return { ok: false, reason: 'the upstream is not connected' };
        return { ok: true };
      },
    });
  } catch (err) {
    // nothing was started: leave the data file as we found it
    store.close();
    lock.release();
    throw err;
  }
  await supervisor.startAll(opts.signal);
  configChanges?.start();
  firmware?.start();
  log.info({ components: components.map((c) => c.name), config: loaded.file, version: configChanges?.running()?.version }, 'gateway running');

  let stopped: Promise<void> | null = null;
  return {
    get config() {
      return context.config;
    },
    context,
    components,
    built,
    configChanges,
    firmware,
    status,
    reload(principal = 'file') {
      if (stopped) return;
      if (!configChanges) {
        log.warn('reload: this gateway keeps no configuration versions (its store has no module tables)');
        return;
      }
      try {
        const submitted = configChanges.reloadFromFile(principal);
        void submitted.outcome.then((r) => log.info({ id: r.id, version: r.version, stage: r.stage, code: r.code }, 'reload: devices.yaml went its road'));
      } catch (err) {
        // a SIGHUP never takes the gateway down (a full disk refusing the version row, say)
        log.error({ err }, 'reload: devices.yaml could not be taken');
      }
    },
    stop(budgetMs?: number) {
      stopped ??= (async () => {
        log.info('gateway stopping');
        // a change under way ends its step before the components stop and the store closes
        await configChanges?.stop();
        // jobs stop between two steps; their stage and acknowledged blocks are journaled
        await firmware?.stop();
        await supervisor.stopAll(budgetMs ?? opts.stopBudgetMs);
        try {
          store.appendEvent({ kind: 'gateway.stopped', severity: 'info', detail: {} });
        } finally {
          store.close();
          lock.release();
        }
        log.info('gateway stopped');
      })();
      return stopped;
    },
  };
}
