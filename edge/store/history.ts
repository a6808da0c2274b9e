/**
 * The history of a device's points (GET /api/v1/history): per bucket min, mean, max, last, count
 * and bad, computed in SQLite over the buffer; and the commands its charts mark.
 *
 * The index is a block range index, `reading_span` (migration 4): per block of SPAN_SEQS seqs, the
 * oldest and newest ts of its readings. Readings are appended in seq order and their ts follows
 * it closely, so the blocks of a time range are a few runs of consecutive blocks, read as rowid
 * ranges of the reading table (a late reading or a clock that jumped widens its block's span:
 * that block is read by more queries, never missed). Not a B-tree on (point_id, ts): measured on
 * a 2-CPU x86 with the rows and commits of bench/ingest.ts (1000 points, 1000 readings a commit),
 * it took the insert loop from ~1.5 M to ~75 k readings/s (each commit dirties a 4 KiB leaf of the
 * index per point: up to 4 MB of WAL per commit) and ~19.5 bytes per reading beside the row's ~23
 * (the buffer's autonomy nearly halved), where the span index is one row of ~20 bytes per 1024
 * seqs, written once per completed block. The price is paid at read time: a query reads every
 * reading of its time range, all the points asked for in one pass (bench/history.ts measures it on
 * a full 256 MiB buffer).
 *
 * A query reads in slices of at most SLICE_SEQS seqs, one aggregate per slice grouped by point,
 * bucket and flags (so every value is aggregated as stored: a scaled integer is divided by its
 * scale once per group, not per row), and yields to the event loop between slices: a week's chart
 * of a full buffer takes about half a second of CPU on a 2-CPU x86, which must not hold a LoRaWAN
 * receive window or a Modbus poll. `last` is the row of the bucket's highest good seq when it has
 * the bucket's newest good ts (readings arrive in ts order), else the newest good row at that ts,
 * looked up through the spans.
 */
import type BetterSqlite3 from 'better-sqlite3';
import { ALARM_LIMITS, HISTORY_LIMITS, type AlarmSpans, type History, type HistoryQuery, type HistorySeries, type MarkQuery } from './api.js';
import { SCALES, SCALE_SHIFT, TYPE_BOOLEAN, TYPE_MASK, TYPE_NUMBER, TYPE_STRING, decodeValue } from './codec.js';
import { StoreError } from './errors.js';
import type { PointEntry, PointRegistry } from './points.js';
import type { CommandRecord, Severity } from './types.js';

type Stmt = BetterSqlite3.Statement<unknown[], unknown>;

/** a block of the span index is seq >> SPAN_BITS */
export const SPAN_BITS = 10;
export const SPAN_SEQS = 2 ** SPAN_BITS;
/** seqs read by one statement: about 3 ms on a 2-CPU x86, 20 ms on a Raspberry Pi 4 */
export const SLICE_SEQS = 32 * SPAN_SEQS;
/** marks per chart */
export const MAX_MARKS = 200;
/** seqs of `last` rows looked up per statement */
const LOOKUP_BATCH = 2000;

const QUALITY_MASK = 3;
const SCALE_MASK = 3 << SCALE_SHIFT;

/** A range of seqs, both ends included. */
export type SeqRange = [lo: number, hi: number];

/** The block of a seq (seqs pass 2^31: no bitwise operators in JS). */
function blockOf(seq: number): number {
  return Math.floor(seq / SPAN_SEQS);
}

/**
 * The span index: summarises each block once it is complete (all its seqs handed out, so its
 * readings are all written), at open for the blocks not summarised yet, and after each commit of
 * readings for the blocks it completed. Every query reads the seqs past the last summarised block
 * (the tail: the current block, and the seqs events took since the last commit of readings).
 */
export class ReadingSpans {
  /** the first seq not summarised: the tail starts here */
  private end = 0;
  private readonly summarise: Stmt;
  private readonly nextReading: Stmt;
  private readonly lastBlock: Stmt;
  private readonly firstReading: Stmt;
  private readonly trimBelow: Stmt;
  private readonly meeting: Stmt;

