/** Reading the events (`event`, and `refusal_event` of the refusal share): paging by seq with optional device and kind filters. */
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

/**
 * `kind` may end in `*`: "command.*" matches every kind under command. With `withRefusals`, the
 * events of the refusal share (`refusal_event`, quota.ts) are read too, merged by seq: one
 * sequence, one page, wherever an event is stored.
 */
export function queryEvents(db: BetterSqlite3.Database, q: EventQuery, limit: number, withRefusals = false): Page<StoredEvent> {
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
  const select = (table: string): EventRow[] => db.prepare(`SELECT * FROM ${table} WHERE ${where.join(' AND ')} ORDER BY seq LIMIT ?`).all(...args) as EventRow[];
  const rows = withRefusals ? mergeBySeq(select('event'), select('refusal_event'), limit) : select('event');
  const items = rows.map(toEvent);
  return { items, next: items.length > 0 ? (items[items.length - 1] as StoredEvent).seq : q.after };
}

function mergeBySeq(a: EventRow[], b: EventRow[], limit: number): EventRow[] {
  if (b.length === 0) return a;
  const out: EventRow[] = [];
  let i = 0;
  let j = 0;
  while (out.length < limit && (i < a.length || j < b.length)) {
    const x = a[i];
    const y = b[j];
    if (x !== undefined && (y === undefined || x.seq < y.seq)) {
      out.push(x);
      i++;
    } else if (y !== undefined) {
      out.push(y);
      j++;
    }
  }
  return out;
}

/** A row as the store wrote it: its kind and detail came from a typed NewEvent (eventKinds.ts). */
function toEvent(r: EventRow): StoredEvent {
  return {
    seq: r.seq,
    ts: r.ts,
    device: r.device,
    kind: r.kind,
    severity: r.severity as Severity,
    detail: JSON.parse(r.detail) as unknown,
  } as StoredEvent;
}
