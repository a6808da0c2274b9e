/**
 * The latest value per point survives a restart through the `latest` table: a snapshot written
 * off the hot path (every few seconds and at close) with its high-water seq in meta.latest_seq,
 * plus the readings committed after it, replayed at open. A point is written when a reading of it
 * was stored since the last snapshot, with the value `latest()` shows then: the last polled one,
 * which a report strategy may not have stored (Store.observe), under the seq of the last stored
 * reading. So after a restart a point shows the last value known at the snapshot, not an older
 * stored one; a polled value newer than the point's last stored reading waits for the next one.
 */
import type BetterSqlite3 from 'better-sqlite3';
import { decodeValue, encodeFlags, encodeReading, qualityOf, storedValue } from './codec.js';
import type { PointEntry, PointRegistry } from './points.js';

type Row = [a: number, b: number, c: number, value: number | string | null, flags: number];

/** Fills the registry from the point table, the snapshot, and the readings after `latestSeq`. */
export function loadPoints(db: BetterSqlite3.Database, points: PointRegistry, latestSeq: number): void {
  const pointRows = db.prepare('SELECT id, device, point, unit FROM point ORDER BY id').raw().iterate() as Iterable<[number, string, string, string | null]>;
  for (const [id, device, point, unit] of pointRows) if (!points.get(id)) points.add(id, device, point, unit);

  for (const [pointId, seq, ts, value, flags] of db.prepare('SELECT point_id, seq, ts, value, flags FROM latest').raw().iterate() as Iterable<Row>) {
    const p = points.get(pointId);
    if (!p) continue;
    set(p, seq, ts, value, flags);
    p.persistedSeq = seq;
  }
  // Readings committed after the last snapshot (a crash skips the snapshot at close).
  const replay = db.prepare('SELECT seq, ts, point_id, value, flags FROM reading WHERE seq > ? ORDER BY seq').raw();
  for (const [seq, ts, pointId, value, flags] of replay.iterate(latestSeq) as Iterable<Row>) {
    const p = points.get(pointId);
    if (p && seq > p.seq) set(p, seq, ts, value, flags);
  }
}

/** Writes every point whose latest value changed since the last snapshot; `hw` covers all committed readings. */
export function persistLatest(db: BetterSqlite3.Database, points: PointRegistry, hw: number): number {
  const changed: PointEntry[] = [];
  for (const p of points.all()) if (p.seq > p.persistedSeq) changed.push(p);
  const upsert = db.prepare(
    `INSERT INTO latest (point_id, seq, ts, value, flags) VALUES (?, ?, ?, ?, ?)
     ON CONFLICT (point_id) DO UPDATE SET seq = excluded.seq, ts = excluded.ts, value = excluded.value, flags = excluded.flags`,
  );
  const setHw = db.prepare("UPDATE meta SET value = ? WHERE key = 'latest_seq'");
  db.transaction(() => {
    for (const p of changed) {
      // held in memory in the plain form, written in the compact one (codec.ts)
      const { stored, flags } = encodeReading(decodeValue(p.value, p.flags), qualityOf(p.flags));
      upsert.run(p.id, p.seq, p.ts, stored, flags);
    }
    setHw.run(hw);
  })();
  for (const p of changed) p.persistedSeq = p.seq;
  return changed.length;
}

/** A row of the latest or reading table (compact form) as the latest value in memory (plain form, codec.ts). */
function set(p: PointEntry, seq: number, ts: number, value: number | string | null, flags: number): void {
  const v = decodeValue(value, flags);
  p.seq = seq;
  p.ts = ts;
  p.value = storedValue(v);
  p.flags = encodeFlags(v, qualityOf(flags));
}
