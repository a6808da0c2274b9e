/**
 * Commands from central (cloud-sync's `down/commands`) through the same control path as every
 * other door, with role `central`. The outcome published upstream is the command's final
 * status (verified, failed, expired, rejected), or its status after `waitMs` if it is still
 * under way then; every step is also recorded as `command.*` events, which go upstream too.
 */
import type { CentralCommand, CommandHandler, CommandOutcome } from '../../cloud-sync/index.js';
import type { EventBus } from '../bus.js';
import type { Store } from '../store/api.js';
import type { CommandRecord } from '../store/types.js';
import type { CommandService } from './api.js';

const FINAL = new Set(['verified', 'failed', 'expired', 'rejected']);

export function centralCommandHandler(commands: CommandService, bus: EventBus, store: Store, opts: { waitMs?: number } = {}): CommandHandler {
  const waitMs = opts.waitMs ?? 60_000;
  return async (cmd: CentralCommand): Promise<CommandOutcome> => {
    const { id: _id, target, ...body } = cmd.message;
    const t = target as { kind?: unknown; id?: unknown } | null | undefined;
    if (typeof t !== 'object' || t === null || (t.kind !== 'device' && t.kind !== 'group') || typeof t.id !== 'string') {
      const error = 'target: expected { "kind": "device" | "group", "id": "<id>" }';
      // refused before it reached the pipeline: kept in the refusal share like every refusal (quota.ts)
      store.appendEvent({ kind: 'command.rejected', severity: 'warning', detail: { transaction: cmd.id, source: { role: 'central', principal: 'upstream' }, code: 'E_INVALID_COMMAND', error } }, { refusal: true });
      return { id: cmd.id, status: 'rejected', code: 'E_INVALID_COMMAND', error };
    }
    const row = commands.submit({ kind: t.kind, id: t.id }, { transaction: cmd.id, ...body }, { role: 'central', principal: 'upstream' });
    const final = FINAL.has(row.status) ? row : await settled(bus, commands, row, waitMs);
    const outcome: CommandOutcome = { id: cmd.id, status: final.status, result: { commandId: final.id, ...(final.result as object | null ?? {}) } };
    const r = final.result as { code?: CommandOutcome['code']; error?: string } | null;
    if (final.status === 'rejected' && r?.code) outcome.code = r.code;
    if (final.status === 'rejected' && r?.error) outcome.error = r.error;
    return outcome;
  };
}

function settled(bus: EventBus, commands: CommandService, row: CommandRecord, waitMs: number): Promise<CommandRecord> {
  return new Promise((resolve) => {
    const owner = {};
    const done = (r: CommandRecord): void => {
      clearTimeout(timer);
      bus.off(owner);
      resolve(r);
    };
    const timer = setTimeout(() => done(commands.get(row.id) ?? row), waitMs);
    bus.on(owner, 'command', (r) => {
      if (r.id === row.id && FINAL.has(r.status)) done(r);
    });
    // it may have settled between submit and now
    const now = commands.get(row.id);
    if (now && FINAL.has(now.status)) done(now);
  });
}
