/**
 * What a configuration change touches (issue 16): the ChangePlan the applier follows, so a new
 * schedule touches no bus, a new device restarts its own bus only, a changed broker user swaps
 * the auth table and keeps every connection, and the upstream restarts only when `sync` (or the
 * time zone it counts days in) changed. Pure and deterministic: the same two configs give the
 * same plan, every list sorted.
 *
 * Both configs are as DECLARED (parsed from their texts): the running objects have simulator
 * ports in them. Lists of named things (buses, devices, groups, profiles, users, tokens, LoRaWAN
 * keys) are compared by name, so reordering them changes nothing; the order of `schedules` is
 * kept (steps firing at the same instant are ordered by schedule: edge/control/schedule.ts).
 *
 * What a running gateway cannot take goes in `needsRestart` (the manager refuses the change with
 * E_CONFIG_RESTART): a component that would have to be added or removed, storage, Node-RED, the
 * gateway's id. The `firmware` section touches nothing that runs (the engine reads it when it needs
 * it); a bus's `transferShare`, like its other keys, rewires that bus. `simulate` stays false when simulated buses are rewired (the applier rewires those
 * buses' simulators with them); it is true only when `simulate` itself changed, which also takes
 * a restart.
 *
 * The summary names ids, usernames, DevEUIs and keys, never a value that could be a secret.
 */
import type { Config, DeviceConfig } from '../config/schema.js';
import type { ChangePlan } from './types.js';
import { simulateEnabled } from '../sim/modbus/index.js';

type Control = ChangePlan['control'];

/** What the rules below fill in; turned into the sorted ChangePlan at the end. */
class PlanBuilder {
  readonly needsRestart = new Set<string>();
  readonly buses = new Set<string>();
  readonly summary: string[] = [];
  /** LoRaWAN devices, their keys or the lorawan section differ (the driver restarts if it runs) */
  lorawanTouched = false;
  simulate = false;
  control: Control = 'none';
  broker: ChangePlan['broker'] = 'none';
  api: ChangePlan['api'] = 'none';
  sync = false;
  report = false;

  restartControl(): void {
    this.control = 'restart';
  }

  /** the schedules swap in place, unless the catalog is rebuilt anyway */
  swapSchedules(): void {
    if (this.control === 'none') this.control = 'schedules';
  }

  /** the driver a device is polled by: its bus (rewired), or the LoRaWAN network server */
  touchDriverOf(device: DeviceConfig | undefined): void {
    if (device === undefined) return;
    if (device.bus !== undefined) this.buses.add(device.bus);
    if (device.devEui !== undefined) this.lorawanTouched = true;
  }
}

/** The plan for going from `prev` to `next` (both as declared). */
export function planChange(prev: Config, next: Config): ChangePlan {
  const b = new PlanBuilder();
  const sections = differingSections(prev, next);
  for (const section of sections) {
    const rule = SECTION_RULES[section];
    if (rule) rule(prev, next, b);
    else b.needsRestart.add(`${section} takes a restart of the gateway`); // a section this planner does not know
  }
  componentsAddedOrRemoved(prev, next, b);

  const lorawan = b.lorawanTouched && (lorawanEnabled(prev) || lorawanEnabled(next));
  const buses = sorted(b.buses);
  return {
    empty: sections.length === 0,
    sections,
    needsRestart: sorted(b.needsRestart),
    buses,
    lorawan,
    simulate: b.simulate,
    control: b.control,
    broker: b.broker,
    api: b.api,
    sync: b.sync,
    report: b.report,
    components: componentsOf(b, buses, lorawan),
    summary: [...b.summary].sort(),
  };
}

// ---------------------------------------------------------------------------------------
// Comparing

/** A value as text with keys sorted and undefined left out: equal texts, equal values. */
function canonical(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) return v;
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(v).sort()) out[k] = (v as Record<string, unknown>)[k];
    return out;
  });
}

function same(a: unknown, b: unknown): boolean {
  return canonical(a) === canonical(b);
}

function sorted(items: Iterable<string>): string[] {
  return [...items].sort();
}

