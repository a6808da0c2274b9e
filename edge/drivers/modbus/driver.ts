/**
 * The Modbus driver component: every device of the config that has a `bus`, polled through
 * one BusScheduler per bus, readings into ctx.ingest, events into ctx.store. A bus that cannot
 * be opened (a serial path that does not exist, a refused connection) or is lost (the device
 * vanished, the peer went away) is degraded and reopened with backoff, and reported to the
 * supervisor until it has been back STABLE_MS (a flapping bus stays reported lost); the other
 * buses and the rest of the gateway run on. A configuration applied live rewires only the buses
 * it names (reconfigure): the others keep their transport, scheduler and polling cycle.
 */
import type { Timer } from '../../clock.js';
import type { Component, GatewayContext } from '../../component.js';
import type { BusConfig, DeviceConfig } from '../../config/schema.js';
import { StreetboxError, errorMessage } from '../../errors.js';
import type { Logger } from '../../log.js';
import type { MetricSample } from '../../metrics.js';
import type { FirmwareIo } from '../../firmware/types.js';
import type { NewEvent } from '../../store/types.js';
import { loadProfiles, type ProfileRegistry } from '../../profiles/index.js';
import { scanUnits } from './client.js';
import { ModbusDevice } from './device.js';
import { ModbusMetrics } from './metrics.js';
import { readPoints, writePoint, type PointValue, type WriteResult } from './points.js';
import { BusScheduler, type DeviceCommsState } from './scheduler.js';
import { createTransport, type TransportDeps } from './transport/index.js';
import { STABLE_MS, type StateListener } from './transport/connection.js';
import type { ModbusTransport, TransportCounters, TransportState } from './transport/types.js';

export interface DeviceStatus {
  id: string;
  unit: number;
  profile: string;
  online: boolean;
  /** ms since the epoch of the last answer, null if never */
  lastSeen: number | null;
  lastError: string | null;
  polls: number;
  failures: number;
  /** measured period between the starts of the last two polls, ms */
  cycleMs: number | null;
  /** how long the last poll took, ms */
  pollMs: number | null;
}

export interface BusStatus {
  id: string;
  type: 'serial' | 'tcp';
  state: 'connected' | 'connecting' | 'degraded';
  lastError?: string;
  devices: DeviceStatus[];
  counters: TransportCounters;
}

export interface ModbusDriver extends Component {
  /** On-demand read (ahead of polls): all points of the device, or one. */
  read(device: string, point?: string): Promise<PointValue[]>;
  /** Writes a point and reads it back: verified, or failed with the reason. */
  write(device: string, point: string, value: number | boolean): Promise<WriteResult>;
  /** The unit ids among `units` that answer on `bus`. */
  scan(bus: string, units: number[], opts?: { timeoutMs?: number }): Promise<number[]>;
  status(): BusStatus[];
  /** the buses' counters for GET /metrics */
  metrics(): MetricSample[];
  /**
   * Rewires the buses `buses` (ids) from ctx.config, which the caller has already replaced:
   * each is stopped and closed, its devices dropped (a bus it had reported lost is reported
   * back, so a removed bus leaves nothing degraded), then wired again with its devices if the
   * configuration still has it. Buses not named are not touched. A device moved from one bus
   * to another needs both named. Profiles: `opts.profiles`, else loadProfiles(ctx.config.profiles).
   * Does nothing while the driver is not running; calls run one after the other.
   */
  reconfigure(buses: readonly string[], opts?: ReconfigureOptions): Promise<void>;
  /**
   * How a firmware update talks to `device` (edge/firmware/methods/modbus.ts): `bulk` at the bus
   * scheduler's bulk priority (within the bus's transferShare), `command` ahead of polls. Each
   * call finds the device's bus anew, so a rewired bus is used; throws E_NOT_FOUND for a device
   * the driver does not poll.
   */
  firmwareIo(device: string): FirmwareIo;
}

