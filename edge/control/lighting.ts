/**
 * Lighting: the arbiter's claims turned into light levels on the street, and the executor of
 * the light commands (`submit`: claim, row, drive, final status).
 *
 * dim / on / off / override become claims (schedule < maintenance < central < technician,
 * roles.ts); every affected device is driven to `arbiter.wanted()`. One timer, on ctx.clock,
 * at `arbiter.nextChange()`: a claim expiring or a schedule step firing re-drives the devices
 * whose wanted level changed, so a light falls back to the next claim, the schedule, or its
 * group's defaultLevel and never stays dark because a command was lost. Claims are persisted
 * after every change and restored at start; after start, on `comms.restored`, and on a LoRaWAN
 * uplink after a long silence the wanted level is asserted again. `applySchedules` swaps in the
 * schedules of a changed config (issue 16) and drives only the lights whose wanted level changed.
 */
import { randomUUID } from 'node:crypto';
import type { Clock, Timer } from '../clock.js';
import type { GatewayContext } from '../component.js';
import { errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import type { CommandRecord, Reading, StoredEvent } from '../store/types.js';
import type { Submitted } from './api.js';
import { Arbiter, membershipFromConfig, type Claim, type Target, type Wanted } from './arbiter.js';
import type { Catalog, CatalogDevice } from './catalog.js';
import type { ClaimStore } from './claimStore.js';
import { ControlError } from './errors.js';
import type { DeviceOutcome, LightDriver } from './lightDriver.js';
import type { CommandRecorder, CommandRequest } from './record.js';
import type { Principal } from './roles.js';
import { createScheduler, type Scheduler } from './schedule.js';
import type { ClaimCommand, ReleaseCommand } from './validate.js';

/** A timer is re-armed at least this often, so a clock step (NTP) is caught up within it. */
const MAX_TIMER_MS = 15 * 60_000;
/** A LoRaWAN uplink after this much silence re-asserts the node's level. */
const DEFAULT_LORA_SILENCE_MS = 2 * 3_600_000;


/** How long a dim/on/off without a duration holds on a device no schedule applies to. */
export const MAX_UNSCHEDULED_HOLD_MS = 12 * 3_600_000;
export interface LightingOptions {
  ctx: GatewayContext;
  catalog: Catalog;
  driver: LightDriver;
  recorder: CommandRecorder;
  claims: ClaimStore;
  log: Logger;
  loraSilenceMs?: number;
}

export interface GroupOutcome {
  status: 'verified' | 'failed' | 'expired';
  devices: Record<string, Omit<DeviceOutcome, 'device'>>;
}

export function summarise(outcomes: readonly DeviceOutcome[]): GroupOutcome {
  const devices: GroupOutcome['devices'] = {};
  for (const { device, ...rest } of outcomes) devices[device] = rest;
  const status = outcomes.some((o) => o.status === 'failed') ? 'failed' : outcomes.some((o) => o.status === 'expired') ? 'expired' : 'verified';
  return { status, devices };
}

export class Lighting {
  /** the claims, over the schedules of the config */
  readonly arbiter: Arbiter;
  private scheduler: Scheduler | null;
  private timer: Timer | null = null;
  private running = false;
  /** the level last asked of each device */
  private readonly asserted = new Map<string, number>();
  private readonly lastUplink = new Map<string, number>();
  private readonly clock: Clock;

  constructor(private readonly o: LightingOptions) {
    this.clock = o.ctx.clock;
    this.scheduler = schedulerOf(o.ctx.config, o.log);
    this.arbiter = new Arbiter({ clock: this.clock, membership: membershipFromConfig(o.ctx.config), schedule: this.scheduler });
  }

  /**
   * `asserted`: what each light was last driven to by a lighting this one replaces (a configuration
   * change, controlComponent.ts applyCatalog): only the lights whose wanted level differs are driven
   * now. Without it every light is driven (a start). Returns the ids driven.
   */
  start(opts: { asserted?: ReadonlyMap<string, number> } = {}): string[] {
    if (this.running) return [];
    const { ctx, log } = this.o;
    this.o.claims.open();
    const restored = this.arbiter.restore(this.o.claims.load());
    for (const bad of restored.invalid) log.error({ index: bad.index, error: bad.error }, 'control: stored claim dropped');
    if (restored.expired.length > 0 || restored.invalid.length > 0) this.persist();
    for (const c of restored.expired) this.claimEnded(c, 'expired');
    log.info({ restored: restored.restored.length, expired: restored.expired.length }, 'control: claims restored');
    this.running = true;
    ctx.bus.on(this, 'event', (e) => this.onEvent(e));
    // every uplink, stored or not: a node whose values do not change still ends a silence
    ctx.bus.on(this, 'polled', (rs) => this.onReadings(rs));
    const driven: string[] = [];
    for (const dev of this.o.catalog.lights()) {
      const w = this.arbiter.wanted({ kind: 'device', id: dev.id });
      const before = opts.asserted?.get(dev.id);
      if (opts.asserted && before === w.level) {
        this.asserted.set(dev.id, before);
        continue;
      }
      this.assert(dev, opts.asserted ? 'config' : 'start', w);
      driven.push(dev.id);
    }
    this.arm();
    return driven;
  }

  /** what each light was last driven to (and not failed since) */
  assertedLevels(): ReadonlyMap<string, number> {
    return this.asserted;
  }

  stop(): void {
    if (!this.running) return;
    this.running = false;
    this.o.ctx.bus.off(this);
    if (this.timer) this.clock.clearTimeout(this.timer);
    this.timer = null;
  }

  wanted(deviceId: string): (Wanted & { asserted: number | null; verified: number | null }) | undefined {
    const dev = this.o.catalog.device(deviceId);
    if (!dev || dev.kind !== 'lighting' || !this.running) return undefined;
    return { ...this.arbiter.wanted({ kind: 'device', id: deviceId }), asserted: this.asserted.get(deviceId) ?? null, verified: this.o.driver.lastVerified(deviceId) ?? null };
  }

  /**
   * The executor of a light command: dim / on / off / override add a claim, release removes one;
   * then the row, then every affected light driven to its wanted level. Throws ControlError before
   * any row exists (a priority above the role's ceiling, nothing to release): the pipeline refuses.
   */
  submit(req: CommandRequest<ClaimCommand | ReleaseCommand>): Submitted {
    const { recorder, catalog } = this.o;
    const { id, target, command: cmd, who } = req;
    const lights = req.devices.filter((d) => d.kind === 'lighting');
    const skipped = req.devices.filter((d) => d.kind !== 'lighting').map((d) => d.id);
    if (cmd.action === 'release') {
      const claim = this.release(target, cmd, who);
      // the devices the released claim covered (a commandId may name a claim on another target)
      const covered = claim.target.kind === 'device' ? [claim.target.id] : (catalog.members(claim.target.id) ?? []);
      const affected = covered.map((m) => catalog.device(m)).filter((d): d is CatalogDevice => d?.kind === 'lighting');
      const { action: _a, ...params } = cmd;
      const row = recorder.open(req, { params: { ...params, commandId: claim.id } });
      return { row, outcome: this.drive(row, affected.length > 0 ? affected : lights, skipped, { released: claim.id }) };
    }
    const claim = this.claim(id, target, cmd, who);
    let row: CommandRecord;
    try {
      row = recorder.open(req, { priority: claim.priority, expiresAt: claim.expiresAt });
    } catch (err) {
      this.arbiter.release(claim.id);
      throw err;
    }
    return { row, outcome: this.drive(row, lights, skipped, {}) };
  }

  /** Adds the claim of a command (throws ControlError: the pipeline records a rejection). */
  claim(id: string, target: Target, cmd: ClaimCommand, who: Principal): Claim {
    const level = cmd.action === 'off' ? 0 : cmd.action === 'on' ? (cmd.level ?? 100) : cmd.level;
    const now = this.clock.now();
    let expiresAt: number | null = null;
    if (cmd.durationS !== undefined) expiresAt = now + Math.round(cmd.durationS * 1000);
    else if (cmd.action !== 'override') {
      // TALQ: until the next program step; where no schedule applies, at most 12 h, so a
      // forgotten "off" never holds a street dark for good (it falls back to defaultLevel)
      expiresAt = this.nextStep(target, now) ?? now + MAX_UNSCHEDULED_HOLD_MS;
    }
    // a new command of the same caller on the same target replaces the caller's previous claim there
    // (TALQ: the latest command of a source holds), so an old level never comes back on release
    const previous = this.arbiter.list(target).filter((c) => c.source.principal === who.principal && c.source.role === who.role);
    const claim = this.arbiter.claim({
      id,
      target,
      level,
      source: who,
      expiresAt,
      ...(cmd.priority !== undefined ? { priority: cmd.priority } : {}),
      ...(cmd.reason !== undefined ? { reason: cmd.reason } : {}),
      ...(cmd.rampS !== undefined ? { rampS: cmd.rampS } : {}),
    });
    for (const p of previous) {
      this.arbiter.release(p.id);
      this.claimEnded(p, 'superseded', id);
    }
    this.persist();
    this.arm();
    return claim;
  }

  /** Releases a claim by command id, or the caller's own latest claim on the target. */
  release(target: Target, cmd: ReleaseCommand, who: Principal): Claim {
    let id = cmd.commandId;
    if (id === undefined) {
      const own = this.arbiter.list(target).filter((c) => c.source.principal === who.principal && c.source.role === who.role);
      const last = own.at(-1);
      if (!last) throw new ControlError('E_NOT_FOUND', `no claim of ${who.principal} on ${target.kind} "${target.id}" to release`);
      id = last.id;
    } else {
      const c = this.arbiter.get(id);
      if (!c) throw new ControlError('E_NOT_FOUND', `commandId: no active claim ${id} (expired, released or never made)`);
    }
    const claim = this.arbiter.release(id, who);
    this.persist();
    this.claimEnded(claim, 'released');
    this.arm();
    return claim;
  }

  /**
   * Drives `lights` to their wanted level for a command row: `sent` when the first frame goes
   * out, then the row's final status with the outcome per device. Never rejects.
   */
  private async drive(row: CommandRecord, lights: readonly CatalogDevice[], skipped: string[], extra: Record<string, unknown>): Promise<CommandRecord> {
    const { recorder, driver } = this.o;
    const store = this.o.ctx.store;
    const ids = lights.map((d) => d.id);
    try {
      const drives = lights.map((dev) => {
        const w = this.arbiter.wanted({ kind: 'device', id: dev.id });
        this.asserted.set(dev.id, w.level);
        const d = driver.drive(dev, w.level, w.rampS ?? 0);
        const outcome = d.outcome.then((o) => {
          if (o.status !== 'verified' && this.asserted.get(dev.id) === w.level) this.asserted.delete(dev.id);
          return { ...o, ...(w.source.kind === 'claim' && w.source.claim.id !== row.id ? { heldBy: w.source.claim.id } : {}) };
        });
        return { sent: d.sent, outcome };
      });
      if (await anyTrue(drives.map((d) => d.sent))) recorder.update(row, 'sent', undefined, { devices: ids });
      const outcomes = await Promise.all(drives.map((d) => d.outcome));
      const out = summarise(outcomes);
      const latest = store.getCommand(row.id) ?? row;
      const prev = typeof latest.result === 'object' && latest.result !== null ? latest.result : {};
      const result = { ...prev, ...extra, devices: out.devices, ...(skipped.length > 0 ? { skipped } : {}) };
      // a claim that expired while its drive was under way keeps its row `expired`
      const status = latest.status === 'expired' && out.status === 'verified' ? 'expired' : out.status;
      const failedReasons = Object.entries(out.devices).filter(([, o]) => o.status !== 'verified').map(([d, o]) => `${d}: ${o.reason ?? o.status}`);
      return recorder.update(latest, status, result, { devices: ids, ...(failedReasons.length > 0 ? { reason: failedReasons.slice(0, 10).join('; ') } : {}) });
    } catch (err) {
      this.o.log.error({ err, command: row.id }, 'light drive failed');
      return recorder.update(row, 'failed', { code: 'E_COMPONENT', error: errorMessage(err) }, { devices: ids });
    }
  }

  /**
   * Rebuilds the schedules from ctx.config (schedules, gateway lat/lon/timezone) and swaps them
   * into the arbiter: the lights whose wanted level changes are driven to it (an `assert` with
   * reason `schedules`), the others are not written. Claims stay as they are, and so do their
   * expiries (a claim "until the next step" keeps the instant it was given). Schedules that
   * cannot be built leave every group at its defaultLevel, as at start (logged).
   * Returns the devices driven.
   */
  applySchedules(): string[] {
    const { ctx, log, catalog } = this.o;
    const lights = catalog.lights();
    const before = new Map(lights.map((d) => [d.id, this.arbiter.wanted({ kind: 'device', id: d.id }).level]));
    this.scheduler = schedulerOf(ctx.config, log);
    this.arbiter.setSchedule(this.scheduler);
    if (!this.running) return [];
    const driven: string[] = [];
    for (const dev of lights) {
      const w = this.arbiter.wanted({ kind: 'device', id: dev.id });
      if (w.level === before.get(dev.id)) continue;
      this.assert(dev, 'schedules', w);
      driven.push(dev.id);
    }
    // the next step of the new programs: the timer was armed for the old ones
    this.arm();
    log.info({ schedules: ctx.config.schedules.length, usable: this.scheduler !== null, driven: driven.length }, 'control: schedules replaced');
    return driven;
  }

  // ------------------------------------------------------------------ timers and re-assertion

  private nextStep(target: Target, now: number): number | null {
    const s = this.scheduler;
    if (!s) return null;
    const groups = target.kind === 'group' ? [target.id] : (this.o.catalog.device(target.id)?.groups ?? []);
    let next: number | null = null;
    for (const g of groups) {
      const t = s.nextTransition(g, now);
      if (t && (next === null || t.at < next)) next = t.at;
    }
    return next;
  }

  private arm(): void {
    if (!this.running) return;
    if (this.timer) this.clock.clearTimeout(this.timer);
    this.timer = null;
    const now = this.clock.now();
    const next = this.arbiter.nextChange(now);
    const delay = next === null ? MAX_TIMER_MS : Math.min(Math.max(0, next - now), MAX_TIMER_MS);
    this.timer = this.clock.setTimeout(() => {
      this.timer = null;
      this.tick();
    }, delay);
    this.timer.unref?.();
  }

  private tick(): void {
    if (!this.running) return;
    try {
      const expired = this.arbiter.expire();
      if (expired.length > 0) this.persist();
      for (const c of expired) this.claimEnded(c, 'expired');
      for (const dev of this.o.catalog.lights()) {
        const w = this.arbiter.wanted({ kind: 'device', id: dev.id });
        if (this.asserted.get(dev.id) !== w.level) this.assert(dev, expired.length > 0 ? 'expired' : w.source.kind === 'schedule' ? 'schedule' : 'change', w);
      }
    } catch (err) {
      this.o.log.error({ err }, 'control: timer failed');
    }
    this.arm();
  }

  /** Drives a device to its wanted level on the gateway's own account, recorded as an `assert` command. */
  /**
   * Drives a light to its wanted level now, whatever it was last driven to (a firmware update
   * restarted it at its own default level): the outcome, or undefined for an unknown device, a
   * non-light, or before start.
   */
  reassert(deviceId: string, reason: string): Promise<DeviceOutcome> | undefined {
    const dev = this.o.catalog.device(deviceId);
    if (!dev || dev.kind !== 'lighting' || !this.running) return undefined;
    return this.assertNow(dev, reason);
  }

  private assert(dev: CatalogDevice, reason: string, w?: Wanted): void {
    void this.assertNow(dev, reason, w);
  }

  /** Drives a light to its wanted level (recorded as an `assert` command); the outcome never rejects. */
  private assertNow(dev: CatalogDevice, reason: string, w: Wanted = this.arbiter.wanted({ kind: 'device', id: dev.id })): Promise<DeviceOutcome> {
    const { recorder, driver, log } = this.o;
    const source = w.source.kind === 'schedule' ? { role: 'schedule' as const, principal: w.source.schedule } : { role: 'system' as const, principal: 'control' };
    const params: Record<string, unknown> = { level: w.level, reason, wanted: describe(w) };
    let row: CommandRecord | null = null;
    try {
      row = recorder.create({ id: randomUUID(), source, target: { kind: 'device', id: dev.id }, action: 'assert', params, status: 'sent' });
    } catch (err) {
      // the street matters more than the audit row: drive it anyway (the failure is logged)
      log.error({ err, device: dev.id }, 'control: assert not recorded; driving the light anyway');
    }
    this.asserted.set(dev.id, w.level);
    const outcome = driver.drive(dev, w.level, w.rampS ?? 0).outcome;
    void outcome
      .then((o) => {
        if (o.status !== 'verified' && this.asserted.get(dev.id) === w.level) this.asserted.delete(dev.id);
        const { device: _d, ...rest } = o;
        if (row) recorder.update(row, o.status, { devices: { [dev.id]: rest } }, { devices: [dev.id], ...(o.reason ? { reason: o.reason } : {}) });
      })
      .catch((err: unknown) => log.error({ err, device: dev.id }, 'control: assert failed'));
    return outcome;
  }

  private onEvent(e: StoredEvent): void {
    if (e.kind !== 'comms.restored' || e.device === null) return;
    const dev = this.o.catalog.device(e.device);
    if (dev?.kind === 'lighting') this.assert(dev, 'comms.restored');
  }

  private onReadings(rs: readonly Reading[]): void {
    const silence = this.o.loraSilenceMs ?? DEFAULT_LORA_SILENCE_MS;
    for (const r of rs) {
      const dev = this.o.catalog.device(r.device);
      if (!dev || dev.transport !== 'lorawan' || dev.kind !== 'lighting') continue;
      const prev = this.lastUplink.get(r.device);
      this.lastUplink.set(r.device, r.ts);
      if (prev !== undefined && r.ts - prev > silence) this.assert(dev, 'uplink-after-silence');
    }
  }

  /** A claim expired or was released: its command row says so. */
  private claimEnded(c: Claim, how: 'expired' | 'released' | 'superseded', by?: string): void {
    const { ctx, recorder } = this.o;
    let row: CommandRecord | undefined;
    try {
      row = ctx.store.getCommand(c.id);
    } catch {
      row = undefined;
    }
    const detail = { claim: how, level: c.level, priority: c.priority, endedAt: this.clock.now() };
    if (!row) {
      recorder.append({ device: c.target.kind === 'device' ? c.target.id : null, kind: `command.${how}`, severity: 'info', detail: { commandId: c.id, target: c.target, ...detail } });
      return;
    }
    const result = { ...(typeof row.result === 'object' && row.result !== null ? row.result : {}), claim: how, claimEndedAt: detail.endedAt, ...(by !== undefined ? { by } : {}) };
    if (how === 'expired') {
      if (row.status === 'verified' || row.status === 'sent' || row.status === 'queued') recorder.update(row, 'expired', result, detail);
      else {
        recorder.update(row, row.status, result);
        recorder.event(row, 'expired', detail);
      }
    } else recorder.update(row, row.status, result);
  }

  private persist(): void {
    try {
      this.o.claims.save(this.arbiter.toRows());
    } catch (err) {
      this.o.log.error({ err }, 'control: claims not persisted');
    }
  }
}

function describe(w: Wanted): Record<string, unknown> {
  const s = w.source;
  if (s.kind === 'claim') return { kind: 'claim', commandId: s.claim.id, priority: s.claim.priority };
  if (s.kind === 'schedule') return { kind: 'schedule', schedule: s.schedule, step: s.step, group: s.group, since: s.since };
  return { kind: 'default', group: s.group };
}

/** The config's schedules compiled; a schedule that cannot run must not leave the street dark: defaultLevel applies. */
function schedulerOf(config: GatewayContext['config'], log: Logger): Scheduler | null {
  try {
    return createScheduler(config.schedules, config.gateway);
  } catch (err) {
    log.error({ err: errorMessage(err) }, 'control: schedules not usable; groups fall back to their defaultLevel');
    return null;
  }
}

/** True as soon as one of `flags` settles true; false once all settled false. */
function anyTrue(flags: readonly Promise<boolean>[]): Promise<boolean> {
  return new Promise((resolve) => {
    let left = flags.length;
    if (left === 0) resolve(false);
    for (const f of flags) {
      void f.then((v) => {
        left--;
        if (v) resolve(true);
        else if (left === 0) resolve(false);
      });
    }
  });
}
