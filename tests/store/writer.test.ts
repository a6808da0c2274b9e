/** The batched writer: when it commits, what it emits, and how it survives a store that fails. */
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../edge/log.js';
import { isEvent } from '../../edge/store/eventKinds.js';
import type { SqliteStore } from '../../edge/store/store.js';
import type { NewReading, Reading } from '../../edge/store/types.js';
import { BatchWriter, type BatchWriterOptions } from '../../edge/store/writer.js';
import { waitFor } from '../helpers/wait.js';
import { Sandbox, newBus } from './helpers.js';

let sb: Sandbox;
const writers: BatchWriter[] = [];
const unhandled: unknown[] = [];
const onUnhandled = (err: unknown): void => {
  unhandled.push(err);
};

beforeEach(() => {
  sb = new Sandbox();
  process.on('unhandledRejection', onUnhandled);
});
afterEach(async () => {
  for (const w of writers.splice(0)) await w.stop();
  process.off('unhandledRejection', onUnhandled);
  sb.cleanup();
  expect(unhandled.splice(0)).toEqual([]);
});

function writer(store: SqliteStore, opts: Partial<BatchWriterOptions> = {}): BatchWriter {
  const w = new BatchWriter({ store, log: silentLogger(), flushIntervalMs: 60_000, flushRows: 1000, ...opts });
  writers.push(w);
  return w;
}

function reading(i: number, device = 'lamp-1'): NewReading {
  return { ts: 1000 + i, device, point: 'level', value: i, unit: '%' };
}

