/**
 * The batched writer: every reading of the gateway enters here (drivers, simulators), is
 * buffered, and committed in one transaction per flush: when `flushRows` readings are buffered,
 * or `flushIntervalMs` after the first buffered one. After the commit the readings go out on the
 * bus (with their seq) and the quota is applied. A failing flush (disk full, SQLITE_BUSY) keeps
 * its rows and is retried with backoff; past `maxBuffered` the oldest rows are dropped and
 * counted in a `storage.dropped` event. Nothing here throws into a driver or rejects unhandled.
 */
import { backoffDelay } from '../backoff.js';
import type { EventBus } from '../bus.js';
import { systemClock, type Clock, type Timer } from '../clock.js';
import type { Logger } from '../log.js';
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
}

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
  private buffer: NewReading[] = [];
  private timer: Timer | undefined;
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
  }

  get pending(): number {
    return this.buffer.length;
  }

  start(): void {
    if (this.started) return;
    this.started = true;
    if (this.buffer.length >= this.flushRows) this.flush();
    else if (this.buffer.length > 0) this.schedule(this.flushIntervalMs);
  }

  /** Flushes everything buffered (retrying a failing store a few times) and stops the timers. */
  async stop(): Promise<void> {
    if (!this.started && this.buffer.length === 0) return;
    this.started = false;
    this.cancelTimer();
    for (let attempt = 0; this.buffer.length > 0; attempt++) {
      if (this.flush() !== null || this.buffer.length === 0) continue;
      if (attempt >= 3) {
        this.log.error({ lost: this.buffer.length }, 'store keeps failing: readings not written at stop');
        this.buffer = [];
        break;
      }
      await new Promise<void>((resolve) => this.clock.setTimeout(resolve, 100 * (attempt + 1)));
    }
    this.cancelTimer();
  }

  push(reading: NewReading): void {
    const why = invalidReading(reading);
    if (why !== null) return this.reject(why);
    this.buffer.push(reading);
    this.afterPush();
  }

  pushMany(readings: readonly NewReading[]): void {
    for (let i = 0; i < readings.length; i++) {
      const r = readings[i] as NewReading;
      const why = invalidReading(r);
      if (why !== null) this.reject(why);
      else this.buffer.push(r);
    }
    this.afterPush();
  }

  /** Commits everything buffered in one transaction. Null when nothing was buffered or the commit failed (the rows stay buffered and a retry is scheduled). */
  flush(): CommitResult | null {
    this.cancelTimer();
    if (this.buffer.length === 0) return null;
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
      return null;
    }
    this.failures = 0;
    this.flushes++;
    this.committed += result.count;
    if (this.bus) this.bus.emit('readings', committedReadings(batch, result.firstSeq));
    try {
      this.store.enforceQuota();
    } catch (err) {
      this.log.error({ err }, 'applying the quota failed');
    }
    if (this.unreportedDrops > 0) this.reportDrops();
    if (this.started && this.buffer.length > 0) this.schedule(this.flushIntervalMs);
    return result;
  }

  private afterPush(): void {
    const healthy = this.started && this.failures === 0;
    if (healthy && this.buffer.length >= this.flushRows) this.flush();
    // only rows that could not be committed count against the cap
    if (this.buffer.length > this.maxBuffered) this.overflow();
    if (healthy && this.buffer.length > 0 && this.timer === undefined) this.schedule(this.flushIntervalMs);
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

  private cancelTimer(): void {
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
    this.timer = undefined;
  }
}

function committedReadings(batch: readonly NewReading[], firstSeq: number): Reading[] {
  const out = new Array<Reading>(batch.length);
  for (let i = 0; i < batch.length; i++) {
    const r = batch[i] as NewReading;
    out[i] = {
      seq: firstSeq + i,
      ts: r.ts,
      device: r.device,
      point: r.point,
      value: r.value,
      unit: r.unit ?? null,
      quality: r.quality ?? 'good',
    };
  }
  return out;
}
