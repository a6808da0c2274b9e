/**
 * The batched writer: every reading of the gateway enters here (drivers, simulators). The report
 * filter at the door (edge/report/filter.ts) decides which valid readings are stored; those are
 * buffered and committed in one transaction per flush: when `flushRows` readings were polled, or
 * `flushIntervalMs` after the first one. After the commit the stored readings go out on the bus
 * as `readings` (with their seq), the ones not stored become the latest values of their points
 * (Store.observe), every polled value of the window goes out as `polled`, and the quota is
 * applied. A failing flush (disk full, SQLITE_BUSY) keeps its rows and is retried with backoff
 * (`polled` keeps going out meanwhile, every flushIntervalMs); past `maxBuffered` the oldest rows
 * are dropped and counted in a `storage.dropped` event. Nothing here throws into a driver or
 * rejects unhandled.
 */
import { backoffDelay } from '../backoff.js';
import type { EventBus } from '../bus.js';
import { systemClock, type Clock, type Timer } from '../clock.js';
import type { Logger } from '../log.js';
import { ReportFilter } from '../report/filter.js';
import { EVERY_POLL, type ReportPolicy } from '../report/strategy.js';
import type { Ingest, Store } from './api.js';
import { StoreError } from './errors.js';
import type { CommitResult, NewReading, Reading } from './types.js';
import { invalidReading } from './validate.js';

export interface BatchWriterOptions {
  store: Store;
  bus?: EventBus;
  log: Logger;
  flushIntervalMs: number;
  flushRows: number;
  clock?: Clock;
  /** readings kept while flushes fail; past it the oldest are dropped (default max(100 000, 20 × flushRows)) */
  maxBuffered?: number;
  /** longest wait between retries of a failing flush (default 5000 ms) */
  maxRetryMs?: number;
  /** which polled values are stored (default EVERY_POLL: all of them) */
  report?: ReportPolicy;
}

/** the slot of a polled value the filter did not keep */
const SKIPPED = -1;

const LOG_EVERY_MS = 10_000;

export class BatchWriter implements Ingest {
  private readonly store: Store;
  private readonly bus: EventBus | undefined;
  private readonly log: Logger;
  private readonly clock: Clock;
  private readonly flushIntervalMs: number;
  private readonly flushRows: number;
  private readonly maxBuffered: number;
  private readonly maxRetryMs: number;
  private readonly filter: ReportFilter;
  /** readings kept by the filter, waiting for a commit */
  private buffer: NewReading[] = [];
  /** how many readings ever left the buffer (committed or dropped): the position of buffer[0] */
  private bufferBase = 0;
  /** every valid reading pushed since the last flush attempt, in poll order: the next `polled` */
  private window: NewReading[] = [];
  /** per window entry: its position in the buffer's stream (bufferBase + index), or SKIPPED */
  private slots: number[] = [];
  private timer: Timer | undefined;
  /** while flushes fail: closes the window every flushIntervalMs between retries */
  private windowTimer: Timer | undefined;
  private started = false;
  /** consecutive failed flushes; while > 0 only the retry timer flushes */
  private failures = 0;
  private lastFailureLog = -Infinity;
  /** readings dropped from the buffer whose storage.dropped event is not written yet */
  private unreportedDrops = 0;

  /** readings rejected as invalid by push (never buffered) */
  rejected = 0;
  /** readings dropped because the buffer overflowed while the store failed */
  dropped = 0;
  /** readings committed by this writer */
  committed = 0;
  flushes = 0;
  failedFlushes = 0;

  constructor(opts: BatchWriterOptions) {
    this.store = opts.store;
    this.bus = opts.bus;
    this.log = opts.log;
    this.clock = opts.clock ?? systemClock;
    this.flushIntervalMs = opts.flushIntervalMs;
    this.flushRows = Math.max(1, opts.flushRows);
    this.maxBuffered = Math.max(this.flushRows, opts.maxBuffered ?? Math.max(100_000, 20 * this.flushRows));
    this.maxRetryMs = opts.maxRetryMs ?? 5000;
    this.filter = new ReportFilter(opts.report ?? EVERY_POLL);
  }

  get pending(): number {
    return this.buffer.length;
  }

  /** valid readings pushed so far */
  get polled(): number {
    return this.filter.polled;
  }

  /** of those, the ones the report filter kept for storing */
  get kept(): number {
    return this.filter.stored;
  }

  /**
   * A new report policy (a configuration applied live): it decides from the next value pushed
   * on. Points whose strategy is unchanged keep their filter state; the others store their next
   * value as a first value. What is buffered or in the polled window stays as it is.
   */
  setReport(policy: ReportPolicy): void {
    const { kept, forgotten } = this.filter.setPolicy(policy);
    this.log.info({ kept, forgotten }, 'report policy replaced');
  }

