/**
 * The command pipeline behind every door (HTTP API, broker, central, Node-RED, CLI): validate,
 * resolve the target, authorise, apply the safety rules, record the row and answer with it at
 * once (`queued`, or `rejected` with the reason); the outcome follows on the bus and as events.
 *
 *   dim / on / off / override → a claim of the arbiter (lighting.ts), devices driven to wanted()
 *   release                   → the claim released (lights) or the program request (traffic)
 *   program                   → a traffic-controller program request with a dead-man (traffic.ts)
 *   write                     → a raw point write (technician only; never to a traffic controller)
 *
 * A rejected command sends nothing to any device. Every refusal, from whichever door, leaves through
 * one place (`rejected` in submit), where the refusal ledger (refusals.ts) bounds what is stored per
 * principal; the requester's answer is the same row either way.
 */
import { randomUUID } from 'node:crypto';
import type { Clock } from '../clock.js';
import type { ModbusDriver } from '../drivers/modbus/index.js';
import { errorMessage, StreetboxError, type ErrorCode } from '../errors.js';
import type { Logger } from '../log.js';
import type { Store } from '../store/api.js';
import type { CommandRecord, CommandStatus } from '../store/types.js';
import type { CommandService, CommandTargetRef } from './api.js';
import type { Target } from './arbiter.js';
import { TRAFFIC_EXPIRY_POINT, TRAFFIC_REQUEST_POINT, type Catalog, type CatalogDevice } from './catalog.js';
import { ControlError } from './errors.js';
import type { Lighting } from './lighting.js';
import type { CommandRecorder } from './record.js';
import type { RefusalLedger, RefusalSample } from './refusals.js';
import { can, type Principal } from './roles.js';
import type { Traffic } from './traffic.js';
import { parseBody, validateCommand, type ParsedCommand, type ProgramCommand, type WriteCommand } from './validate.js';

export interface PipelineParts {
  catalog: Catalog;
  lighting: Lighting;
  traffic: Traffic;
  modbus?: ModbusDriver | undefined;
}

interface Rejection {
  code: ErrorCode;
  error: string;
  field?: string | null;
}

const PAGE = 10_000;

const reject = (code: ErrorCode, error: string, field?: string | null): Rejection => (field === undefined ? { code, error } : { code, error, field });

export class CommandPipeline implements CommandService {
  private parts: PipelineParts | null = null;

  constructor(
    private readonly store: Store,
    private readonly recorder: CommandRecorder,
    private readonly clock: Clock,
    private readonly log: Logger,
    private readonly refusals: RefusalLedger,
  ) {}

  /** Attached by the component's start(); before that (and after stop) every command is rejected. */
  attach(parts: PipelineParts | null): void {
    this.parts = parts;
  }

  get(id: string): CommandRecord | undefined {
    return this.store.getCommand(id);
  }

  /** The most recent commands, newest first. */
  list(q: { limit: number; status?: CommandStatus }): CommandRecord[] {
    const limit = Math.max(1, Math.min(Math.floor(q.limit) || 1, 1000));
    const now = this.clock.now();
    const status = q.status !== undefined ? { status: q.status } : {};
    let tail: CommandRecord[] = [];
    // the store pages forwards by ts: look back in widening windows, keep the newest `limit`
    for (const back of [3_600_000, 86_400_000, 31 * 86_400_000, Infinity]) {
      tail = [];
      let after = back === Infinity ? -Infinity : now - back;
      for (let pages = 0; pages < 1000; pages++) {
        const page = this.store.listCommands({ after, limit: PAGE, ...status });
        tail = tail.concat(page).slice(-limit);
        if (page.length < PAGE) break;
        after = page.at(-1)!.ts;
      }
      if (tail.length >= limit) break;
    }
    return tail.reverse();
  }