/** A list of named things as a mapping by name: its order does not count. */
function byName<T>(items: readonly T[] | undefined, name: (t: T) => string): Record<string, T> {
  const out: Record<string, T> = {};
  for (const item of items ?? []) Object.defineProperty(out, name(item), { value: item, enumerable: true, writable: true, configurable: true });
  return out;
}

/** The keys of two mappings whose values differ (a key on one side only included), sorted. */
function differingKeys(a: object | undefined, b: object | undefined): string[] {
  const ra = (a ?? {}) as Record<string, unknown>;
  const rb = (b ?? {}) as Record<string, unknown>;
  const keys = new Set([...Object.keys(ra), ...Object.keys(rb)]);
  return sorted([...keys].filter((k) => !same(ra[k], rb[k])));
}

interface ListDiff {
  added: string[];
  removed: string[];
  changed: string[];
}

/** Named things added, removed and changed between two lists, each sorted. */
function diffByName<T>(a: readonly T[] | undefined, b: readonly T[] | undefined, name: (t: T) => string): ListDiff {
  const ma = byName(a, name);
  const mb = byName(b, name);
  const out: ListDiff = { added: [], removed: [], changed: [] };
  for (const k of sorted(new Set([...Object.keys(ma), ...Object.keys(mb)]))) {
    if (!Object.hasOwn(ma, k)) out.added.push(k);
    else if (!Object.hasOwn(mb, k)) out.removed.push(k);
    else if (!same(ma[k], mb[k])) out.changed.push(k);
  }
  return out;
}

/** "1 added, 2 changed": counts only (the summary of users and tokens). */
function counts(d: ListDiff): string {
  return (['added', 'removed', 'changed'] as const)
    .filter((k) => d[k].length > 0)
    .map((k) => `${d[k].length} ${k}`)
    .join(', ');
}

/** `section: id added` lines for a list of named things. */
function listLines(section: string, d: ListDiff): string[] {
  return [...d.added.map((k) => `${section}: ${k} added`), ...d.removed.map((k) => `${section}: ${k} removed`), ...d.changed.map((k) => `${section}: ${k} changed`)];
}

const lower = (s: string): string => s.toLowerCase();


/** A section's value for comparing: lists of named things by name, `$schema` left out. */
function comparable(c: Config, section: string): unknown {
  switch (section) {
    case 'buses':
      return byName(c.buses, (x) => x.id);
    case 'devices':
      return byName(c.devices, (x) => x.id);
    case 'groups':
      return byName(c.groups, (x) => x.id);
    case 'profiles':
      return byName(c.profiles, (x) => x.name);
    case 'lorawan':
      return c.lorawan && { ...c.lorawan, devices: byName(c.lorawan.devices, (x) => lower(x.devEui)), forwarders: byName(c.lorawan.forwarders, (x) => lower(x.eui)) };
    case 'broker':
      return { ...c.broker, users: byName(c.broker.users, (x) => x.username) };
    case 'api':
      return { ...c.api, tokens: byName(c.api.tokens, (x) => x.name) };
    case 'nodeRed':
      return { ...c.nodeRed, users: byName(c.nodeRed.users, (x) => x.username) };
    case 'simulate':
      return simulateEnabled(c);
    default:
      return (c as Record<string, unknown>)[section];
  }
}

/** The top-level sections whose value differs, sorted (`$schema` is for editors: never). */
function differingSections(prev: Config, next: Config): string[] {
  const keys = new Set([...Object.keys(prev), ...Object.keys(next)]);
  keys.delete('$schema');
  return sorted([...keys].filter((k) => !same(comparable(prev, k), comparable(next, k))));
}

// ---------------------------------------------------------------------------------------
// The rules, section by section

type Rule = (prev: Config, next: Config, b: PlanBuilder) => void;

const SECTION_RULES: Record<string, Rule> = {
  gateway: gatewayRule,
  storage: storageRule,
  buses: busesRule,
  devices: devicesRule,
  profiles: profilesRule,
  lorawan: lorawanRule,
  groups: (prev, next, b) => {
    b.restartControl();
    b.summary.push(...listLines('groups', diffByName(prev.groups, next.groups, (g) => g.id)));
  },
  schedules: schedulesRule,
  broker: brokerRule,
  api: apiRule,
  nodeRed: nodeRedRule,
  sync: syncRule,
  firmware: firmwareRule,
  simulate: (_prev, _next, b) => {
    b.simulate = true;
    b.needsRestart.add('simulate takes a restart of the gateway');
    b.summary.push('simulate changed');
  },
};

