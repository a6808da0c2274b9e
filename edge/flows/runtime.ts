/**
 * What the streetbox nodes (edge/flows/nodes) see of the gateway: polled readings, committed events
 * and command changes from the bus, the command pipeline, on-demand Modbus reads, the latest state,
 * and whether it is night at the gateway. The flows component puts one of these into Node-RED's
 * settings (`RED.settings.streetbox`) before RED.start(); the nodes call it directly, in process,
 * never over MQTT.
 *
 * Function nodes get a smaller, read-only part (`global.get('streetbox')`): the gateway id, the
 * site and `isNight()`; commands go through a `streetbox command` node, so every one is recorded
 * with the node's role and principal.
 */
import type { EventBusMap } from '../bus.js';
import type { GatewayContext } from '../component.js';
import type { CommandService, CommandTargetRef, Principal, Submitted } from '../control/api.js';
import { roleAtMost } from '../control/roles.js';
import { Zone } from '../control/schedule.js';
import { sunDay } from '../control/sun.js';
import type { ModbusDriver } from '../drivers/modbus/index.js';
import { StreetboxError } from '../errors.js';
import type { Logger } from '../log.js';
import type { CommandRecord, LatestValue, Reading, StoredEvent } from '../store/types.js';

export interface FlowDevice {
  id: string;
  name: string | null;
  profile: string;
  groups: string[];
}

export interface StreetboxRuntime {
  readonly gatewayId: string;
  /**
   * Subscribes to every polled value, stored or not by its point's report strategy (seq 0 when not
   * stored); returns the unsubscribe function. Listeners run synchronously.
   */
  onReadings(listener: (readings: Reading[]) => void): () => void;
  /** Subscribe to committed events, and to command rows as they change; each returns its unsubscribe function. */
  onEvent(listener: (event: StoredEvent) => void): () => void;
  onCommand(listener: (row: CommandRecord) => void): () => void;
  /** The command pipeline: validated, authorised, recorded; the row comes back at once, with the promise of its outcome. */
  submit(target: CommandTargetRef, body: unknown, who: Principal): Submitted;
  getCommand(id: string): CommandRecord | undefined;
  /** Reads a device's points now (Modbus devices); rejects E_NOT_FOUND for others. */
  read(device: string, point?: string): Promise<{ point: string; value: number | boolean | null; unit: string | null; quality: string; ts: number; error?: string }[]>;
  /** The latest value of every point of a device, the last polled one (empty when none stored yet). */
  latest(device: string): Record<string, LatestValue>;
  devices(): FlowDevice[];
  groups(): string[];
  /** Night at the gateway: the sun below the horizon (gateway lat/lon), else 20:00–07:00 local time. */
  isNight(at?: number): boolean;
  /** the flows module's logger (Node-RED's own log goes there too) */
  readonly log: Logger;
}

/** The part function nodes get as `global.get('streetbox')`: read-only, no command power. */
export interface FlowGlobals {
  gatewayId: string;
  site: { lat: number | null; lon: number | null; timezone: string };
  isNight(at?: number): boolean;
}

export interface RuntimeDeps {
  commands: CommandService;
  modbus?: ModbusDriver | undefined;
}

export function createRuntime(ctx: GatewayContext, deps: RuntimeDeps, log: Logger): StreetboxRuntime & { close(): void } {
  const owners = new Set<object>();
  const subscribe = <K extends keyof EventBusMap>(key: K, listener: (...args: EventBusMap[K]) => void): (() => void) => {
    const owner = {};
    owners.add(owner);
    ctx.bus.on(owner, key, listener);
    return () => {
      ctx.bus.off(owner);
      owners.delete(owner);
    };
  };
  const night = nightCheck(ctx);
  return {
    gatewayId: ctx.config.gateway.id,
    log,
    onReadings: (l) => subscribe('polled', l),
    onEvent: (l) => subscribe('event', l),
    onCommand: (l) => subscribe('command', l),
    submit: (target, body, who) => {
      // An editor user configures a node's role: the configuration, not the flow, sets the limit.
      const max = ctx.config.nodeRed.maxRole;
      if (!roleAtMost(who.role, max)) throw new StreetboxError('E_FORBIDDEN', `flows act at most as ${max} (nodeRed.maxRole); this node asks for ${who.role}`);
      return deps.commands.submit(target, body, who);
    },
    getCommand: (id) => deps.commands.get(id),
    async read(device, point) {
      if (!deps.modbus) throw new StreetboxError('E_NOT_FOUND', `no Modbus driver: cannot read "${device}" now`);
      return deps.modbus.read(device, point);
    },
    latest: (device) => Object.fromEntries(ctx.store.latest(device)),
    devices: () => ctx.config.devices.map((d) => ({ id: d.id, name: d.name ?? null, profile: d.profile, groups: [...(d.groups ?? [])] })),
    groups: () => ctx.config.groups.map((g) => g.id),
    isNight: night,
    close() {
      for (const o of owners) ctx.bus.off(o);
      owners.clear();
    },
  };
}

export function flowGlobals(ctx: GatewayContext, isNight: (at?: number) => boolean): FlowGlobals {
  const g = ctx.config.gateway;
  return Object.freeze({ gatewayId: g.id, site: Object.freeze({ lat: g.lat ?? null, lon: g.lon ?? null, timezone: g.timezone }), isNight });
}

const DAY_MS = 86_400_000;

/** Night from the sun at the gateway's place, or a fixed 20:00–07:00 local window without lat/lon. */
export function nightCheck(ctx: Pick<GatewayContext, 'config' | 'clock'>): (at?: number) => boolean {
  const { lat, lon, timezone } = ctx.config.gateway;
  if (lat === undefined || lon === undefined) {
    const zone = new Zone(timezone);
    return (at = ctx.clock.now()) => {
      const h = zone.fields(at).hour;
      return h >= 20 || h < 7;
    };
  }
  return (at = ctx.clock.now()) => {
    // the local mean solar date of the instant: the day whose sunrise and sunset bracket it
    const d = new Date(at + lon * 240_000);
    const day = sunDay(lat, lon, { year: d.getUTCFullYear(), month: d.getUTCMonth() + 1, day: d.getUTCDate() });
    const rise = day.sunrise;
    const set = day.sunset;
    if (rise.kind === 'polarNight' || set.kind === 'polarNight') return true;
    if (rise.kind === 'polarDay' && set.kind === 'polarDay') return false;
    const after = rise.kind === 'event' ? at >= rise.at : true;
    const before = set.kind === 'event' ? at < set.at : at < day.solarNoon + DAY_MS / 2;
    return !(after && before);
  };
}
