/** The store's contract as other components use it: paging, values, latest, events, commands, consumers, migrations. */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { StreetboxError } from '../../edge/errors.js';
import type { CommandRecord, NewReading, StoredEvent } from '../../edge/store/types.js';
import { testEvent } from '../helpers/events.js';
import { Sandbox, newBus } from './helpers.js';

let sb: Sandbox;
beforeEach(() => {
  sb = new Sandbox();
});
afterEach(() => sb.cleanup());

function rows(n: number, device = 'lamp-1', start = 0): NewReading[] {
  return Array.from({ length: n }, (_, i) => ({ ts: 1000 + start + i, device, point: `p${(start + i) % 3}`, value: start + i, unit: 'W' }));
}

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return (err as StreetboxError).code;
  }
  return undefined;
}

describe('readings', () => {
  it('round-trips numbers, booleans, strings, nulls, units and quality exactly', () => {
    const store = sb.open();
    const input: NewReading[] = [
      { ts: 1, device: 'd', point: 'n', value: 42.5, unit: 'V' },
      { ts: 2, device: 'd', point: 'i', value: -7 },
      { ts: 3, device: 'd', point: 'on', value: true },
      { ts: 4, device: 'd', point: 'off', value: false },
      { ts: 5, device: 'd', point: 's', value: 'manual', quality: 'stale' },
      { ts: 6, device: 'd', point: 'empty', value: '' },
      { ts: 7, device: 'd', point: 'x', value: null, quality: 'bad' },
      { ts: 8, device: 'd', point: 'nan', value: NaN },
      { ts: 9, device: 'd', point: 'big', value: 2 ** 53 - 1 },
      { ts: 10, device: 'd', point: 'one', value: '1' },
    ];
    const res = store.appendReadings(input);
    expect(res).toEqual({ count: 10, firstSeq: 1, lastSeq: 10 });
    const page = store.readings({ after: 0, limit: 100 });
    expect(page.items.map((r) => r.value)).toEqual([42.5, -7, true, false, 'manual', '', null, NaN, 2 ** 53 - 1, '1']);
    expect(page.items.map((r) => typeof r.value)).toEqual(['number', 'number', 'boolean', 'boolean', 'string', 'string', 'object', 'number', 'number', 'string']);
    expect(page.items[0]).toEqual({ seq: 1, ts: 1, device: 'd', point: 'n', value: 42.5, unit: 'V', quality: 'good' });
    expect(page.items[4]?.quality).toBe('stale');
    expect(page.items[6]).toMatchObject({ value: null, quality: 'bad', unit: null });
    expect(page.next).toBe(10);
  });

  it('pages by seq cursor, with and without a device filter', () => {
    const store = sb.open();
    store.appendReadings([...rows(5, 'a'), ...rows(5, 'b', 5)]);
    store.appendEvent({ kind: 'comms.lost', severity: 'warning', device: 'a', detail: { bus: 'rs485-1', unit: 1, error: 'timeout' } }); // seq 11
    store.appendReadings(rows(4, 'a', 10)); // 12..15

    const seen: number[] = [];
    let after = 0;
    for (;;) {
      const page = store.readings({ after, limit: 4 });
      if (page.items.length === 0) {
        expect(page.next).toBe(after);
        break;
      }
      seen.push(...page.items.map((r) => r.seq));
      after = page.next;
    }
    expect(seen).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 13, 14, 15]);

    const a1 = store.readings({ after: 0, limit: 3, device: 'a' });
    expect(a1.items.map((r) => r.seq)).toEqual([1, 2, 3]);
    const a2 = store.readings({ after: a1.next, limit: 3, device: 'a' });
    expect(a2.items.map((r) => r.seq)).toEqual([4, 5, 12]);
    expect(a2.items.every((r) => r.device === 'a')).toBe(true);
    const a3 = store.readings({ after: a2.next, limit: 10, device: 'a' });
    expect(a3.items.map((r) => r.seq)).toEqual([13, 14, 15]);
    expect(store.readings({ after: a3.next, limit: 10, device: 'a' })).toEqual({ items: [], next: 15 });
    expect(store.readings({ after: 0, limit: 10, device: 'nobody' })).toEqual({ items: [], next: 0 });
  });

  it('rejects an invalid reading without writing any of the batch', () => {
    const store = sb.open();
    const bad = [...rows(2), { ts: 5, device: 'd', point: 'p', value: { nested: 1 } } as unknown as NewReading];
    expect(codeOf(() => store.appendReadings(bad))).toBe('E_USAGE');
    expect(store.stats().readings).toBe(0);
    expect(store.appendReadings(rows(1)).firstSeq).toBe(1);
  });

  it('keeps the latest value per point, also across a reopen and after a crash without snapshot', () => {
    const store = sb.open({ latestPersistMs: 3_600_000 });
    store.appendReadings([
      { ts: 1, device: 'lamp-1', point: 'level', value: 40, unit: '%' },
      { ts: 1, device: 'lamp-1', point: 'on', value: true },
      { ts: 1, device: 'lamp-2', point: 'level', value: 0, unit: '%' },
    ]);
    store.appendReadings([{ ts: 2, device: 'lamp-1', point: 'level', value: 60, unit: '%', quality: 'stale' }]);
    const expected = { seq: 4, ts: 2, value: 60, unit: '%', quality: 'stale' };
    expect(store.latest('lamp-1').get('level')).toEqual(expected);
    expect(store.latest('lamp-1').get('on')).toEqual({ seq: 2, ts: 1, value: true, unit: null, quality: 'good' });
    expect(store.latest('nobody').size).toBe(0);
    expect([...store.latestAll().keys()].sort()).toEqual(['lamp-1', 'lamp-2']);

    // A second store on the same file sees no snapshot (the first never wrote one): it replays readings.
    const crashed = sb.open();
    expect(crashed.latest('lamp-1').get('level')).toEqual(expected);
    crashed.close();

    store.close(); // writes the snapshot
    store.close(); // idempotent
    const reopened = sb.open();
    expect(reopened.latest('lamp-1').get('level')).toEqual(expected);
    reopened.appendReadings([{ ts: 3, device: 'lamp-2', point: 'level', value: 100, unit: '%' }]);
    expect(reopened.latestAll().get('lamp-2')?.get('level')?.value).toBe(100);
    expect(codeOf(() => store.readings({ after: 0, limit: 1 }))).toBe('E_STORE');
  });
});