function gatewayRule(prev: Config, next: Config, b: PlanBuilder): void {
  for (const key of differingKeys(prev.gateway, next.gateway)) {
    b.summary.push(`gateway.${key} changed`);
    if (key === 'id') {
      b.needsRestart.add('gateway.id takes a restart of the gateway');
    } else if (key === 'confirmTimeout') {
      // read by the manager for each change: nothing runs with it
    } else {
      // site, position (sun steps) and time zone (schedules) are the lighting site the catalog holds
      b.restartControl();
      if (key === 'timezone') b.sync = true; // upstream counts bytes per day in that zone
      // Node-RED's flows read the site once, when it starts (flows/runtime.ts flowGlobals)
      if ((key === 'lat' || key === 'lon' || key === 'timezone') && (prev.nodeRed.enabled || next.nodeRed.enabled)) {
        b.needsRestart.add(`gateway.${key}: Node-RED's flows read it when they start, which takes a restart of the gateway`);
      }
    }
  }
}

function storageRule(prev: Config, next: Config, b: PlanBuilder): void {
  for (const key of differingKeys(prev.storage, next.storage)) {
    b.summary.push(`storage.${key} changed`);
    // minAutonomyDays is read when asked (doctor, `streetbox status`), never by the running gateway
    if (key !== 'minAutonomyDays') b.needsRestart.add(`storage.${key} takes a restart of the gateway`);
  }
}

function busesRule(prev: Config, next: Config, b: PlanBuilder): void {
  const d = diffByName(prev.buses, next.buses, (x) => x.id);
  for (const id of [...d.added, ...d.removed, ...d.changed]) b.buses.add(id);
  b.summary.push(...listLines('buses', d));
}

/** Device keys that do not reach the driver: who is who (control) and what is stored (report strategies). */
// what the Modbus driver does not read of a device (allowCommands: control; lat/lon: the map)
const NOT_POLLED = new Set(['name', 'groups', 'report', 'points', 'allowCommands', 'lat', 'lon']);
/** Device keys the report strategies are made of (edge/report/policy.ts: the profile, LoRaWAN or not, the overrides). */
const REPORTED = new Set(['report', 'points', 'profile', 'devEui']);

function devicesRule(prev: Config, next: Config, b: PlanBuilder): void {
  const before = byName(prev.devices, (x) => x.id);
  const after = byName(next.devices, (x) => x.id);
  const d = diffByName(prev.devices, next.devices, (x) => x.id);
  if (d.added.length + d.removed.length + d.changed.length > 0) b.restartControl(); // the catalog of devices
  for (const id of d.added) {
    b.touchDriverOf(after[id]);
    b.report = true;
    b.summary.push(`devices: ${id} added${onText(after[id]!, 'on')}`);
  }
  for (const id of d.removed) {
    b.touchDriverOf(before[id]);
    b.report = true;
    b.summary.push(`devices: ${id} removed${onText(before[id]!, 'from')}`);
  }
  for (const id of d.changed) deviceChanged(id, before[id]!, after[id]!, b);
}

function deviceChanged(id: string, was: DeviceConfig, now: DeviceConfig, b: PlanBuilder): void {
  const keys = differingKeys(was, now);
  if (keys.some((k) => !NOT_POLLED.has(k))) {
    b.touchDriverOf(was);
    b.touchDriverOf(now);
  }
  if (keys.some((k) => REPORTED.has(k))) b.report = true;
  const moved = was.bus !== now.bus || was.devEui !== now.devEui;
  b.summary.push(moved ? `devices: ${id} moved from ${whereText(was)} to ${whereText(now)}` : `devices: ${id} changed (${keys.join(', ')})`);
}

/** "bus rtu1", "LoRaWAN": where a device is polled. */
function whereText(d: DeviceConfig): string {
  return d.bus !== undefined ? `bus ${d.bus}` : 'LoRaWAN';
}