export interface ReconfigureOptions {
  /** default: loadProfiles(ctx.config.profiles) */
  profiles?: ProfileRegistry;
  /** runs once the listed buses are down and before they are wired again (the applier replaces their simulators here) */
  whileDown?: () => Promise<void>;
}

export interface ModbusDriverOptions {
  /** default: loadProfiles(ctx.config.profiles) */
  profiles?: ProfileRegistry;
  rtu?: TransportDeps['rtu'];
  /** how long a reopened bus must stay open before it is reported back (default STABLE_MS, 10 s) */
  stableMs?: number;
}

/** The 'modbus bus lost' line of one bus is logged at most this often; the lines left out are counted in the next. */
const LOST_LOG_EVERY_MS = 60_000;

interface BusRuntime {
  config: BusConfig;
  transport: ModbusTransport;
  scheduler: BusScheduler<ModbusDevice>;
  devices: { device: ModbusDevice; comms: DeviceCommsState }[];
  watch: BusWatch;
}

/** What the driver reported to the supervisor about one bus runtime. */
interface BusWatch {
  listener: StateListener;
  /** reported lost and not reported back yet */
  reported(): boolean;
  /** this runtime is gone: its later states (its close) report nothing, its pending 'back' is cancelled */
  dispose(): void;
}

export function createModbusDriver(ctx: GatewayContext, opts: ModbusDriverOptions = {}): ModbusDriver {
  return new ModbusDriverImpl(ctx, opts);
}

class ModbusDriverImpl implements ModbusDriver {
  readonly name = 'modbus';
  private buses = new Map<string, BusRuntime>();
  private byDevice = new Map<string, { bus: BusRuntime; device: ModbusDevice }>();
  private running = false;
  /** counts stops: a rewire that waited for a close does not wire into a later run */
  private generation = 0;
  /** reconfigure calls, one after the other */
  private reconfiguring: Promise<void> = Promise.resolve();
  /** transports of rewired buses still closing: stop() waits for them too */
  private readonly closing = new Set<Promise<void>>();
  private readonly log: Logger;
  /** counts across restarts: the series of a bus outlive its transport */
  private readonly counters = new ModbusMetrics();

  constructor(
    private readonly ctx: GatewayContext,
    private readonly opts: ModbusDriverOptions,
  ) {
    this.log = ctx.log.child({ module: 'modbus' });
  }

  async start(): Promise<void> {
    if (this.running) return;
    const { ctx, log } = this;
    const profiles = this.opts.profiles ?? loadProfiles(ctx.config.profiles);
    for (const bus of ctx.config.buses) this.buses.set(bus.id, this.startBus(bus, profiles));
    for (const cfg of ctx.config.devices) {
      if (cfg.bus !== undefined && !this.buses.has(cfg.bus)) {
        log.error({ device: cfg.id, bus: cfg.bus, profile: cfg.profile }, 'modbus: device skipped (unknown bus)');
      }
    }
    this.running = true;
    log.info({ buses: this.buses.size, devices: this.byDevice.size }, 'modbus driver started');
  }

  async reconfigure(buses: readonly string[], opts: ReconfigureOptions = {}): Promise<void> {
    const run = this.reconfiguring.then(() => this.rewire(buses, opts));
    this.reconfiguring = run.catch(() => undefined);
    return run;
  }

