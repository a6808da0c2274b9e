/**
 * A small in-test CommandService for the broker and API tests: the real command pipeline
 * (edge/control `createControl`) did not exist when these tests were written; the
 * doors are run on the real one in tests/broker/e2e.test.ts. This one records
 * every submit call, validates like the pipeline's contract says (never throws: a bad request
 * becomes a `rejected` row with `result: { code, error }`), writes real rows to the real store
 * (so the bus 'command' events are the store's own) and lets a test finish a command, which
 * settles the outcome `submit` returned.
 */
import type { CommandRequestBody, CommandService, CommandTargetRef, Principal, Submitted } from '../../../edge/control/api.js';
import { can } from '../../../edge/control/roles.js';
import type { Store } from '../../../edge/store/api.js';
import type { CommandRecord, CommandStatus } from '../../../edge/store/types.js';

export interface SubmitCall {
  target: CommandTargetRef;
  body: unknown;
  who: Principal;
  row: CommandRecord;
}

const ACTIONS = new Set(['dim', 'on', 'off', 'override', 'release', 'program']);

const FINAL = new Set<CommandStatus>(['verified', 'failed', 'expired', 'rejected']);

export class RecordingCommands implements CommandService {
  readonly calls: SubmitCall[] = [];
  private readonly outcomes = new Map<string, (row: CommandRecord) => void>();

  constructor(
    private readonly store: Store,
    private readonly known: { devices: Record<string, 'lighting' | 'traffic'>; groups: string[] },
  ) {}

  submit(target: CommandTargetRef, body: unknown, who: Principal): Submitted {
    const reject = (code: string, error: string): CommandRecord => {
      const b = body !== null && typeof body === 'object' ? (body as Record<string, unknown>) : {};
      const row = this.store.createCommand({
        source: who,
        target,
        action: typeof b['action'] === 'string' ? b['action'] : 'unknown',
        params: typeof b['transaction'] === 'string' ? { transaction: b['transaction'] } : {},
        status: 'rejected',
        result: { code, error },
      });
      return row;
    };
    let row: CommandRecord;
    if (body === null || typeof body !== 'object' || Array.isArray(body)) row = reject('E_INVALID_COMMAND', 'body: expected a JSON object');
    else {
      const b = body as CommandRequestBody;
      const kind = target.kind === 'device' ? this.known.devices[target.id] : this.known.groups.includes(target.id) ? 'lighting' : undefined;
      if (!ACTIONS.has(b.action)) row = reject('E_INVALID_COMMAND', `action: expected one of ${[...ACTIONS].join(', ')}`);
      else if (kind === undefined) row = reject('E_NOT_FOUND', `unknown ${target.kind} ${target.id}`);
      else if (!can(who.role, kind === 'traffic' ? 'command.traffic' : 'command.lighting')) row = reject('E_FORBIDDEN', `role ${who.role} may not command ${target.id}`);
      else if (b.level !== undefined && (typeof b.level !== 'number' || b.level < 0 || b.level > 100)) row = reject('E_INVALID_COMMAND', `level: expected 0..100, got ${String(b.level)}`);
      else {
        const { action, transaction, ...params } = b;
        row = this.store.createCommand({ source: who, target, action, params: transaction === undefined ? params : { ...params, transaction } });
      }
    }
    this.calls.push({ target, body, who, row });
    if (FINAL.has(row.status)) return { row, outcome: Promise.resolve(row) };
    return { row, outcome: new Promise((resolve) => this.outcomes.set(row.id, resolve)) };
  }

  get(id: string): CommandRecord | undefined {
    return this.store.getCommand(id);
  }

  list(q: { limit: number; status?: CommandStatus }): CommandRecord[] {
    return this.store.listCommands(q);
  }

  /** The outcome a driver would report. */
  finish(id: string, status: CommandStatus, result?: unknown): CommandRecord {
    const row = this.store.updateCommand(id, status, result);
    if (FINAL.has(status)) {
      this.outcomes.get(id)?.(row);
      this.outcomes.delete(id);
    }
    return row;
  }
}
