/**
 * The compact value form (codec.ts): integral numbers, booleans and numbers of at most 3 decimals
 * stored as SQLite INTEGERs; every value comes back exactly through the reading pages, the latest
 * values (in memory and from the latest table), and a read-only view; and a full buffer takes
 * fewer bytes per reading than in the plain form.
 */
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { readingBytes } from '../../edge/store/autonomy.js';
import { decodeValue, encodeFlags, encodeInto, encodeReading, qualityOf, storedValue } from '../../edge/store/codec.js';
import { STORE_MIGRATIONS, STORE_MODULE, applyMigrations } from '../../edge/store/migrations.js';
import { openStoreReadOnly } from '../../edge/store/readOnly.js';
import type { SqliteStore } from '../../edge/store/store.js';
import type { NewReading, Reading, Value } from '../../edge/store/types.js';
import { Sandbox } from './helpers.js';
import { TRICKY_VALUES, prng, sparseCommits, tag } from './fixtures/valueMix.js';

let sb: Sandbox;
beforeEach(() => {
  sb = new Sandbox();
});
afterEach(() => sb.cleanup());

/** What SQLite gives back for a bound value: an INTEGER as a number, NaN as NULL. */
function throughSqlite(stored: unknown): unknown {
  if (typeof stored === 'bigint') return Number(stored);
  return typeof stored === 'number' && Number.isNaN(stored) ? null : stored;
}

function trickyReadings(ts: number): NewReading[] {
  return TRICKY_VALUES.map((value, i) => ({ ts: ts + i, device: 'lamp-1', point: `p${i}`, value, quality: value === null ? 'bad' : i % 5 === 1 ? 'stale' : 'good' }));
}

function allReadings(view: { readings: SqliteStore['readings'] }): Reading[] {
  const out: Reading[] = [];
  for (let after = 0, i = 0; i < 1000; i++) {
    const page = view.readings({ after, limit: 10_000 });
    if (page.items.length === 0) break;
    out.push(...page.items);
    after = page.next;
  }
  return out;
}

