/** The data model of DESIGN.md, as the rest of the gateway sees it. */
import type { CommandSource, CommandTarget } from './vocabulary.js';

export type { CommandSource, CommandTarget, Role, Severity } from './vocabulary.js';

export type Quality = 'good' | 'stale' | 'bad';
export type Value = number | boolean | string | null;

export interface NewReading {
  /** ms since the epoch, UTC */
  ts: number;
  device: string;
  point: string;
  /** null only when quality is bad (a failed read has no value) */
  value: Value;
  unit?: string | null;
  quality?: Quality;
}

export interface Reading {
  /** monotonic, never reused; readings and events share one seq space */
  seq: number;
  ts: number;
  device: string;
  point: string;
  value: Value;
  unit: string | null;
  quality: Quality;
}


export type { EventDetails, EventKind, EventOf, NewEvent, StoredEvent } from './eventKinds.js';

export type CommandStatus = 'queued' | 'sent' | 'verified' | 'failed' | 'expired' | 'rejected';

/** Every command status, in the order a command moves through them (the final ones last). */
export const COMMAND_STATUSES: readonly CommandStatus[] = ['queued', 'sent', 'verified', 'failed', 'expired', 'rejected'];

/** The statuses a command ends in: its outcome. */
export const FINAL_STATUSES: ReadonlySet<CommandStatus> = new Set(['verified', 'failed', 'expired', 'rejected']);

export function isCommandStatus(s: unknown): s is CommandStatus {
  return typeof s === 'string' && (COMMAND_STATUSES as readonly string[]).includes(s);
}

export interface NewCommand {
  id?: string;
  ts?: number;
  source: CommandSource;
  target: CommandTarget;
  action: string;
  params?: Record<string, unknown>;
  priority?: number;
  expiresAt?: number | null;
  status?: CommandStatus;
  /** a row created final (a rejected command) carries its result at once */
  result?: unknown;
}

export interface CommandRecord {
  id: string;
  ts: number;
  source: CommandSource;
  target: CommandTarget;
  action: string;
  params: Record<string, unknown>;
  priority: number;
  expiresAt: number | null;
  status: CommandStatus;
  result: unknown;
  updatedAt: number;
}

export interface Page<T> {
  items: T[];
  /** the seq to pass as `after` for the next page (the last seq returned, or `after` when empty) */
  next: number;
}

export interface CommitResult {
  count: number;
  firstSeq: number;
  lastSeq: number;
}

export interface Consumer {
  name: string;
  /** everything with seq <= ackedSeq has been acknowledged by this consumer */
  ackedSeq: number;
  updatedAt: number;
}

export interface LatestValue {
  seq: number;
  ts: number;
  value: Value;
  unit: string | null;
  quality: Quality;
}

export interface StoreStats {
  lastSeq: number;
  readings: number;
  events: number;
  commands: number;
  oldestReadingSeq: number | null;
  /** bytes in use by data pages (what the quota counts) */
  usedBytes: number;
  /** size on disk of the database file plus its WAL */
  fileBytes: number;
  maxBytes: number;
  droppedTotal: number;
  /** the refusal share of the quota (quota.ts); absent for a file of schema 1; its records are counted in events and commands too */
  refusals?: RefusalStats;
  /** how long the buffer would hold readings offline at the load measured (autonomy.ts) */
  autonomy: Autonomy;
}

/**
 * The buffer's offline autonomy as the store measures it: how many days of readings fit in
 * maxBytes at the load of this run.
 */
export interface Autonomy {
  /** bytes one stored reading takes in the reading table (measured, or a default until enough rows) */
  bytesPerReading: number;
  /** readings stored per day at the load measured; null until enough time has been measured */
  readingsPerDay: number | null;
  /** days of readings that fit in maxBytes less the events, commands and the refusal share; null while readingsPerDay is */
  days: number | null;
  /** ms since the epoch (store clock) from which readingsPerDay is measured */
  measuredSinceMs: number;
}

export interface RefusalStats {
  events: number;
  commands: number;
  /** pages of the refusal tables, in bytes */
  usedBytes: number;
  /** the share of maxBytes kept for them */
  maxBytes: number;
}
