/**
 * The Modbus simulators: simulated streetlight and traffic controllers (and any other
 * profile, as plain register banks) on RTU lines and TCP servers, with fault injection.
 *
 * A device whose profile declares `firmware` takes firmware the way it says (firmware.ts):
 * `sims.firmware(bus, unit)` reads back what it received, the faults `lies` and `loss` misbehave.
 *
 * Two ways in:
 * - startModbusSimulators(options): explicit lines and servers (tests, benchmarks).
 * - createModbusSimComponents(ctx): the demo (`simulate: true`): simulates every Modbus device
 *   of devices.yaml on its bus, one component per bus (createModbusSimComponent), and points
 *   the configuration at the simulators (a serial bus
 *   gets the PTY path the driver must open; a TCP bus gets 127.0.0.1 and the port served).
 */
import { mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { Component, GatewayContext } from '../../component.js';
import type { Config, ProfileConfig } from '../../config/schema.js';
import { StreetboxError } from '../../errors.js';
import type { Logger } from '../../log.js';
import { loadProfiles } from '../../profiles/index.js';
import { openPtyPair, type PtyPair } from '../pty.js';
import type { Fault } from './faults.js';
import { FirmwareModel, type FirmwareRecord } from './firmware.js';
import { GenericModel, type DeviceModel } from './model.js';
import { RtuSimServer, type RtuLineStats } from './rtuServer.js';
import { StreetlightModel } from './streetlight.js';
import { TcpSimServer } from './tcpServer.js';
import { TrafficModel } from './traffic.js';
import { UnitRegistry, type UnitStats } from './units.js';
import type { WireTime } from './wireTime.js';

export type { Fault } from './faults.js';
export type { DeviceModel, RebootPhase } from './model.js';
export { FirmwareModel, makeSimImage, SIM_IMAGE_MAGIC, type FirmwareMode, type FirmwareRecord, type SimFirmwareDecl } from './firmware.js';
export { StreetlightModel } from './streetlight.js';
export { TrafficModel, TRAFFIC_MODES, REQUEST_STATUS } from './traffic.js';
export { RegisterBank } from './banks.js';
export { UnitRegistry } from './units.js';
export { TcpSimServer } from './tcpServer.js';
export { RtuSimServer } from './rtuServer.js';
export { transactionMs, t35Ms, charsMs, type WireTime } from './wireTime.js';

export interface SimDeviceSpec {
  unit: number;
  /** streetlight-controller and traffic-controller get their device model; any other profile a plain bank */
  profile: string;
  seed?: number;
}

export interface RtuLineSpec {
  id: string;
  /** the serial path the simulator opens; omitted: a socat PTY pair is made and its other end given to the driver */
  path?: string;
  /** with a PTY pair: a stable symlink to the driver's end (see openPtyPair) */
  link?: string;
  baud?: number;
  stopBits?: 1 | 2;
  /** hold frames for their time on the wire (benchmarks); true: 11-bit characters at `baud` */
  wireTime?: WireTime | boolean;
  devices: SimDeviceSpec[];
}

export interface TcpServerSpec {
  id: string;
  host?: string;
  /** 0 or omitted: a free port */
  port?: number;
  devices: SimDeviceSpec[];
}

export interface ModbusSimulatorOptions {
  rtu?: RtuLineSpec[];
  tcp?: TcpServerSpec[];
  /** profiles by name; default: the built-in ones */
  profiles?: (name: string) => ProfileConfig;
  log?: Logger;
  /** simulated time runs `speed` times faster than real time (default 1) */
  speed?: number;
  /** how often the device models advance (ms, default 1000) */
  tickMs?: number;
  /** how long a device is silent after a firmware commit (ms, default 2000) */
  rebootMs?: number;
}

export interface SimulatedBus {
  readonly id: string;
  readonly kind: 'rtu' | 'tcp';
  /** rtu: the path the driver opens (the PTY's other end, or the spec's path when given) */
  readonly path?: string;
  /** tcp: where the server listens */
  readonly host?: string;
  readonly port?: number;
  readonly units: UnitRegistry;
  readonly models: ReadonlyMap<number, DeviceModel>;
  /** rtu only: line counters */
  readonly line?: RtuLineStats;
}

export interface ModbusSimulators {
  readonly buses: ReadonlyMap<string, SimulatedBus>;
  bus(id: string): SimulatedBus;
  model<T extends DeviceModel = DeviceModel>(bus: string, unit: number): T;
  /** Sets (null: clears) the fault of one unit; `count` limits it to the next n requests. */
  setFault(bus: string, unit: number, fault: Fault | null, opts?: { count?: number }): void;
  stats(bus: string, unit: number): UnitStats;
  /** What the unit's firmware received and runs; E_NOT_FOUND when its profile declares no firmware. */
  firmware(bus: string, unit: number): FirmwareRecord;
  /** TCP: drops every open connection (a controller rebooting); the server keeps listening. */
  dropConnections(bus: string): void;
  /** Advances every model by `dtMs` of simulated time now (tests). */
  tick(dtMs: number): void;
  stop(): Promise<void>;
}

export function createModel(profile: ProfileConfig, seed: number, opts: { rebootMs?: number } = {}): DeviceModel {
  const model =
    profile.name === 'streetlight-controller'
      ? new StreetlightModel(profile, { seed })
      : profile.name === 'traffic-controller'
        ? new TrafficModel(profile, { seed })
        : new GenericModel(profile);
  model.firmware = FirmwareModel.attach(model, opts.rebootMs !== undefined ? { rebootMs: opts.rebootMs } : {});
  return model;
}

export async function startModbusSimulators(opts: ModbusSimulatorOptions): Promise<ModbusSimulators> {
  const profiles = opts.profiles ?? ((name: string) => loadProfiles().require(name));
  const buses = new Map<string, SimulatedBus>();
  const stops: (() => Promise<void>)[] = [];
  const models: DeviceModel[] = [];
  const tcpServers = new Map<string, TcpSimServer>();

  const registry = (devices: SimDeviceSpec[]): [UnitRegistry, Map<number, DeviceModel>] => {
    const units = new UnitRegistry();
    const byUnit = new Map<number, DeviceModel>();
    for (const d of devices) {
      const model = createModel(profiles(d.profile), d.seed ?? d.unit, opts.rebootMs !== undefined ? { rebootMs: opts.rebootMs } : {});
      units.add(d.unit, model.bank, model.firmware);
      byUnit.set(d.unit, model);
      models.push(model);
    }
    return [units, byUnit];
  };

  const stopAll = async (): Promise<void> => {
    for (const s of stops.reverse()) await s().catch((err: unknown) => opts.log?.warn({ err }, 'simulator stop failed'));
    stops.length = 0;
  };

  try {
    for (const spec of opts.tcp ?? []) {
      const [units, byUnit] = registry(spec.devices);
      const server = new TcpSimServer({ units, host: spec.host ?? '127.0.0.1', port: spec.port ?? 0, ...(opts.log ? { log: opts.log } : {}) });
      let where: { host: string; port: number };
      try {
        where = await server.start();
      } catch (err) {
        if (!spec.port) throw err;
        // The configured port is taken or privileged: serve on a free one (the config is pointed at it).
        opts.log?.warn({ err, port: spec.port, bus: spec.id }, 'simulator cannot listen on the configured port; using a free one');
        const fallback = new TcpSimServer({ units, host: spec.host ?? '127.0.0.1', port: 0, ...(opts.log ? { log: opts.log } : {}) });
        where = await fallback.start();
        stops.push(() => fallback.stop());
        tcpServers.set(spec.id, fallback);
        buses.set(spec.id, { id: spec.id, kind: 'tcp', host: where.host, port: where.port, units, models: byUnit });
        continue;
      }
      stops.push(() => server.stop());
      tcpServers.set(spec.id, server);
      buses.set(spec.id, { id: spec.id, kind: 'tcp', host: where.host, port: where.port, units, models: byUnit });
    }

    for (const spec of opts.rtu ?? []) {
      const [units, byUnit] = registry(spec.devices);
      let pty: PtyPair | null = null;
      let simPath = spec.path;
      let masterPath = spec.path;
      if (simPath === undefined) {
        pty = await openPtyPair(spec.link !== undefined ? { link: spec.link } : {});
        const p = pty;
        stops.push(() => p.close());
        simPath = pty.simPath;
        masterPath = pty.masterPath;
      }
      const baud = spec.baud ?? 9600;
      const wireTime = spec.wireTime === true ? { baud, bitsPerChar: 11 } : spec.wireTime || undefined;
      const server = new RtuSimServer({
        units,
        path: simPath,
        baud,
        stopBits: spec.stopBits ?? 1,
        ...(wireTime ? { wireTime } : {}),
        ...(opts.log ? { log: opts.log } : {}),
      });
      await server.start();
      stops.push(() => server.stop());
      buses.set(spec.id, { id: spec.id, kind: 'rtu', path: masterPath!, units, models: byUnit, line: server.stats });
    }
  } catch (err) {
    await stopAll();
    throw err;
  }

  const speed = opts.speed ?? 1;
  let last = performance.now();
  const tick = (dt: number): void => {
    for (const m of models) {
      try {
        m.tick(dt);
      } catch (err) {
        opts.log?.error({ err, model: m.kind }, 'simulated device failed to advance');
      }
    }
  };
  const timer = setInterval(() => {
    const now = performance.now();
    tick((now - last) * speed);
    last = now;
  }, opts.tickMs ?? 1000);
  timer.unref();
  stops.unshift(async () => {
    clearInterval(timer);
    for (const m of models) m.firmware?.stop();
  });

  const bus = (id: string): SimulatedBus => {
    const b = buses.get(id);
    if (!b) throw new StreetboxError('E_NOT_FOUND', `no simulated bus "${id}"; simulated: ${[...buses.keys()].join(', ') || '(none)'}`);
    return b;
  };
  let stopping: Promise<void> | null = null;
  return {
    buses,
    bus,
    model<T extends DeviceModel>(id: string, unit: number): T {
      const m = bus(id).models.get(unit);
      if (!m) throw new StreetboxError('E_NOT_FOUND', `bus "${id}" simulates no unit ${unit}`);
      return m as T;
    },
    setFault: (id, unit, fault, o) => bus(id).units.faults.set(unit, fault, o ?? {}),
    stats: (id, unit) => bus(id).units.stats(unit),
    firmware(id, unit) {
      const fw = bus(id).units.firmware.get(unit);
      if (!fw) throw new StreetboxError('E_NOT_FOUND', `bus "${id}" unit ${unit}: its profile declares no firmware`);
      return fw.record();
    },
    dropConnections(id) {
      const server = tcpServers.get(id);
      if (!server) throw new StreetboxError('E_NOT_FOUND', `no simulated TCP bus "${id}"`);
      server.dropConnections();
    },
    tick,
    stop: () => (stopping ??= stopAll()),
  };
}

/** What to simulate for a devices.yaml: every Modbus device, on a simulator standing in for its bus. */
export function simulatorSpecFromConfig(config: Config): { rtu: RtuLineSpec[]; tcp: TcpServerSpec[] } {
  const rtu: RtuLineSpec[] = [];
  const tcp: TcpServerSpec[] = [];
  for (const b of config.buses) {
    const devices = config.devices
      .filter((d) => d.bus === b.id && d.unit !== undefined)
      .map((d) => ({ unit: d.unit!, profile: d.profile }));
    if (devices.length === 0) continue;
    if (b.type === 'serial') rtu.push({ id: b.id, baud: b.baud, stopBits: b.stopBits, devices });
    else tcp.push({ id: b.id, host: '127.0.0.1', port: b.port, devices });
  }
  return { rtu, tcp };
}

/**
 * Points the configuration's buses at running simulators: a serial bus opens the PTY end
 * (parity none: a PTY refuses parity settings), a TCP bus connects to 127.0.0.1 and the
 * port served.
 */
export function pointConfigAtSimulators(config: Config, sims: ModbusSimulators, log?: Logger): void {
  for (const b of config.buses) {
    const sim = sims.buses.get(b.id);
    if (!sim) continue;
    if (b.type === 'serial' && sim.path !== undefined) {
      if (b.parity !== 'none') log?.info({ bus: b.id, parity: b.parity }, 'simulated line: parity set to none (a PTY refuses parity)');
      b.path = sim.path;
      b.parity = 'none';
    } else if (b.type === 'tcp' && sim.port !== undefined) {
      b.host = sim.host ?? '127.0.0.1';
      b.port = sim.port;
    }
  }
}

export function simulateEnabled(config: Config): { enabled: boolean; speed: number; radioTimeScale: number } {
  const s = config.simulate;
  if (typeof s === 'boolean') return { enabled: s, speed: 1, radioTimeScale: 1 };
  return { enabled: s.enabled, speed: s.speed, radioTimeScale: s.radioTimeScale };
}

/** Where a simulated RS-485 line's driver end is linked: a stable path beside the data file. */
export function simulatedLinePath(config: Config, busId: string): string {
  // a store in memory (tests) has no data directory: the system's temp directory, per process
  const base = config.storage.path === ':memory:' ? join(tmpdir(), `streetbox-sim-${process.pid}`) : dirname(config.storage.path);
  return join(base, 'sim', `${busId.replace(/[^A-Za-z0-9_.-]/g, '_')}.tty`);
}

export type SimBusComponent = Component & { readonly bus: string; readonly simulators: ModbusSimulators | null };

/** The supervisor's name of the simulator of bus `busId`. */
export function modbusSimName(busId: string): string {
  return `modbus-sim:${busId}`;
}

/**
 * The demo's simulators (`simulate: true`): one component per simulated bus, so each starts,
 * fails and is retried on its own (an RS-485 line without socat does not take the TCP traffic
 * controller down with it). Start them before the Modbus driver.
 */
export function createModbusSimComponents(ctx: GatewayContext): SimBusComponent[] {
  if (!simulateEnabled(ctx.config).enabled) return [];
  const spec = simulatorSpecFromConfig(ctx.config);
  return [...spec.tcp, ...spec.rtu].map((b) => createModbusSimComponent(ctx, b.id)).filter((c): c is SimBusComponent => c !== null);
}

/**
 * The simulator of one bus (a configuration applied live adds, removes or restarts one), or
 * null when `simulate` is off or the bus has no device to simulate.
 *
 * Everything is read from ctx.config when it starts (devices, profiles, speed, the bus object),
 * since a configuration change replaces ctx.config: a restarted simulator serves the devices of
 * the new configuration and points the new configuration's bus at itself. A serial bus is
 * pointed at a stable path in the data directory that socat links to the PTY end (parity none:
 * a PTY refuses parity), here already and again before its simulator starts, so the driver
 * opens that path even while the line is down and its reopen finds it once the line is back.
 * A TCP bus is pointed at 127.0.0.1 and the port served once its simulator listens.
 */
export function createModbusSimComponent(ctx: GatewayContext, busId: string): SimBusComponent | null {
  if (!simulateEnabled(ctx.config).enabled) return null;
  const log = ctx.log.child({ module: 'modbus-sim' });
  const only = busSpec(ctx.config, busId);
  if (!only) return null;
  if (only.rtu.length > 0) pointAtLink(ctx.config, busId, log);
  let sims: ModbusSimulators | null = null;
  return {
    name: modbusSimName(busId),
    bus: busId,
    get simulators() {
      return sims;
    },
    async start() {
      if (sims) return;
      const config = ctx.config;
      const now = busSpec(config, busId);
      if (!now) {
        log.warn({ bus: busId }, 'modbus simulator: the configuration has no device to simulate on this bus');
        return;
      }
      const link = now.rtu.length > 0 ? pointAtLink(config, busId, log) : undefined;
      if (link) mkdirSync(dirname(link), { recursive: true });
      const registry = loadProfiles(config.profiles);
      sims = await startModbusSimulators({
        rtu: now.rtu.map((r) => ({ ...r, ...(link ? { link } : {}) })),
        tcp: now.tcp,
        profiles: (name) => registry.require(name),
        log,
        speed: simulateEnabled(config).speed,
      });
      pointConfigAtSimulators(config, sims, log);
      const b = sims.bus(busId);
      log.info({ bus: busId, path: b.path, port: b.port, units: [...b.models.keys()] }, 'modbus simulator running');
    },
    async stop() {
      const s = sims;
      sims = null;
      await s?.stop();
    },
  };
}

/** What to simulate for bus `busId` of `config`; null when it has no device with a unit. */
function busSpec(config: Config, busId: string): { rtu: RtuLineSpec[]; tcp: TcpServerSpec[] } | null {
  const spec = simulatorSpecFromConfig(config);
  const rtu = spec.rtu.filter((r) => r.id === busId);
  const tcp = spec.tcp.filter((t) => t.id === busId);
  return rtu.length + tcp.length > 0 ? { rtu, tcp } : null;
}

/** Points serial bus `busId` of `config` at its stable link path (parity none); returns the path. */
function pointAtLink(config: Config, busId: string, log: Logger): string | undefined {
  const b = config.buses.find((x) => x.id === busId);
  if (!b || b.type !== 'serial') return undefined;
  const link = simulatedLinePath(config, busId);
  if (b.parity !== 'none') log.info({ bus: b.id, parity: b.parity }, 'simulated line: parity set to none (a PTY refuses parity)');
  b.path = link;
  b.parity = 'none';
  return link;
}