  constructor(db: BetterSqlite3.Database) {
    // a block at a time: a GROUP BY over many blocks would sort them (3.3 s of CPU for 9.9 M
    // readings at the first open after migration 4 on a 2-CPU x86, against 0.9 s this way)
    this.summarise = db.prepare(
      `INSERT OR REPLACE INTO reading_span (block, min_ts, max_ts)
       SELECT ?, min(ts), max(ts) FROM reading WHERE seq >= ? AND seq < ? HAVING min(ts) IS NOT NULL`,
    );
    this.nextReading = db.prepare('SELECT seq FROM reading WHERE seq >= ? ORDER BY seq LIMIT 1').pluck();
    this.lastBlock = db.prepare('SELECT max(block) FROM reading_span').pluck();
    this.firstReading = db.prepare('SELECT seq FROM reading ORDER BY seq LIMIT 1').pluck();
    this.trimBelow = db.prepare('DELETE FROM reading_span WHERE block < ?');
    this.meeting = db.prepare('SELECT block FROM reading_span WHERE max_ts >= ? AND min_ts < ? ORDER BY block').pluck();
  }

  /**
   * At open: the blocks completed since the last summarised one (every block, the first time after
   * migration 4; after a rollback, those the previous release wrote), and the spans of evicted
   * blocks dropped (a previous release evicts without them).
   */
  load(lastSeq: number): void {
    this.reload();
    this.trim();
    this.update(lastSeq);
  }

  /** The tail as the database has it (after a rolled back commit). */
  reload(): void {
    const last = this.lastBlock.get() as number | null;
    this.end = last === null ? 0 : (last + 1) * SPAN_SEQS;
  }

  /** In the transaction that appended readings up to `lastSeq`: summarises the blocks now complete. */
  update(lastSeq: number): void {
    const complete = blockOf(lastSeq + 1);
    for (let b = blockOf(this.end); b < complete; ) {
      if (this.summarise.run(b, b * SPAN_SEQS, (b + 1) * SPAN_SEQS).changes > 0) {
        b++;
        continue;
      }
      // a block without readings (events only, or a jump of the seqs): on to the next reading's
      const next = this.nextReading.get((b + 1) * SPAN_SEQS) as number | undefined;
      b = next === undefined ? complete : Math.max(b + 1, blockOf(next));
    }
    if (complete * SPAN_SEQS > this.end) this.end = complete * SPAN_SEQS;
  }

  /** After eviction (in its transaction): drops the spans of the blocks before the first reading left. */
  trim(): void {
    const first = this.firstReading.get() as number | undefined;
    this.trimBelow.run(blockOf(first ?? this.end));
  }

  /**
   * The seq ranges that hold every reading with ts in [from, to): the runs of consecutive blocks
   * whose span meets it, then the tail up to `lastSeq`.
   */
  ranges(from: number, to: number, lastSeq: number): SeqRange[] {
    const out: SeqRange[] = [];
    const add = (lo: number, hi: number): void => {
      const prev = out[out.length - 1];
      if (prev !== undefined && prev[1] === lo - 1) prev[1] = hi;
      else out.push([lo, hi]);
    };
    for (const block of this.meeting.iterate(from, to) as Iterable<number>) add(block * SPAN_SEQS, (block + 1) * SPAN_SEQS - 1);
    if (lastSeq >= this.end) add(this.end, lastSeq);
    return out;
  }
}

/** `ranges` cut into slices of at most `size` seqs. */
function* slices(ranges: readonly SeqRange[], size = SLICE_SEQS): Iterable<SeqRange> {
  for (const [lo, hi] of ranges) {
    for (let a = lo; a <= hi; a += size) yield [a, Math.min(hi, a + size - 1)];
  }
}

/** A group of the slice aggregate: one point, one bucket, one flags value (quality, type, scale). */
type GroupRow = [pointId: number, bucket: number, flags: number, min: unknown, max: unknown, total: number, values: number, rows: number, maxTs: number, maxSeq: number];