describe('seqs', () => {
  it('are shared by readings and events and never reused after a reopen', () => {
    const store = sb.open();
    store.appendReadings(rows(3));
    const ev = store.appendEvent({ kind: 'alarm.raised', severity: 'error', device: 'lamp-1', detail: { alarm: 'ch1_driver_fault', point: 'ch1_status', value: 2, bit: 1 } });
    expect(ev.seq).toBe(4);
    expect(store.appendReadings(rows(2)).firstSeq).toBe(5);
    // delete everything behind the store's back: seqs still continue after the highest ever given
    store.sqlite.exec('DELETE FROM reading; DELETE FROM event;');
    store.close();
    const again = sb.open();
    expect(again.stats().lastSeq).toBe(6);
    expect(again.appendReadings(rows(1)).firstSeq).toBe(7);
    expect(again.appendEvent(testEvent({ kind: 'x', severity: 'info', detail: {} })).seq).toBe(8);
  });
});

describe('events', () => {
  it('commits, emits on the bus and pages with device and kind filters', () => {
    const bus = newBus();
    const emitted: StoredEvent[] = [];
    bus.on('test', 'event', (e) => emitted.push(e));
    const store = sb.open({ bus });
    const command = { commandId: 'c1', action: 'on', target: { kind: 'device', id: 'lamp-1' }, source: { role: 'technician', principal: 'tech-anna' } } as const;
    const e1 = store.appendEvent({ kind: 'command.sent', severity: 'info', device: 'lamp-1', detail: command });
    store.appendReadings(rows(2));
    const alarm = { alarm: 'ch1_lamp_failure', point: 'ch1_status', value: 1, bit: 0 };
    store.appendEvent({ kind: 'alarm.raised', severity: 'critical', device: 'lamp-2', ts: 123, detail: alarm });
    store.appendEvent({ kind: 'command.verified', severity: 'info', device: 'lamp-1', detail: command });
    expect(emitted.map((e) => e.kind)).toEqual(['command.sent', 'alarm.raised', 'command.verified']);
    expect(e1).toMatchObject({ seq: 1, device: 'lamp-1', detail: { commandId: 'c1' } });

    expect(store.events({ after: 0, limit: 10 }).items.map((e) => e.seq)).toEqual([1, 4, 5]);
    expect(store.events({ after: 0, limit: 10, device: 'lamp-1' }).items.map((e) => e.kind)).toEqual(['command.sent', 'command.verified']);
    expect(store.events({ after: 1, limit: 10, kind: 'command.*' }).items.map((e) => e.seq)).toEqual([5]);
    const one = store.events({ after: 0, limit: 10, kind: 'alarm.raised' });
    expect(one.items).toEqual([{ seq: 4, ts: 123, device: 'lamp-2', kind: 'alarm.raised', severity: 'critical', detail: alarm }]);
    expect(one.next).toBe(4);
    expect(store.events({ after: 5, limit: 10 })).toEqual({ items: [], next: 5 });
  });
});

