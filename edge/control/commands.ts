/**
 * The command pipeline behind every door (HTTP API, broker, central, Node-RED, CLI), read top to
 * bottom:
 *
 *   submit    validate the body (validate.ts), resolve the target to devices (catalog.ts)
 *   route     authorise and apply the safety rules of its kind, then hand it to its executor:
 *     program, or release of a traffic controller → traffic.submit (traffic.ts): refusal checks,
 *                  dry run, the row, the request with its dead-man
 *     write        → this.write below: the checks, the row, one point write (technicians only;
 *                  never to a traffic controller's signal points)
 *     dim / on / off / override / release → lighting.submit (lighting.ts): the claim of the arbiter,
 *                  the row, every affected light driven to wanted() (lightDriver.ts)
 *
 * Each executor returns `Submitted`: the row at once (status `queued`) and a promise of the row in
 * its final status; the executor records each step of the row (record.ts: queued, sent, a final
 * status, never backwards). A refused command sends nothing to any device; every refusal, from
 * whichever door, leaves through one place (refusals.ts `refuse`), which bounds what is stored per
 * principal; the requester's answer is the same `rejected` row either way.
 */
import { randomUUID } from 'node:crypto';
import type { Clock } from '../clock.js';
import type { ModbusDriver } from '../drivers/modbus/index.js';
import { errorMessage, StreetboxError, type ErrorCode } from '../errors.js';
import type { Logger } from '../log.js';
import type { Store } from '../store/api.js';
import type { CommandRecord, CommandStatus } from '../store/types.js';
import type { CommandTargetRef, Submitted } from './api.js';
import type { Target } from './arbiter.js';
import type { Catalog, CatalogDevice } from './catalog.js';
import { ControlError } from './errors.js';
import type { Lighting } from './lighting.js';
import type { CommandRecorder, CommandRequest } from './record.js';
import type { RefusalLedger, Rejection } from './refusals.js';
import { can, type Principal } from './roles.js';
import type { Traffic } from './traffic.js';
import { parseBody, validateCommand, type Validated, type WriteCommand } from './validate.js';

/** Everything the pipeline works with, given when it is built (controlComponent.ts start). */
export interface PipelineOptions {
  catalog: Catalog;
  lighting: Lighting;
  traffic: Traffic;
  modbus?: ModbusDriver | undefined;
  store: Store;
  recorder: CommandRecorder;
  refusals: RefusalLedger;
  clock: Clock;
  log: Logger;
}

const PAGE = 10_000;

const reject = (code: ErrorCode, error: string, field?: string | null): Rejection => (field === undefined ? { code, error } : { code, error, field });

const targetOf = (target: CommandTargetRef): Target => ({ kind: target.kind === 'group' ? 'group' : 'device', id: String(target.id) });

/** A refused command: its row, and an outcome already settled with it. */
const refused = (row: CommandRecord): Submitted => ({ row, outcome: Promise.resolve(row) });

/**
 * Refuses a body that failed validation (E_INVALID_COMMAND, whatever else is wrong), else with
 * `why`; the caller's correlation id is kept even when the rest of the body is wrong.
 */
function refuseBody(refusals: RefusalLedger, id: string, target: Target, who: Principal, body: unknown, v: Validated, why?: Rejection): Submitted {
  const source = { role: who.role, principal: who.principal };
  if (v.ok) {
    const { action, ...params } = v.command;
    return refused(refusals.refuse({ id, source, target, action, params }, why ?? reject('E_COMPONENT', 'refused')));
  }
  const raw = parseBody(body);
  const t = raw.ok && raw.value !== null && typeof raw.value === 'object' ? (raw.value as { transaction?: unknown }).transaction : undefined;
  const params = (typeof t === 'string' && t.length <= 128) || typeof t === 'number' ? { transaction: t } : {};
  return refused(refusals.refuse({ id, source, target, action: v.action, params }, reject('E_INVALID_COMMAND', v.error, v.field)));
}

/** What the control component answers while it is not running: every command refused (E_COMPONENT). */
export function refuseWhileStopped(refusals: RefusalLedger, target: CommandTargetRef, body: unknown, who: Principal): Submitted {
  return refuseBody(refusals, randomUUID(), targetOf(target), who, body, validateCommand(body), reject('E_COMPONENT', 'the control plane is not running'));
}

export class CommandPipeline {
  constructor(private readonly o: PipelineOptions) {}

  submit(target: CommandTargetRef, body: unknown, who: Principal): Submitted {
    const id = randomUUID();
    const tgt = targetOf(target);
    const v = validateCommand(body);
    if (!v.ok) return refuseBody(this.o.refusals, id, tgt, who, body, v);
    try {
      const devices = this.resolve(tgt);
      const r = 'code' in devices ? devices : this.route({ id, target: tgt, devices, command: v.command, who });
      return 'code' in r ? refuseBody(this.o.refusals, id, tgt, who, body, v, r) : r;
    } catch (err) {
      // a ControlError of an executor's checks (a claim above the role's ceiling, nothing to release …)
      if (err instanceof StreetboxError) return refuseBody(this.o.refusals, id, tgt, who, body, v, reject(err.code, err.message));
      this.o.log.error({ err, command: id }, 'command pipeline failed');
      return refuseBody(this.o.refusals, id, tgt, who, body, v, reject('E_COMPONENT', errorMessage(err)));
    }
  }

