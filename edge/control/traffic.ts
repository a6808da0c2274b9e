/**
 * Traffic-controller safety (DESIGN.md "Safety rules"). streetbox only *requests* a program the
 * controller itself accepts, only on devices with `allowCommands: true`, only for roles with
 * `command.traffic`; it never writes a signal-group state. A request writes `program_request`
 * and then `request_expiry`, the dead-man timer (NTCIP 1202 unitBackupTime): the controller
 * counts it down and, unless a new request renews it, drops the request and resumes its own
 * plan. This module never renews on its own: a lost client lets the plan resume. Every request
 * is a command row with its source; its row turns `expired` when the dead-man lapses.
 */
import type { Clock, Timer } from '../clock.js';
import type { ModbusDriver, WriteResult } from '../drivers/modbus/index.js';
import { errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import type { Store } from '../store/api.js';
import type { CommandRecord } from '../store/types.js';
import type { Submitted } from './api.js';
import type { Catalog, CatalogDevice } from './catalog.js';
import { ControlError } from './errors.js';
import type { CommandRecorder, CommandRequest } from './record.js';
import type { Rejection } from './refusals.js';
import { can, type Principal } from './roles.js';
import { MAX_EXPIRY_S, type ProgramCommand, type ReleaseCommand } from './validate.js';

/** Controller modes (traffic-controller profile): only fixed-time (2) and vehicle-actuated (3) take requests. */
export const MODE_NAMES: Readonly<Record<number, string>> = { 0: 'off', 1: 'flashing amber', 2: 'fixed-time', 3: 'vehicle-actuated', 4: 'manual (police panel)' };
export const MODES_ACCEPTING: ReadonlySet<number> = new Set([2, 3]);
/** The controller counts request_expiry down once a second: a read-back this much lower is still our write. */
const COUNTDOWN_SLACK_S = 2;

export interface Refusal extends Rejection {
  code: 'E_FORBIDDEN' | 'E_INTERLOCK' | 'E_INVALID_COMMAND';
}

export interface TrafficOptions {
  catalog: Catalog;
  modbus?: ModbusDriver | undefined;
  store: Store;
  recorder: CommandRecorder;
  clock: Clock;
  log: Logger;
  /** why the controller takes no program request now (its firmware is being activated), or null */
  updating?: (device: string) => string | null;
}

interface ActiveRequest {
  row: CommandRecord;
  program: number;
  expiresAt: number;
  timer: Timer;
}

export class Traffic {
  private readonly active = new Map<string, ActiveRequest>();
  private readonly chains = new Map<string, Promise<void>>();

  constructor(private readonly o: TrafficOptions) {}

  /**
   * Picks up the requests of an earlier run: one whose dead-man lapsed while the gateway was down
   * is recorded as expired; one still running gets its lapse timer back (renewals work again).
   */
  start(): void {
    const now = this.o.clock.now();
    let rows: CommandRecord[] = [];
    try {
      rows = this.o.store.listCommands({ after: now - (MAX_EXPIRY_S + 60) * 1000, limit: 10_000, status: 'verified' });
    } catch (err) {
      this.o.log.error({ err }, 'traffic: earlier requests not read');
    }
    for (const row of rows) {
      const r = row.result as { device?: unknown; program?: unknown; expiresAt?: unknown; request?: unknown; dryRun?: unknown } | null;
      if (row.action !== 'program' || !r || r.dryRun === true || r.request !== undefined) continue;
      if (typeof r.device !== 'string' || typeof r.program !== 'number' || r.program === 0 || typeof r.expiresAt !== 'number') continue;
      const prior = this.active.get(r.device);
      if (prior) this.clear(r.device, 'superseded', row.id);
      if (r.expiresAt <= now) {
        this.o.recorder.update(row, 'expired', { ...r, request: 'lapsed' }, { devices: [r.device], program: r.program, reason: 'the dead-man expiry lapsed while the gateway was down' });
        continue;
      }
      const device = r.device;
      const timer = this.o.clock.setTimeout(() => this.lapsed(device, row.id), r.expiresAt - now);
      timer.unref?.();
      this.active.set(device, { row, program: r.program, expiresAt: r.expiresAt, timer });
    }
  }

  /** A program request of this gateway's is active on the controller (not released, not lapsed). */
  requestActive(device: string): boolean {
    return this.active.has(device);
  }

  stop(): void {
    for (const a of this.active.values()) this.o.clock.clearTimeout(a.timer);
    this.active.clear();
  }

  /**
   * Throws unless `point` of `device` may be written by the raw write paths (CLI, Node-RED):
   * on a traffic controller only the two request registers, and only with allowCommands.
   */
  guardWrite(device: string, point: string): void {
    const dev = this.o.catalog.device(device);
    if (!dev) throw new ControlError('E_NOT_FOUND', `unknown device "${device}"`);
    if (dev.kind !== 'traffic') return;
    if (point !== dev.traffic?.request && point !== dev.traffic?.expiry) {
      throw new ControlError('E_INTERLOCK', `refused: "${point}" of traffic controller ${device} is never written; only program requests (${dev.traffic ? `${dev.traffic.request}, ${dev.traffic.expiry}` : 'none: its profile has no programRequest point'}) are`);
    }
    if (!dev.allowCommands) throw new ControlError('E_FORBIDDEN', `traffic controller ${device} does not allow commands (allowCommands: false)`);
  }

  /**
   * The executor of program requests (and of a release on a traffic controller, a request for
   * program 0): the checks that need no I/O, then the row; a dry run is final at once, a request
   * runs after the one before it on the same controller. A refusal records nothing.
   */
  submit(req: CommandRequest<ProgramCommand | ReleaseCommand>): Submitted | Refusal {
    const { target, command: cmd, who } = req;
    if (target.kind === 'group') return { code: 'E_INVALID_COMMAND', error: 'target: a program request goes to one traffic controller, not to a group', field: 'target' };
    const dev = req.devices[0]!;
    const program: ProgramCommand = cmd.action === 'program' ? cmd : { action: 'program', program: 0, expiresInS: 1 };
    const refusal = this.refusal(dev, program, who);
    if (refusal) return refusal;
    if (cmd.action === 'program' && cmd.dryRun) {
      const row = this.o.recorder.open(req, { status: 'verified', result: this.dryRunReport(dev, program) });
      return { row, outcome: Promise.resolve(row) };
    }
    const row = this.o.recorder.open(req, { expiresAt: program.program === 0 ? null : this.o.clock.now() + program.expiresInS * 1000 });
    return { row, outcome: this.execute(row, dev, program) };
  }

  /** The checks that need no I/O: role, device kind, allowCommands, the mode last polled. */
  refusal(dev: CatalogDevice, cmd: ProgramCommand, who: Principal): Refusal | null {
    if (!can(who.role, 'command.traffic')) return { code: 'E_FORBIDDEN', error: `role ${who.role} may not request traffic-controller programs (needs command.traffic)` };
    if (dev.kind !== 'traffic') return { code: 'E_INVALID_COMMAND', error: `action: "program" is for traffic controllers; ${dev.id} is not one` };
    if (!dev.traffic) return { code: 'E_INVALID_COMMAND', error: `action: traffic controller ${dev.id} takes no program requests: its profile ${dev.config.profile} has no point of role programRequest` };
    if (!dev.allowCommands) return { code: 'E_FORBIDDEN', error: `traffic controller ${dev.id} does not allow commands (allowCommands: false in devices.yaml)` };
    const updating = cmd.program !== 0 ? (this.o.updating?.(dev.id) ?? null) : null;
    if (updating) return { code: 'E_INTERLOCK', error: `traffic controller ${dev.id} takes no program request now: ${updating}` };
    const mode = this.lastMode(dev.id);
    if (cmd.program !== 0 && mode !== null && !MODES_ACCEPTING.has(mode)) return { code: 'E_INTERLOCK', error: modeRefusal(dev.id, mode) };
    return null;
  }

  /** What a dry run reports (the refusal checks passed). */
  dryRunReport(dev: CatalogDevice, cmd: ProgramCommand): Record<string, unknown> {
    const mode = this.lastMode(dev.id);
    const online = this.o.modbus?.status().flatMap((b) => b.devices).find((d) => d.id === dev.id)?.online ?? null;
    const active = this.active.get(dev.id);
    return {
      dryRun: true,
      accepted: true,
      device: dev.id,
      program: cmd.program,
      expiresInS: cmd.expiresInS,
      mode: mode === null ? null : { value: mode, name: MODE_NAMES[mode] ?? 'unknown' },
      online,
      renews: active !== undefined && active.program === cmd.program,
      // the profile lists no programs: the controller itself refuses one it does not know
      programKnown: 'decided by the controller',
    };
  }

  /** Runs a queued request (one at a time per controller); resolves with its row in its final status. */
  private execute(row: CommandRecord, dev: CatalogDevice, cmd: ProgramCommand): Promise<CommandRecord> {
    const prev = this.chains.get(dev.id) ?? Promise.resolve();
    const next = prev.then(() => this.run(row, dev, cmd)).catch((err: unknown) => {
      this.o.log.error({ err, command: row.id }, 'traffic request failed');
      return this.o.recorder.update(row, 'failed', { code: 'E_COMPONENT', error: errorMessage(err) });
    });
    const link = next.then(() => undefined);
    this.chains.set(dev.id, link);
    void link.finally(() => {
      if (this.chains.get(dev.id) === link) this.chains.delete(dev.id);
    });
    return next;
  }

  private async run(row: CommandRecord, dev: CatalogDevice, cmd: ProgramCommand): Promise<CommandRecord> {
    const { recorder } = this.o;
    const modbus = this.o.modbus;
    if (!modbus) return recorder.update(row, 'failed', { code: 'E_COMPONENT', error: 'no Modbus driver is running' });
    const points = dev.traffic;
    if (!points) return recorder.update(row, 'failed', { code: 'E_INVALID_COMMAND', error: `its profile ${dev.config.profile} has no point of role programRequest` });
    if (cmd.program !== 0 && points.mode !== undefined) {
      // the mode now, not as last polled: a police panel may have taken over since
      let mode: number | null = null;
      try {
        const [v] = await modbus.read(dev.id, points.mode);
        if (typeof v?.value === 'number') mode = v.value;
      } catch (err) {
        return recorder.update(row, 'failed', { code: 'E_MODBUS_TRANSPORT', error: `${points.mode}: ${errorMessage(err)}` }, { devices: [dev.id] });
      }
      if (mode !== null && !MODES_ACCEPTING.has(mode)) {
        return recorder.update(row, 'rejected', { code: 'E_INTERLOCK', error: modeRefusal(dev.id, mode) }, { devices: [dev.id] });
      }
    }
    let current = recorder.update(row, 'sent', undefined, { devices: [dev.id] });
    const req = await modbus.write(dev.id, points.request, cmd.program);
    if (req.status === 'failed') {
      return recorder.update(current, 'failed', failure(req, cmd.program, points.request), { devices: [dev.id], reason: req.reason });
    }
    const prior = this.active.get(dev.id);
    if (cmd.program === 0) {
      this.clear(dev.id, 'released', row.id);
      return recorder.update(current, 'verified', { device: dev.id, program: 0, released: prior?.row.id ?? null }, { devices: [dev.id] });
    }
    const exp = await modbus.write(dev.id, points.expiry, cmd.expiresInS);
    if (exp.status === 'failed' && !countdownOf(exp, cmd.expiresInS)) {
      // Never leave a program running without its dead-man: withdraw the request, so the
      // controller's own plan resumes at once (DESIGN.md safety rules).
      const undo = await modbus.write(dev.id, points.request, 0).catch((err: unknown) => ({ status: 'failed' as const, reason: errorMessage(err) }));
      if (undo.status === 'verified') this.clear(dev.id, 'released', row.id);
      return recorder.update(current, 'failed', { ...failure(exp, cmd.program, points.request), withdrawn: undo.status === 'verified' }, { devices: [dev.id], reason: exp.reason });
    }
    const now = this.o.clock.now();
    const expiresAt = now + cmd.expiresInS * 1000;
    const renews = prior !== undefined && prior.program === cmd.program;
    this.clear(dev.id, renews ? 'renewed' : 'superseded', row.id);
    current = recorder.update(current, 'verified', { device: dev.id, program: cmd.program, expiresInS: cmd.expiresInS, expiresAt, renews: renews ? prior.row.id : null }, { devices: [dev.id], program: cmd.program, expiresAt });
    const timer = this.o.clock.setTimeout(() => this.lapsedSafely(dev.id, current.id), expiresAt - now);
    timer.unref?.();
    this.active.set(dev.id, { row: current, program: cmd.program, expiresAt, timer });
    return current;
  }

  private lapsedSafely(deviceId: string, commandId: string): void {
    try {
      this.lapsed(deviceId, commandId);
    } catch (err) {
      this.o.log.error({ err, device: deviceId, command: commandId }, 'control: recording a lapsed program request failed');
    }
  }

  /** The dead-man ran out without a renewal: the controller's own plan has resumed. */
  private lapsed(deviceId: string, commandId: string): void {
    const a = this.active.get(deviceId);
    if (!a || a.row.id !== commandId) return;
    this.active.delete(deviceId);
    const row = this.o.store.getCommand(commandId) ?? a.row;
    const result = { ...(typeof row.result === 'object' && row.result !== null ? row.result : {}), request: 'lapsed' };
    this.o.recorder.update(row, 'expired', result, { devices: [deviceId], program: a.program, reason: 'the dead-man expiry lapsed without renewal; the controller resumed its own plan' });
  }

  /** Ends the bookkeeping of the previous request of a device (renewed, superseded or released). */
  private clear(deviceId: string, how: string, by: string): void {
    const a = this.active.get(deviceId);
    if (!a) return;
    this.o.clock.clearTimeout(a.timer);
    this.active.delete(deviceId);
    const row = this.o.store.getCommand(a.row.id) ?? a.row;
    const result = { ...(typeof row.result === 'object' && row.result !== null ? row.result : {}), request: how, by };
    this.o.recorder.update(row, row.status, result);
  }

  private lastMode(deviceId: string): number | null {
    try {
      const point = this.o.catalog.device(deviceId)?.traffic?.mode;
      const v = point === undefined ? undefined : this.o.store.latest(deviceId).get(point);
      return v && v.quality === 'good' && typeof v.value === 'number' ? v.value : null;
    } catch {
      return null;
    }
  }
}

function modeRefusal(device: string, mode: number): string {
  return `mode: traffic controller ${device} is in mode ${mode} (${MODE_NAMES[mode] ?? 'unknown'}); it takes program requests only in fixed-time or vehicle-actuated mode`;
}

/** A read-back a little lower than written is the controller counting the dead-man down. */
function countdownOf(r: WriteResult, written: number): boolean {
  return r.code === 'E_MODBUS_VERIFY' && typeof r.readBack === 'number' && r.readBack <= written && r.readBack >= written - COUNTDOWN_SLACK_S;
}

function failure(r: WriteResult, program: number, requestPoint: string): Record<string, unknown> {
  let error = `${r.point}: ${r.reason ?? 'write failed'}`;
  if (r.point === requestPoint && /ILLEGAL DATA VALUE/i.test(r.reason ?? '')) error += ` (the controller does not know program ${program})`;
  if (/SERVER DEVICE BUSY|DEVICE BUSY/i.test(r.reason ?? '')) error += ' (the controller takes no requests in its current mode)';
  return { code: r.code ?? 'E_MODBUS_TRANSPORT', error };
}
