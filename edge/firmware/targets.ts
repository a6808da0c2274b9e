/**
 * A manifest's targets resolved against the running configuration (issue 17 Deliver 1): which
 * devices, by which method, in which wave; or the refusal that names the target at fault. A target
 * that does not exist, a device whose profile declares no update method, a LoRaWAN node without
 * the GenAppKey its multicast keys derive from (TS005 §4.3) or where FUOTA cannot run (no LoRaWAN
 * driver, no journal for its sessions), a
 * traffic controller without allowCommands or for a role that may not command traffic: each refuses
 * the whole deployment with its reason (E_FW_TARGET / E_FW_FORBIDDEN).
 */
import type { Config, DeviceConfig } from '../config/schema.js';
import { can, type Role } from '../control/roles.js';
import { describeDevice } from '../profiles/describe.js';
import { deviceFirmwareOf } from '../profiles/firmware.js';
import type { ProfileRegistry } from '../profiles/index.js';
import type { DeploymentTargets, FirmwareCode, Wave } from './records.js';

export interface ResolvedTarget {
  device: string;
  /** `gateway` for the gateway itself */
  method: string;
  kind: 'lighting' | 'traffic' | 'other' | 'gateway';
  bus: string | null;
  groups: readonly string[];
  wave: number;
}

/** What resolving a LoRaWAN node asks of the running driver (LorawanDriver.genAppKey). */
export interface LorawanKeys {
  genAppKey(device: string): Buffer | null;
}

/** FUOTA on this gateway: the driver's keys when it can run, else why it cannot (no driver, no journal for its sessions). */
export type FuotaRoad = LorawanKeys | { unavailable: string };

export type Resolution = { ok: true; targets: ResolvedTarget[] } | { ok: false; code: FirmwareCode; reason: string };

const refuse = (code: FirmwareCode, reason: string): Resolution => ({ ok: false, code, reason });

export function resolveTargets(
  targets: DeploymentTargets,
  config: Pick<Config, 'gateway' | 'devices' | 'groups' | 'firmware'>,
  profiles: Pick<ProfileRegistry, 'get'>,
  role: Role,
  waves: readonly Wave[],
  fuota: FuotaRoad,
): Resolution {
  if (targets.gateway) {
    if (!config.firmware.selfUpdate.releases) {
      return refuse('E_FW_TARGET', 'targets.gateway: this gateway does not update itself: firmware.selfUpdate.releases is not set (it does not run from releases/<version>)');
    }
    return { ok: true, targets: [{ device: config.gateway.id, method: 'gateway', kind: 'gateway', bus: null, groups: [], wave: 0 }] };
  }
  const byId = new Map(config.devices.map((d) => [d.id, d]));
  const chosen = new Map<string, DeviceConfig>();
  for (const id of targets.devices ?? []) {
    const d = byId.get(id);
    if (!d) return refuse('E_FW_TARGET', `targets.devices: no device "${id}" on this gateway`);
    chosen.set(id, d);
  }
  for (const g of targets.groups ?? []) {
    if (!config.groups.some((x) => x.id === g)) return refuse('E_FW_TARGET', `targets.groups: no group "${g}" on this gateway`);
    const members = config.devices.filter((d) => d.groups.includes(g));
    if (members.length === 0) return refuse('E_FW_TARGET', `targets.groups: group "${g}" has no devices`);
    for (const d of members) chosen.set(d.id, d);
  }
  for (const p of targets.profiles ?? []) {
    const members = config.devices.filter((d) => d.profile === p);
    if (members.length === 0) return refuse('E_FW_TARGET', `targets.profiles: no device with profile "${p}" on this gateway`);
    for (const d of members) chosen.set(d.id, d);
  }
  for (const k of targets.kinds ?? []) {
    const members = config.devices.filter((d) => describeDevice(d, profiles).kind === k);
    if (members.length === 0) return refuse('E_FW_TARGET', `targets.kinds: no device of kind "${k}" on this gateway`);
    for (const d of members) chosen.set(d.id, d);
  }
  if (chosen.size === 0) return refuse('E_FW_TARGET', 'targets: nothing to update');

  const list: Omit<ResolvedTarget, 'wave'>[] = [];
  for (const d of config.devices) {
    if (!chosen.has(d.id)) continue;
    const fw = deviceFirmwareOf(d, profiles);
    if (!fw) return refuse('E_FW_TARGET', `device "${d.id}": its profile "${d.profile}" declares no update method (a \`firmware:\` section)`);
    if (fw.method === 'fuota') {
      const refusal = fuotaRefusal(d, fuota);
      if (refusal !== null) return refuse('E_FW_TARGET', refusal);
    }
    const kind = describeDevice(d, profiles).kind;
    if (kind === 'traffic') {
      if (!can(role, 'command.traffic')) return refuse('E_FW_FORBIDDEN', `device "${d.id}" is a traffic controller: role ${role} may not command traffic controllers (needs command.traffic)`);
      if (!d.allowCommands) return refuse('E_FW_TARGET', `device "${d.id}" is a traffic controller that does not allow commands (allowCommands: false in devices.yaml)`);
    }
    list.push({ device: d.id, method: fw.method, kind, bus: d.bus ?? null, groups: d.groups });
  }
  return { ok: true, targets: assignWaves(list, waves) };
}

/** Why a LoRaWAN node cannot take FUOTA here, or null: the McKey reaches it encrypted under its GenAppKey (TS005 §4.3). */
function fuotaRefusal(d: DeviceConfig, fuota: FuotaRoad): string | null {
  if ('unavailable' in fuota) return `device "${d.id}" is a LoRaWAN node, and ${fuota.unavailable}`;
  if (fuota.genAppKey(d.id) === null) {
    return `device "${d.id}" has no GenAppKey for FUOTA: set lorawan.devices[].genAppKey for DevEUI ${d.devEui ?? '?'} (an OTAA node's appKey serves without one)`;
  }
  return null;
}

/** The size of a wave in jobs: a count, or a share of all (`"25%"`), at least one. */
export function waveSize(w: Wave, total: number): number {
  if (typeof w.size === 'number') return Math.max(1, Math.floor(w.size));
  const pct = Number(String(w.size).replace(/%$/, ''));
  return Math.max(1, Math.ceil((total * pct) / 100));
}

/**
 * Jobs into waves in configuration order, groups interleaved (one light of each group before a
 * second of any), so a wave never takes a whole street first. The last wave takes what is left.
 */
function assignWaves(list: Omit<ResolvedTarget, 'wave'>[], waves: readonly Wave[]): ResolvedTarget[] {
  const byGroup = new Map<string, Omit<ResolvedTarget, 'wave'>[]>();
  for (const t of list) {
    const key = t.groups[0] ?? `\0${t.device}`;
    const q = byGroup.get(key) ?? [];
    q.push(t);
    byGroup.set(key, q);
  }
  const order: Omit<ResolvedTarget, 'wave'>[] = [];
  const queues = [...byGroup.values()];
  while (order.length < list.length) {
    for (const q of queues) {
      const t = q.shift();
      if (t) order.push(t);
    }
  }
  const plan = waves.length > 0 ? waves : [{ size: '100%' }];
  const out: ResolvedTarget[] = [];
  let i = 0;
  for (let w = 0; w < plan.length && i < order.length; w++) {
    const n = w === plan.length - 1 ? order.length - i : waveSize(plan[w]!, order.length);
    for (const t of order.slice(i, i + n)) out.push({ ...t, wave: w });
    i += n;
  }
  return out;
}
