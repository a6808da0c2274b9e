/**
 * Commands from central (cloud-sync's `down/commands`) through the same control path as every
 * other door, with role `central`. The outcome published upstream is the command's final
 * status (verified, failed, expired, rejected), or its status after `waitMs` (on the gateway's
 * clock) if it is still under way then; every step is also recorded as `command.*` events, which
 * go upstream too.
 */
import type { CentralCommand, CommandHandler, CommandOutcome } from '../../cloud-sync/index.js';
import type { Clock } from '../clock.js';
import type { Store } from '../store/api.js';
import type { CommandRecord } from '../store/types.js';
import type { CommandService } from './api.js';

export interface CentralOptions {
  commands: CommandService;
  store: Store;
  clock: Clock;
  /** how long an outcome is awaited before the status of the moment is published (default 60 s) */
  waitMs?: number;
}

export function centralCommandHandler(o: CentralOptions): CommandHandler {
  const waitMs = o.waitMs ?? 60_000;
  return async (cmd: CentralCommand): Promise<CommandOutcome> => {
    const { id: _id, target, ...body } = cmd.message;
    // central's own door, or Home Assistant's set topics on the upstream broker (`upstream:homeassistant`)
    const principal = cmd.principal ?? 'upstream';
    const t = target as { kind?: unknown; id?: unknown } | null | undefined;
    if (typeof t !== 'object' || t === null || (t.kind !== 'device' && t.kind !== 'group') || typeof t.id !== 'string') {
      const error = 'target: expected { "kind": "device" | "group", "id": "<id>" }';
      // refused before it reached the pipeline: kept in the refusal share like every refusal (quota.ts)
      o.store.appendEvent({ kind: 'command.rejected', severity: 'warning', detail: { transaction: cmd.id, source: { role: 'central', principal }, code: 'E_INVALID_COMMAND', error } }, { refusal: true });
      return { id: cmd.id, status: 'rejected', code: 'E_INVALID_COMMAND', error };
    }
    const { row, outcome } = o.commands.submit({ kind: t.kind, id: t.id }, { transaction: cmd.id, ...body }, { role: 'central', principal });
    const final = await within(outcome, waitMs, o.clock, () => {
      try {
        return o.commands.get(row.id) ?? row;
      } catch {
        return row; // the store closing under a stopping gateway
      }
    });
    const out: CommandOutcome = { id: cmd.id, status: final.status, result: { commandId: final.id, ...((final.result as object | null) ?? {}) } };
    const r = final.result as { code?: CommandOutcome['code']; error?: string } | null;
    if (final.status === 'rejected' && r?.code) out.code = r.code;
    if (final.status === 'rejected' && r?.error) out.error = r.error;
    return out;
  };
}

/** The outcome, or the row as it stands after `ms` if the outcome has not come by then. */
function within(outcome: Promise<CommandRecord>, ms: number, clock: Clock, now: () => CommandRecord): Promise<CommandRecord> {
  return new Promise((resolve) => {
    const timer = clock.setTimeout(() => resolve(now()), ms);
    timer.unref?.();
    // the outcome never rejects (api.ts Submitted); a failure here would be a bug, answered with the row as it stands
    outcome.then(
      (row) => {
        clock.clearTimeout(timer);
        resolve(row);
      },
      () => {
        clock.clearTimeout(timer);
        resolve(now());
      },
    );
  });
}
