/**
 * Migration 3 moves a buffer written by schema 2 (every number a REAL, booleans 0.0/1.0) to the
 * compact form: the same readings and latest values before and after, every row as the code
 * writes it today, and a smaller reading table.
 */
import Database from 'better-sqlite3';
import type BetterSqlite3 from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { encodeFlags, encodeReading, qualityOf, decodeValue, storedValue } from '../../edge/store/codec.js';
import { STORE_MIGRATIONS, STORE_MODULE, applyMigrations, schemaVersion } from '../../edge/store/migrations.js';
import { openStoreReadOnly, type StoreView } from '../../edge/store/readOnly.js';
import type { NewReading, Reading } from '../../edge/store/types.js';
import { Sandbox } from './helpers.js';
import { TRICKY_VALUES, sparseCommits, tag } from './fixtures/valueMix.js';

let sb: Sandbox;
beforeEach(() => {
  sb = new Sandbox();
});
afterEach(() => sb.cleanup());

/**
 * A file as schema 2 left it: points, readings in the plain form with events between them in the
 * shared seq space, a latest snapshot and meta. The tricky values first, then `bulk` readings.
 */
function schema2File(path: string, bulk: number): void {
  const db = new Database(path);
  try {
    db.pragma('journal_mode = WAL');
    applyMigrations(db, STORE_MODULE, STORE_MIGRATIONS.slice(0, 2));
    expect(schemaVersion(db, STORE_MODULE)).toBe(2);
    const points = new Map<string, number>();
    const insPoint = db.prepare('INSERT INTO point (id, device, point, unit) VALUES (?, ?, ?, NULL)');
    const insReading = db.prepare('INSERT INTO reading (seq, ts, point_id, value, flags) VALUES (?, ?, ?, ?, ?)');
    const insEvent = db.prepare("INSERT INTO event (seq, ts, device, kind, severity, detail) VALUES (?, ?, NULL, 'gateway.started', 'info', '{}')");
    const upsertLatest = db.prepare(
      `INSERT INTO latest (point_id, seq, ts, value, flags) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (point_id) DO UPDATE SET seq = excluded.seq, ts = excluded.ts, value = excluded.value, flags = excluded.flags`,
    );
    const tricky: NewReading[] = TRICKY_VALUES.map((value, i) => ({ ts: 1_700_000_000_000 + i, device: 'lamp-0', point: `t${i}`, value, quality: value === null ? 'bad' : 'good' }));
    const readings = [...tricky, ...sparseCommits(bulk, 1_700_000_100_000, 3).flat()];
    let seq = 0;
    db.transaction(() => {
      for (const [i, r] of readings.entries()) {
        const key = `${r.device}/${r.point}`;
        let id = points.get(key);
        if (id === undefined) {
          points.set(key, (id = points.size + 1));
          insPoint.run(id, r.device, r.point);
        }
        if (i % 5000 === 0) insEvent.run(++seq, r.ts);
        insReading.run(++seq, r.ts, id, storedValue(r.value), encodeFlags(r.value, r.quality));
        upsertLatest.run(id, seq, r.ts, storedValue(r.value), encodeFlags(r.value, r.quality));
      }
      db.prepare("UPDATE meta SET value = ? WHERE key IN ('last_seq', 'latest_seq')").run(seq);
    })();
  } finally {
    db.close();
  }
}

function everything(view: StoreView): { readings: string[]; latest: string[] } {
  const readings: string[] = [];
  for (let after = 0, i = 0; i < 1000; i++) {
    const page = view.readings({ after, limit: 10_000 });
    if (page.items.length === 0) break;
    readings.push(...page.items.map((r: Reading) => `${r.seq} ${r.ts} ${r.device} ${r.point} ${tag(r.value)} ${r.quality}`));
    after = page.next;
  }
  const latest: string[] = [];
  for (const [device, points] of view.latestAll()) {
    for (const [point, v] of points) latest.push(`${device} ${point} ${v.seq} ${v.ts} ${tag(v.value)} ${v.quality}`);
  }
  return { readings, latest: latest.sort() };
}

function readingTableBytes(db: BetterSqlite3.Database): number {
  return db.prepare("SELECT sum(pgsize) FROM dbstat WHERE name = 'reading' AND aggregate = 1").pluck().get() as number;
}

