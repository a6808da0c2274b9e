/**
 * Every kind of event the gateway records, with the detail it carries: one table, so an emitter
 * cannot write a detail its readers do not expect and a reader decides on typed fields, never on
 * `detail as {…}`. The store writes the detail as JSON; DESIGN.md "Data model" names the kinds.
 *
 * Adding a kind: add it here (its detail type), emit it, and say in DESIGN.md who reads it.
 */
import type { ErrorCode } from '../errors.js';
import type { CommandSource, CommandTarget, Severity } from './vocabulary.js';
import type { ConfigEventDetail } from '../reconfig/records.js';
import type { FirmwareEventDetail } from '../firmware/records.js';

/** `command.<status>`: a command row changed status (control/record.ts). */
export interface CommandEventDetail {
  commandId: string;
  action: string;
  target: CommandTarget;
  source: CommandSource;
  /** the devices the command went to */
  devices?: string[];
  /** why a drive or a request failed or expired, in words (a rejection says it in `error`, with `code`) */
  reason?: string | undefined;
  code?: ErrorCode;
  error?: string;
  /** traffic program requests */
  program?: number;
  expiresAt?: number;
  /** a light claim that ended (lighting.ts claimEnded) */
  claim?: ClaimEnd;
  level?: number;
  priority?: number;
  endedAt?: number;
}

export type ClaimEnd = 'expired' | 'released' | 'superseded';

/**
 * `command.rejected` for a request refused at a door before it became a command row (central's
 * `down/commands` with no valid target or body): no commandId, the caller's transaction instead.
 */
export interface DoorRejectionDetail {
  transaction: string;
  source: CommandSource;
  code: ErrorCode;
  error: string;
  [extra: string]: unknown;
}

/** `command.released` / `command.superseded` / `command.expired` of a claim whose row is gone. */
export interface ClaimEndedDetail {
  commandId: string;
  target: CommandTarget;
  claim: ClaimEnd;
  level: number;
  priority: number;
  endedAt: number;
}

/** `command.rejected.suppressed`: a principal's refusals counted in one window, not stored one by one. */
export interface RefusalSummaryDetail {
  source: CommandSource;
  count: number;
  codes: Partial<Record<ErrorCode, number>>;
  from: number;
  to: number;
  windowMs: number;
  /** the first refusal of the window, clipped */
  sample: { action: string; target: CommandTarget; code: ErrorCode; error: string; transaction?: string | number };
  total: number;
}

export interface CommsDetail {
  bus: string;
  unit: number;
}

export interface CommsErrorDetail extends CommsDetail {
  code: string;
  error: string;
  /** a Modbus exception answer to one read block */
  exception?: string;
  exceptionCode?: number;
  function?: number;
  table?: string;
  address?: number;
  quantity?: number;
}

export interface AlarmDetail {
  alarm: string;
  point: string;
  value: number;
  bit?: number;
}

export interface DownlinkEventDetail {
  /** the downlink's id (enqueueDownlink); null for an answer that carried no queued command */
  id: string | null;
  action?: string;
  attempts?: number;
  attempt?: number;
  confirmed?: boolean;
  reason?: string;
  code?: string;
  error?: string;
  via?: 'ack' | 'report';
  window?: string;
  gateway?: string;
  fCntDown?: number;
  airtimeMs?: number;
  delayMs?: number;
}