/** The per-bucket accumulators of one series. */
class Buckets {
  readonly min: Float64Array;
  readonly max: Float64Array;
  readonly sum: Float64Array;
  /** numeric values summed */
  readonly values: Float64Array;
  readonly count: Float64Array;
  readonly bad: Float64Array;
  /** newest ts and highest seq among the good readings */
  readonly lastTs: Float64Array;
  readonly lastSeq: Float64Array;
  readonly last: (number | string | null)[];
  /** the type bits (1 << type >> 2) seen among the good readings */
  types = 0;

  constructor(
    readonly entry: PointEntry,
    n: number,
  ) {
    this.min = new Float64Array(n).fill(Infinity);
    this.max = new Float64Array(n).fill(-Infinity);
    this.sum = new Float64Array(n);
    this.values = new Float64Array(n);
    this.count = new Float64Array(n);
    this.bad = new Float64Array(n);
    this.lastTs = new Float64Array(n).fill(-Infinity);
    this.lastSeq = new Float64Array(n).fill(-1);
    this.last = new Array<number | string | null>(n).fill(null);
  }

  add(g: GroupRow): void {
    const i = Math.floor(g[1]);
    const flags = g[2];
    if ((flags & QUALITY_MASK) !== 0) {
      this.bad[i] = (this.bad[i] as number) + g[7];
      return;
    }
    const type = flags & TYPE_MASK;
    this.types |= 1 << (type >> 2);
    this.count[i] = (this.count[i] as number) + g[7];
    if (g[8] > (this.lastTs[i] as number)) this.lastTs[i] = g[8];
    if (g[9] > (this.lastSeq[i] as number)) this.lastSeq[i] = g[9];
    if ((type !== TYPE_NUMBER && type !== TYPE_BOOLEAN) || g[6] === 0) return;
    // decoded as decodeValue does: the stored integer over 10^k, once per group
    const scale = SCALES[(flags & SCALE_MASK) >> SCALE_SHIFT] as number;
    const min = Number(g[3]) / scale;
    const max = Number(g[4]) / scale;
    if (min < (this.min[i] as number)) this.min[i] = min;
    if (max > (this.max[i] as number)) this.max[i] = max;
    this.sum[i] = (this.sum[i] as number) + g[5] / scale;
    this.values[i] = (this.values[i] as number) + g[6];
  }

  type(): HistorySeries['type'] {
    let types = this.types;
    // nothing good in the range: the type of the point's latest value
    if (types === 0) types = 1 << ((this.entry.flags & TYPE_MASK) >> 2);
    if (types & (1 << (TYPE_STRING >> 2))) return 'string';
    if (types === 1 << (TYPE_BOOLEAN >> 2)) return 'boolean';
    return 'number';
  }

  series(from: number, step: number): HistorySeries {
    const n = this.count.length;
    const type = this.type();
    const numeric = type !== 'string';
    const s: HistorySeries = { point: this.entry.point, unit: this.entry.unit, type, t: [], min: [], mean: [], max: [], last: [], count: [], bad: [] };
    for (let i = 0; i < n; i++) {
      const values = this.values[i] as number;
      const has = numeric && values > 0;
      s.t.push(from + i * step);
      s.min.push(has ? (this.min[i] as number) : null);
      s.mean.push(has ? (this.sum[i] as number) / values : null);
      s.max.push(has ? (this.max[i] as number) : null);
      s.last.push(this.last[i] ?? null);
      s.count.push(this.count[i] as number);
      s.bad.push(this.bad[i] as number);
    }
    return s;
  }
}

/** The value of a good row as a series of `type` shows it: booleans 0/1, text in a string series, null for what JSON cannot hold. */
function shown(value: unknown, flags: number, type: HistorySeries['type']): number | string | null {
  const v = decodeValue(value, flags);
  if (type === 'string') return v === null ? null : String(v);
  if (typeof v === 'boolean') return v ? 1 : 0;
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
}

const yieldToLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** The history query over the reading table and its span index. */
export class HistoryReader {
  private readonly db: BetterSqlite3.Database;
  private readonly points: PointRegistry;
  private readonly spans: ReadingSpans;
  /** the slice aggregate per number of point ids */
  private readonly aggregates = new Map<number, Stmt>();
  private readonly rowsBySeq: Stmt;
  private readonly newestAt: Stmt;

  constructor(db: BetterSqlite3.Database, points: PointRegistry, spans: ReadingSpans) {
    this.db = db;
    this.points = points;
    this.spans = spans;
    this.rowsBySeq = db.prepare('SELECT seq, ts, value, flags FROM reading WHERE seq IN (SELECT value FROM json_each(?))').raw();
    this.newestAt = db
      .prepare(`SELECT seq, value, flags FROM reading WHERE seq BETWEEN ? AND ? AND point_id = ? AND ts = ? AND flags & ${QUALITY_MASK} = 0 ORDER BY seq DESC LIMIT 1`)
      .raw();
  }

  /**
   * Reads `q` over the seqs up to `lastSeq`; `check` runs after each yield (throws once the store
   * is closed).
   */
  async read(q: HistoryQuery, lastSeq: number, check: () => void): Promise<History> {
    const { from, to, buckets } = checked(q);
    const step = Math.ceil((to - from) / buckets);
    const series = this.seriesOf(q, buckets);
    const byId = new Map(series.map((s) => [s.entry.id, s]));
    if (series.length > 0) {
      const aggregate = this.aggregate(series.length);
      const ids = series.map((s) => s.entry.id);
      const f = BigInt(from);
      const st = BigInt(step);
      for (const [lo, hi] of slices(this.spans.ranges(from, to, lastSeq))) {
        for (const g of aggregate.iterate(f, st, lo, hi, ...ids, from, to) as Iterable<GroupRow>) byId.get(g[0])?.add(g);
        await yieldToLoop();
        check();
      }
      for (const s of series) {
        this.lastValues(s, lastSeq);
        await yieldToLoop();
        check();
      }
    }
    return { device: q.device, from, to, step, series: series.map((s) => s.series(from, step)) };
  }

  /**
   * The points asked for, each under the unit of its newest reading (a point with rows for
   * several units: the others are left out, never mixed into one axis); none asked: every point
   * of the device that has readings, the first HISTORY_LIMITS.points by name.
   */
  private seriesOf(q: HistoryQuery, buckets: number): Buckets[] {
    const latest = this.points.latest(q.device);
    const names = q.points ?? [...latest.keys()].sort().slice(0, HISTORY_LIMITS.points);
    const out: Buckets[] = [];
    for (const name of new Set(names)) {
      const unit = latest.get(name)?.unit;
      const entry = unit === undefined ? undefined : this.points.find(q.device, name, unit);
      if (entry === undefined) throw new StoreError('E_NOT_FOUND', `device ${q.device} has no readings of point "${name}"`);
      out.push(new Buckets(entry, buckets));
    }
    return out;
  }

  /**
   * One slice: its readings of the points, grouped by point, bucket and flags. Aggregates of the
   * stored column (min, max and total of the integers of one scale) decode in one division.
   */
  private aggregate(n: number): Stmt {
    let stmt = this.aggregates.get(n);
    if (!stmt) {
      stmt = this.db
        .prepare(
          `SELECT point_id, (ts - ?) / ? AS b, flags, min(value), max(value), total(value), count(value), count(*), max(ts), max(seq)
           FROM reading
           WHERE seq BETWEEN ? AND ? AND point_id IN (${new Array(n).fill('?').join(', ')}) AND ts >= ? AND ts < ?
           GROUP BY point_id, b, flags`,
        )
        .raw();
      this.aggregates.set(n, stmt);
    }
    return stmt;
  }

