/**
 * The audit trail of the command pipeline: every command is a row in the store's `command`
 * table (the store emits it on the bus 'command'), and every change of its status is also an
 * event `command.<status>` carrying the command id, the device(s) and the source (DESIGN.md
 * "Data model"). A store failure is logged, never thrown into a driver callback. A command refused
 * at the door is written with `{ refusal: true }`: into the store's refusal share (quota.ts).
 */
import type { Logger } from '../log.js';
import type { Store, WriteOptions } from '../store/api.js';
import type { CommandRecord, CommandStatus, NewCommand, Severity } from '../store/types.js';

const SEVERITY: Record<CommandStatus, Severity> = {
  queued: 'info',
  sent: 'info',
  verified: 'info',
  failed: 'warning',
  expired: 'warning',
  rejected: 'warning',
};

export const FINAL: ReadonlySet<CommandStatus> = new Set(['verified', 'failed', 'expired', 'rejected']);

export class CommandRecorder {
  constructor(
    private readonly store: Store,
    private readonly log: Logger,
  ) {}

  /** Creates the row and records `command.<status>`. */
  create(cmd: NewCommand & { id: string }, detail: Record<string, unknown> = {}, opts: WriteOptions = {}): CommandRecord {
    const row = this.store.createCommand(cmd, opts);
    this.event(row, row.status, detail, opts);
    return row;
  }

  /** Changes the row's status (and result); a change of status is recorded as an event. */
  update(row: CommandRecord, status: CommandStatus, result?: unknown, detail: Record<string, unknown> = {}): CommandRecord {
    try {
      const next = this.store.updateCommand(row.id, status, result);
      if (status !== row.status) this.event(next, status, detail);
      return next;
    } catch (err) {
      this.log.error({ err, command: row.id, status }, 'command row not updated');
      return { ...row, status, result: result === undefined ? row.result : result };
    }
  }

  /** A `command.<status>` event for a row. */
  event(row: CommandRecord, status: CommandStatus, detail: Record<string, unknown> = {}, opts: WriteOptions = {}): void {
    this.append(row.target.kind === 'device' ? row.target.id : null, `command.${status}`, SEVERITY[status], {
      commandId: row.id,
      action: row.action,
      target: row.target,
      source: row.source,
      ...detail,
    }, opts);
  }

  append(device: string | null, kind: string, severity: Severity, detail: Record<string, unknown>, opts: WriteOptions = {}): void {
    try {
      this.store.appendEvent({ device, kind, severity, detail }, opts);
    } catch (err) {
      this.log.error({ err, kind, device }, 'control event not stored');
    }
  }
}