describe('commands', () => {
  it('creates, updates, lists and emits each change', () => {
    const bus = newBus();
    const seen: CommandRecord[] = [];
    bus.on('test', 'command', (c) => seen.push(c));
    const store = sb.open({ bus });
    const c = store.createCommand({
      source: { role: 'maintenance', principal: 'alice' },
      target: { kind: 'group', id: 'main-street' },
      action: 'dim',
      params: { level: 40, durationS: 7200 },
      priority: 50,
      expiresAt: 99_999,
      ts: 10,
    });
    expect(c.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(c.status).toBe('queued');
    store.createCommand({ id: 'fixed', ts: 20, source: { role: 'schedule', principal: 'night' }, target: { kind: 'device', id: 'lamp-1' }, action: 'switch' });
    const updated = store.updateCommand(c.id, 'verified', { level: 40 });
    expect(updated).toMatchObject({ status: 'verified', result: { level: 40 }, params: { level: 40, durationS: 7200 }, priority: 50, expiresAt: 99_999 });
    expect(store.updateCommand(c.id, 'expired').result).toEqual({ level: 40 }); // result kept
    expect(store.getCommand('fixed')).toMatchObject({ target: { kind: 'device', id: 'lamp-1' }, params: {}, priority: 0, expiresAt: null, result: null });
    expect(store.getCommand('nope')).toBeUndefined();
    expect(codeOf(() => store.updateCommand('nope', 'sent'))).toBe('E_NOT_FOUND');
    expect(store.listCommands({ limit: 10 }).map((x) => x.ts)).toEqual([10, 20]);
    expect(store.listCommands({ after: 10, limit: 10 }).map((x) => x.id)).toEqual(['fixed']);
    expect(store.listCommands({ limit: 10, status: 'queued' }).map((x) => x.id)).toEqual(['fixed']);
    const rejected = store.createCommand({ source: { role: 'viewer', principal: 'bob' }, target: { kind: 'device', id: 'tlc-1' }, action: 'program', status: 'rejected', result: { code: 'E_FORBIDDEN' } });
    expect(store.getCommand(rejected.id)).toMatchObject({ status: 'rejected', result: { code: 'E_FORBIDDEN' } });
    expect(seen.map((x) => x.status)).toEqual(['queued', 'queued', 'verified', 'expired', 'rejected']);
  });
});

describe('consumers', () => {
  it('acks forward only, within the seqs handed out', () => {
    const store = sb.open();
    store.appendReadings(rows(10));
    expect(store.registerConsumer('upstream')).toMatchObject({ name: 'upstream', ackedSeq: 0 });
    expect(store.registerConsumer('central-a', 4).ackedSeq).toBe(4);
    expect(store.registerConsumer('central-a', 9).ackedSeq).toBe(4); // exists: unchanged
    expect(store.ackConsumer('upstream', 7).ackedSeq).toBe(7);
    expect(store.ackConsumer('upstream', 3).ackedSeq).toBe(7); // never backward
    expect(store.consumer('upstream')?.ackedSeq).toBe(7);
    expect(codeOf(() => store.ackConsumer('upstream', 11))).toBe('E_USAGE');
    expect(codeOf(() => store.ackConsumer('upstream', -1))).toBe('E_USAGE');
    expect(codeOf(() => store.ackConsumer('ghost', 1))).toBe('E_NOT_FOUND');
    expect(store.consumers().map((c) => [c.name, c.ackedSeq])).toEqual([
      ['central-a', 4],
      ['upstream', 7],
    ]);
    expect(store.removeConsumer('central-a')).toBe(true);
    expect(store.removeConsumer('central-a')).toBe(false);
    store.close();
    expect(sb.open().consumer('upstream')?.ackedSeq).toBe(7);
  });
});

describe('migrations of other modules', () => {
  it('applies each migration once, in order, and tracks the version per module', () => {
    const store = sb.open();
    const lorawan = [
      'CREATE TABLE lorawan_session (dev_eui TEXT PRIMARY KEY, fcnt_up INTEGER NOT NULL)',
      (db: typeof store.sqlite) => db.prepare("INSERT INTO lorawan_session VALUES ('0011223344556677', 5)").run(),
    ];
    expect(store.migrate('lorawan', lorawan)).toBe(2);
    expect(store.migrate('lorawan', lorawan)).toBe(0);
    store.close();
    const again = sb.open();
    expect(again.migrate('lorawan', [...lorawan, 'ALTER TABLE lorawan_session ADD COLUMN fcnt_down INTEGER NOT NULL DEFAULT 0'])).toBe(1);
    expect(again.sqlite.prepare('SELECT fcnt_up, fcnt_down FROM lorawan_session').get()).toEqual({ fcnt_up: 5, fcnt_down: 0 });
    expect(again.sqlite.prepare("SELECT version FROM schema_version WHERE module = 'lorawan'").pluck().get()).toBe(3);
    expect(codeOf(() => again.migrate('lorawan', lorawan))).toBe('E_STORE'); // older code than the file
    expect(codeOf(() => again.migrate('store', []))).toBe('E_USAGE');
    // a failing migration leaves nothing behind
    expect(() => again.migrate('broken', ['CREATE TABLE t1 (a)', 'CREATE TABLE oops ('])).toThrow();
    expect(again.sqlite.prepare("SELECT version FROM schema_version WHERE module = 'broken'").pluck().get()).toBe(1);
    expect(again.migrate('broken', ['CREATE TABLE t1 (a)', 'CREATE TABLE t2 (b)'])).toBe(1);
  });

  it('uses WAL and the synchronous level of the durability setting', () => {
    const full = sb.open({ durability: 'full' });
    expect(full.sqlite.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(full.sqlite.pragma('synchronous', { simple: true })).toBe(2);
    full.close();
    const normal = sb.open({ durability: 'normal' });
    expect(normal.sqlite.pragma('synchronous', { simple: true })).toBe(1);
  });
});
