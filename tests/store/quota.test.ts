/**
 * The quota: past maxBytes, acknowledged readings go first, then the oldest unacknowledged ones
 * (counted exactly in storage.dropped events), events and commands last; the file plus its WAL
 * stays within maxBytes + 5 %; seqs are never reused after eviction.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../edge/log.js';
import type { SqliteStore } from '../../edge/store/store.js';
import { isEvent, type EventOf } from '../../edge/store/eventKinds.js';
import type { NewReading } from '../../edge/store/types.js';
import { BatchWriter } from '../../edge/store/writer.js';
import { testEvent } from '../helpers/events.js';
import { Sandbox, diskBytes } from './helpers.js';

const MAX = 2 * 1024 * 1024;

let sb: Sandbox;
beforeEach(() => {
  sb = new Sandbox();
});
afterEach(() => sb.cleanup());

function droppedEvents(store: SqliteStore): EventOf<'storage.dropped'>[] {
  const out: EventOf<'storage.dropped'>[] = [];
  for (let after = 0; ; ) {
    const page = store.events({ after, limit: 1000, kind: 'storage.dropped' });
    if (page.items.length === 0) return out;
    out.push(...page.items.filter((e) => isEvent(e, 'storage.dropped')));
    after = page.next;
  }
}

/** Pushes `n` realistic readings through a writer, calling `afterFlush` after each commit. */
function fill(store: SqliteStore, n: number, afterFlush: (lastSeq: number) => void = () => {}): { seqs: number[] } {
  const writer = new BatchWriter({ store, log: silentLogger(), flushIntervalMs: 60_000, flushRows: 1000 });
  const seqs: number[] = [];
  for (let i = 0; i < n; i++) {
    const r: NewReading = { ts: 1_700_000_000_000 + i, device: `lamp-${i % 50}`, point: `p${i % 20}`, value: (i % 1000) / 10, unit: 'V' };
    writer.push(r);
    if (writer.pending >= 1000) {
      const res = writer.flush();
      if (!res) throw new Error('flush failed');
      for (let s = res.firstSeq; s <= res.lastSeq; s++) seqs.push(s);
      afterFlush(res.lastSeq);
    }
  }
  const res = writer.flush();
  if (res) for (let s = res.firstSeq; s <= res.lastSeq; s++) seqs.push(s);
  return { seqs };
}

function remainingSeqs(store: SqliteStore): Set<number> {
  return new Set(store.sqlite.prepare('SELECT seq FROM reading').pluck().all() as number[]);
}