export interface EventDetails {
  'command.queued': CommandEventDetail;
  'command.sent': CommandEventDetail;
  'command.verified': CommandEventDetail;
  'command.failed': CommandEventDetail;
  'command.expired': CommandEventDetail | ClaimEndedDetail;
  'command.rejected': CommandEventDetail | DoorRejectionDetail;
  'command.released': ClaimEndedDetail;
  'command.superseded': ClaimEndedDetail;
  'command.rejected.suppressed': RefusalSummaryDetail;
  'comms.error': CommsErrorDetail;
  'comms.lost': CommsDetail & { error: string };
  'comms.restored': CommsDetail & { offlineMs?: number };
  'alarm.raised': AlarmDetail;
  'alarm.cleared': AlarmDetail;
  'clock.jumped': { fromTs: number; toTs: number; deltaMs: number };
  'storage.dropped': { readings: number; unacknowledged: number; fromSeq: number; toSeq: number; consumers: Record<string, number>; reason: 'quota' | 'buffer-overflow' };
  'storage.corrupt': { movedTo: string; reason: string };
  'gateway.started': { pid: number; config: string };
  'gateway.stopped': Record<string, never>;
  /** a configuration change's stages (edge/reconfig/manager.ts), each with its principal */
  'config.staged': ConfigEventDetail;
  'config.rejected': ConfigEventDetail;
  'config.applied': ConfigEventDetail;
  'config.confirmed': ConfigEventDetail;
  'config.rolledBack': ConfigEventDetail;
  /** firmware deployments (edge/firmware/engine.ts): the deployment's status changes, each with its principal */
  'firmware.deployment.running': FirmwareEventDetail;
  'firmware.deployment.rejected': FirmwareEventDetail;
  'firmware.deployment.paused': FirmwareEventDetail;
  /** halted or cancelled (code says which) while jobs under way finish */
  'firmware.deployment.ending': FirmwareEventDetail;
  'firmware.deployment.completed': FirmwareEventDetail;
  'firmware.deployment.halted': FirmwareEventDetail;
  'firmware.deployment.cancelled': FirmwareEventDetail;
  /** the next wave started (wave: 1-based) */
  'firmware.deployment.wave': FirmwareEventDetail & { wave: number; of: number };
  /** a job's stages, one device each (device set on the event) */
  'firmware.job.fetching': FirmwareEventDetail;
  'firmware.job.transferring': FirmwareEventDetail;
  'firmware.job.activating': FirmwareEventDetail;
  'firmware.job.verifying': FirmwareEventDetail;
  'firmware.job.confirmed': FirmwareEventDetail;
  'firmware.job.failed': FirmwareEventDetail;
  'firmware.job.rolledBack': FirmwareEventDetail;
  'firmware.job.cancelled': FirmwareEventDetail;
  /** a job waits for a gate (night, window, program request, override); logged once per reason */
  'firmware.job.waiting': FirmwareEventDetail & { waiting: string };
  'lorawan.joined': { devEui: string; devAddr: string; devNonce: number; joinAcceptSent: boolean; gateway: string; [extra: string]: unknown };
  'lorawan.downlink.sent': DownlinkEventDetail;
  'lorawan.downlink.verified': DownlinkEventDetail;
  'lorawan.downlink.failed': DownlinkEventDetail;
  'lorawan.downlink.delayed': DownlinkEventDetail;
  'lorawan.downlink.missed': DownlinkEventDetail;
  'lorawan.tx_ack.error': { gateway: string; error: string; window: string; id: string | null; fallback: string | null };
  /** MAC commands (edge/drivers/lorawan/mac): a request answered, refused (NACK) or given up; an answer that makes no sense */
  'lorawan.mac.answered': MacEventDetail;
  'lorawan.mac.refused': MacEventDetail;
  'lorawan.mac.failed': MacEventDetail;
  'lorawan.mac.rejected': MacEventDetail;
  /** ADR changed what a node runs at (applied once it ACKed the LinkADRReq) */
  'lorawan.adr.changed': { fromDr: number; toDr: number; fromTxPower: number; toTxPower: number; nbTrans: number; snrMax: number; requiredSnr: number };
  /** a FUOTA session's steps (edge/firmware/methods/fuota): planned, setup, multicast, status, repair, reboot, ended */
  'fuota.session': FuotaEventDetail;
  /** one node's step in a FUOTA session (setup refused, fragments missing, repaired, version reported, …) */
  'fuota.node': FuotaEventDetail;
}

export interface MacEventDetail {
  command: string;
  reason?: string;
  attempts?: number;
  [extra: string]: unknown;
}

export interface FuotaEventDetail {
  deployment: string;
  session: string;
  step: string;
  [extra: string]: unknown;
}

export type EventKind = keyof EventDetails;

/** An event as an emitter hands it to the store: the kind decides the detail. */
export type NewEvent = {
  [K in EventKind]: { ts?: number; device?: string | null; kind: K; severity: Severity; detail: EventDetails[K] };
}[EventKind];

/** An event as stored and fanned out on the bus ('event'): switch on `kind` to read its detail. */
export type StoredEvent = {
  [K in EventKind]: { seq: number; ts: number; device: string | null; kind: K; severity: Severity; detail: EventDetails[K] };
}[EventKind];

/** The event of `kind` (for a reader that has already tested `e.kind === kind`). */
export type EventOf<K extends EventKind> = Extract<StoredEvent, { kind: K }>;

export function isEvent<K extends EventKind>(e: StoredEvent, kind: K): e is EventOf<K> {
  return e.kind === kind;
}