  /** Takes the named buses down and wires again those ctx.config still has; the others run on untouched. */
  private async rewire(busIds: readonly string[], opts: ReconfigureOptions): Promise<void> {
    if (!this.running) return;
    const { ctx, log } = this;
    // profiles first: a bad one refuses the change before any bus is taken down
    const profiles = opts.profiles ?? loadProfiles(ctx.config.profiles);
    const ids = [...new Set(busIds)];
    const generation = this.generation;
    const old: BusRuntime[] = [];
    for (const id of ids) {
      const bus = this.buses.get(id);
      if (!bus) continue;
      this.buses.delete(id);
      old.push(bus);
    }
    // all of them down before any is wired, so a device moved between two of them is dropped first
    await Promise.all(old.map((b) => this.retire(b)));
    // what serves those buses is replaced now (their simulators), so no transport sees it go
    await opts.whileDown?.();
    if (!this.running || generation !== this.generation) return;
    const wired: string[] = [];
    for (const id of ids) {
      const config = ctx.config.buses.find((b) => b.id === id);
      if (!config) continue;
      this.buses.set(id, this.startBus(config, profiles));
      wired.push(id);
    }
    this.orderBuses();
    log.info({ rewired: wired, removed: old.map((b) => b.config.id).filter((id) => !wired.includes(id)) }, 'modbus buses reconfigured');
  }

  /** Keeps status() in the order of the configuration after a rewire. */
  private orderBuses(): void {
    const ordered = new Map<string, BusRuntime>();
    for (const b of this.ctx.config.buses) {
      const bus = this.buses.get(b.id);
      if (bus) ordered.set(b.id, bus);
    }
    for (const [id, bus] of this.buses) if (!ordered.has(id)) ordered.set(id, bus);
    this.buses = ordered;
  }

  /**
   * One bus out of service: polls stopped (what is queued is rejected; a poll cut short stores
   * nothing), stale timers stopped, devices dropped, transport closed. A loss it had reported is
   * reported back, since nothing of this runtime will ever report it back.
   */
  private async retire(bus: BusRuntime): Promise<void> {
    bus.scheduler.stop();
    for (const { device } of bus.devices) {
      device.stopStaleTimer();
      if (this.byDevice.get(device.id)?.bus === bus) this.byDevice.delete(device.id);
    }
    const reported = bus.watch.reported();
    bus.watch.dispose();
    if (reported) this.ctx.bus.emit('health', { name: this.name, part: `bus ${bus.config.id}`, ok: true });
    const closed = bus.transport.close().catch((err: unknown) => {
      this.log.warn({ bus: bus.config.id, err: errorMessage(err) }, 'modbus: bus did not close cleanly');
    });
    this.closing.add(closed);
    try {
      await closed;
    } finally {
      this.closing.delete(closed);
    }
  }

  /** One bus wired from the configuration with its devices, and started: start() and reconfigure() alike. */
  private startBus(config: BusConfig, profiles: ProfileRegistry): BusRuntime {
    const bus = this.wireBus(config);
    for (const cfg of this.ctx.config.devices) {
      if (cfg.bus === config.id) this.addDevice(bus, cfg, profiles);
    }
    bus.transport.start();
    bus.scheduler.start();
    for (const d of bus.devices) d.device.startStaleTimer();
    return bus;
  }

  private addDevice(bus: BusRuntime, cfg: DeviceConfig, profiles: ProfileRegistry): void {
    const { ctx, log } = this;
    const profile = profiles.get(cfg.profile);
    if (!profile || profile.transport !== 'modbus') {
      log.error({ device: cfg.id, bus: cfg.bus, profile: cfg.profile }, 'modbus: device skipped (not a Modbus profile)');
      return;
    }
    const elsewhere = this.byDevice.get(cfg.id);
    if (elsewhere) {
      // moved here from a bus that was not rewired with this one: it stays polled there
      log.error({ device: cfg.id, bus: cfg.bus, polledOn: elsewhere.bus.config.id }, 'modbus: device skipped (still polled on another bus)');
      return;
    }
    const device = new ModbusDevice(cfg, profile, bus.config.id, bus.config.maxGap, {
      push: (r) => ctx.ingest.push(r),
      pushMany: (rs) => ctx.ingest.pushMany(rs),
      event: (e) => this.event(e),
      clock: ctx.clock,
      log,
    });
    const comms = bus.scheduler.addDevice(device);
    bus.devices.push({ device, comms });
    this.byDevice.set(cfg.id, { bus, device });
  }