/** Rows whose column value or flags differ from what encodeReading writes for their value today. */
function notAsWrittenToday(db: BetterSqlite3.Database, table: 'reading' | 'latest'): string[] {
  const rows = db.prepare(`SELECT value, flags FROM ${table}`).safeIntegers(true).raw().all() as [bigint | number | string | null, bigint][];
  const off: string[] = [];
  for (const [value, flags] of rows) {
    const f = Number(flags);
    const column = typeof value === 'bigint' ? Number(value) : value;
    const { stored, flags: want } = encodeReading(decodeValue(column, f), qualityOf(f));
    const same = typeof stored === 'bigint' ? typeof value === 'bigint' && value === stored : Object.is(stored, value) || (Number.isNaN(stored) && value === null);
    if (!same || want !== f) off.push(`${String(value)}/${f}: want ${String(stored)}/${want}`);
  }
  return off;
}

describe('migration 3: the compact form', () => {
  it('rewrites a schema-2 buffer: the same readings and latest values, as written today, in a smaller table', () => {
    const path = sb.file();
    // past one chunk of the migration's copy (50 000 rows)
    schema2File(path, 120_000);

    let view = openStoreReadOnly(path); // a read-only view reads schema 2 as it is
    const before = everything(view);
    view.close();
    const old = new Database(path, { readonly: true });
    const bytesBefore = readingTableBytes(old);
    old.close();
    expect(before.readings.length).toBe(TRICKY_VALUES.length + 120_000);

    const t0 = performance.now();
    const store = sb.open();
    const ms = performance.now() - t0;
    expect(schemaVersion(store.sqlite, STORE_MODULE)).toBe(STORE_MIGRATIONS.length);
    expect(notAsWrittenToday(store.sqlite, 'reading')).toEqual([]);
    expect(notAsWrittenToday(store.sqlite, 'latest')).toEqual([]);
    const bytesAfter = readingTableBytes(store.sqlite);
    process.stdout.write(
      `migration 3 of ${before.readings.length} readings: ${ms.toFixed(0)} ms (open included); reading table ${bytesBefore} → ${bytesAfter} bytes\n`,
    );
    expect(bytesAfter).toBeLessThan(bytesBefore * 0.9);
    expect(store.sqlite.pragma('integrity_check', { simple: true })).toBe('ok');

    view = openStoreReadOnly(path);
    try {
      expect(everything(view)).toEqual(before);
    } finally {
      view.close();
    }
    // seqs go on after the old ones, events included
    const lastSeq = store.stats().lastSeq;
    expect(store.appendReadings([{ ts: 1_800_000_000_000, device: 'lamp-0', point: 't2', value: 230.1 }]).firstSeq).toBe(lastSeq + 1);
    expect(store.latest('lamp-0').get('t2')?.value).toBe(230.1);
  });

  it('leaves the rows of a buffer too big to rewrite at start as they are, read back the same', () => {
    schema2File(sb.file(), 200);
    // a seq span past MAX_COMPACT_ROWS (the oldest readings evicted long ago): no rewrite at start
    const db = new Database(sb.file());
    db.prepare("INSERT INTO reading (seq, ts, point_id, value, flags) VALUES (1000000, 1800000000000, 1, 2.0, 0)").run();
    db.prepare("UPDATE meta SET value = 1000000 WHERE key = 'last_seq'").run();
    db.close();
    let view = openStoreReadOnly(sb.file());
    const before = everything(view);
    view.close();
    const store = sb.open();
    expect(schemaVersion(store.sqlite, STORE_MODULE)).toBe(STORE_MIGRATIONS.length);
    // still the plain form: 2.0 a REAL
    expect(store.sqlite.prepare('SELECT typeof(value) FROM reading WHERE seq = 1000000').pluck().get()).toBe('real');
    store.close();
    view = openStoreReadOnly(sb.file());
    try {
      expect(everything(view)).toEqual(before);
    } finally {
      view.close();
    }
  });

  it('migrates an empty buffer', () => {
    schema2File(sb.file(), 0);
    const db = new Database(sb.file());
    db.exec('DELETE FROM reading; DELETE FROM latest');
    db.close();
    const store = sb.open();
    expect(schemaVersion(store.sqlite, STORE_MODULE)).toBe(STORE_MIGRATIONS.length);
    expect(store.stats().readings).toBe(0);
    store.appendReadings([{ ts: 1, device: 'd', point: 'p', value: 1.5 }]);
    expect(store.readings({ after: 0, limit: 10 }).items.map((r) => r.value)).toEqual([1.5]);
  });
});