describe('the compact form', () => {
  it('decodes every value exactly as it was encoded, and stores short decimals as integers', () => {
    for (const v of TRICKY_VALUES) {
      const { stored, flags } = encodeReading(v, 'stale');
      expect(tag(decodeValue(throughSqlite(stored), flags))).toBe(tag(v));
      expect(qualityOf(flags)).toBe('stale');
      // the plain form still decodes
      expect(tag(decodeValue(throughSqlite(storedValue(v)), encodeFlags(v, 'good')))).toBe(tag(v));
    }
    const rnd = prng(7);
    const out: unknown[] = [null, 0];
    const wrong: number[] = [];
    const notCompact: number[] = [];
    for (let i = 0; i < 100_000; i++) {
      // a decimal of 0 to 6 places, or any double
      const places = Math.floor(rnd() * 7);
      const v = i % 10 === 0 ? (rnd() - 0.5) * 10 ** Math.floor(rnd() * 30 - 10) : Math.round((rnd() - 0.5) * 1e9) / 10 ** places;
      encodeInto(out, 0, v, 'good');
      if (!Object.is(decodeValue(throughSqlite(out[0]), out[1] as number), v)) wrong.push(v);
      if (i % 10 !== 0 && places <= 3 && typeof out[0] !== 'bigint') notCompact.push(v);
    }
    expect(wrong).toEqual([]);
    expect(notCompact).toEqual([]);
  });

  it('gives back every value exactly through readings, latest (memory and table) and a read-only view', () => {
    let store = sb.open();
    const written = trickyReadings(1_700_000_000_000);
    store.appendReadings(written);
    const want = written.map((r) => tag(r.value));
    const values = (rs: Reading[]): string[] => rs.map((r) => tag(r.value));
    const latest = (m: Map<string, { value: Value; quality: string }>): string[] =>
      written.map((r) => `${tag(m.get(r.point)?.value as Value)} ${m.get(r.point)?.quality}`);
    const wantLatest = written.map((r) => `${tag(r.value)} ${r.quality}`);

    expect(values(allReadings(store))).toEqual(want);
    expect(allReadings(store).map((r) => r.quality)).toEqual(written.map((r) => r.quality));
    expect(latest(store.latest('lamp-1'))).toEqual(wantLatest);

    // the latest table: written at close in the compact form, read back at open
    store.close();
    store = sb.open();
    expect(store.sqlite.prepare("SELECT value FROM meta WHERE key = 'latest_seq'").pluck().get()).toBe(written.length);
    expect(latest(store.latest('lamp-1'))).toEqual(wantLatest);
    const latestTypes = store.sqlite.prepare('SELECT typeof(value) FROM latest ORDER BY point_id').pluck().all();
    expect(latestTypes.slice(0, 6)).toEqual(['integer', 'real', 'integer', 'integer', 'integer', 'integer']); // 0, -0, 1, -17, 230, 230.1

    const view = openStoreReadOnly(store.path);
    try {
      expect(values(allReadings(view))).toEqual(want);
      expect(latest(view.latestAll().get('lamp-1') ?? new Map())).toEqual(wantLatest);
    } finally {
      view.close();
    }
  });

  it('binds integers, booleans and short decimals as INTEGER and the rest as before', () => {
    const store = sb.open();
    store.appendReadings(trickyReadings(1_700_000_000_000));
    const rows = store.sqlite.prepare('SELECT typeof(value) AS type, value, flags >> 4 AS k FROM reading ORDER BY seq').all() as { type: string; value: unknown; k: number }[];
    const byValue = new Map(TRICKY_VALUES.map((v, i) => [tag(v), rows[i]]));
    expect(byValue.get(tag(230))).toEqual({ type: 'integer', value: 230, k: 0 });
    expect(byValue.get(tag(230.1))).toEqual({ type: 'integer', value: 2301, k: 1 });
    expect(byValue.get(tag(0.01))).toEqual({ type: 'integer', value: 1, k: 2 });
    expect(byValue.get(tag(123456.789))).toEqual({ type: 'integer', value: 123456789, k: 3 });
    expect(byValue.get(tag(2 ** 53))).toEqual({ type: 'integer', value: 2 ** 53, k: 0 });
    expect(byValue.get(tag(true))).toEqual({ type: 'integer', value: 1, k: 0 });
    expect(byValue.get(tag(-0))?.type).toBe('real');
    expect(byValue.get(tag(1e-7))?.type).toBe('real');
    expect(byValue.get(tag(0.1 + 0.2))?.type).toBe('real');
    expect(byValue.get(tag(2 ** 53 + 2))?.type).toBe('real');
    expect(byValue.get(tag(NaN))?.type).toBe('null');
    expect(byValue.get(tag('12'))?.type).toBe('text');
  });

  it('takes fewer bytes per reading on a full buffer than the plain form', () => {
    const maxBytes = 2 * 1024 * 1024;
    const store = sb.open({ maxBytes });
    // a thousand readings per transaction, for speed: the rows are the same as in commits of one to three
    const readings = sparseCommits(200_000, Date.UTC(2026, 0, 1)).flat();
    for (let i = 0; i < readings.length; i += 1000) {
      store.appendReadings(readings.slice(i, i + 1000));
      store.enforceQuota();
    }
    expect(store.evicted).toBeGreaterThan(0); // it is full: the quota evicts

    const compact = readingBytes(store.sqlite);
    // the same figure as dbstat walking the reading table itself
    const walked = store.sqlite.prepare("SELECT sum(pgsize) FROM dbstat WHERE name = 'reading' AND aggregate = 1").pluck().get();
    expect(compact.bytes).toBe(walked);
    expect(compact.rows).toBe(store.stats().readings);

    // the same rows in the plain form, as schema 2 wrote them
    const plainDb = new Database(sb.file('plain.db'));
    try {
      applyMigrations(plainDb, STORE_MODULE, STORE_MIGRATIONS.slice(0, 2));
      const ins = plainDb.prepare('INSERT INTO reading (seq, ts, point_id, value, flags) VALUES (?, ?, ?, ?, ?)');
      const rows = store.sqlite.prepare('SELECT seq, ts, point_id, value, flags FROM reading ORDER BY seq').raw().all() as [number, number, number, number | string | null, number][];
      plainDb.transaction(() => {
        for (const [seq, ts, pointId, value, flags] of rows) {
          const v = decodeValue(value, flags);
          ins.run(seq, ts, pointId, storedValue(v), encodeFlags(v, qualityOf(flags)));
        }
      })();
      const plain = readingBytes(plainDb);
      const perReading = (b: { perReading: number | null }): string => (b.perReading ?? 0).toFixed(1);
      process.stdout.write(`bytes per stored reading, full ${maxBytes / 1024 / 1024} MB buffer, ${compact.rows} rows: plain ${perReading(plain)}, compact ${perReading(compact)}\n`);
      expect(plain.rows).toBe(compact.rows);
      expect(compact.perReading as number).toBeLessThan((plain.perReading as number) * 0.85);
    } finally {
      plainDb.close();
    }
  });
});