  /** Fills `last`: the row of each bucket's highest good seq when it has the bucket's newest good ts, else the newest good row at that ts. */
  private lastValues(s: Buckets, lastSeq: number): void {
    const type = s.type();
    const wanted = new Map<number, number>();
    for (let i = 0; i < s.count.length; i++) if ((s.lastSeq[i] as number) >= 0) wanted.set(s.lastSeq[i] as number, i);
    const seqs = [...wanted.keys()];
    const found = new Set<number>();
    for (let k = 0; k < seqs.length; k += LOOKUP_BATCH) {
      const batch = JSON.stringify(seqs.slice(k, k + LOOKUP_BATCH));
      for (const [seq, ts, value, flags] of this.rowsBySeq.iterate(batch) as Iterable<[number, number, unknown, number]>) {
        const i = wanted.get(seq) as number;
        if (ts !== s.lastTs[i]) continue;
        s.last[i] = shown(value, flags, type);
        found.add(i);
      }
    }
    for (const i of wanted.values()) {
      if (found.has(i)) continue;
      const ts = s.lastTs[i] as number;
      let best: [number, unknown, number] | undefined;
      for (const [lo, hi] of this.spans.ranges(ts, ts + 1, lastSeq)) {
        const row = this.newestAt.get(lo, hi, s.entry.id, ts) as [number, unknown, number] | undefined;
        if (row && (best === undefined || row[0] > best[0])) best = row;
      }
      if (best) s.last[i] = shown(best[1], best[2], type);
    }
  }
}

/** A range as history takes it, or E_USAGE. */
function checkRange(from: number, to: number): void {
  if (!Number.isSafeInteger(from) || !Number.isSafeInteger(to)) throw new StoreError('E_USAGE', 'history: from and to must be integers (ms)');
  if (to <= from) throw new StoreError('E_USAGE', 'history: to must be after from');
  if (to - from > HISTORY_LIMITS.rangeMs) throw new StoreError('E_USAGE', `history: at most ${HISTORY_LIMITS.rangeMs / 86_400_000} days`);
}

/** The query's range and buckets, or E_USAGE: the bounds of HISTORY_LIMITS hold whoever calls. */
function checked(q: HistoryQuery): { from: number; to: number; buckets: number } {
  const { from, to, buckets } = q;
  checkRange(from, to);
  if (!Number.isSafeInteger(buckets) || buckets < 1 || buckets > HISTORY_LIMITS.buckets) {
    throw new StoreError('E_USAGE', `history: buckets must be 1..${HISTORY_LIMITS.buckets}`);
  }
  if (q.points !== undefined && (q.points.length === 0 || q.points.length > HISTORY_LIMITS.points)) {
    throw new StoreError('E_USAGE', `history: 1..${HISTORY_LIMITS.points} points`);
  }
  return { from, to, buckets };
}

/** The commands of a device's chart (MarkQuery): genuine ones only, the refusals at the door never reached a device. */
export class CommandMarks {
  private readonly ids: Stmt;

  constructor(db: BetterSqlite3.Database) {
    // newest first through the index on ts
    this.ids = db
      .prepare(
        `SELECT id FROM command
         WHERE ts >= ? AND ts < ?
           AND ((target_kind = 'device' AND target_id = ?) OR (target_kind = 'group' AND target_id IN (SELECT value FROM json_each(?))))
         ORDER BY ts DESC, rowid DESC LIMIT ?`,
      )
      .pluck();
  }

  list(q: MarkQuery, get: (id: string) => CommandRecord | undefined): CommandRecord[] {
    const limit = q.limit !== undefined && Number.isFinite(q.limit) ? Math.max(0, Math.min(MAX_MARKS, Math.floor(q.limit))) : MAX_MARKS;
    const ids = this.ids.all(q.from, q.to, q.device, JSON.stringify(q.groups), limit) as string[];
    const out: CommandRecord[] = [];
    for (const id of ids) {
      const c = get(id);
      if (c) out.push(c);
    }
    return out;
  }
}

/** An alarm as the scan follows it: its state after the events read so far, its spans in the range. */
interface AlarmTrack extends AlarmSpans {
  /** raised at (a ts), 'clear', or 'unknown' (no event read yet) */
  state: number | 'clear' | 'unknown';
}

/** event seqs read by one statement of the alarm scan: about 8 ms on a 2-CPU x86 when they are all events */
export const ALARM_SLICE_SEQS = 64 * 1024;

