/**
 * The control plane as its front doors (HTTP API, embedded broker, cloud-sync commands from
 * central, Node-RED, the CLI) see it. Implemented by the command pipeline (commands.ts).
 *
 * A request is validated, authorised, recorded as a command row and answered at once with
 * that row (status `queued`, or `rejected` with the reason); the outcome (`verified`,
 * `failed`, `expired`) follows asynchronously on the bus ('command') and as events
 * `command.*`, so every door reports it the same way.
 */
import type { CommandRecord, CommandStatus } from '../store/types.js';
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

export interface CommandService {
  /**
   * Validates, authorises and records a command; never throws for bad input (the returned
   * row is `rejected` with `result: { code, error }`). The row's id is what 202 returns.
   */
  submit(target: CommandTargetRef, body: unknown, who: Principal): CommandRecord;
  get(id: string): CommandRecord | undefined;
  list(q: { limit: number; status?: CommandStatus }): CommandRecord[];
}
