/** Reading the `event` table: paging by seq with optional device and kind filters. */
import type BetterSqlite3 from 'better-sqlite3';
import type { EventQuery } from './api.js';
import type { Page, Severity, StoredEvent } from './types.js';

interface EventRow {
  seq: number;
  ts: number;
  device: string | null;
  kind: string;
  severity: string;
  detail: string;
}

/** `kind` may end in `*`: "command.*" matches every kind under command. */
export function queryEvents(db: BetterSqlite3.Database, q: EventQuery, limit: number): Page<StoredEvent> {
  const where = ['seq > ?'];
  const args: unknown[] = [q.after];
  if (q.device !== undefined) {
    where.push('device = ?');
    args.push(q.device);
  }
  if (q.kind !== undefined) {
    if (q.kind.endsWith('*')) {
      where.push('substr(kind, 1, ?) = ?');
      args.push(q.kind.length - 1, q.kind.slice(0, -1));
    } else {
      where.push('kind = ?');
      args.push(q.kind);
    }
  }
  args.push(limit);
  const rows = db.prepare(`SELECT * FROM event WHERE ${where.join(' AND ')} ORDER BY seq LIMIT ?`).all(...args) as EventRow[];
  const items = rows.map(toEvent);
  return { items, next: items.length > 0 ? (items[items.length - 1] as StoredEvent).seq : q.after };
}

function toEvent(r: EventRow): StoredEvent {
  return {
    seq: r.seq,
    ts: r.ts,
    device: r.device,
    kind: r.kind,
    severity: r.severity as Severity,
    detail: JSON.parse(r.detail) as Record<string, unknown>,
  };
}