  submit(target: CommandTargetRef, body: unknown, who: Principal): CommandRecord {
    const id = randomUUID();
    const tgt: Target = { kind: target.kind === 'group' ? 'group' : 'device', id: String(target.id) };
    const source = { role: who.role, principal: who.principal };
    const v = validateCommand(body);
    const base = { id, source, target: tgt };
    const rejected = (action: string, params: Record<string, unknown>, r: Rejection): CommandRecord => {
      const t = params.transaction;
      const transaction = typeof t === 'string' || typeof t === 'number' ? { transaction: t } : {};
      const result = { ...r, ...transaction };
      const sample: RefusalSample = { action, target: tgt, code: r.code, error: r.error, ...transaction };
      if (this.refusals.admit(source, sample)) {
        this.log.info({ command: id, target: tgt, action, code: r.code, error: r.error, principal: who.principal }, 'command rejected');
        return this.recorder.create({ ...base, action, params, status: 'rejected', result }, { code: r.code, error: r.error }, { refusal: true });
      }
      // counted in the principal's `command.rejected.suppressed` summary: the same row as the
      // store would have made, answered but not stored (GET /api/v1/commands/:id does not know it)
      const now = this.clock.now();
      return { ...base, ts: now, action, params, priority: 0, expiresAt: null, status: 'rejected', result, updatedAt: now };
    };
    if (!v.ok) {
      // keep the caller's correlation id even when the rest of the body is wrong
      const raw = parseBody(body);
      const t = raw.ok && raw.value !== null && typeof raw.value === 'object' ? (raw.value as { transaction?: unknown }).transaction : undefined;
      const params = (typeof t === 'string' && t.length <= 128) || typeof t === 'number' ? { transaction: t } : {};
      return rejected(v.action, params, reject('E_INVALID_COMMAND', v.error, v.field));
    }
    const cmd = v.command;
    const { action, ...params } = cmd;
    const parts = this.parts;
    if (!parts) return rejected(action, params, reject('E_COMPONENT', 'the control plane is not running'));
    try {
      const r = this.route(id, tgt, cmd, who, parts);
      if ('code' in r) return rejected(action, params, r);
      return r;
    } catch (err) {
      if (err instanceof StreetboxError) return rejected(action, params, reject(err.code, err.message));
      this.log.error({ err, command: id }, 'command pipeline failed');
      return rejected(action, params, reject('E_COMPONENT', errorMessage(err)));
    }
  }

  private route(id: string, tgt: Target, cmd: ParsedCommand, who: Principal, parts: PipelineParts): CommandRecord | Rejection {
    const { catalog } = parts;
    let devices: CatalogDevice[];
    if (tgt.kind === 'device') {
      const dev = catalog.device(tgt.id);
      if (!dev) return reject('E_NOT_FOUND', `target: unknown device "${tgt.id}"`, 'target');
      devices = [dev];
    } else {
      const members = catalog.members(tgt.id);
      if (!members) return reject('E_NOT_FOUND', `target: unknown group "${tgt.id}"`, 'target');
      devices = members.map((m) => catalog.device(m)!).filter(Boolean);
    }
    const { action, ...rest } = cmd;
    const params: Record<string, unknown> = { ...rest };
    const create = (extra: { priority?: number; expiresAt?: number | null; status?: CommandStatus; result?: unknown } = {}) =>
      this.recorder.create({ id, source: { ...who }, target: tgt, action, params, ...extra }, { devices: devices.map((d) => d.id) });

    if (cmd.action === 'program' || (cmd.action === 'release' && tgt.kind === 'device' && devices[0]!.kind === 'traffic')) {
      if (tgt.kind === 'group') return reject('E_INVALID_COMMAND', 'target: a program request goes to one traffic controller, not to a group', 'target');
      const dev = devices[0]!;
      const program: ProgramCommand = cmd.action === 'program' ? cmd : { action: 'program', program: 0, expiresInS: 1 };
      const refusal = parts.traffic.refusal(dev, program, who);
      if (refusal) return refusal;
      if (cmd.action === 'program' && cmd.dryRun) return create({ status: 'verified', result: parts.traffic.dryRunReport(dev, program) });
      const row = create({ expiresAt: program.program === 0 ? null : this.clock.now() + program.expiresInS * 1000 });
      void parts.traffic.execute(row, dev, program);
      return row;
    }

    if (cmd.action === 'write') return this.write(tgt, devices, cmd, who, parts, create);

    // lighting: dim, on, off, override, release
    if (!can(who.role, 'command.lighting')) return reject('E_FORBIDDEN', `role ${who.role} may not command lights (needs command.lighting)`);
    if (tgt.kind === 'device') {
      const dev = devices[0]!;
      if (dev.kind === 'traffic') return reject('E_INTERLOCK', `target: ${dev.id} is a traffic controller; it takes only "program" requests`, 'target');
      if (dev.kind !== 'lighting') return reject('E_INVALID_COMMAND', `target: ${dev.id} (profile ${dev.config.profile}) is not a light`, 'target');
    }
    const lights = devices.filter((d) => d.kind === 'lighting');
    const skipped = devices.filter((d) => d.kind !== 'lighting').map((d) => d.id);
    if (lights.length === 0) return reject('E_INVALID_COMMAND', `target: group "${tgt.id}" has no lights`, 'target');

    if (cmd.action === 'release') {
      const claim = parts.lighting.release(tgt, cmd, who);
      // the devices the released claim covered (a commandId may name a claim on another target)
      const covered = claim.target.kind === 'device' ? [claim.target.id] : (catalog.members(claim.target.id) ?? []);
      const affected = covered.map((m) => catalog.device(m)).filter((d): d is CatalogDevice => d?.kind === 'lighting');
      params.commandId = claim.id;
      const row = create();
      void this.driveLights(row, affected.length > 0 ? affected : lights, parts, skipped, { released: claim.id });
      return row;
    }
    const claim = parts.lighting.claim(id, tgt, cmd, who);
    let row: CommandRecord;
    try {
      row = create({ priority: claim.priority, expiresAt: claim.expiresAt });
    } catch (err) {
      parts.lighting.arbiter.release(claim.id);
      throw err;
    }
    void this.driveLights(row, lights, parts, skipped, {});
    return row;
  }

