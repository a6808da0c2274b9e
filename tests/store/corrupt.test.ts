/** A corrupt database is moved aside (never deleted), a fresh one takes its place, seqs continue. */
import { existsSync, openSync, readdirSync, readFileSync, statSync, writeFileSync, writeSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isEvent, type EventOf } from '../../edge/store/eventKinds.js';
import type { StoredEvent } from '../../edge/store/types.js';
import { Sandbox } from './helpers.js';

let sb: Sandbox;
beforeEach(() => {
  sb = new Sandbox();
});
afterEach(() => sb.cleanup());

function fillAndClose(n: number): number {
  const store = sb.open();
  const res = store.appendReadings(Array.from({ length: n }, (_, i) => ({ ts: i, device: `lamp-${i % 10}`, point: 'level', value: i % 100 })));
  store.close();
  return res.lastSeq;
}

function overwrite(path: string, offset: number, bytes: Buffer): void {
  const fd = openSync(path, 'r+');
  writeSync(fd, bytes, 0, bytes.length, offset);
  closeSync(fd);
}

function corruptEvent(events: StoredEvent[]): EventOf<'storage.corrupt'> {
  const e = events.find((x) => isEvent(x, 'storage.corrupt'));
  if (!e) throw new Error('no storage.corrupt event');
  return e;
}

describe('a corrupt database', () => {
  it('with garbage over its header is moved aside with its WAL; the fresh store works and seqs cannot collide', () => {
    const lastSeq = fillAndClose(1000);
    const path = sb.file();
    const original = readFileSync(path);
    overwrite(path, 0, Buffer.from('this is not a sqlite database, it is garbage!!!!'.repeat(2)));
    writeFileSync(path + '-wal', 'garbage wal');

    const before = Date.now();
    const store = sb.open();
    const ev = corruptEvent(store.events({ after: 0, limit: 10 }).items);
    expect(ev.severity).toBe('error');
    const { movedTo, reason } = ev.detail;
    expect(movedTo).toMatch(/streetbox\.db\.corrupt-/);
    expect(reason).toMatch(/not a database|corrupt/i);
    // moved, never deleted: same bytes past the header, and the WAL went along
    expect(statSync(movedTo).size).toBe(original.length);
    expect(readFileSync(movedTo).subarray(4096)).toEqual(original.subarray(4096));
    expect(readFileSync(movedTo + '-wal', 'utf8')).toBe('garbage wal');
    expect(existsSync(path + '-wal') && readFileSync(path + '-wal', 'utf8') === 'garbage wal').toBe(false);

    // the old seqs are unreadable: the counter starts at Date.now() * 1000, past anything acknowledged
    expect(ev.seq).toBeGreaterThan(lastSeq);
    expect(ev.seq).toBeGreaterThanOrEqual(before * 1000);
    const res = store.appendReadings([{ ts: 1, device: 'lamp-1', point: 'level', value: 5 }]);
    expect(res.firstSeq).toBe(ev.seq + 1);
    expect(store.readings({ after: 0, limit: 10 }).items.map((r) => r.value)).toEqual([5]);
    store.close();
    // and the fresh file is a healthy database that reopens without another move
    const again = sb.open();
    expect(again.events({ after: 0, limit: 10, kind: 'storage.corrupt' }).items).toHaveLength(1);
    expect(readdirSync(sb.dir).filter((f) => f.includes('.corrupt-') && !f.endsWith('-wal') && !f.endsWith('-shm'))).toHaveLength(1);
  });

  it('with a damaged data page is caught by quick_check; seqs continue after the old file\'s last seq', () => {
    const lastSeq = fillAndClose(20_000);
    const path = sb.file();
    const size = statSync(path).size;
    // damage a page near the end: reading data, not the meta table written first
    overwrite(path, size - 3 * 4096, Buffer.alloc(4096, 0xa5));
    const store = sb.open();
    const ev = corruptEvent(store.events({ after: 0, limit: 10 }).items);
    expect(ev.seq).toBe(lastSeq + 1);
    expect(existsSync(ev.detail.movedTo)).toBe(true);
    expect(store.appendReadings([{ ts: 1, device: 'd', point: 'p', value: true }]).firstSeq).toBe(lastSeq + 2);
  });

  it('creates the parent directory of a new database', () => {
    const path = join(sb.dir, 'a', 'b', 'streetbox.db');
    const store = sb.open({ path });
    expect(store.appendReadings([{ ts: 1, device: 'd', point: 'p', value: 1 }]).count).toBe(1);
    expect(existsSync(path)).toBe(true);
    expect(store.events({ after: 0, limit: 10 }).items).toEqual([]);
  });

  it('refuses a path it cannot open without moving anything', () => {
    expect(() => sb.open({ path: join(sb.dir) })).toThrow(/cannot open/);
    expect(readdirSync(sb.dir).filter((f) => f.includes('.corrupt-'))).toEqual([]);
  });
});
