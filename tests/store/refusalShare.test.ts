/**
 * Issue 13: refused requests must never evict readings, events or genuine commands. The store
 * keeps them in the refusal share of the quota (quota.ts): counted apart, evicted first and only
 * among themselves; and the audit trail is never evicted to make room for readings.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openStoreReadOnly } from '../../edge/store/readOnly.js';
import { refusalShareBytes } from '../../edge/store/quota.js';
import type { SqliteStore } from '../../edge/store/store.js';
import { isEvent } from '../../edge/store/eventKinds.js';
import type { NewReading, StoredEvent } from '../../edge/store/types.js';
import { testEvent } from '../helpers/events.js';
import { Sandbox, diskBytes } from './helpers.js';

const MAX = 2 * 1024 * 1024;

let sb: Sandbox;
beforeEach(() => {
  sb = new Sandbox();
});
afterEach(() => sb.cleanup());

let tick = 0;
function readings(n: number): NewReading[] {
  const out: NewReading[] = [];
  for (let i = 0; i < n; i++, tick++) out.push({ ts: 1_700_000_000_000 + tick, device: `lamp-${tick % 50}`, point: `p${tick % 20}`, value: (tick % 1000) / 10, unit: 'V' });
  return out;
}

function allEvents(store: SqliteStore): StoredEvent[] {
  const out: StoredEvent[] = [];
  for (let after = 0; ; ) {
    const page = store.events({ after, limit: 1000 });
    if (page.items.length === 0) return out;
    out.push(...page.items);
    after = page.next;
  }
}

function readingSeqs(store: SqliteStore): number[] {
  return store.sqlite.prepare('SELECT seq FROM reading ORDER BY seq').pluck().all() as number[];
}

/** Readings until the quota has dropped some (a storage.dropped event), then stop: the store is as full as it gets. */
function fillUntilDropped(store: SqliteStore): void {
  for (let i = 0; i < 400; i++) {
    store.appendReadings(readings(1000));
    store.enforceQuota();
    if (store.events({ after: 0, limit: 1, kind: 'storage.dropped' }).items.length > 0) return;
  }
  throw new Error('the quota never dropped a reading');
}

/** What the pipeline stored per refusal before issue 13: a rejected row and its event, here in the refusal share. */
function refuse(store: SqliteStore, i: number): string {
  const source = { role: 'viewer', principal: 'viewer-vic' } as const;
  const row = store.createCommand(
    { source, target: { kind: 'device', id: 'lamp-1' }, action: 'dim', params: { level: 10 }, status: 'rejected', result: { code: 'E_FORBIDDEN', error: 'role viewer may not command lights (needs command.lighting)' } },
    { refusal: true },
  );
  store.appendEvent(
    { device: 'lamp-1', kind: 'command.rejected', severity: 'warning', detail: { commandId: row.id, action: 'dim', target: row.target, source, code: 'E_FORBIDDEN', error: 'role viewer may not command lights', i } },
    { refusal: true },
  );
  return row.id;
}

