/**
 * The audit trail of the command pipeline: every command is a row in the store's `command`
 * table (the store emits it on the bus 'command'), and every change of its status is also an
 * event `command.<status>` carrying the command id, the device(s) and the source (DESIGN.md
 * "Data model"). A store failure is logged, never thrown into a driver callback. A command refused
 * at the door is written with `{ refusal: true }`: into the store's refusal share (quota.ts).
 *
 * Statuses only move forward (DESIGN.md "Requests and their outcomes"): queued, then sent, then a
 * final one. `update` reads the stored row first, so a late step (a drive's "sent" after its claim
 * expired, a stale copy of the row) never takes a row back; every observer of the bus ('command')
 * sees each command's statuses in order.
 */
import type { Logger } from '../log.js';
import type { Store, WriteOptions } from '../store/api.js';
import type { CommandEventDetail } from '../store/eventKinds.js';
import type { CommandRecord, CommandStatus, NewCommand, NewEvent, Severity } from '../store/types.js';
import { statusRank } from './api.js';
import type { CatalogDevice } from './catalog.js';
import type { Principal } from './roles.js';
import type { Target } from './arbiter.js';
import type { ParsedCommand } from './validate.js';

const SEVERITY: Record<CommandStatus, Severity> = {
  queued: 'info',
  sent: 'info',
  verified: 'info',
  failed: 'warning',
  expired: 'warning',
  rejected: 'warning',
};

/** What a step adds to its `command.<status>` event beyond the row's own id, action, target and source. */
export type StepDetail = Omit<Partial<CommandEventDetail>, 'commandId' | 'action' | 'target' | 'source'>;

/**
 * A command that passed validation, with its target resolved, as the pipeline hands it to the
 * executor of its kind (lighting.ts, traffic.ts, the point write in commands.ts).
 */
export interface CommandRequest<C extends ParsedCommand = ParsedCommand> {
  id: string;
  target: Target;
  /** the target's devices (one for a device; a group's members) */
  devices: readonly CatalogDevice[];
  command: C;
  who: Principal;
}

/** What an executor may set on the row it opens (status `queued` unless given). */
export interface RowFields {
  priority?: number;
  expiresAt?: number | null;
  status?: CommandStatus;
  result?: unknown;
  /** replaces the command's own params (a release records the claim it released) */
  params?: Record<string, unknown>;
}

export class CommandRecorder {
  constructor(
    private readonly store: Store,
    private readonly log: Logger,
  ) {}

  /** Creates the row and records `command.<status>`. */
  create(cmd: NewCommand & { id: string }, detail: StepDetail = {}, opts: WriteOptions = {}): CommandRecord {
    const row = this.store.createCommand(cmd, opts);
    this.event(row, row.status, detail, opts);
    return row;
  }

  /** The row of a request that passed every check, and its `command.<status>` event. */
  open(req: CommandRequest, fields: RowFields = {}): CommandRecord {
    const { action, ...own } = req.command;
    const { params = own, ...rest } = fields;
    return this.create({ id: req.id, source: { role: req.who.role, principal: req.who.principal }, target: req.target, action, params, ...rest }, { devices: req.devices.map((d) => d.id) });
  }

  /**
   * Changes the row's status (and result); a change of status is recorded as an event. A status
   * behind the stored one is not applied: with no result the call changes nothing, with one only
   * the result is written.
   */
  update(row: CommandRecord, status: CommandStatus, result?: unknown, detail: StepDetail = {}): CommandRecord {
    try {
      const stored = this.store.getCommand(row.id) ?? row;
      if (statusRank(status) < statusRank(stored.status)) {
        if (result === undefined) return stored;
        status = stored.status;
      }
      const next = this.store.updateCommand(row.id, status, result);
      if (status !== stored.status) this.event(next, status, detail);
      return next;
    } catch (err) {
      this.log.error({ err, command: row.id, status }, 'command row not updated');
      return { ...row, status, result: result === undefined ? row.result : result };
    }
  }

  /** A `command.<status>` event for a row. */
  event(row: CommandRecord, status: CommandStatus, detail: StepDetail = {}, opts: WriteOptions = {}): void {
    const full: CommandEventDetail = { commandId: row.id, action: row.action, target: row.target, source: row.source, ...detail };
    this.append({ device: row.target.kind === 'device' ? row.target.id : null, kind: `command.${status}`, severity: SEVERITY[status], detail: full }, opts);
  }

  /** Any other event of the control plane (a claim's end, a refusal summary); a store failure is logged. */
  append(event: NewEvent, opts: WriteOptions = {}): void {
    try {
      this.store.appendEvent(event, opts);
    } catch (err) {
      this.log.error({ err, kind: event.kind, device: event.device }, 'control event not stored');
    }
  }
}