  private async driveLights(row: CommandRecord, lights: readonly CatalogDevice[], parts: PipelineParts, skipped: string[], extra: Record<string, unknown>): Promise<void> {
    const ids = lights.map((d) => d.id);
    let current = row;
    try {
      const out = await parts.lighting.driveFor(row, lights, () => {
        if (current.status === 'queued') current = this.recorder.update(current, 'sent', undefined, { devices: ids });
      });
      const latest = this.store.getCommand(row.id) ?? current;
      const prev = typeof latest.result === 'object' && latest.result !== null ? latest.result : {};
      const result = { ...prev, ...extra, devices: out.devices, ...(skipped.length > 0 ? { skipped } : {}) };
      // a claim that expired while its drive was under way keeps its row `expired`
      const status = latest.status === 'expired' && out.status === 'verified' ? 'expired' : out.status;
      const failedReasons = Object.entries(out.devices).filter(([, o]) => o.status !== 'verified').map(([d, o]) => `${d}: ${o.reason ?? o.status}`);
      this.recorder.update(latest, status, result, { devices: ids, ...(failedReasons.length > 0 ? { reason: failedReasons.slice(0, 10).join('; ') } : {}) });
    } catch (err) {
      this.log.error({ err, command: row.id }, 'light drive failed');
      this.recorder.update(current, 'failed', { code: 'E_COMPONENT', error: errorMessage(err) }, { devices: ids });
    }
  }

  private write(
    tgt: Target,
    devices: CatalogDevice[],
    cmd: WriteCommand,
    who: Principal,
    parts: PipelineParts,
    create: () => CommandRecord,
  ): CommandRecord | Rejection {
    if (tgt.kind === 'group') return reject('E_INVALID_COMMAND', 'target: a point write goes to one device, not to a group', 'target');
    const dev = devices[0]!;
    if (dev.kind === 'traffic') {
      if (cmd.point === TRAFFIC_REQUEST_POINT || cmd.point === TRAFFIC_EXPIRY_POINT) {
        return reject('E_INTERLOCK', `point: "${cmd.point}" of traffic controller ${dev.id} is written only by a program request ({"action":"program","program":n,"expiresInS":s})`, 'point');
      }
      try {
        parts.traffic.guardWrite(dev.id, cmd.point);
      } catch (err) {
        if (err instanceof ControlError) return reject(err.code, `point: ${err.message}`, 'point');
        throw err;
      }
    }
    if (!can(who.role, 'admin')) return reject('E_FORBIDDEN', `role ${who.role} may not write device points (technicians only)`);
    if (dev.transport !== 'modbus') return reject('E_INVALID_COMMAND', `target: ${dev.id} is a LoRaWAN node; it has no writable points (use dim, on or off)`, 'target');
    const point = dev.profile?.points.find((p) => p.name === cmd.point);
    if (!point) return reject('E_NOT_FOUND', `point: ${dev.id} (profile ${dev.config.profile}) has no point "${cmd.point}"`, 'point');
    if (point.access !== 'rw') return reject('E_FORBIDDEN', `point: "${cmd.point}" of ${dev.id} is read-only`, 'point');
    const modbus = parts.modbus;
    if (!modbus) return reject('E_COMPONENT', 'no Modbus driver is running');
    const row = create();
    void (async () => {
      const sent = this.recorder.update(row, 'sent', undefined, { devices: [dev.id] });
      const r = await modbus.write(dev.id, cmd.point, cmd.value);
      this.recorder.update(sent, r.status, { ...r }, { devices: [dev.id], ...(r.reason ? { reason: r.reason } : {}) });
    })().catch((err: unknown) => this.log.error({ err, command: row.id }, 'point write failed'));
    return row;
  }
}
