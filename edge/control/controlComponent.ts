/**
 * The control component: the command pipeline with its lighting and traffic halves, as one
 * Component for main.ts and one CommandService for the doors (HTTP API, broker, cloud-sync,
 * Node-RED, CLI). Start it after the drivers and before the broker and the API.
 * `applySchedules` takes a changed `schedules` section (issue 16) without a restart.
 */
import type { Component, GatewayContext } from '../component.js';
import type { LorawanDriver } from '../drivers/lorawan/index.js';
import type { ModbusDriver } from '../drivers/modbus/index.js';
import type { Logger } from '../log.js';
import { legacyProfileHints } from '../profiles/describe.js';
import { loadProfiles, type ProfileRegistry } from '../profiles/index.js';
import type { CommandRecord, CommandStatus } from '../store/types.js';
import type { CommandService, CommandTargetRef, Submitted } from './api.js';
import type { DeviceOutcome } from './lightDriver.js';
import type { Wanted } from './arbiter.js';
import { Catalog } from './catalog.js';
import { ClaimStore } from './claimStore.js';
import { CommandPipeline, listCommands, refuseWhileStopped } from './commands.js';
import { ControlError } from './errors.js';
import { LightDriver } from './lightDriver.js';
import { Lighting } from './lighting.js';
import { CommandRecorder } from './record.js';
import { RefusalLedger, type RefusalLimits } from './refusals.js';
import type { DeviceKind, Principal } from './roles.js';
import { Traffic } from './traffic.js';

export interface ControlDeps {
  modbus?: ModbusDriver | undefined;
  lorawan?: LorawanDriver | undefined;
  /** default: loadProfiles(ctx.config.profiles) */
  profiles?: ProfileRegistry;
  /** the gateway's ramp step (default 1000 ms) */
  rampStepMs?: number;
  /** how long a LoRaWAN downlink may wait for its node (default 30 min) */
  loraTimeoutMs?: number;
  /** a LoRaWAN uplink after this much silence re-asserts the node's level (default 2 h) */
  loraSilenceMs?: number;
  /** how many refused commands are stored per principal (refusals.ts DEFAULT_REFUSAL_LIMITS) */
  refusals?: Partial<RefusalLimits>;
}

/** For a device's status: the level it should have and why, the level last asked and last verified. */
export type WantedStatus = Wanted & { asserted: number | null; verified: number | null };

export interface ControlComponent extends Component, CommandService {
  /** The wanted level of a light (undefined for an unknown device, a non-light, or before start). */
  wanted(deviceId: string): WantedStatus | undefined;
  /**
   * For the raw write paths (CLI, Node-RED): throws ControlError E_INTERLOCK for any point of a
   * traffic controller but its program request registers, E_FORBIDDEN without allowCommands,
   * E_NOT_FOUND for an unknown device (or before start).
   */
  guardWrite(device: string, point: string): void;
  /** 'lighting' | 'traffic' for the broker's ACL (roles.ts mqttAllowed deviceKind). */
  deviceKind(deviceId: string): DeviceKind | undefined;
  /** Refused commands since start: recorded in full, only counted (refusals.ts), principals tracked now (for /metrics). */
  refusalCounts(): { recorded: number; suppressed: number; principals: number };
  /**
   * A config change of `schedules` (or gateway lat/lon/timezone), ctx.config already replaced:
   * the scheduler is rebuilt from it and swapped in; lights whose wanted level changes are
   * driven, others are not written; claims, buses and everything else stay. Schedules that cannot
   * be built fall back to each group's defaultLevel (logged), as at start. Not running: nothing
   * to do (the next start reads ctx.config).
   */
  applySchedules(): void;
  /**
   * Takes changed devices, groups and profiles (a configuration change) without a restart: the
   * catalog and the lighting and traffic halves are rebuilt from ctx.config around the same light
   * driver; claims are restored from the store; only the lights that are new, whose own entry
   * changed, or whose wanted level is not what they were last driven to are driven. Returns those.
   */
  applyCatalog(): string[];
  /** A light driven to its wanted level now (after a firmware update); undefined: not a running light. */
  reassert(deviceId: string, reason: string): Promise<DeviceOutcome> | undefined;
  /**
   * Why a firmware update must wait for this device, in words, or null: a technician's override
   * (a claim of role technician in force) holds a light; a program request is active on a traffic
   * controller (this gateway's own, or the controller's request status says active).
   */
  firmwareHold(deviceId: string): string | null;
  /**
   * The firmware engine's answer to "is this device being updated": a traffic controller whose
   * new firmware is being activated or verified takes no program request (E_INTERLOCK) until its
   * job ends. Set once, after the components are built (main.ts).
   */
  setFirmwareGuard(updating: (deviceId: string) => string | null): void;
}