  start(): void {
    if (this.started) return;
    this.started = true;
    if (this.buffer.length >= this.flushRows || this.window.length >= this.flushRows) this.flush();
    else if (this.buffer.length > 0 || this.window.length > 0) this.schedule(this.flushIntervalMs);
  }

  /** Flushes everything buffered (retrying a failing store a few times) and the polled window, and stops the timers. */
  async stop(): Promise<void> {
    if (!this.started && this.buffer.length === 0 && this.window.length === 0) return;
    this.started = false;
    this.cancelTimer();
    for (let attempt = 0; this.buffer.length > 0; attempt++) {
      if (this.flush() !== null || this.buffer.length === 0) continue;
      if (attempt >= 3) {
        this.log.error({ lost: this.buffer.length }, 'store keeps failing: readings not written at stop');
        this.bufferBase += this.buffer.length;
        this.buffer = [];
        break;
      }
      await new Promise<void>((resolve) => this.clock.setTimeout(resolve, 100 * (attempt + 1)));
    }
    // what is left: values the filter skipped only, or a window polled after the last attempt
    this.closeWindow(null);
    this.cancelTimer();
  }

  push(reading: NewReading): void {
    const why = invalidReading(reading);
    if (why !== null) return this.reject(why);
    this.accept(reading);
    this.afterPush();
  }

  pushMany(readings: readonly NewReading[]): void {
    for (let i = 0; i < readings.length; i++) {
      const r = readings[i] as NewReading;
      const why = invalidReading(r);
      if (why !== null) this.reject(why);
      else this.accept(r);
    }
    this.afterPush();
  }

  /**
   * Commits everything buffered in one transaction, then closes the polled window (observe and
   * `polled`). Null when nothing was buffered or the commit failed (the rows stay buffered and a
   * retry is scheduled).
   */
  flush(): CommitResult | null {
    this.cancelTimer();
    if (this.buffer.length === 0) {
      // nothing left to retry (a batch of rows found invalid at the commit): back to normal flushing
      this.failures = 0;
      this.closeWindow(null);
      return null;
    }
    let batch = this.buffer;
    this.buffer = [];
    let result: CommitResult;
    try {
      result = this.store.appendReadings(batch);
    } catch (err) {
      if (err instanceof StoreError && err.code === 'E_USAGE') {
        // A row changed after it was validated: drop the bad ones, keep the rest.
        const before = batch.length;
        batch = batch.filter((r) => invalidReading(r) === null);
        this.rejected += before - batch.length;
      }
      this.buffer = this.buffer.length > 0 ? batch.concat(this.buffer) : batch;
      this.failed(err);
      // the window goes out all the same: its stored values with seq 0, on `readings` once committed
      this.closeWindow(null);
      return null;
    }
    const base = this.bufferBase;
    this.bufferBase += batch.length;
    this.failures = 0;
    this.flushes++;
    this.committed += result.count;
    let committed: Reading[] | null = null;
    if (this.bus) this.bus.emit('readings', (committed = committedReadings(batch, result.firstSeq)));
    this.closeWindow(committed, base);
    try {
      this.store.enforceQuota();
    } catch (err) {
      this.log.error({ err }, 'applying the quota failed');
    }
    if (this.unreportedDrops > 0) this.reportDrops();
    if (this.started && (this.buffer.length > 0 || this.window.length > 0)) this.schedule(this.flushIntervalMs);
    return result;
  }

  /** A valid reading: to the buffer when the report filter keeps it, to the polled window in any case. */
  private accept(r: NewReading): void {
    if (this.filter.keep(r)) {
      this.slots.push(this.bufferBase + this.buffer.length);
      this.buffer.push(r);
    } else {
      this.slots.push(SKIPPED);
    }
    this.window.push(r);
  }

  private afterPush(): void {
    const healthy = this.started && this.failures === 0;
    // values the filter skipped count too: `polled` and the latest values wait at most flushRows values or flushIntervalMs
    if (healthy && (this.buffer.length >= this.flushRows || this.window.length >= this.flushRows)) this.flush();
    // a failing store (or one not started) commits nothing; the window is bounded all the same
    else if (this.window.length >= this.flushRows) this.closeWindow(null);
    // only rows that could not be committed count against the cap
    if (this.buffer.length > this.maxBuffered) this.overflow();
    if (healthy) {
      if ((this.buffer.length > 0 || this.window.length > 0) && this.timer === undefined) this.schedule(this.flushIntervalMs);
    } else if (this.started && this.window.length > 0 && this.windowTimer === undefined) {
      this.scheduleWindow();
    }
  }