/** " on bus rtu1", " from LoRaWAN" */
function onText(d: DeviceConfig, preposition: string): string {
  return ` ${preposition} ${whereText(d)}`;
}

function profilesRule(prev: Config, next: Config, b: PlanBuilder): void {
  const d = diffByName(prev.profiles, next.profiles, (x) => x.name);
  const touched = new Set([...d.added, ...d.removed, ...d.changed]);
  b.restartControl();
  b.report = true;
  const users = new Map<string, Set<string>>();
  for (const device of [...prev.devices, ...next.devices]) {
    if (!touched.has(device.profile)) continue;
    b.touchDriverOf(device);
    const ids = users.get(device.profile) ?? new Set<string>();
    users.set(device.profile, ids.add(device.id));
  }
  const lines = (names: string[], what: string): string[] =>
    names.map((name) => {
      const n = users.get(name)?.size ?? 0;
      return `profiles: ${name} ${what}${n > 0 ? ` (used by ${n} device${n === 1 ? '' : 's'})` : ''}`;
    });
  b.summary.push(...lines(d.added, 'added'), ...lines(d.removed, 'removed'), ...lines(d.changed, 'changed'));
}

function lorawanEnabled(c: Config): boolean {
  return c.lorawan !== undefined && c.lorawan.enabled; // absent: no LoRaWAN driver
}

function lorawanRule(prev: Config, next: Config, b: PlanBuilder): void {
  b.lorawanTouched = true;
  if (prev.lorawan === undefined || next.lorawan === undefined) {
    b.summary.push(prev.lorawan === undefined ? 'lorawan added' : 'lorawan removed');
    return;
  }
  for (const key of differingKeys(comparable(prev, 'lorawan') as object, comparable(next, 'lorawan') as object)) {
    if (key === 'devices') {
      // by DevEUI: the keys themselves are secrets
      b.summary.push(...listLines('lorawan.devices', diffByName(prev.lorawan.devices, next.lorawan.devices, (x) => lower(x.devEui))));
    } else b.summary.push(`lorawan.${key} changed`);
  }
}

function schedulesRule(prev: Config, next: Config, b: PlanBuilder): void {
  b.swapSchedules();
  const d = diffByName(prev.schedules, next.schedules, (x) => x.id);
  const lines = listLines('schedules', d);
  // the same schedules in another order: it decides which of two steps at one instant wins
  b.summary.push(...(lines.length > 0 ? lines : ['schedules: order changed']));
}

function brokerRule(prev: Config, next: Config, b: PlanBuilder): void {
  const keys = differingKeys(comparable(prev, 'broker') as object, comparable(next, 'broker') as object);
  for (const key of keys) {
    if (key === 'users') b.summary.push(`broker.users: ${counts(diffByName(prev.broker.users, next.broker.users, (u) => u.username))}`);
    else b.summary.push(`broker.${key} changed`);
  }
  if (prev.broker.enabled !== next.broker.enabled) {
    b.needsRestart.add(`broker.enabled: the change ${next.broker.enabled ? 'starts' : 'stops'} the MQTT broker, which takes a restart of the gateway`);
  } else if (next.broker.enabled) {
    // who may log in swaps in place (connections of removed or changed users are closed); the rest relistens
    b.broker = keys.every((k) => k === 'users' || k === 'allowAnonymous') ? 'users' : 'restart';
  }
}

function apiRule(prev: Config, next: Config, b: PlanBuilder): void {
  const keys = differingKeys(comparable(prev, 'api') as object, comparable(next, 'api') as object);
  for (const key of keys) {
    if (key === 'tokens') b.summary.push(`api.tokens: ${counts(diffByName(prev.api.tokens, next.api.tokens, (t) => t.name))}`);
    else b.summary.push(`api.${key} changed`);
  }
  if (prev.api.enabled !== next.api.enabled) {
    b.needsRestart.add(`api.enabled: the change ${next.api.enabled ? 'starts' : 'stops'} the API, which takes a restart of the gateway`);
  } else if (next.api.enabled) {
    const others = keys.filter((k) => k !== 'tokens');
    if (others.includes('metricsAuth')) b.needsRestart.add("api.metricsAuth: /metrics' access is decided when the API is built, which takes a restart of the gateway");
    if (others.length === 0) b.api = 'tokens';
    else if (prev.nodeRed.enabled || next.nodeRed.enabled) {
      for (const key of others) b.needsRestart.add(`api.${key}: Node-RED runs on the API's server, which takes a restart of the gateway`);
    } else b.api = 'restart';
  }
}