/**
 * A device's alarms over [from, to) (Store.alarmSpans) from its alarm.raised / alarm.cleared
 * events: the record of what the driver saw (edge/drivers/modbus/device.ts raises an alarm on the
 * poll that sees its bit set, clears it on the poll that sees it reset).
 *
 * An alarm active at `from` may have been raised at any time before it, so the state at `from`
 * takes every older event of the device: one statement reads the event table in seq order (its
 * rowid: seeks, no sort) with ts < to, in slices of ALARM_SLICE_SEQS seqs from the first event,
 * yielding to the event loop between them. The table has no index on device or ts, and one would be
 * written with every event for a query a person makes now and then: the scan compares two columns
 * a row and decodes the detail of the device's alarm events only. Measured on a 2-CPU x86: about
 * 13 ms for 100 k events (2 slices), 190 ms for 1 M (16 slices; in one statement, 340 ms without
 * a yield: so the slices).
 *
 * Read as the events say: a second raise of an active alarm (the first poll after a restart raises
 * what is set) keeps its start; a clear with no raise before it (the raise evicted) ends a span
 * that starts at `from`; a span that ends before `from` is not in the range.
 */
export class AlarmSpansReader {
  private readonly rows: Stmt;
  private readonly first: Stmt;

  constructor(db: BetterSqlite3.Database) {
    this.rows = db
      .prepare(
        `SELECT ts, kind = 'alarm.raised', severity, json_extract(detail, '$.alarm') FROM event
         WHERE seq BETWEEN ? AND ? AND device = ? AND kind IN ('alarm.raised', 'alarm.cleared') AND ts < ?
         ORDER BY seq`,
      )
      .raw();
    this.first = db.prepare('SELECT min(seq) FROM event').pluck();
  }

  /** Over the events up to `lastSeq`; `check` runs after each yield (throws once the store is closed). */
  async read(device: string, from: number, to: number, lastSeq: number, check: () => void): Promise<AlarmSpans[]> {
    checkRange(from, to);
    const byName = new Map<string, AlarmTrack>();
    const first = this.first.get() as number | null;
    for (const [lo, hi] of first === null ? [] : slices([[first, lastSeq]], ALARM_SLICE_SEQS)) {
      for (const row of this.rows.iterate(lo, hi, device, to) as Iterable<[number, number, Severity, unknown]>) track(byName, row, from);
      await yieldToLoop();
      check();
    }
    const out: AlarmSpans[] = [];
    for (const a of [...byName.values()].sort((x, y) => (x.name < y.name ? -1 : x.name > y.name ? 1 : 0))) {
      if (typeof a.state === 'number') addSpan(a, a.state, null, from);
      if (a.spans.length === 0) continue;
      out.push({ name: a.name, severity: a.severity, spans: a.spans, dropped: a.dropped });
      if (out.length === ALARM_LIMITS.alarms) break;
    }
    return out;
  }
}

/** One alarm event: its alarm's state moves on, a clear ends a span. */
function track(byName: Map<string, AlarmTrack>, [ts, raised, severity, name]: [number, number, Severity, unknown], from: number): void {
  if (typeof name !== 'string') return;
  let a = byName.get(name);
  if (!a) {
    a = { name, severity: null, spans: [], dropped: 0, state: 'unknown' };
    byName.set(name, a);
  }
  if (raised) {
    a.severity = severity;
    if (typeof a.state !== 'number') a.state = ts;
    return;
  }
  if (a.state !== 'clear') addSpan(a, a.state === 'unknown' ? from : a.state, ts, from);
  a.state = 'clear';
}

/** A span [start, end) clipped to start at `from`, if it meets the range; past ALARM_LIMITS.spans the oldest goes. */
function addSpan(a: AlarmTrack, start: number, end: number | null, from: number): void {
  if (end !== null && (end < from || (end === from && start < from))) return;
  const s = Math.max(start, from);
  a.spans.push([s, end === null ? null : Math.max(s, end)]);
  if (a.spans.length > ALARM_LIMITS.spans) {
    a.spans.shift();
    a.dropped++;
  }
}
