/**
 * The CLI commands that read the buffer: `status` and `export`. They open the database
 * read-only, so they work beside a running gateway (WAL lets a reader in while it writes).
 */
import { existsSync } from 'node:fs';
import type { CliIo } from './cli.js';
import type { Config } from './config/schema.js';
import { StreetboxError } from './errors.js';
import { lockHolder } from './pidLock.js';
import { openStoreReadOnly } from './store/index.js';
import type { Reading, StoredEvent } from './store/types.js';

function openView(config: Config) {
  if (!existsSync(config.storage.path)) {
    throw new StreetboxError('E_NOT_FOUND', `no buffer at ${config.storage.path} (has the gateway run with this configuration?)`);
  }
  return openStoreReadOnly(config.storage.path);
}

export function printStatus(config: Config, io: CliIo, json: boolean): void {
  const pid = lockHolder(`${config.storage.path}.pid`);
  const view = existsSync(config.storage.path) ? openView(config) : null;
  try {
    const stats = view?.stats() ?? null;
    const consumers = view?.consumers() ?? [];
    const events = view ? lastEvents(view, 10) : [];
    const devices = view ? [...view.latestAll().entries()].map(([id, points]) => ({
      id,
      points: points.size,
      lastSeen: Math.max(...[...points.values()].map((p) => p.ts)),
    })) : [];
    const status = {
      gateway: config.gateway.id,
      running: pid !== null,
      pid,
      storage: config.storage.path,
      store: stats,
      consumers: consumers.map((c) => ({ ...c, lag: stats ? stats.lastSeq - c.ackedSeq : null })),
      devices,
      recentEvents: events,
    };
    if (json) {
      io.out(`${JSON.stringify(status, null, 2)}\n`);
      return;
    }
    const lines = [
      `gateway      ${status.gateway}: ${pid !== null ? `running (pid ${pid})` : 'not running'}`,
      `buffer       ${config.storage.path}`,
    ];
    if (stats) {
      lines.push(
        `             ${stats.readings} readings, ${stats.events} events, ${stats.commands} commands; last seq ${stats.lastSeq}`,
        `             ${mb(stats.usedBytes)} used of ${mb(stats.maxBytes)} (${Math.round((100 * stats.usedBytes) / stats.maxBytes)} %), ${stats.droppedTotal} readings dropped by the quota`,
      );
    } else lines.push('             (no database yet)');
    lines.push(`consumers    ${consumers.length === 0 ? '(none)' : ''}`);
    for (const c of status.consumers) lines.push(`  ${c.name.padEnd(20)} acked ${c.ackedSeq}, ${c.lag ?? '?'} behind`);
    lines.push(`devices      ${devices.length === 0 ? '(no readings yet)' : ''}`);
    for (const d of devices) lines.push(`  ${d.id.padEnd(20)} ${d.points} points, last reading ${new Date(d.lastSeen).toISOString()}`);
    lines.push('recent events');
    for (const e of events) lines.push(`  ${new Date(e.ts).toISOString()} ${e.severity.padEnd(8)} ${e.kind}${e.device ? ` ${e.device}` : ''}`);
    io.out(`${lines.join('\n')}\n`);
  } finally {
    view?.close();
  }
}

function lastEvents(view: ReturnType<typeof openStoreReadOnly>, n: number): StoredEvent[] {
  // Events are few; walk from the oldest in pages and keep the last n.
  const kept: StoredEvent[] = [];
  let after = 0;
  for (;;) {
    const page = view.events({ after, limit: 1000 });
    kept.push(...page.items);
    if (kept.length > n) kept.splice(0, kept.length - n);
    if (page.items.length < 1000) break;
    after = page.next;
  }
  return kept.reverse();
}

function mb(bytes: number): string {
  return `${(bytes / 1e6).toFixed(1)} MB`;
}

export interface ExportOptions {
  after: number;
  limit: number;
  format: 'jsonl' | 'csv';
  events: boolean;
  device?: string;
}

const READING_COLUMNS = ['seq', 'ts', 'device', 'point', 'value', 'unit', 'quality'] as const;
const EVENT_COLUMNS = ['seq', 'ts', 'device', 'kind', 'severity', 'detail'] as const;

/** RFC 4180: quote fields holding a comma, quote or line break; double the quotes. */
export function csvField(v: unknown): string {
  if (v === null || v === undefined) return '';
  const s = typeof v === 'object' ? JSON.stringify(v) : String(v);
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export function exportData(config: Config, io: CliIo, opts: ExportOptions): void {
  const view = openView(config);
  try {
    const columns = opts.events ? EVENT_COLUMNS : READING_COLUMNS;
    if (opts.format === 'csv') io.out(`${columns.join(',')}\n`);
    let after = opts.after;
    let left = opts.limit;
    while (left > 0) {
      const limit = Math.min(1000, left);
      const q = { after, limit, ...(opts.device !== undefined ? { device: opts.device } : {}) };
      const page = opts.events ? view.events(q) : view.readings(q);
      if (page.items.length === 0) break;
      let chunk = '';
      for (const item of page.items as (Reading | StoredEvent)[]) {
        if (opts.format === 'jsonl') chunk += `${JSON.stringify(item)}\n`;
        else chunk += `${columns.map((c) => csvField((item as unknown as Record<string, unknown>)[c])).join(',')}\n`;
      }
      io.out(chunk);
      left -= page.items.length;
      after = page.next;
      if (page.items.length < limit) break;
    }
  } finally {
    view.close();
  }
}