  /**
   * One bus, wired whole: its transport, its scheduler (whose hooks go to the devices it
   * polls) and the report of its losses. A bus lost after it was open (the serial device
   * vanished, the peer went away), or that cannot be opened, is reported to the supervisor
   * (bus 'health'): the driver shows degraded until the transport has reopened it.
   */
  private wireBus(config: BusConfig): BusRuntime {
    const { ctx, log } = this;
    const watch = this.busWatch(config.id);
    const deps: TransportDeps = { clock: ctx.clock, log, metrics: this.counters, onState: watch.listener };
    if (this.opts.rtu) deps.rtu = this.opts.rtu;
    const transport = createTransport(config, deps);
    const bulk = this.counters.bulk(config.id);
    const scheduler = new BusScheduler<ModbusDevice>({
      busId: config.id,
      transport,
      clock: ctx.clock,
      log,
      timing: {
        timeout: config.timeout,
        retries: config.retries,
        offlineAfter: config.offlineAfter,
        probeInterval: config.probeInterval,
        transferShare: config.transferShare,
      },
      onBulk: (ms) => {
        bulk.seconds.inc(ms / 1000);
        bulk.transactions.inc();
      },
      hooks: {
        onPollFailed: (device, err) => device.pollFailed(err),
        onLost: (device, err) => device.lost(err),
        onRestored: (device) => device.restored(),
      },
    });
    return { config, transport, scheduler, devices: [], watch };
  }

  /**
   * Logs a bus lost (failed opens are logged by the connection, with the retry delay) and
   * reports it lost at once, and back once it has stayed open `stableMs`: a flapping bus (a
   * peer that accepts and drops) stays reported lost, so the supervisor does not flap with it.
   * The 'bus lost' line is logged at most every LOST_LOG_EVERY_MS, with the count left out.
   */
  private busWatch(busId: string): BusWatch {
    const { clock } = this.ctx;
    const part = `bus ${busId}`;
    const stableMs = this.opts.stableMs ?? STABLE_MS;
    let previous: TransportState = 'closed';
    let reported = false;
    let backTimer: Timer | undefined;
    let lastLostLog = -Infinity;
    let suppressed = 0;
    let disposed = false;
    const cancelBack = (): void => {
      if (backTimer) clock.clearTimeout(backTimer);
      backTimer = undefined;
    };
    const listener: StateListener = (state, error) => {
      if (disposed) return;
      if (previous === 'connected' && state === 'degraded') {
        const now = clock.monotonic();
        if (now - lastLostLog >= LOST_LOG_EVERY_MS) {
          this.log.error({ bus: busId, err: error, ...(suppressed > 0 ? { suppressed } : {}) }, 'modbus bus lost');
          lastLostLog = now;
          suppressed = 0;
        } else suppressed++;
      }
      previous = state;
      if (state !== 'connected') cancelBack();
      if (state === 'degraded' && !reported) {
        reported = true;
        this.ctx.bus.emit('health', { name: this.name, part, ok: false, error: error ?? `${part} lost` });
      } else if (state === 'connected' && reported) {
        cancelBack();
        backTimer = clock.setTimeout(() => {
          backTimer = undefined;
          reported = false;
          this.ctx.bus.emit('health', { name: this.name, part, ok: true });
        }, stableMs);
        backTimer.unref?.();
      }
    };
    return {
      listener,
      reported: () => reported,
      dispose: () => {
        disposed = true;
        cancelBack();
      },
    };
  }

