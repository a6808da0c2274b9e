/**
 * The CLI commands that read the buffer: `status` and `export`. They open the database
 * read-only, so they work beside a running gateway (WAL lets a reader in while it writes).
 * Times for people are ISO 8601 in the gateway's zone (edge/timeFormat.ts); exports keep the
 * epoch ms `ts` and add that `time` beside it.
 */
import { existsSync } from 'node:fs';
import type { Writable } from 'node:stream';
import { readUpstreamBytes, type UpstreamBytes } from '../cloud-sync/dailyBytes.js';
import type { CliIo } from './cliIo.js';
import { styleFor, type Style } from './cliStyle.js';
import type { Config } from './config/schema.js';
import Database from 'better-sqlite3';
import { autonomyText, measured, upstreamText } from './economyText.js';
import type { ConfigVersion } from './reconfig/records.js';
import { ConfigVersions } from './reconfig/versions.js';
import { createProgress } from './progress.js';
import { StreetboxError } from './errors.js';
import { lockHolder } from './pidLock.js';
import { openStoreReadOnly } from './store/index.js';
import type { Reading, StoreStats, StoredEvent } from './store/types.js';
import { isoLocal, zoneOffset } from './timeFormat.js';

/** `outReady` for a real stream: waits for 'drain'; false once the stream failed or closed (EPIPE). */
export function readinessOf(stream: Writable): () => Promise<boolean> {
  let gone = false;
  let watching = false;
  return () => {
    if (!watching) {
      watching = true;
      // the reader went away (`streetbox export | head`): EPIPE is an answer, not a crash
      stream.on('error', () => (gone = true));
      stream.once('close', () => (gone = true));
    }
    if (gone || stream.destroyed) return Promise.resolve(false);
    if (!stream.writableNeedDrain) return Promise.resolve(true);
    return new Promise((done) => {
      const settle = () => {
        stream.off('drain', settle);
        stream.off('close', settle);
        stream.off('error', settle);
        done(!gone && !stream.destroyed);
      };
      stream.once('drain', settle);
      stream.once('close', settle);
      stream.once('error', settle);
    });
  };
}

function openView(config: Config) {
  if (!existsSync(config.storage.path)) {
    throw new StreetboxError('E_NOT_FOUND', `no buffer at ${config.storage.path} (has the gateway run with this configuration?)`);
  }
  return openStoreReadOnly(config.storage.path);
}

const SEVERITY_PAINT: Record<string, (s: Style, text: string) => string> = {
  critical: (s, t) => s.red(t),
  error: (s, t) => s.red(t),
  warning: (s, t) => s.yellow(t),
  info: (s, t) => s.dim(t),
};

/**
 * `streetbox status`, from the file alone (the gateway need not run): whether the gateway runs,
 * the buffer with its offline autonomy at the load its readings show (edge/store/autonomy.ts),
 * the upstream bytes per day as the sync last saved them (cloud-sync/dailyBytes.ts), consumers,
 * devices and recent events.
 */
