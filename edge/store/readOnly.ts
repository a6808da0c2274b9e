/**
 * A read-only view of the buffer for the CLI (`streetbox status`, `streetbox export`): it opens
 * the file read-only beside a running gateway (WAL lets a reader in while it writes), never
 * migrates, never moves a file aside, never evicts.
 */
import { statSync } from 'node:fs';
import Database from 'better-sqlite3';
import type BetterSqlite3 from 'better-sqlite3';
import { errorMessage } from '../errors.js';
import { autonomyOf, measuredLoad, spaceUse } from './autonomy.js';
import type { EventQuery, ReadingQuery } from './api.js';
import { CommandRows } from './commands.js';
import { ConsumerTable } from './consumers.js';
import { StoreError, isCorruptionError } from './errors.js';
import { queryEvents } from './events.js';
import { loadPoints } from './latest.js';
import { hasRefusalTables, readableBy, schemaVersion, STORE_MIGRATIONS, STORE_MODULE } from './migrations.js';
import { PointRegistry } from './points.js';
import { ReadingPager, pageLimit } from './readings.js';
import type { CommandRecord, CommandStatus, Consumer, LatestValue, Page, Reading, StoreStats, StoredEvent } from './types.js';

export interface StoreView {
  readonly path: string;
  readings(q: ReadingQuery): Page<Reading>;
  events(q: EventQuery): Page<StoredEvent>;
  latest(device: string): Map<string, LatestValue>;
  latestAll(): Map<string, Map<string, LatestValue>>;
  getCommand(id: string): CommandRecord | undefined;
  listCommands(q: { after?: number; limit: number; status?: CommandStatus }): CommandRecord[];
  consumer(name: string): Consumer | undefined;
  consumers(): Consumer[];
  /** maxBytes is the quota the gateway last opened the file with */
  stats(): StoreStats;
  close(): void;
}

export function openStoreReadOnly(path: string): StoreView {
  let db: BetterSqlite3.Database | undefined;
  try {
    db = new Database(path, { readonly: true, fileMustExist: true });
    const version = schemaVersion(db, STORE_MODULE);
    // a newer schema whose additions this release can ignore reads as well (migrations.ts)
    const newerUnreadable = version > STORE_MIGRATIONS.length && (readableBy(db, STORE_MODULE) ?? Infinity) > STORE_MIGRATIONS.length;
    if (version === 0 || newerUnreadable) {
      throw new StoreError('E_STORE', `${path}: store schema version ${version}, this streetbox reads 1..${STORE_MIGRATIONS.length}`);
    }
    return new ReadOnlyStore(path, db);
  } catch (err) {
    db?.close();
    if (err instanceof StoreError) throw err;
    throw new StoreError(isCorruptionError(err) ? 'E_STORE_CORRUPT' : 'E_STORE', `cannot read ${path}: ${errorMessage(err)}`, { cause: err });
  }
}

class ReadOnlyStore implements StoreView {
  readonly path: string;
  private readonly db: BetterSqlite3.Database;
  private readonly points = new PointRegistry();
  private readonly pager: ReadingPager;
  private readonly commands: CommandRows;
  private readonly consumerTable: ConsumerTable;
  /** a file of schema 1 has no refusal tables */
  private readonly refusals: boolean;

  constructor(path: string, db: BetterSqlite3.Database) {
    this.path = path;
    this.db = db;
    this.pager = new ReadingPager(db, this.points);
    this.refusals = hasRefusalTables(db);
    this.commands = new CommandRows(db, this.refusals);
    this.consumerTable = new ConsumerTable(db);
  }

  readings(q: ReadingQuery): Page<Reading> {
    return this.pager.page(q, pageLimit(q.limit));
  }

  events(q: EventQuery): Page<StoredEvent> {
    return queryEvents(this.db, q, pageLimit(q.limit), this.refusals);
  }

  latest(device: string): Map<string, LatestValue> {
    return this.loadedPoints().latest(device);
  }

  latestAll(): Map<string, Map<string, LatestValue>> {
    const points = this.loadedPoints();
    const out = new Map<string, Map<string, LatestValue>>();
    for (const device of points.devices()) {
      const values = points.latest(device);
      if (values.size > 0) out.set(device, values);
    }
    return out;
  }

  getCommand(id: string): CommandRecord | undefined {
    return this.commands.get(id);
  }

  listCommands(q: { after?: number; limit: number; status?: CommandStatus }): CommandRecord[] {
    return this.commands.list(q.after ?? -Infinity, pageLimit(q.limit), q.status);
  }

  consumer(name: string): Consumer | undefined {
    return this.consumerTable.get(name);
  }

  consumers(): Consumer[] {
    return this.consumerTable.list();
  }

  stats(): StoreStats {
    const meta = new Map((this.db.prepare('SELECT key, value FROM meta').raw().all() as [string, number][]).map(([k, v]) => [k, v]));
    const one = (sql: string): number | null => this.db.prepare(sql).pluck().get() as number | null;
    const pageSize = one('PRAGMA page_size') ?? 4096;
    const refusalSeq = this.refusals ? (one('SELECT max(seq) FROM refusal_event') ?? 0) : 0;
    const refusalEvents = this.refusals ? (one('SELECT count(*) FROM refusal_event') ?? 0) : 0;
    const readings = one('SELECT count(*) FROM reading') ?? 0;
    const maxBytes = meta.get('max_bytes') ?? 0;
    // no gateway here to count what it stores: the load the readings' timestamps show
    const now = Date.now();
    const load = measuredLoad(this.db, now);
    return {
      lastSeq: Math.max(meta.get('last_seq') ?? 0, one('SELECT max(seq) FROM reading') ?? 0, one('SELECT max(seq) FROM event') ?? 0, refusalSeq),
      readings,
      events: (one('SELECT count(*) FROM event') ?? 0) + refusalEvents,
      commands: this.commands.count(),
      oldestReadingSeq: one('SELECT seq FROM reading ORDER BY seq LIMIT 1'),
      usedBytes: ((one('PRAGMA page_count') ?? 0) - (one('PRAGMA freelist_count') ?? 0)) * pageSize,
      fileBytes: fileSize(this.path) + fileSize(this.path + '-wal'),
      maxBytes,
      droppedTotal: meta.get('dropped_total') ?? 0,
      autonomy: autonomyOf(spaceUse(this.db, readings), maxBytes, load?.readingsPerDay ?? null, load?.fromMs ?? now),
    };
  }

  close(): void {
    if (this.db.open) this.db.close();
  }

  /** The latest values as the file has them now (snapshot plus the readings after it), on each call. */
  private loadedPoints(): PointRegistry {
    const points = new PointRegistry();
    const latestSeq = (this.db.prepare("SELECT value FROM meta WHERE key = 'latest_seq'").pluck().get() as number | undefined) ?? 0;
    loadPoints(this.db, points, latestSeq);
    return points;
  }
}

function fileSize(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}