export function createControl(ctx: GatewayContext, deps: ControlDeps = {}): ControlComponent {
  return new Control(ctx, deps);
}

/** The parts of a running control plane, built together at start, the pipeline with all of them. */
interface Running {
  catalog: Catalog;
  driver: LightDriver;
  lighting: Lighting;
  traffic: Traffic;
  pipeline: CommandPipeline;
}

class Control implements ControlComponent {
  readonly name = 'control';
  private readonly log: Logger;
  private readonly recorder: CommandRecorder;
  private readonly refusals: RefusalLedger;
  private running: Running | null = null;
  /** set at the first start: the previous run's open commands are closed once per process */
  private interruptedClosed = false;
  /** the devices of the config the catalog was built from, as JSON: what applyCatalog compares */
  private declaredDevices = new Map<string, string>();
  /** the firmware engine's guard (setFirmwareGuard) */
  private updating: ((deviceId: string) => string | null) | null = null;

  constructor(
    private readonly ctx: GatewayContext,
    private readonly deps: ControlDeps,
  ) {
    this.log = ctx.log.child({ module: 'control' });
    this.recorder = new CommandRecorder(ctx.store, this.log);
    this.refusals = new RefusalLedger({ recorder: this.recorder, clock: ctx.clock, log: this.log, limits: deps.refusals });
  }

  async start(): Promise<void> {
    if (this.running) return;
    const { ctx, deps, log } = this;
    const driver = new LightDriver({
      modbus: deps.modbus,
      lorawan: deps.lorawan,
      clock: ctx.clock,
      log,
      ...(deps.rampStepMs !== undefined ? { rampStepMs: deps.rampStepMs } : {}),
      ...(deps.loraTimeoutMs !== undefined ? { loraTimeoutMs: deps.loraTimeoutMs } : {}),
    });
    const parts = this.build(driver);
    if (!this.interruptedClosed) {
      this.interruptedClosed = true;
      const n = this.closeInterrupted(parts.claims);
      if (n > 0) log.warn({ commands: n }, 'commands left queued or sent by the previous run ended failed (interrupted)');
    }
    driver.start();
    try {
      parts.lighting.start();
      parts.traffic.start();
    } catch (err) {
      parts.lighting.stop();
      driver.stop();
      throw err;
    }
    this.running = parts.running;
    log.info({ lights: parts.running.catalog.lights().length, groups: parts.running.catalog.groupIds().length }, 'control started');
    // a custom profile still read from its point names works, and says how to declare its roles
    for (const hint of legacyProfileHints(ctx.config.profiles)) log.warn({ hint }, 'profile without roles: deprecated, read from its point names');
  }

  /** The catalog and the halves over it, from ctx.config, around a light driver. */
  private build(driver: LightDriver): { running: Running; claims: ClaimStore; lighting: Lighting; traffic: Traffic } {
    const { ctx, deps, log } = this;
    const catalog = new Catalog(ctx.config, deps.profiles ?? loadProfiles(ctx.config.profiles));
    const claims = new ClaimStore(ctx.store, log);
    const lighting = new Lighting({
      ctx,
      catalog,
      driver,
      recorder: this.recorder,
      claims,
      log,
      ...(deps.loraSilenceMs !== undefined ? { loraSilenceMs: deps.loraSilenceMs } : {}),
    });
    const traffic = new Traffic({ catalog, modbus: deps.modbus, store: ctx.store, recorder: this.recorder, clock: ctx.clock, log, updating: (id) => this.updating?.(id) ?? null });
    const pipeline = new CommandPipeline({
      catalog,
      lighting,
      traffic,
      modbus: deps.modbus,
      store: ctx.store,
      recorder: this.recorder,
      refusals: this.refusals,
      clock: ctx.clock,
      log,
    });
    this.declaredDevices = new Map(ctx.config.devices.map((d) => [d.id, JSON.stringify(d)]));
    return { running: { catalog, driver, lighting, traffic, pipeline }, claims, lighting, traffic };
  }