export function printStatus(config: Config, io: CliIo, json: boolean): void {
  const zone = config.gateway.timezone;
  const pid = lockHolder(`${config.storage.path}.pid`);
  const view = existsSync(config.storage.path) ? openView(config) : null;
  try {
    const stats = view?.stats() ?? null;
    const upstream = view ? upstreamOf(config) : null;
    const configVersion = view ? runningVersionOf(config) : null;
    const consumers = view?.consumers() ?? [];
    const events = view ? lastEvents(view, 10) : [];
    const devices = view ? [...view.latestAll().entries()].map(([id, points]) => ({
      id,
      points: points.size,
      lastSeen: Math.max(...[...points.values()].map((p) => p.ts)),
    })) : [];
    const status = {
      gateway: config.gateway.id,
      timezone: zone,
      running: pid !== null,
      pid,
      storage: config.storage.path,
      // the configuration version that runs (edge/reconfig); null before the first start
      config: configVersion ? { version: configVersion.version, stage: configVersion.stage, source: configVersion.source, principal: configVersion.principal, at: configVersion.at, sha256: configVersion.sha256 } : null,
      store: stats,
      consumers: consumers.map((c) => ({ ...c, lag: stats ? stats.lastSeq - c.ackedSeq : null })),
      devices,
      // bytes per day as the sync last saved them; null when no sync has run on this buffer
      upstream,
      recentEvents: events,
    };
    if (json) {
      io.out(`${JSON.stringify(status, null, 2)}\n`);
      return;
    }
    const s = styleFor({ isTTY: io.outIsTTY });
    const head = (label: string) => s.bold(label.padEnd(13));
    // marks only for a person: piped, the words alone
    const running = `running (pid ${pid})`;
    const state = !s.marks ? (pid !== null ? running : 'not running') : pid !== null ? s.ok(s.green(running)) : s.fail(s.red('not running'));
    const lines = [`${head('gateway')}${status.gateway}: ${state}`];
    if (configVersion) {
      lines.push(`${head('config')}version ${configVersion.version}, ${configVersion.stage} (${configVersion.source}, ${configVersion.principal}, ${isoLocal(configVersion.at, zone)}): streetbox config history`);
    }
    lines.push(`${head('buffer')}${config.storage.path}`);
    if (stats) {
      const pct = stats.maxBytes > 0 ? Math.round((100 * stats.usedBytes) / stats.maxBytes) : 0;
      const used = `${mb(stats.usedBytes)} used of ${mb(stats.maxBytes)} (${pct} %)`;
      lines.push(
        `             ${stats.readings} readings, ${stats.events} events, ${stats.commands} commands; last seq ${stats.lastSeq}`,
        `             ${pct >= 95 ? s.red(used) : pct >= 80 ? s.yellow(used) : used}, ${stats.droppedTotal > 0 ? s.yellow(`${stats.droppedTotal} readings dropped`) : '0 readings dropped'} by the quota`,
        `             ${autonomyLine(stats.autonomy, config.storage.minAutonomyDays, s)}`,
      );
    } else lines.push(`             ${s.dim('(no database yet)')}`);
    if (upstream) lines.push(`${head('upstream')}${upstreamText(upstream)}`);
    else if (config.sync && config.sync.enabled) lines.push(`${head('upstream')}${s.dim('(nothing sent yet)')}`);
    lines.push(`${head('consumers')}${consumers.length === 0 ? s.dim('(none)') : ''}`.trimEnd());
    for (const c of status.consumers) lines.push(`  ${c.name.padEnd(20)} acked ${c.ackedSeq}, ${c.lag ?? '?'} behind`);
    lines.push(`${head('devices')}${devices.length === 0 ? s.dim('(no readings yet)') : ''}`.trimEnd());
    for (const d of devices) lines.push(`  ${d.id.padEnd(20)} ${d.points} points, last stored reading ${isoLocal(d.lastSeen, zone)}`);
    lines.push(s.bold('recent events'));
    for (const e of events) {
      const paint = SEVERITY_PAINT[e.severity] ?? ((_s: Style, t: string) => t);
      lines.push(`  ${isoLocal(e.ts, zone)} ${paint(s, e.severity.padEnd(8))} ${e.kind}${e.device ? ` ${e.device}` : ''}`);
    }
    io.out(`${lines.join('\n')}\n`);
  } finally {
    view?.close();
  }
}

/** The autonomy line, yellow under storage.minAutonomyDays (doctor warns then). */
function autonomyLine(a: StoreStats['autonomy'] | undefined, minDays: number, s: Style): string {
  const text = autonomyText(a);
  if (!measured(a)) return s.dim(text);
  return minDays > 0 && a.days < minDays ? s.yellow(`${text}: under storage.minAutonomyDays (${minDays})`) : text;
}

/** The configuration version the data file marks running; null when it has none (or cannot say). */
function runningVersionOf(config: Config): ConfigVersion | null {
  try {
    const db = new Database(config.storage.path, { readonly: true, fileMustExist: true });
    try {
      return ConfigVersions.readOnly(db).running() ?? null;
    } finally {
      db.close();
    }
  } catch {
    return null;
  }
}