function nodeRedRule(prev: Config, next: Config, b: PlanBuilder): void {
  const keys = differingKeys(comparable(prev, 'nodeRed') as object, comparable(next, 'nodeRed') as object);
  for (const key of keys) {
    if (key === 'users') b.summary.push(`nodeRed.users: ${counts(diffByName(prev.nodeRed.users, next.nodeRed.users, (u) => u.username))}`);
    else b.summary.push(`nodeRed.${key} changed`);
  }
  // Node-RED loads its settings once per process; off before and after, nothing runs with them
  if (prev.nodeRed.enabled || next.nodeRed.enabled) {
    for (const key of keys) b.needsRestart.add(`nodeRed.${key} takes a restart of the gateway`);
  }
}

function syncRule(prev: Config, next: Config, b: PlanBuilder): void {
  b.sync = true;
  if (prev.sync === undefined || next.sync === undefined) b.summary.push(prev.sync === undefined ? 'sync added' : 'sync removed');
  else for (const key of differingKeys(prev.sync, next.sync)) b.summary.push(`sync.${key} changed`);
}

/**
 * The firmware engine reads ctx.config.firmware whenever it needs it (a gate, a timeout, a manifest's
 * keys): nothing runs with the section, nothing restarts. A deployment under way meets the new
 * values at its next step.
 */
function firmwareRule(prev: Config, next: Config, b: PlanBuilder): void {
  for (const key of differingKeys(prev.firmware, next.firmware)) b.summary.push(`firmware.${key} changed`);
}

// ---------------------------------------------------------------------------------------
// Components the running gateway has only with some configurations (edge/components.ts)

function hasModbus(c: Config): boolean {
  return c.devices.some((d) => d.bus !== undefined);
}

/** the demo's LoRaWAN simulator runs with simulate on, LoRaWAN on, and at least one node */
function hasLorawanSim(c: Config): boolean {
  return simulateEnabled(c).enabled && lorawanEnabled(c) && c.lorawan!.devices.length > 0;
}

function componentsAddedOrRemoved(prev: Config, next: Config, b: PlanBuilder): void {
  if (hasModbus(prev) !== hasModbus(next)) {
    b.needsRestart.add(`devices: the change ${hasModbus(next) ? 'adds' : 'removes'} the Modbus driver (${hasModbus(next) ? 'a first' : 'no'} device on a bus), which takes a restart of the gateway`);
  }
  if (lorawanEnabled(prev) !== lorawanEnabled(next)) {
    b.needsRestart.add(`lorawan: the change ${lorawanEnabled(next) ? 'adds' : 'removes'} the LoRaWAN driver, which takes a restart of the gateway`);
  } else if (simulateEnabled(prev).enabled === simulateEnabled(next).enabled && hasLorawanSim(prev) !== hasLorawanSim(next)) {
    b.needsRestart.add(`lorawan.devices: the change ${hasLorawanSim(next) ? 'adds' : 'removes'} the simulated LoRaWAN nodes, which takes a restart of the gateway`);
  }
}

/** The component parts touched, for the record, the probe and the log; sorted. */
function componentsOf(b: PlanBuilder, buses: readonly string[], lorawan: boolean): string[] {
  const out = buses.map((id) => `modbus bus ${id}`);
  if (lorawan) out.push('lorawan');
  if (b.simulate) out.push('simulators');
  if (b.control === 'restart') out.push('control');
  if (b.control === 'schedules') out.push('control schedules');
  if (b.broker === 'restart') out.push('broker');
  if (b.broker === 'users') out.push('broker users');
  if (b.api === 'restart') out.push('api');
  if (b.api === 'tokens') out.push('api tokens');
  if (b.sync) out.push('sync');
  if (b.report) out.push('report strategies');
  return out.sort();
}
