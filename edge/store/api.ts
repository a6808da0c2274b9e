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
  Severity,
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

/** The bounds of one history query: the work it may ask for (history.ts). */
export const HISTORY_LIMITS = {
  /** series per query */
  points: 32,
  buckets: 2000,
  rangeMs: 400 * 86_400_000,
} as const;

/** Per-bucket aggregates of a device's points over [from, to) (GET /api/v1/history). */
export interface HistoryQuery {
  device: string;
  /** point names; absent: every point of the device that has readings, the first HISTORY_LIMITS.points by name */
  points?: readonly string[];
  /** ms since the epoch; to > from, to - from at most HISTORY_LIMITS.rangeMs */
  from: number;
  to: number;
  /** 1..HISTORY_LIMITS.buckets; bucket i covers [from + i·step, from + (i+1)·step), step = ceil((to - from) / buckets) */
  buckets: number;
}

/**
 * One point's series, an entry per bucket. min/mean/max/last are null where the bucket has no good
 * reading (a gap, never a zero). Booleans are 0/1 (mean: the share of true); strings have `last`
 * only.
 */
export interface HistorySeries {
  point: string;
  /** of the point's rows with several units, the unit of its newest reading: the others' readings are not in the series */
  unit: string | null;
  type: 'number' | 'boolean' | 'string';
  /** bucket starts */
  t: number[];
  min: (number | null)[];
  mean: (number | null)[];
  max: (number | null)[];
  /** the value of the bucket's newest good reading (by ts, then seq) */
  last: (number | string | null)[];
  /** good readings */
  count: number[];
  /** readings of quality bad or stale */
  bad: number[];
}

export interface History {
  device: string;
  from: number;
  to: number;
  step: number;
  series: HistorySeries[];
}

/** The commands of a device's chart: those whose target is the device or one of `groups`, with ts in [from, to). */
export interface MarkQuery {
  device: string;
  groups: readonly string[];
  from: number;
  to: number;
  /** at most this many, newest first (default and bound 200) */
  limit?: number;
}

/** The bounds of one alarm query (history.ts AlarmSpansReader): a flapping alarm costs no more than this. */
export const ALARM_LIMITS = {
  /** alarms per answer: past it, the alarms last by name are left out */
  alarms: 50,
  /** spans per alarm: past it, the oldest are left out (counted in `dropped`) */
  spans: 200,
} as const;

/**
 * An alarm of a device over [from, to), from its alarm.raised / alarm.cleared events: each span
 * [start, end) clipped to the range (raised before `from`: it starts at `from`), end null when it
 * is still active at `to`. Oldest first.
 */
export interface AlarmSpans {
  /** the alarm's name (AlarmDetail.alarm) */
  name: string;
  /** of its newest alarm.raised event; null when none is left in the buffer (only its clear) */
  severity: Severity | null;
  spans: [start: number, end: number | null][];
  /** the oldest spans left out past ALARM_LIMITS.spans */
  dropped: number;
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
  /** Commands for a device's chart (MarkQuery), newest first; refusals at the door are not among them. */
  commandMarks(q: MarkQuery): CommandRecord[];

  /**
   * Per-bucket aggregates of a device's points, computed in SQLite over the buffer (history.ts).
   * Reads in slices and yields to the event loop between them. Throws StoreError E_USAGE for a
   * query past HISTORY_LIMITS, E_NOT_FOUND for a point the device has no readings of.
   */
  history(q: HistoryQuery): Promise<History>;
  /**
   * The device's alarms active at some time in [from, to), by name (AlarmSpans, bounded by
   * ALARM_LIMITS), from its alarm events with ts before `to`: one scan of the event table, in
   * slices with a yield to the event loop between them (history.ts AlarmSpansReader). Throws
   * StoreError E_USAGE for a range as history refuses it.
   */
  alarmSpans(device: string, from: number, to: number): Promise<AlarmSpans[]>;

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
