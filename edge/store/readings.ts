/**
 * Paging readings by seq cursor (DESIGN.md: GET /api/v1/readings?after=&limit=&device=). There
 * is no index but the seq: a device filter scans forward from the cursor.
 */
import type BetterSqlite3 from 'better-sqlite3';
import type { ReadingQuery } from './api.js';
import { decodeValue, qualityOf } from './codec.js';
import type { PointEntry, PointRegistry } from './points.js';
import type { Page, Reading } from './types.js';

const MAX_PAGE = 10_000;

/** A page size within 0..MAX_PAGE. */
export function pageLimit(limit: number): number {
  return Number.isFinite(limit) ? Math.max(0, Math.min(MAX_PAGE, Math.floor(limit))) : MAX_PAGE;
}

type Stmt = BetterSqlite3.Statement<unknown[], unknown>;
type ReadingRow = [seq: number, ts: number, pointId: number, value: number | string | null, flags: number];

export class ReadingPager {
  private readonly points: PointRegistry;
  private readonly after: Stmt;
  private readonly afterDevice: Stmt;
  private readonly pointById: Stmt;

  constructor(db: BetterSqlite3.Database, points: PointRegistry) {
    this.points = points;
    this.after = db.prepare('SELECT seq, ts, point_id, value, flags FROM reading WHERE seq > ? ORDER BY seq LIMIT ?').raw();
    this.afterDevice = db
      .prepare(
        `SELECT seq, ts, point_id, value, flags FROM reading
         WHERE seq > ? AND point_id IN (SELECT id FROM point WHERE device = ?) ORDER BY seq LIMIT ?`,
      )
      .raw();
    this.pointById = db.prepare('SELECT device, point, unit FROM point WHERE id = ?').raw();
  }

  page(q: ReadingQuery, limit: number): Page<Reading> {
    const rows = (q.device === undefined ? this.after.all(q.after, limit) : this.afterDevice.all(q.after, q.device, limit)) as ReadingRow[];
    const items: Reading[] = new Array<Reading>(rows.length);
    for (let i = 0; i < rows.length; i++) {
      const [seq, ts, pointId, value, flags] = rows[i] as ReadingRow;
      const p = this.point(pointId);
      items[i] = {
        seq,
        ts,
        device: p?.device ?? '',
        point: p?.point ?? '',
        value: decodeValue(value, flags),
        unit: p?.unit ?? null,
        quality: qualityOf(flags),
      };
    }
    return { items, next: items.length > 0 ? (items[items.length - 1] as Reading).seq : q.after };
  }

  /** A point another connection (the running gateway, seen by a read-only view) added since we loaded. */
  private point(id: number): PointEntry | undefined {
    const known = this.points.get(id);
    if (known) return known;
    const row = this.pointById.get(id) as [string, string, string | null] | undefined;
    return row ? this.points.add(id, row[0], row[1], row[2]) : undefined;
  }
}