  private event(e: NewEvent): void {
    try {
      this.ctx.store.appendEvent(e);
    } catch (err) {
      this.log.error({ err: errorMessage(err), kind: e.kind, device: e.device }, 'modbus: event not stored');
    }
  }

  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    this.generation++;
    for (const bus of this.buses.values()) {
      bus.scheduler.stop();
      for (const d of bus.devices) d.device.stopStaleTimer();
    }
    await Promise.all([...[...this.buses.values()].map((b) => b.transport.close()), ...this.closing]);
    for (const bus of this.buses.values()) bus.watch.dispose();
    this.buses = new Map();
    this.byDevice = new Map();
  }

  private find(id: string): { bus: BusRuntime; device: ModbusDevice } {
    const entry = this.byDevice.get(id);
    if (!entry) {
      throw new StreetboxError('E_NOT_FOUND', `no Modbus device "${id}"${this.running ? '' : ' (the Modbus driver is not running)'}`);
    }
    return entry;
  }

  async read(deviceId: string, pointName?: string): Promise<PointValue[]> {
    const { bus, device } = this.find(deviceId);
    let points = device.profile.points;
    if (pointName !== undefined) {
      const p = device.point(pointName);
      if (!p) throw new StreetboxError('E_NOT_FOUND', `device "${deviceId}" has no point "${pointName}"`);
      points = [p];
    }
    return bus.scheduler.command(deviceId, (tx) => readPoints(tx, points, bus.config.maxGap, () => this.ctx.clock.now()));
  }

  async write(deviceId: string, pointName: string, value: number | boolean): Promise<WriteResult> {
    const { bus, device } = this.find(deviceId);
    const p = device.point(pointName);
    if (!p) throw new StreetboxError('E_NOT_FOUND', `device "${deviceId}" has no point "${pointName}"`);
    let result: WriteResult;
    try {
      result = await bus.scheduler.command(deviceId, (tx) => writePoint(tx, p, value));
    } catch (err) {
      result = { status: 'failed', point: p.name, value, reason: errorMessage(err), code: err instanceof StreetboxError ? err.code : 'E_MODBUS_TRANSPORT' };
    }
    if (result.status === 'verified' && result.readBack !== undefined) {
      this.ctx.ingest.push({ ts: this.ctx.clock.now(), device: deviceId, point: p.name, value: result.readBack, unit: p.unit ?? null, quality: 'good' });
    }
    this.log.info({ device: deviceId, point: p.name, value, status: result.status, reason: result.reason }, 'modbus write');
    return result;
  }

  firmwareIo(deviceId: string): FirmwareIo {
    this.find(deviceId);
    return {
      bulk: async (pdu) => this.find(deviceId).bus.scheduler.bulk(deviceId, (tx) => tx(pdu)),
      command: async (pdu) => this.find(deviceId).bus.scheduler.command(deviceId, (tx) => tx(pdu)),
    };
  }

  async scan(busId: string, units: number[], opts: { timeoutMs?: number } = {}): Promise<number[]> {
    const bus = this.buses.get(busId);
    if (!bus) throw new StreetboxError('E_NOT_FOUND', `no bus "${busId}"; buses: ${[...this.buses.keys()].join(', ') || '(none)'}`);
    // Probes take turns with the polls (poll priority, due now) so a scan never stalls the line.
    return scanUnits(
      (unit, pdu, timeoutMs) => bus.scheduler.request(unit, pdu, { priority: 'poll', due: this.ctx.clock.monotonic(), timeoutMs, retries: 0 }),
      units,
      opts.timeoutMs,
    );
  }

  metrics(): MetricSample[] {
    return this.counters.samples();
  }

  status(): BusStatus[] {
    return [...this.buses.values()].map((b) => {
      const s: BusStatus = {
        id: b.config.id,
        type: b.config.type,
        state: b.transport.state === 'connected' ? 'connected' : b.transport.state === 'connecting' ? 'connecting' : 'degraded',
        devices: b.devices.map(({ device, comms }) => ({
          id: device.id,
          unit: device.unit,
          profile: device.profile.name,
          online: comms.online,
          lastSeen: comms.lastSeen,
          lastError: comms.lastError,
          polls: comms.polls,
          failures: comms.failures,
          cycleMs: comms.cycleMs,
          pollMs: comms.pollMs,
        })),
        counters: b.transport.counters,
      };
      if (b.transport.lastError !== undefined) s.lastError = b.transport.lastError;
      return s;
    });
  }
}