  /** The devices of the target: the device, or the members of the group. */
  private resolve(tgt: Target): CatalogDevice[] | Rejection {
    const { catalog } = this.o;
    if (tgt.kind === 'device') {
      const dev = catalog.device(tgt.id);
      return dev ? [dev] : reject('E_NOT_FOUND', `target: unknown device "${tgt.id}"`, 'target');
    }
    const members = catalog.members(tgt.id);
    if (!members) return reject('E_NOT_FOUND', `target: unknown group "${tgt.id}"`, 'target');
    return members.map((m) => catalog.device(m)).filter((d): d is CatalogDevice => d !== undefined);
  }

  /** Authorisation and safety by kind, then the executor of that kind. */
  private route(req: CommandRequest): Submitted | Rejection {
    const { command: cmd, target: tgt, devices, who } = req;
    if (cmd.action === 'program' || (cmd.action === 'release' && tgt.kind === 'device' && devices[0]!.kind === 'traffic')) {
      return this.o.traffic.submit({ ...req, command: cmd });
    }
    if (cmd.action === 'write') return this.write({ ...req, command: cmd });

    // lighting: dim, on, off, override, release
    if (!can(who.role, 'command.lighting')) return reject('E_FORBIDDEN', `role ${who.role} may not command lights (needs command.lighting)`);
    if (tgt.kind === 'device') {
      const dev = devices[0]!;
      if (dev.kind === 'traffic') return reject('E_INTERLOCK', `target: ${dev.id} is a traffic controller; it takes only "program" requests`, 'target');
      if (dev.kind !== 'lighting') return reject('E_INVALID_COMMAND', `target: ${dev.id} (profile ${dev.config.profile}) is not a light`, 'target');
    }
    if (!devices.some((d) => d.kind === 'lighting')) return reject('E_INVALID_COMMAND', `target: group "${tgt.id}" has no lights`, 'target');
    return this.o.lighting.submit({ ...req, command: cmd });
  }

  /** A raw point write: its checks, its row, the write read back (the Modbus driver verifies). */
  private write(req: CommandRequest<WriteCommand>): Submitted | Rejection {
    const { target: tgt, devices, command: cmd, who } = req;
    if (tgt.kind === 'group') return reject('E_INVALID_COMMAND', 'target: a point write goes to one device, not to a group', 'target');
    const dev = devices[0]!;
    if (dev.kind === 'traffic') {
      if (cmd.point === dev.traffic?.request || cmd.point === dev.traffic?.expiry) {
        return reject('E_INTERLOCK', `point: "${cmd.point}" of traffic controller ${dev.id} is written only by a program request ({"action":"program","program":n,"expiresInS":s})`, 'point');
      }
      try {
        this.o.traffic.guardWrite(dev.id, cmd.point);
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
    const modbus = this.o.modbus;
    if (!modbus) return reject('E_COMPONENT', 'no Modbus driver is running');
    const row = this.o.recorder.open(req);
    return { row, outcome: this.writePoint(row, dev, cmd, modbus) };
  }

  private async writePoint(row: CommandRecord, dev: CatalogDevice, cmd: WriteCommand, modbus: ModbusDriver): Promise<CommandRecord> {
    const { recorder } = this.o;
    try {
      const sent = recorder.update(row, 'sent', undefined, { devices: [dev.id] });
      const r = await modbus.write(dev.id, cmd.point, cmd.value);
      return recorder.update(sent, r.status, { ...r }, { devices: [dev.id], ...(r.reason ? { reason: r.reason } : {}) });
    } catch (err) {
      this.o.log.error({ err, command: row.id }, 'point write failed');
      return recorder.update(row, 'failed', { code: 'E_COMPONENT', error: errorMessage(err) }, { devices: [dev.id] });
    }
  }
}

/** The most recent commands, newest first. */
export function listCommands(store: Store, clock: Clock, q: { limit: number; status?: CommandStatus }): CommandRecord[] {
  const limit = Math.max(1, Math.min(Math.floor(q.limit) || 1, 1000));
  const now = clock.now();
  const status = q.status !== undefined ? { status: q.status } : {};
  let tail: CommandRecord[] = [];
  // the store pages forwards by ts: look back in widening windows, keep the newest `limit`
  for (const back of [3_600_000, 86_400_000, 31 * 86_400_000, Infinity]) {
    tail = [];
    let after = back === Infinity ? -Infinity : now - back;
    for (let pages = 0; pages < 1000; pages++) {
      const page = store.listCommands({ after, limit: PAGE, ...status });
      tail = tail.concat(page).slice(-limit);
      if (page.length < PAGE) break;
      after = page.at(-1)!.ts;
    }
    if (tail.length >= limit) break;
  }
  return tail.reverse();
}
