/**
 * The store as the other components use it. Implemented by `SqliteStore` (store.ts);
 * readings normally enter through the batched writer (`Ingest`, writer.ts).
 */
import type {
  CommandRecord,
  CommandStatus,
  CommitResult,
  Consumer,
  LatestValue,
  NewCommand,
  NewEvent,
  NewReading,
  Page,
  Reading,
  StoreStats,
  StoredEvent,
} from './types.js';

export interface ReadingQuery {
  after: number;
  limit: number;
  device?: string;
}

export interface EventQuery {
  after: number;
  limit: number;
  device?: string;
  kind?: string;
}

/** Where a record is kept in the quota (quota.ts). */
export interface WriteOptions {
  /**
   * A refused request (a command refused at the door, the events about refusals): kept in the
   * refusal share, evicted first, never at the expense of a reading, an event or a genuine command.
   * Read back like any other record (same seq space, same getCommand / events).
   */
  refusal?: boolean;
}

export interface Store {
  readonly path: string;
  /** Appends readings in one transaction; they are committed when this returns. */
  appendReadings(rows: readonly NewReading[]): CommitResult;
  /** Appends one event, committed when this returns. */
  appendEvent(event: NewEvent, opts?: WriteOptions): StoredEvent;
  readings(q: ReadingQuery): Page<Reading>;
  events(q: EventQuery): Page<StoredEvent>;
  /**
   * Polled values the report strategies did not store: they become the latest value of their
   * point in memory (its ts, value and quality; seq stays the last stored reading's). A point
   * that has no stored reading yet is left alone.
   */
  observe(readings: readonly NewReading[]): void;
  /** Latest value of every point of a device (or of all devices): the last polled one (see observe). */
  latest(device: string): Map<string, LatestValue>;
  latestAll(): Map<string, Map<string, LatestValue>>;

  createCommand(cmd: NewCommand, opts?: WriteOptions): CommandRecord;
  updateCommand(id: string, status: CommandStatus, result?: unknown): CommandRecord;
  getCommand(id: string): CommandRecord | undefined;
  listCommands(q: { after?: number; limit: number; status?: CommandStatus }): CommandRecord[];

  /** Creates the consumer if it does not exist (cursor at 0 or at `startAt`). */
  registerConsumer(name: string, startAt?: number): Consumer;
  /** Moves a consumer's cursor forward (never backward); returns the consumer. */
  ackConsumer(name: string, seq: number): Consumer;
  consumer(name: string): Consumer | undefined;
  consumers(): Consumer[];
  removeConsumer(name: string): boolean;

  stats(): StoreStats;
  /** Applies the quota now (the writer does it after each commit). */
  enforceQuota(): void;
  /** Writes buffered state and closes the database. Idempotent. */
  close(): void;
}

/** The common ingest path: drivers and simulators push readings here, never into the store directly. */
export interface Ingest {
  push(reading: NewReading): void;
  pushMany(readings: readonly NewReading[]): void;
  /** Commits whatever is buffered now; resolves with what was committed (null if nothing). */
  flush(): CommitResult | null;
  /** Readings waiting for the next commit. */
  readonly pending: number;
}
