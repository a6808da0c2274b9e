/**
 * The SQLite buffer of DESIGN.md "Data model": readings, events, commands, consumer cursors and
 * the quota, in one better-sqlite3 connection. Readings and events share one seq space; seqs are
 * handed out from an in-memory counter that is also persisted (meta.last_seq) in every write
 * transaction, so a seq is never reused, not even after eviction deleted everything. Refused
 * requests (`WriteOptions.refusal`) are kept in tables of their own, the refusal share of the
 * quota (quota.ts), and read back with the rest.
 */
import { statSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import type BetterSqlite3 from 'better-sqlite3';
import type { EventBus } from '../bus.js';
import { systemClock, type Clock, type Timer } from '../clock.js';
import { errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import type { AlarmSpans, EventQuery, History, HistoryQuery, MarkQuery, ReadingQuery, Store, WriteOptions } from './api.js';
import { encodeFlags, encodeInto, storedValue } from './codec.js';
import { StoreError } from './errors.js';
import { STORE_MIGRATIONS, STORE_MODULE, applyMigrations, type Migration } from './migrations.js';
import { openDatabase } from './open.js';
import { PointRegistry, type PointEntry } from './points.js';
import { Quota, droppedEvent, type Eviction, type RefusalEviction } from './quota.js';
import { loadPoints, persistLatest } from './latest.js';
import { queryEvents } from './events.js';
import { ReadingPager, pageLimit } from './readings.js';
import { invalidReading } from './validate.js';
import { CommandRows } from './commands.js';
import { ConsumerTable } from './consumers.js';
import { AutonomyMeter } from './autonomy.js';
import { AlarmSpansReader, CommandMarks, HistoryReader, ReadingSpans } from './history.js';
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

export interface StoreOptions {
  path: string;
  maxBytes: number;
  durability: 'full' | 'normal';
  log: Logger;
  clock?: Clock;
  bus?: EventBus;
  /** how often the latest values are written to the `latest` table (default 5000 ms) */
  latestPersistMs?: number;
}

type Stmt = BetterSqlite3.Statement<unknown[], unknown>;
const DEFAULT_LATEST_PERSIST_MS = 5000;
/** readings per INSERT statement (5 parameters each, far below SQLITE_MAX_VARIABLE_NUMBER) */
const INSERT_CHUNK = 50;

export function openStore(opts: StoreOptions): SqliteStore {
  const clock = opts.clock ?? systemClock;
  const log = opts.log;
  const opened = openDatabase(opts.path, { durability: opts.durability, maxBytes: opts.maxBytes }, log, () => clock.now());
  try {
    applyMigrations(opened.db, STORE_MODULE, STORE_MIGRATIONS, clock.now(), log);
    const store = new SqliteStore(opts, opened.db, log, clock);
    store.load(opened.corrupt ? (opened.corrupt.oldMaxSeq ?? clock.now() * 1000) : 0);
    if (opened.corrupt) {
      store.appendEvent({
        kind: 'storage.corrupt',
        severity: 'error',
        detail: { movedTo: opened.corrupt.movedTo, reason: opened.corrupt.reason },
      });
    }
    store.startTimers();
    return store;
  } catch (err) {
    opened.db.close();
    throw err;
  }
}

export class SqliteStore implements Store {
  readonly path: string;
  /** The better-sqlite3 connection, for modules that keep their own tables (see `migrate`). */
  readonly sqlite: BetterSqlite3.Database;
  private readonly log: Logger;
  private readonly clock: Clock;
  private readonly bus: EventBus | undefined;
  private readonly latestPersistMs: number;
  private readonly points = new PointRegistry();
  private readonly quota: Quota;
  private readonly commands: CommandRows;
  private readonly consumerTable: ConsumerTable;
  private readonly autonomy: AutonomyMeter;
  private readonly spans: ReadingSpans;
  private readonly historyReader: HistoryReader;
  private readonly marks: CommandMarks;
  private readonly alarms: AlarmSpansReader;
  private lastSeq = 0;
  private readingCount = 0;
  private eventCount = 0;
  /** rows in the refusal share's tables */
  private refusalEvents = 0;
  private refusalCommands = 0;
  private droppedTotal = 0;
  private evictedTotal = 0;
  private closed = false;
  private latestTimer: Timer | undefined;
  /** reused between batches: the point of each row of the batch being appended */
  private batchPoints: PointEntry[] = [];

  private readonly begin: Stmt;
  private readonly commit: Stmt;
  private readonly rollback: Stmt;
  private readonly insReading: Stmt;
  private readonly insReadings: Stmt;
  private readonly insertArgs: unknown[] = new Array<unknown>(INSERT_CHUNK * 5);
  private readonly insPoint: Stmt;
  private readonly setMeta: Stmt;
  private readonly insEvent: Stmt;
  private readonly insRefusalEvent: Stmt;
  private readonly pager: ReadingPager;

  /** Use `openStore`: it opens, checks and migrates the file first. */
  constructor(opts: StoreOptions, db: BetterSqlite3.Database, log: Logger, clock: Clock) {
    this.path = opts.path;
    this.sqlite = db;
    this.log = log;
    this.clock = clock;
    this.bus = opts.bus;
    this.latestPersistMs = opts.latestPersistMs ?? DEFAULT_LATEST_PERSIST_MS;
    this.quota = new Quota(db, opts.maxBytes);
    this.commands = new CommandRows(db, true);
    this.consumerTable = new ConsumerTable(db);
    this.autonomy = new AutonomyMeter(db, clock, opts.maxBytes);
    this.begin = db.prepare('BEGIN');
    this.commit = db.prepare('COMMIT');
    this.rollback = db.prepare('ROLLBACK');
    this.insReading = db.prepare('INSERT INTO reading (seq, ts, point_id, value, flags) VALUES (?, ?, ?, ?, ?)');
    this.insReadings = db.prepare(
      `INSERT INTO reading (seq, ts, point_id, value, flags) VALUES ${new Array(INSERT_CHUNK).fill('(?, ?, ?, ?, ?)').join(', ')}`,
    );
    this.insPoint = db.prepare('INSERT INTO point (id, device, point, unit) VALUES (?, ?, ?, ?)');
    this.setMeta = db.prepare('UPDATE meta SET value = ? WHERE key = ?');
    this.insEvent = db.prepare('INSERT INTO event (seq, ts, device, kind, severity, detail) VALUES (?, ?, ?, ?, ?, ?)');
    this.insRefusalEvent = db.prepare('INSERT INTO refusal_event (seq, ts, device, kind, severity, detail) VALUES (?, ?, ?, ?, ?, ?)');
    this.pager = new ReadingPager(db, this.points);
    this.spans = new ReadingSpans(db);
    this.historyReader = new HistoryReader(db, this.points, this.spans);
    this.marks = new CommandMarks(db);
    this.alarms = new AlarmSpansReader(db);
  }

  /** @internal (openStore) Loads the seq counter, the points and the latest values. `minSeq`: continue after it (a moved-aside file). */
  load(minSeq: number): void {
    const db = this.sqlite;
    const meta = new Map((db.prepare('SELECT key, value FROM meta').raw().all() as [string, number][]).map(([k, v]) => [k, v]));
    const maxReading = (db.prepare('SELECT max(seq) FROM reading').pluck().get() as number | null) ?? 0;
    const maxEvent = (db.prepare('SELECT max(seq) FROM event').pluck().get() as number | null) ?? 0;
    const maxRefusal = (db.prepare('SELECT max(seq) FROM refusal_event').pluck().get() as number | null) ?? 0;
    this.lastSeq = Math.max(meta.get('last_seq') ?? 0, maxReading, maxEvent, maxRefusal, minSeq);
    this.droppedTotal = meta.get('dropped_total') ?? 0;
    this.evictedTotal = meta.get('evicted_total') ?? 0;
    this.readingCount = db.prepare('SELECT count(*) FROM reading').pluck().get() as number;
    this.eventCount = db.prepare('SELECT count(*) FROM event').pluck().get() as number;
    this.refusalEvents = db.prepare('SELECT count(*) FROM refusal_event').pluck().get() as number;
    this.refusalCommands = db.prepare('SELECT count(*) FROM refusal_command').pluck().get() as number;
    if (this.lastSeq > (meta.get('last_seq') ?? 0)) this.setMeta.run(this.lastSeq, 'last_seq');
    // for read-only views (the CLI), which do not know the configuration
    db.prepare("INSERT INTO meta (key, value) VALUES ('max_bytes', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value").run(this.quota.maxBytes);

    loadPoints(db, this.points, meta.get('latest_seq') ?? 0);
    this.spans.load(this.lastSeq);
  }

  /** @internal (openStore) */
  startTimers(): void {
    const tick = (): void => {
      this.latestTimer = undefined;
      if (this.closed) return;
      try {
        this.persistLatest();
      } catch (err) {
        this.log.warn({ err }, 'writing the latest values failed; retrying');
      }
      this.latestTimer = this.clock.setTimeout(tick, this.latestPersistMs);
      this.latestTimer.unref?.();
    };
    this.latestTimer = this.clock.setTimeout(tick, this.latestPersistMs);
    this.latestTimer.unref?.();
  }

  // ---- readings ------------------------------------------------------------------------

  appendReadings(rows: readonly NewReading[]): CommitResult {
    this.assertOpen();
    const n = rows.length;
    const firstSeq = this.lastSeq + 1;
    if (n === 0) return { count: 0, firstSeq, lastSeq: this.lastSeq };
    for (let i = 0; i < n; i++) {
      const why = invalidReading(rows[i]);
      if (why) throw new StoreError('E_USAGE', `reading ${i}: ${why}`);
    }
    const batchPoints = this.batchPoints.length >= n ? this.batchPoints : (this.batchPoints = new Array<PointEntry>(n));
    const args = this.insertArgs;
    let added: PointEntry[] | undefined;
    let seq = this.lastSeq;
    try {
      this.begin.run();
      // INSERT_CHUNK rows per statement through one reused argument array: far fewer calls into
      // SQLite than a statement per row, and no allocation per row.
      let o = 0;
      for (let i = 0; i < n; i++) {
        const r = rows[i] as NewReading;
        const unit = r.unit ?? null;
        let p = this.points.find(r.device, r.point, unit);
        if (p === undefined) {
          p = this.points.add(this.points.nextId, r.device, r.point, unit);
          (added ??= []).push(p);
          this.insPoint.run(p.id, r.device, r.point, unit);
        }
        batchPoints[i] = p;
        args[o++] = ++seq;
        args[o++] = r.ts;
        args[o++] = p.id;
        o = encodeInto(args, o, r.value, r.quality); // the compact form (codec.ts)
        if (o === args.length) {
          this.insReadings.run(args);
          o = 0;
        }
      }
      for (let k = 0; k < o; k += 5) this.insReading.run(args[k], args[k + 1], args[k + 2], args[k + 3], args[k + 4]);
      this.spans.update(seq);
      this.setMeta.run(seq, 'last_seq');
      this.commit.run();
    } catch (err) {
      if (this.sqlite.inTransaction) this.rollback.run();
      if (added) for (const p of added) this.points.remove(p);
      this.spans.reload();
      throw new StoreError('E_STORE', `appending ${n} readings failed: ${errorMessage(err)}`, { cause: err });
    }
    this.lastSeq = seq;
    this.readingCount += n;
    this.autonomy.add(n);
    // The latest values, in place: committed now.
    for (let i = 0, s = firstSeq; i < n; i++, s++) {
      const r = rows[i] as NewReading;
      const p = batchPoints[i] as PointEntry;
      if (s > p.seq) {
        p.seq = s;
        p.ts = r.ts;
        p.value = storedValue(r.value);
        p.flags = encodeFlags(r.value, r.quality);
      }
    }
    return { count: n, firstSeq, lastSeq: seq };
  }

  readings(q: ReadingQuery): Page<Reading> {
    this.assertOpen();
    return this.pager.page(q, pageLimit(q.limit));
  }

  async history(q: HistoryQuery): Promise<History> {
    this.assertOpen();
    return this.historyReader.read(q, this.lastSeq, () => this.assertOpen());
  }

  async alarmSpans(device: string, from: number, to: number): Promise<AlarmSpans[]> {
    this.assertOpen();
    return this.alarms.read(device, from, to, this.lastSeq, () => this.assertOpen());
  }

  observe(readings: readonly NewReading[]): void {
    this.assertOpen();
    for (let i = 0; i < readings.length; i++) {
      const r = readings[i] as NewReading;
      if (invalidReading(r) === null) this.points.observe(r);
    }
  }

  latest(device: string): Map<string, LatestValue> {
    this.assertOpen();
    return this.points.latest(device);
  }

  latestAll(): Map<string, Map<string, LatestValue>> {
    this.assertOpen();
    const out = new Map<string, Map<string, LatestValue>>();
    for (const device of this.points.devices()) {
      const values = this.points.latest(device);
      if (values.size > 0) out.set(device, values);
    }
    return out;
  }

  /** Writes the latest value of every point that changed since the last snapshot. */
  persistLatest(): void {
    if (!this.closed) persistLatest(this.sqlite, this.points, this.lastSeq);
  }

  // ---- events --------------------------------------------------------------------------

  appendEvent(event: NewEvent, opts: WriteOptions = {}): StoredEvent {
    this.assertOpen();
    const stored = this.insertEvents([event], opts.refusal === true)[0] as StoredEvent;
    this.quotaAfterWrite();
    this.bus?.emit('event', stored);
    return stored;
  }

  events(q: EventQuery): Page<StoredEvent> {
    this.assertOpen();
    return queryEvents(this.sqlite, q, pageLimit(q.limit), true);
  }

  /** Inserts events in one transaction (or inside the caller's); `refusal`: in the refusal share. */
  private insertEvents(events: readonly NewEvent[], refusal = false): StoredEvent[] {
    const out: StoredEvent[] = [];
    const insert = refusal ? this.insRefusalEvent : this.insEvent;
    let seq = this.lastSeq;
    const write = this.sqlite.transaction(() => {
      for (const e of events) {
        // the kind and its detail travel together from the emitter's NewEvent (eventKinds.ts)
        const stored: StoredEvent = { ...e, seq: ++seq, ts: e.ts ?? this.clock.now(), device: e.device ?? null };
        insert.run(stored.seq, stored.ts, stored.device, stored.kind, stored.severity, JSON.stringify(stored.detail));
        out.push(stored);
      }
      this.setMeta.run(seq, 'last_seq');
    });
    try {
      write();
    } catch (err) {
      throw new StoreError('E_STORE', `appending an event failed: ${errorMessage(err)}`, { cause: err });
    } finally {
      if (refusal) this.quota.refusalsChanged();
    }
    this.lastSeq = seq;
    if (refusal) this.refusalEvents += out.length;
    else this.eventCount += out.length;
    return out;
  }

  // ---- commands ------------------------------------------------------------------------

  createCommand(cmd: NewCommand, opts: WriteOptions = {}): CommandRecord {
    this.assertOpen();
    const now = this.clock.now();
    const record: CommandRecord = {
      id: cmd.id ?? randomUUID(),
      ts: cmd.ts ?? now,
      source: cmd.source,
      target: cmd.target,
      action: cmd.action,
      params: cmd.params ?? {},
      priority: cmd.priority ?? 0,
      expiresAt: cmd.expiresAt ?? null,
      status: cmd.status ?? 'queued',
      result: cmd.result ?? null,
      updatedAt: now,
    };
    const refusal = opts.refusal === true;
    try {
      this.commands.insert(record, refusal);
    } finally {
      if (refusal) this.quota.refusalsChanged();
    }
    if (refusal) this.refusalCommands++;
    this.quotaAfterWrite();
    this.bus?.emit('command', record);
    return record;
  }

  updateCommand(id: string, status: CommandStatus, result?: unknown): CommandRecord {
    this.assertOpen();
    const record = this.commands.update(id, status, result, this.clock.now());
    if (!record) throw new StoreError('E_NOT_FOUND', `no command ${id}`);
    this.bus?.emit('command', record);
    return record;
  }

  getCommand(id: string): CommandRecord | undefined {
    this.assertOpen();
    return this.commands.get(id);
  }

  /** Commands with ts > `after` (ms), oldest first. */
  listCommands(q: { after?: number; limit: number; status?: CommandStatus }): CommandRecord[] {
    this.assertOpen();
    return this.commands.list(q.after ?? -Infinity, pageLimit(q.limit), q.status);
  }

  commandMarks(q: MarkQuery): CommandRecord[] {
    this.assertOpen();
    return this.marks.list(q, (id) => this.commands.main.get(id));
  }

  // ---- consumers -----------------------------------------------------------------------

  registerConsumer(name: string, startAt?: number): Consumer {
    this.assertOpen();
    return this.consumerTable.register(name, startAt ?? 0, this.lastSeq, this.clock.now());
  }

  ackConsumer(name: string, seq: number): Consumer {
    this.assertOpen();
    return this.consumerTable.acknowledge(name, seq, this.lastSeq, this.clock.now());
  }

  consumer(name: string): Consumer | undefined {
    this.assertOpen();
    return this.consumerTable.get(name);
  }

  consumers(): Consumer[] {
    this.assertOpen();
    return this.consumerTable.list();
  }

  removeConsumer(name: string): boolean {
    this.assertOpen();
    return this.consumerTable.remove(name);
  }

  // ---- quota, stats, lifecycle ----------------------------------------------------------

  enforceQuota(): void {
    this.assertOpen();
    if (!this.quota.overQuota()) return;
    const consumers = this.consumers();
    // Deleting ~5 % of the file writes about as much to the WAL: start it empty and empty it
    // again after, so the file plus its WAL stays within the quota + 5 %.
    this.checkpoint();
    let refused: RefusalEviction | null = null;
    let eviction: Eviction | null = null;
    let dropped: StoredEvent | undefined;
    try {
      this.sqlite.transaction(() => {
        // refusal records first: their share is counted apart, so this never touches the rest
        refused = this.quota.evictRefusals();
        eviction = this.quota.evict(consumers, this.readingCount + this.eventCount);
        if (!eviction) return;
        // the span index of the blocks evicted goes with them (history.ts)
        if (eviction.readings > 0) this.spans.trim();
        if (eviction.unacknowledged > 0) {
          this.setMeta.run(this.droppedTotal + eviction.unacknowledged, 'dropped_total');
          dropped = this.insertEvents([droppedEvent(eviction)])[0];
        }
        this.setMeta.run(this.evictedTotal + eviction.readings, 'evicted_total');
      })();
    } catch (err) {
      // rolled back: the refusal tables are as they were, not as last measured
      this.quota.refusalsChanged();
      throw err;
    }
    this.checkpoint();
    const rf = refused as RefusalEviction | null;
    if (rf) {
      this.refusalEvents -= rf.events;
      this.refusalCommands -= rf.commands;
      this.log.debug({ ...rf, maxBytes: this.quota.refusalMax }, 'quota: refusal records evicted');
    }
    const ev = eviction as Eviction | null;
    if (!ev) return;
    this.readingCount -= ev.readings;
    this.eventCount -= ev.events;
    this.droppedTotal += ev.unacknowledged;
    this.evictedTotal += ev.readings;
    const level = ev.unacknowledged > 0 || ev.events > 0 || ev.commands > 0 ? 'warn' : 'debug';
    this.log[level]({ ...ev, maxBytes: this.quota.mainMax }, 'quota: evicted');
    if (dropped) this.bus?.emit('event', dropped);
  }

  /**
   * Applies the ordered migrations of another module (the LoRaWAN driver's sessions, …) once,
   * tracking its version in schema_version. Returns how many were applied now.
   */
  migrate(module: string, migrations: readonly Migration[]): number {
    this.assertOpen();
    if (module === STORE_MODULE) throw new StoreError('E_USAGE', `module name "${STORE_MODULE}" is the store's own`);
    return applyMigrations(this.sqlite, module, migrations, this.clock.now(), this.log);
  }

  stats(): StoreStats {
    this.assertOpen();
    const { refusalEvents, refusalCommands } = this;
    return {
      lastSeq: this.lastSeq,
      readings: this.readingCount,
      events: this.eventCount + refusalEvents,
      commands: this.commands.main.count() + refusalCommands,
      oldestReadingSeq: (this.sqlite.prepare('SELECT seq FROM reading ORDER BY seq LIMIT 1').pluck().get() as number | undefined) ?? null,
      usedBytes: this.quota.usedBytes(),
      fileBytes: fileSize(this.path) + fileSize(this.path + '-wal'),
      maxBytes: this.quota.maxBytes,
      droppedTotal: this.droppedTotal,
      refusals: { events: refusalEvents, commands: refusalCommands, usedBytes: this.quota.refusalBytes(), maxBytes: this.quota.refusalMax },
      autonomy: this.autonomy.measure(this.readingCount),
    };
  }

  /** Readings evicted by the quota so far, acknowledged or not (for /metrics). */
  get evicted(): number {
    return this.evictedTotal;
  }

  get isOpen(): boolean {
    return !this.closed;
  }

  close(): void {
    if (this.closed) return;
    if (this.latestTimer) this.clock.clearTimeout(this.latestTimer);
    this.latestTimer = undefined;
    try {
      this.persistLatest();
    } catch (err) {
      this.log.warn({ err }, 'writing the latest values at close failed');
    }
    try {
      this.sqlite.pragma('wal_checkpoint(TRUNCATE)');
    } catch (err) {
      this.log.warn({ err }, 'checkpoint at close failed');
    }
    this.closed = true;
    this.sqlite.close();
  }

  /** Events and commands count against the quota too; a failure here must not fail their write. */
  private quotaAfterWrite(): void {
    try {
      this.enforceQuota();
    } catch (err) {
      this.log.error({ err }, 'applying the quota failed');
    }
  }

  private checkpoint(): void {
    try {
      this.sqlite.pragma('wal_checkpoint(TRUNCATE)');
    } catch (err) {
      this.log.debug({ err }, 'checkpoint failed');
    }
  }

  private assertOpen(): void {
    if (this.closed) throw new StoreError('E_STORE', `store ${this.path} is closed`);
  }
}


function fileSize(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}