  applyCatalog(): string[] {
    const prev = this.running;
    if (!prev) return [];
    const { ctx, log } = this;
    // what each light was last driven to, unless its own entry changed (another unit, bus, profile…)
    const seed = new Map(prev.lighting.assertedLevels());
    for (const d of ctx.config.devices) if (this.declaredDevices.get(d.id) !== JSON.stringify(d)) seed.delete(d.id);
    const parts = this.build(prev.driver);
    prev.lighting.stop();
    prev.traffic.stop();
    const driven = parts.lighting.start({ asserted: seed });
    parts.traffic.start();
    this.running = parts.running;
    log.info({ lights: parts.running.catalog.lights().length, groups: parts.running.catalog.groupIds().length, driven }, 'control: devices and groups of a changed configuration in force');
    return driven;
  }

  /**
   * Commands a previous run of the gateway left `queued` or `sent`: their outcome can no longer
   * be known, so they end `failed` (E_INTERRUPTED) instead of staying open forever for the
   * central system polling them. A light command whose claim (override, dim) is still persisted
   * is left open: the claim is restored and re-applied, and ends the row when it expires or is
   * released. Done once per process: a supervisor restart of this component leaves the rows of
   * commands still in flight alone.
   */
  private closeInterrupted(claims: ClaimStore): number {
    claims.open();
    const seen = new Set<string>();
    for (const c of claims.load()) {
      const id = (c as { id?: unknown } | null)?.id;
      if (typeof id === 'string') seen.add(id);
    }
    const held = seen.size;
    for (const status of ['queued', 'sent'] as const) {
      for (;;) {
        const rows = this.ctx.store.listCommands({ status, limit: 1000 }).filter((r) => !seen.has(r.id));
        if (rows.length === 0) break;
        for (const row of rows) {
          seen.add(row.id);
          this.recorder.update(row, 'failed', { code: 'E_INTERRUPTED', error: `the gateway stopped while the command was ${status}; its outcome is unknown` }, { reason: 'interrupted' });
        }
      }
    }
    return seen.size - held;
  }

  async stop(): Promise<void> {
    // the refusals counted so far are written now, not at the end of their window
    this.refusals.flush();
    const r = this.running;
    if (!r) return;
    this.running = null;
    r.lighting.stop();
    r.traffic.stop();
    r.driver.stop();
  }

  /** The door's way in: the running pipeline (commands.ts), or a refusal while stopped. */
  submit(target: CommandTargetRef, body: unknown, who: Principal): Submitted {
    const r = this.running;
    return r ? r.pipeline.submit(target, body, who) : refuseWhileStopped(this.refusals, target, body, who);
  }

  get(id: string): CommandRecord | undefined {
    return this.ctx.store.getCommand(id);
  }

  list(q: { limit: number; status?: CommandStatus }): CommandRecord[] {
    return listCommands(this.ctx.store, this.ctx.clock, q);
  }

  wanted(deviceId: string): WantedStatus | undefined {
    return this.running?.lighting.wanted(deviceId);
  }

  reassert(deviceId: string, reason: string): Promise<DeviceOutcome> | undefined {
    return this.running?.lighting.reassert(deviceId, reason);
  }

  setFirmwareGuard(updating: (deviceId: string) => string | null): void {
    this.updating = updating;
  }

  firmwareHold(deviceId: string): string | null {
    const r = this.running;
    if (!r) return 'the control plane is not running';
    const dev = r.catalog.device(deviceId);
    if (!dev) return null;
    if (dev.kind === 'lighting') {
      const w = r.lighting.wanted(deviceId);
      if (w?.source.kind === 'claim' && w.source.claim.source.role === 'technician') {
        const c = w.source.claim;
        return `held by an override of technician ${c.source.principal}${c.expiresAt !== null ? ` until ${new Date(c.expiresAt).toISOString()}` : ''} (${c.reason || 'no reason given'})`;
      }
      return null;
    }
    if (dev.kind === 'traffic') {
      if (r.traffic.requestActive(deviceId)) return 'a program request of this gateway is active';
      const status = dev.profile?.points.find((p) => p.role === 'requestStatus');
      const latest = status ? this.ctx.store.latest(deviceId).get(status.name)?.value : undefined;
      if (latest === 1) return 'the controller reports an active program request';
    }
    return null;
  }

  guardWrite(device: string, point: string): void {
    if (!this.running) throw new ControlError('E_NOT_FOUND', `unknown device "${device}" (the control plane is not running)`);
    this.running.traffic.guardWrite(device, point);
  }

  deviceKind(deviceId: string): DeviceKind | undefined {
    return this.running?.catalog.kindOf(deviceId);
  }

  refusalCounts(): { recorded: number; suppressed: number; principals: number } {
    return { recorded: this.refusals.recorded, suppressed: this.refusals.suppressed, principals: this.refusals.principals };
  }

  applySchedules(): void {
    this.running?.lighting.applySchedules();
  }
}
