/**
 * The control plane as its front doors (HTTP API, embedded broker, cloud-sync commands from
 * central, Node-RED, the CLI) see it. Implemented by the command pipeline (commands.ts).
 *
 * A request is validated, authorised, recorded as a command row and answered at once with
 * that row (status `queued`, or `rejected` with the reason) and a promise of its outcome
 * (`verified`, `failed`, `expired`, `rejected`): the door that submitted awaits that promise. Every
 * change of status also goes on the bus ('command') and is recorded as an event `command.*`, for
 * observers (broker, API live feed, sync, flows).
 */
import { FINAL_STATUSES, type CommandRecord, type CommandStatus } from '../store/types.js';
import type { Principal } from './roles.js';

export type { Principal };

/** The JSON body of a command, as it arrives on any door (before validation). */
export interface CommandRequestBody {
  action: 'dim' | 'on' | 'off' | 'override' | 'release' | 'program';
  /** dim / override: 0..100 */
  level?: number;
  /** dim: ramp time in seconds */
  rampS?: number;
  /** override (and optionally dim): how long it holds, seconds */
  durationS?: number;
  priority?: number;
  reason?: string;
  /** release: the command id of the override to release (default: the caller's own on that target) */
  commandId?: string;
  /** program (traffic controllers): the program number or mode name to request */
  program?: number | string;
  /** program: dead-man expiry in seconds; renew before it lapses */
  expiresInS?: number;
  /** program: only say whether it would be accepted */
  dryRun?: boolean;
  /** a caller's correlation id, echoed in the result (Zigbee2MQTT's `transaction`) */
  transaction?: string;
}

export interface CommandTargetRef {
  kind: 'device' | 'group';
  id: string;
}

/**
 * A command as submitted: its row at once (status `queued`, or `rejected` with
 * `result: { code, error }`; its id is what 202 returns), and a promise of the row in its first
 * final status (verified, failed, expired, rejected). The promise never rejects; for a rejected
 * command it is already resolved with the same row.
 */
export interface Submitted {
  row: CommandRecord;
  outcome: Promise<CommandRecord>;
}

/**
 * Where a status stands on a command's road: queued 0, sent 1, a final one 2 (verified, failed,
 * expired, rejected). Statuses only move forward; a door that may see a row twice (from submit and
 * from the bus) drops the one behind what it already showed.
 */
export function statusRank(status: CommandStatus): number {
  return FINAL_STATUSES.has(status) ? 2 : status === 'sent' ? 1 : 0;
}

export interface CommandService {
  /** Validates, authorises, records and runs a command; never throws for bad input. */
  submit(target: CommandTargetRef, body: unknown, who: Principal): Submitted;
  get(id: string): CommandRecord | undefined;
  list(q: { limit: number; status?: CommandStatus }): CommandRecord[];
}