function upstreamOf(config: Config): UpstreamBytes | null {
  try {
    return readUpstreamBytes(config.storage.path, config.gateway.timezone, Date.now());
  } catch {
    // the figures of a file the view could open are a nicety: the rest of the status still shows
    return null;
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
  /** the progress line's clock (tests) */
  clock?: () => number;
}

// `time` last: tools that read a CSV by column position keep working
const READING_COLUMNS = ['seq', 'ts', 'device', 'point', 'value', 'unit', 'quality', 'time'] as const;
const EVENT_COLUMNS = ['seq', 'ts', 'device', 'kind', 'severity', 'detail', 'time'] as const;
const PAGE = 1000;

/** RFC 4180: quote fields holding a comma, quote or line break; double the quotes. */
export function csvField(v: unknown): string {
  if (v === null || v === undefined) return '';
  const s = typeof v === 'object' ? JSON.stringify(v) : String(v);
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}


/**
 * Writes rows after a seq to out, a page at a time, waiting for out to take each page (a
 * slow reader holds the export, not the memory). The buffer is opened at once, so a missing
 * one throws here; the rows follow in the promise.
 */
export function exportData(config: Config, io: CliIo, opts: ExportOptions): Promise<void> {
  const view = openView(config);
  return writeRows(view, config.gateway.timezone, io, opts).finally(() => view.close());
}

/**
 * The `time` of export rows: `isoLocal(ts, zone, { ms: true })`, cheaper for millions of rows.
 * While the offset is a whole number of minutes and the same as at the start of the minute
 * (always, but across a clock change or in old local mean time), the text of the minute is
 * kept and only seconds and milliseconds are put in.
 */
export function exportTime(zone: string): (ts: number) => string {
  const offsetOf = zoneOffset(zone);
  let minute = Number.NaN;
  let offset = Number.NaN;
  let head = ''; // 2026-12-04T13:20
  let tail = ''; // +01:00
  return (ts) => {
    const m = Math.floor(ts / 60_000);
    const o = offsetOf(ts);
    if (m !== minute || o !== offset) {
      if (o % 60_000 !== 0 || offsetOf(m * 60_000) !== o) return isoLocal(ts, zone, { ms: true });
      const text = isoLocal(m * 60_000, zone); // 2026-12-04T13:20:00+01:00
      minute = m;
      offset = o;
      head = text.slice(0, -9);
      tail = text.slice(-6);
    }
    const within = ts - m * 60_000;
    return `${head}:${String(Math.floor(within / 1000)).padStart(2, '0')}.${String(within % 1000).padStart(3, '0')}${tail}`;
  };
}

/** A row as a JSON line, `time` right after `ts` (objects of one shape: JSON.stringify's fast path). */
function jsonLine(item: Reading | StoredEvent, time: string): string {
  if ('point' in item) {
    const r = item;
    return `${JSON.stringify({ seq: r.seq, ts: r.ts, time, device: r.device, point: r.point, value: r.value, unit: r.unit, quality: r.quality })}\n`;
  }
  const e = item;
  return `${JSON.stringify({ seq: e.seq, ts: e.ts, time, device: e.device, kind: e.kind, severity: e.severity, detail: e.detail })}\n`;
}

async function writeRows(view: ReturnType<typeof openStoreReadOnly>, zone: string, io: CliIo, opts: ExportOptions): Promise<void> {
  const columns = opts.events ? EVENT_COLUMNS : READING_COLUMNS;
  // a live count on a terminal's stderr; nothing when stderr is not one (stdout is the data)
  const progress = createProgress(
    { write: io.err, isTTY: io.errIsTTY === true },
    { unit: 'rows', piped: 'quiet', delayMs: 300, ...(opts.clock ? { now: opts.clock } : {}) },
  );
  progress.step(`export ${opts.events ? 'events' : 'readings'}`);
  const timeOf = exportTime(zone);
  if (opts.format === 'csv') io.out(`${columns.join(',')}\n`);
  let after = opts.after;
  let left = opts.limit;
  let written = 0;
  while (left > 0) {
    const limit = Math.min(PAGE, left);
    const q = { after, limit, ...(opts.device !== undefined ? { device: opts.device } : {}) };
    const page = opts.events ? view.events(q) : view.readings(q);
    if (page.items.length === 0) break;
    let chunk = '';
    for (const item of page.items as (Reading | StoredEvent)[]) {
      // `time` beside the epoch ms, with ms: the same instant, readable
      const time = timeOf(item.ts);
      if (opts.format === 'jsonl') chunk += jsonLine(item, time);
      else {
        const row = item as unknown as Record<string, unknown>;
        chunk += `${columns.map((c) => csvField(c === 'time' ? time : row[c])).join(',')}\n`;
      }
    }
    io.out(chunk);
    written += page.items.length;
    progress.update(written);
    if (io.outReady && !(await io.outReady())) {
      throw new StreetboxError('E_COMPONENT', `output closed after ${written} rows (the reader went away)`);
    }
    left -= page.items.length;
    after = page.next;
    if (page.items.length < limit) break;
  }
  progress.end();
}