describe('the refusal share', () => {
  it('5,000 refusals on a full 2 MB store evict no reading, no event and no genuine command', () => {
    const store = sb.open({ maxBytes: MAX });
    const started = store.appendEvent({ kind: 'gateway.started', severity: 'info', detail: { pid: 1, config: '/etc/streetbox/streetbox.yaml' } });
    const genuine = store.createCommand({ source: { role: 'technician', principal: 'tech-anna' }, target: { kind: 'device', id: 'lamp-1' }, action: 'dim', params: { level: 40 } });
    store.updateCommand(genuine.id, 'verified', { devices: { 'lamp-1': { status: 'verified' } } });
    fillUntilDropped(store);
    const pending = store.createCommand({ source: { role: 'central', principal: 'city' }, target: { kind: 'group', id: 'main' }, action: 'override', params: { level: 20 } });

    const seqsBefore = readingSeqs(store);
    const eventsBefore = allEvents(store);
    expect(eventsBefore.map((e) => e.kind)).toEqual(expect.arrayContaining(['gateway.started', 'storage.dropped']));
    expect(store.stats().usedBytes).toBeGreaterThan(MAX * 0.85); // it is full

    const ids: string[] = [];
    let worst = 0;
    for (let i = 0; i < 5000; i++) {
      ids.push(refuse(store, i));
      if (i % 100 === 0) worst = Math.max(worst, diskBytes(store.path));
    }

    // nothing but refusals went
    expect(readingSeqs(store)).toEqual(seqsBefore);
    const audit = allEvents(store).filter((e) => !e.kind.startsWith('command.rejected'));
    expect(audit).toEqual(eventsBefore);
    expect(audit[0]).toEqual(started);
    expect(store.getCommand(genuine.id)?.status).toBe('verified');
    expect(store.getCommand(pending.id)?.status).toBe('queued');
    expect(store.stats().droppedTotal).toBe(eventsBefore.filter((e) => isEvent(e, 'storage.dropped')).reduce((a, e) => a + e.detail.readings, 0));

    // the refusals recycled their own share: the newest are kept and read back like any record
    const stats = store.stats();
    expect(stats.refusals!.maxBytes).toBe(refusalShareBytes(MAX));
    expect(stats.refusals!.usedBytes).toBeLessThan(stats.refusals!.maxBytes * 0.95);
    expect(stats.refusals!.commands).toBe(store.sqlite.prepare('SELECT count(*) FROM refusal_command').pluck().get());
    expect(stats.refusals!.events).toBe(store.sqlite.prepare('SELECT count(*) FROM refusal_event').pluck().get());
    expect(stats.refusals!.commands).toBeGreaterThan(10);
    expect(stats.refusals!.commands).toBeLessThan(5000);
    expect(store.getCommand(ids[0]!)).toBeUndefined();
    expect(store.getCommand(ids.at(-1)!)).toMatchObject({ status: 'rejected', source: { role: 'viewer' } });
    const rejected = store.events({ after: 0, limit: 10_000, kind: 'command.rejected' }).items;
    expect(rejected.at(-1)?.detail).toMatchObject({ commandId: ids.at(-1), i: 4999 });
    expect(store.listCommands({ limit: 10_000, status: 'rejected' }).at(-1)?.id).toBe(ids.at(-1));

    // and the file stays within the quota
    expect(worst).toBeLessThanOrEqual(MAX * 1.05);
    expect(store.stats().usedBytes).toBeLessThan(MAX * 0.95);
  });

  it('events page by seq across both shares, also in a read-only view and after a reopen', () => {
    const store = sb.open({ maxBytes: MAX });
    const a = store.appendEvent({ kind: 'gateway.started', severity: 'info', detail: { pid: 1, config: '/etc/streetbox/streetbox.yaml' } });
    const refusedId = refuse(store, 0);
    const b = store.appendEvent({ kind: 'comms.lost', severity: 'warning', device: 'lamp-2', detail: { bus: 'rs485-1', unit: 2, error: 'timeout' } });
    const kinds = (s: { events(q: { after: number; limit: number }): { items: StoredEvent[] } }, after: number, limit: number) => s.events({ after, limit }).items.map((e) => e.kind);
    expect(kinds(store, 0, 10)).toEqual(['gateway.started', 'command.rejected', 'comms.lost']);
    expect(kinds(store, a.seq, 1)).toEqual(['command.rejected']);
    expect(kinds(store, a.seq + 1, 10)).toEqual(['comms.lost']);
    expect(store.stats()).toMatchObject({ events: 3, commands: 1, refusals: { events: 1, commands: 1 } });

    const view = openStoreReadOnly(store.path);
    try {
      expect(kinds(view, 0, 10)).toEqual(['gateway.started', 'command.rejected', 'comms.lost']);
      expect(view.getCommand(refusedId)?.status).toBe('rejected');
      expect(view.stats()).toMatchObject({ events: 3, commands: 1, lastSeq: b.seq });
    } finally {
      view.close();
    }
    store.close();
    const again = sb.open({ maxBytes: MAX });
    expect(again.appendEvent(testEvent({ kind: 'x', severity: 'debug', detail: {} }), { refusal: true }).seq).toBe(b.seq + 1);
  });

  it('a reading never evicts an audit record: with the audit trail between the marks, readings go and events stay', () => {
    const store = sb.open({ maxBytes: MAX });
    const big = 'x'.repeat(8000);
    // events until the audit trail alone has been trimmed once (it sits at the low-water mark)
    let first = store.appendEvent(testEvent({ kind: 'debug.blob', severity: 'debug', detail: { i: -1, big } })).seq;
    for (let i = 0; i < 1000 && store.events({ after: 0, limit: 1 }).items[0]?.seq === first; i++) {
      store.appendEvent(testEvent({ kind: 'debug.blob', severity: 'debug', detail: { i, big } }));
    }
    first = store.events({ after: 0, limit: 1 }).items[0]!.seq;
    // a few more, still under the high-water mark: above the low-water mark now
    for (let i = 0; i < 3; i++) store.appendEvent(testEvent({ kind: 'debug.blob', severity: 'debug', detail: { i, big } }));
    const blobs = (): number => store.events({ after: 0, limit: 10_000, kind: 'debug.blob' }).items.length;
    const before = blobs();

    for (let i = 0; i < 20; i++) {
      store.appendReadings(readings(1000));
      store.enforceQuota();
    }
    // the readings could not stay (counted in storage.dropped), but they took no event with them
    // (before issue 13 they trimmed the audit trail down to the low-water mark)
    expect(blobs()).toBe(before);
    expect(store.events({ after: 0, limit: 10, kind: 'storage.dropped' }).items.length).toBeGreaterThan(0);
    expect(store.events({ after: 0, limit: 1 }).items[0]?.seq).toBe(first);
    expect(store.stats().readings).toBeLessThan(20_000);
    expect(store.stats().usedBytes).toBeLessThan(MAX * 0.95);
  });
});