describe('BatchWriter', () => {
  it('commits when flushRows are buffered, in one transaction, and emits the readings with their seqs', () => {
    const bus = newBus();
    const batches: Reading[][] = [];
    bus.on('test', 'readings', (rs) => batches.push(rs));
    const store = sb.open({ bus });
    const w = writer(store, { bus, flushRows: 10 });
    w.start();
    for (let i = 0; i < 9; i++) w.push(reading(i));
    expect(w.pending).toBe(9);
    expect(store.stats().readings).toBe(0);
    w.push(reading(9));
    expect(w.pending).toBe(0);
    expect(store.stats().readings).toBe(10);
    expect(batches).toHaveLength(1);
    expect(batches[0]?.[0]).toEqual({ seq: 1, ts: 1000, device: 'lamp-1', point: 'level', value: 0, unit: '%', quality: 'good' });
    expect(batches[0]?.map((r) => r.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    w.pushMany(Array.from({ length: 25 }, (_, i) => reading(10 + i)));
    expect(batches.map((b) => b.length)).toEqual([10, 25]); // one flush for the whole pushMany
    expect(store.latest('lamp-1').get('level')?.value).toBe(34);
  });

  it('commits flushIntervalMs after the first buffered reading', async () => {
    const store = sb.open();
    const w = writer(store, { flushIntervalMs: 30 });
    w.start();
    w.push(reading(1));
    const t0 = Date.now();
    await waitFor('the buffer committed', () => w.pending === 0);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(20);
    expect(store.readings({ after: 0, limit: 10 }).items).toHaveLength(1);
  });

  it('flushes everything buffered on stop', async () => {
    const store = sb.open();
    const w = writer(store);
    w.start();
    for (let i = 0; i < 500; i++) w.push(reading(i, `lamp-${i % 5}`));
    expect(store.stats().readings).toBe(0);
    await w.stop();
    await w.stop(); // idempotent
    expect(w.pending).toBe(0);
    expect(store.stats().readings).toBe(500);
    const values = store.readings({ after: 0, limit: 1000 }).items.map((r) => r.value);
    expect(values).toEqual(Array.from({ length: 500 }, (_, i) => i));
  });

  it('rejects invalid readings at push and keeps the valid ones flowing', async () => {
    const store = sb.open();
    const w = writer(store);
    w.start();
    w.push({ ts: Number.NaN, device: 'd', point: 'p', value: 1 });
    w.push({ ts: 1, device: '', point: 'p', value: 1 });
    w.pushMany([reading(1), { ts: 1, device: 'd', point: 'p', value: [1] } as unknown as NewReading, reading(2)]);
    await w.stop();
    expect(w.rejected).toBe(3);
    expect(store.readings({ after: 0, limit: 10 }).items.map((r) => r.value)).toEqual([1, 2]);
  });

  it('keeps the rows of a failing flush (SQLITE_BUSY) and commits them once the store recovers', async () => {
    const bus = newBus();
    const seen: number[] = [];
    bus.on('test', 'readings', (rs) => seen.push(...rs.map((r) => r.value as number)));
    const store = sb.open({ bus });
    store.sqlite.pragma('busy_timeout = 0');
    const w = writer(store, { bus, flushRows: 10, flushIntervalMs: 10, maxRetryMs: 40 });
    w.start();

    // another connection holds the write lock: every commit fails with SQLITE_BUSY
    const other = new Database(store.path);
    other.exec('BEGIN IMMEDIATE');
    try {
      for (let i = 0; i < 25; i++) w.push(reading(i));
      expect(w.flush()).toBeNull();
      expect(w.pending).toBe(25);
      await waitFor('the retries to fail too', () => w.failedFlushes > 1);
      expect(w.failedFlushes).toBeGreaterThan(1);
      expect(store.stats().readings).toBe(0);
      for (let i = 25; i < 30; i++) w.push(reading(i));
    } finally {
      other.exec('COMMIT');
      other.close();
    }
    await waitFor('the buffer committed', () => w.pending === 0);
    expect(seen).toEqual(Array.from({ length: 30 }, (_, i) => i));
    expect(store.readings({ after: 0, limit: 100 }).items.map((r) => r.value)).toEqual(seen);
  });

  it('drops the oldest rows past maxBuffered while the store fails and reports them in storage.dropped', async () => {
    const store = sb.open();
    store.sqlite.pragma('busy_timeout = 0');
    const w = writer(store, { flushRows: 50, flushIntervalMs: 10, maxRetryMs: 20, maxBuffered: 100 });
    w.start();
    const other = new Database(store.path);
    other.exec('BEGIN IMMEDIATE');
    try {
      for (let i = 0; i < 300; i++) w.push(reading(i));
      expect(w.pending).toBe(100);
      expect(w.dropped).toBe(200);
    } finally {
      other.exec('COMMIT');
      other.close();
    }
    await waitFor('the buffer committed', () => w.pending === 0);
    expect(store.readings({ after: 0, limit: 1000 }).items.map((r) => r.value)).toEqual(Array.from({ length: 100 }, (_, i) => 200 + i));
    const dropped = store.events({ after: 0, limit: 10, kind: 'storage.dropped' }).items.filter((e) => isEvent(e, 'storage.dropped'));
    expect(dropped.reduce((a, e) => a + e.detail.readings, 0)).toBe(200);
    expect(dropped.every((e) => e.detail.reason === 'buffer-overflow')).toBe(true);
  });

  it('commits a pushMany larger than maxBuffered instead of dropping from it while the store is healthy', async () => {
    const store = sb.open();
    const w = writer(store, { flushRows: 10, maxBuffered: 50 });
    w.start();
    w.pushMany(Array.from({ length: 120 }, (_, i) => reading(i)));
    expect(w.dropped).toBe(0);
    expect(store.stats().readings).toBe(120);
  });

  it('does not throw when the store is closed under it', async () => {
    const store = sb.open();
    const w = writer(store, { flushIntervalMs: 10, maxRetryMs: 20 });
    w.start();
    store.close();
    w.push(reading(1));
    expect(() => w.flush()).not.toThrow();
    await waitFor('a failed flush', () => w.failedFlushes > 0);
    expect(w.failedFlushes).toBeGreaterThan(0);
    await w.stop(); // gives up after a few tries, without throwing
    expect(w.pending).toBe(0);
  });
});