describe('quota', () => {
  it('keeps the file plus WAL within maxBytes + 5 % and counts every dropped reading exactly', () => {
    const store = sb.open({ maxBytes: MAX });
    let worst = 0;
    const { seqs } = fill(store, 200_000, () => {
      worst = Math.max(worst, diskBytes(store.path));
    });
    expect(worst).toBeGreaterThan(MAX * 0.85); // it did fill up
    expect(worst).toBeLessThanOrEqual(MAX * 1.05);
    expect(store.stats().usedBytes).toBeLessThan(MAX * 0.95);

    const remaining = remainingSeqs(store).size;
    const events = droppedEvents(store);
    expect(events.length).toBeGreaterThan(1);
    const details = events.map((e) => e.detail);
    const sum = details.reduce((a, d) => a + d.readings, 0);
    expect(sum).toBe(seqs.length - remaining);
    // no consumer: nothing was acknowledged, everything dropped was unacknowledged
    expect(details.every((d) => d.unacknowledged === d.readings && Object.keys(d.consumers).length === 0)).toBe(true);
    expect(store.stats().droppedTotal).toBe(sum);
    // the ranges are the oldest readings, in order, without overlap
    for (let i = 1; i < details.length; i++) expect(details[i]!.fromSeq).toBeGreaterThan(details[i - 1]!.toSeq);
    expect(Math.min(...remainingSeqs(store))).toBe(details[details.length - 1]!.toSeq + 1);
  });

  it('evicts acknowledged readings first and counts the unacknowledged per consumer', () => {
    const store = sb.open({ maxBytes: MAX });
    store.registerConsumer('upstream');
    store.registerConsumer('central');
    // phase 1: both consumers keep up; evictions only take acknowledged readings: nothing is lost
    const phase1 = fill(store, 110_000, (lastSeq) => {
      store.ackConsumer('upstream', lastSeq);
      store.ackConsumer('central', lastSeq);
    });
    expect(store.stats().readings).toBeLessThan(phase1.seqs.length); // evictions happened
    expect(droppedEvents(store)).toEqual([]);
    expect(store.stats().droppedTotal).toBe(0);

    // phase 2: both stop acking; the acknowledged readings make room for the new ones, nothing is lost yet
    const centralAt = store.consumer('central')!.ackedSeq;
    const phase2 = fill(store, 40_000);
    expect(droppedEvents(store)).toEqual([]);
    // phase 3: upstream catches up with phase 2, central stays behind; now unacknowledged readings go
    const upstreamAt = store.ackConsumer('upstream', phase2.seqs[phase2.seqs.length - 1]!).ackedSeq;
    const phase3 = fill(store, 90_000);
    const all = [...phase1.seqs, ...phase2.seqs, ...phase3.seqs];
    const left = remainingSeqs(store);
    const gone = (acked: number): number => all.filter((s) => s > acked && !left.has(s)).length;

    const details = droppedEvents(store).map((e) => e.detail);
    expect(details.length).toBeGreaterThan(0);
    expect(gone(upstreamAt)).toBeGreaterThan(0);
    expect(gone(centralAt)).toBeGreaterThan(gone(upstreamAt));
    // every reading a consumer had not acknowledged and that is gone is counted for it, exactly
    expect(details.reduce((a, d) => a + (d.consumers.central ?? 0), 0)).toBe(gone(centralAt));
    expect(details.reduce((a, d) => a + (d.consumers.upstream ?? 0), 0)).toBe(gone(upstreamAt));
    // "unacknowledged" = not acknowledged by every consumer = central's count here
    expect(details.reduce((a, d) => a + d.unacknowledged, 0)).toBe(gone(centralAt));
    expect(store.stats().droppedTotal).toBe(gone(centralAt));
    // and no acknowledged reading outlived an unacknowledged one
    expect(Math.min(...left)).toBeGreaterThan(centralAt);
  });

  it('keeps events while readings can go, then the oldest events, then commands', () => {
    const store = sb.open({ maxBytes: MAX });
    const alarm = store.appendEvent({ kind: 'alarm.raised', severity: 'critical', device: 'tlc-1', detail: { alarm: 'ch1_driver_fault', point: 'ch1_status', value: 2, bit: 1 } });
    const cmd = store.createCommand({ source: { role: 'central', principal: 'city' }, target: { kind: 'device', id: 'lamp-1' }, action: 'dim', params: { level: 40 } });
    fill(store, 120_000);
    expect(store.events({ after: 0, limit: 1 }).items[0]).toEqual(alarm);
    expect(store.getCommand(cmd.id)).toBeDefined();

    // flood with events: the readings go first, all of them, then the oldest events
    const big = 'x'.repeat(8000);
    let lastSeq = 0;
    for (let i = 0; i < 400; i++) {
      lastSeq = store.appendEvent(testEvent({ kind: 'debug.blob', severity: 'debug', detail: { i, big } })).seq;
      store.enforceQuota();
      expect(diskBytes(store.path)).toBeLessThanOrEqual(MAX * 1.05);
    }
    expect(store.stats().readings).toBe(0);
    expect(store.events({ after: 0, limit: 1 }).items[0]?.seq).toBeGreaterThan(alarm.seq); // evicted at last
    expect(store.getCommand(cmd.id)).toBeDefined(); // commands after events: an audit record outlives debug blobs
    expect(store.stats().usedBytes).toBeLessThan(MAX * 0.95);

    // flood with commands: the events go, then the oldest commands (finished ones first)
    let lastCmd = '';
    let firstCmd = '';
    for (let i = 0; i < 400; i++) {
      const c = store.createCommand({ source: { role: 'system', principal: 'test' }, target: { kind: 'device', id: 'lamp-1' }, action: 'dim', params: { i, big } });
      store.updateCommand(c.id, 'verified');
      lastCmd = c.id;
      firstCmd ||= c.id;
      store.enforceQuota();
    }
    expect(store.getCommand(firstCmd)).toBeUndefined();
    expect(store.getCommand(lastCmd)).toBeDefined();
    expect(store.getCommand(cmd.id)?.status).toBe('queued'); // a pending command outlives finished ones
    expect(store.stats().events).toBeLessThan(5); // only the storage.dropped records of this last phase, if any
    expect(diskBytes(store.path)).toBeLessThanOrEqual(MAX * 1.05);

    // seqs continue after everything that was evicted, also after a reopen
    store.close();
    const again = sb.open({ maxBytes: MAX });
    expect(again.appendReadings([{ ts: 1, device: 'd', point: 'p', value: 1 }]).firstSeq).toBe(lastSeq + 1);
  });
});