  /**
   * Ends the polled window: the values the filter skipped become the latest values of their
   * points (Store.observe), then every value of the window goes out on `polled`, in poll order,
   * with its seq when `committed` (the batch just committed, whose first row was at stream
   * position `base`) holds it, 0 otherwise.
   */
  private closeWindow(committed: readonly Reading[] | null, base = 0): void {
    if (this.windowTimer !== undefined) this.clock.clearTimeout(this.windowTimer);
    this.windowTimer = undefined;
    const window = this.window;
    const slots = this.slots;
    const n = window.length;
    if (n === 0) return;
    this.window = [];
    this.slots = [];
    let skipped: NewReading[] | undefined;
    for (let i = 0; i < n; i++) if (slots[i] === SKIPPED) (skipped ??= []).push(window[i] as NewReading);
    if (skipped) {
      try {
        this.store.observe(skipped);
      } catch (err) {
        this.log.warn({ err }, 'updating the latest values failed');
      }
    }
    if (!this.bus) return;
    const out = new Array<Reading>(n);
    for (let i = 0; i < n; i++) {
      const at = (slots[i] as number) - base;
      // a stored value shares its Reading with `readings`; one dropped by an overflow, or not committed yet, has seq 0
      out[i] = committed !== null && at >= 0 && at < committed.length ? (committed[at] as Reading) : toReading(window[i] as NewReading, 0);
    }
    this.bus.emit('polled', out);
  }

  private failed(err: unknown): void {
    this.failures++;
    this.failedFlushes++;
    if (this.buffer.length > this.maxBuffered) this.overflow();
    const now = this.clock.monotonic();
    if (now - this.lastFailureLog >= LOG_EVERY_MS) {
      this.lastFailureLog = now;
      this.log.error({ err, buffered: this.buffer.length, failures: this.failures }, 'flush failed; readings kept, retrying');
    }
    // Retry even when stopped: stop() drives its own retries, and buffered rows must not sit forever.
    // flushIntervalMs × 2^failures (the exponent held at 10), at most maxRetryMs
    this.schedule(backoffDelay(Math.min(this.failures, 10), this.flushIntervalMs, this.maxRetryMs));
  }

  private overflow(): void {
    const excess = this.buffer.length - this.maxBuffered;
    this.buffer.splice(0, excess);
    this.bufferBase += excess;
    this.dropped += excess;
    this.unreportedDrops += excess;
    this.reportDrops();
  }

  private reportDrops(): void {
    const n = this.unreportedDrops;
    try {
      this.store.appendEvent({
        kind: 'storage.dropped',
        severity: 'warning',
        detail: { readings: n, unacknowledged: n, fromSeq: 0, toSeq: 0, consumers: {}, reason: 'buffer-overflow' },
      });
      this.unreportedDrops = 0;
      this.log.warn({ dropped: n, maxBuffered: this.maxBuffered }, 'write buffer overflowed: oldest readings dropped');
    } catch {
      // the store is failing; reported after the next successful flush
    }
  }

  private reject(why: string): void {
    this.rejected++;
    const now = this.clock.monotonic();
    if (now - this.lastFailureLog >= LOG_EVERY_MS) {
      this.lastFailureLog = now;
      this.log.warn({ why, rejected: this.rejected }, 'invalid reading rejected');
    }
  }

  private schedule(ms: number): void {
    this.cancelTimer();
    this.timer = this.clock.setTimeout(() => {
      this.timer = undefined;
      try {
        this.flush();
      } catch (err) {
        this.log.error({ err }, 'flush timer failed');
      }
    }, ms);
  }

  private scheduleWindow(): void {
    this.windowTimer = this.clock.setTimeout(() => {
      this.windowTimer = undefined;
      try {
        this.closeWindow(null);
      } catch (err) {
        this.log.error({ err }, 'polled window timer failed');
      }
    }, this.flushIntervalMs);
  }

  private cancelTimer(): void {
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
    this.timer = undefined;
  }
}

function committedReadings(batch: readonly NewReading[], firstSeq: number): Reading[] {
  const out = new Array<Reading>(batch.length);
  for (let i = 0; i < batch.length; i++) out[i] = toReading(batch[i] as NewReading, firstSeq + i);
  return out;
}

function toReading(r: NewReading, seq: number): Reading {
  return { seq, ts: r.ts, device: r.device, point: r.point, value: r.value, unit: r.unit ?? null, quality: r.quality ?? 'good' };
}
