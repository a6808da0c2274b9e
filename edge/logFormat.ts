/**
 * Log records for people: one line per record, as a terminal shows them and `streetbox logs`
 * prints them from JSON —
 *
 *   2026-12-04T13:20:13.042+01:00 WARN  modbus/rs485-1/lamp-12 modbus device offline unit=12 err="timed out after 1000 ms"
 *
 * the gateway's local time with its offset, the level, the module/device labels, the message,
 * then the other fields as key=value; an error's stack follows on indented lines (error and
 * fatal). In-process and synchronous, not pino-pretty: pino-pretty writes times in the process's
 * TZ, not the gateway's configured zone (gateway.timezone), adds about 14 packages, and runs
 * as a transport in a worker thread; this is a pino destination of a few lines.
 */
import { makeStyle, type Style } from './cliStyle.js';
import { isoLocal } from './timeFormat.js';

export interface PrettyOptions {
  /** IANA zone of the times shown (the gateway's); default UTC */
  zone?: string;
  /** ANSI colours (decide with wantsColor); default off */
  color?: boolean;
}

/** pino's level numbers by name */
export const LEVEL_VALUES: Readonly<Record<string, number>> = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60 };

/**
 * The sd-daemon(3) priority of a pino level: the `<N>` journald reads at the start of a line
 * (SyslogLevelPrefix=, on by default), so `journalctl -p warning` filters.
 * fatal → 2 (crit), error → 3 (err), warn → 4 (warning), info → 6 (info), debug/trace → 7 (debug).
 */
export function syslogPriority(level: number): number {
  if (level >= 60) return 2;
  if (level >= 50) return 3;
  if (level >= 40) return 4;
  if (level >= 30) return 6;
  return 7;
}

/** Bindings shown as the line's labels, in this order: `supervisor/modbus`, `modbus/rs485-1/lamp-12`. */
const LABELS = ['module', 'component', 'bus', 'device'] as const;
/** Fields every line has or that are shown elsewhere; `gateway` and `pid` are the same on every line. */
const HIDDEN = new Set<string>(['level', 'time', 'msg', 'pid', 'hostname', 'gateway', 'banner']);
/** Error fields shown as `err="message"`, their stack on lines of their own */
const ERROR_KEYS = new Set(['err', 'error']);

/** A pino JSON line as a record, or null for anything else (plain text, a `<6>` prefix, other JSON). */
export function parseRecord(line: string): Record<string, unknown> | null {
  const text = line.trim();
  if (!text.startsWith('{')) return null;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return null;
  const level = (value as { level?: unknown }).level;
  return typeof level === 'number' || (typeof level === 'string' && level in LEVEL_VALUES) ? (value as Record<string, unknown>) : null;
}

/** The record's level as a number (pino writes numbers; a label also works). */
export function recordLevel(record: Record<string, unknown>): number {
  const level = record.level;
  if (typeof level === 'number') return level;
  return typeof level === 'string' ? (LEVEL_VALUES[level] ?? 30) : 30;
}

function levelName(level: number): string {
  if (level >= 60) return 'FATAL';
  if (level >= 50) return 'ERROR';
  if (level >= 40) return 'WARN';
  if (level >= 30) return 'INFO';
  if (level >= 20) return 'DEBUG';
  return 'TRACE';
}

function paintLevel(style: Style, level: number, text: string): string {
  if (level >= 60) return style.bold(style.red(text));
  if (level >= 50) return style.red(text);
  if (level >= 40) return style.yellow(text);
  if (level >= 30) return style.green(text);
  return style.dim(text);
}

const CONTROL = /[\u0000-\u001f\u007f-\u009f]/g;

/** Control characters (a newline, an escape sequence from a device's data) as visible escapes. */
function visible(text: string): string {
  return text.replace(CONTROL, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** A string is quoted when it is empty or holds a space, a quote, "=", "\\" or a control character. */
function needsQuotes(s: string): boolean {
  return s === '' || /[\s"=\\\u0000-\u001f\u007f-\u009f]/.test(s);
}

/** A field's value: strings bare (quoted when needed), objects as compact JSON. */
export function showValue(value: unknown): string {
  if (typeof value === 'string') return needsQuotes(value) ? JSON.stringify(value) : value;
  if (value === undefined) return 'undefined';
  if (typeof value === 'object') return visible(JSON.stringify(value) ?? String(value));
  return String(value);
}

function isErrorLike(value: unknown): value is { message: string; stack?: unknown; type?: unknown; cause?: unknown } & Record<string, unknown> {
  return typeof value === 'object' && value !== null && typeof (value as { message?: unknown }).message === 'string';
}

/** An error as `key="message"` and `key.code=…` fields; its stack (and its causes') as lines. */
function errorParts(key: string, err: Record<string, unknown> & { message: string }, fields: string[], stack: string[], style: Style): void {
  fields.push(`${style.dim(`${key}=`)}${showValue(err.message)}`);
  for (const [k, v] of Object.entries(err)) {
    if (k === 'message' || k === 'stack' || k === 'type' || v === undefined) continue;
    const shown = k === 'cause' && isErrorLike(v) ? v.message : v;
    fields.push(`${style.dim(`${key}.${k}=`)}${showValue(shown)}`);
  }
  let e: unknown = err;
  for (let depth = 0; isErrorLike(e) && depth < 5; depth++) {
    if (typeof e.stack === 'string') {
      const lines = e.stack.split('\n');
      stack.push(...lines.map((l, i) => `${depth > 0 && i === 0 ? 'caused by: ' : ''}${l}`));
    }
    e = e.cause;
  }
}

/** Whether a field is shown as a label rather than as key=value */
function isLabel(key: string, value: unknown): boolean {
  return (LABELS as readonly string[]).includes(key) && (typeof value === 'string' || typeof value === 'number');
}

/** The module/device labels of a record: `modbus/lamp-12`, or '' when it has none. */
export function recordLabels(record: Record<string, unknown>): string {
  const parts: string[] = [];
  for (const key of LABELS) if (isLabel(key, record[key])) parts.push(String(record[key]));
  return visible(parts.join('/'));
}

/** "statusPage" → "status page" */
function humanKey(key: string): string {
  return key.replace(/([a-z0-9])([A-Z])/g, '$1 $2').toLowerCase();
}

/**
 * The fields of a banner record (`banner: true`) as aligned lines, one per field:
 * `status page  http://127.0.0.1:8080/`. Lists are joined with ", ".
 */
export function bannerLines(fields: Record<string, unknown>, style: Style = makeStyle(false)): string[] {
  const entries = Object.entries(fields).filter(([k, v]) => v !== undefined && !HIDDEN.has(k) && !isLabel(k, v));
  const width = Math.max(0, ...entries.map(([k]) => humanKey(k).length));
  return entries.map(([k, v]) => {
    const value = Array.isArray(v) ? (v.length === 0 ? 'none' : v.map((x) => (typeof x === 'string' ? visible(x) : showValue(x))).join(', ')) : typeof v === 'string' ? visible(v) : showValue(v);
    return `${style.dim(humanKey(k).padEnd(width))}  ${value}`;
  });
}

/**
 * One record as the lines a person reads: the record's line, then (for error and fatal) the
 * stacks of its errors, or (for a banner record) one line per field; lines without "\n".
 */
export function formatRecord(record: Record<string, unknown>, opts: PrettyOptions = {}): string[] {
  const style = makeStyle(opts.color === true);
  const level = recordLevel(record);
  const time = typeof record.time === 'number' ? isoLocal(record.time, opts.zone ?? 'UTC', { ms: true }) : String(record.time ?? '-');
  const head = [style.dim(time), paintLevel(style, level, levelName(level).padEnd(5))];
  const labels = recordLabels(record);
  if (labels !== '') head.push(style.cyan(labels));
  if (record.msg !== undefined) head.push(visible(typeof record.msg === 'string' ? record.msg : showValue(record.msg)));

  if (record.banner === true) return [head.join(' '), ...bannerLines(record, style).map((l) => `    ${l}`)];

  const fields: string[] = [];
  const stack: string[] = [];
  for (const [key, value] of Object.entries(record)) {
    if (HIDDEN.has(key) || isLabel(key, value)) continue;
    if (ERROR_KEYS.has(key) && isErrorLike(value)) errorParts(key, value, fields, stack, style);
    else fields.push(`${style.dim(`${key}=`)}${showValue(value)}`);
  }
  const line = fields.length > 0 ? `${head.join(' ')} ${fields.join(' ')}` : head.join(' ');
  return level >= 50 && stack.length > 0 ? [line, ...stack.map((l) => `    ${style.dim(visible(l.trimEnd()))}`)] : [line];
}

/** A log line as people read it ("\n"-terminated): a pino JSON line formatted, anything else unchanged. */
export function prettyLine(line: string, opts: PrettyOptions = {}): string {
  const record = parseRecord(line);
  if (!record) return line.endsWith('\n') ? line : `${line}\n`;
  return `${formatRecord(record, opts).join('\n')}\n`;
}

/** Where a destination writes: a SonicBoom on fd 1, process.stdout, any Writable or `{ write }`. */
export interface LineSink {
  write(text: string): unknown;
  flush?(cb?: (err?: Error | null) => void): unknown;
  flushSync?(): unknown;
  end?(): unknown;
}

export interface PrettyDestinationOptions extends PrettyOptions {
  /** prefix every line (continuation lines too) with the sd-daemon priority `<N>` for journald */
  journald?: boolean;
}

/** A pino destination that writes lines to a sink: flushing and ending are the sink's. */
export abstract class LineDestination {
  constructor(protected readonly out: LineSink) {}

  abstract write(line: string): void;

  flush(cb?: (err?: Error | null) => void): void {
    if (typeof this.out.flush === 'function') this.out.flush(cb);
    else cb?.();
  }

  flushSync(): void {
    this.out.flushSync?.();
  }

  end(): void {
    this.out.end?.();
  }
}

/**
 * A pino destination that writes people's lines: pino hands it each record as one JSON line
 * (already redacted and serialized), it writes the formatted lines to `out`. Synchronous, in
 * the logging thread; only for a terminal (or `--log-format pretty`): JSON mode never parses.
 */
export class PrettyDestination extends LineDestination {
  constructor(
    out: LineSink,
    private readonly opts: PrettyDestinationOptions = {},
  ) {
    super(out);
  }

  write(line: string): void {
    const record = parseRecord(line);
    if (!record) {
      this.out.write(line);
      return;
    }
    const lines = formatRecord(record, this.opts);
    const prefix = this.opts.journald === true ? `<${syslogPriority(recordLevel(record))}>` : '';
    this.out.write(`${prefix}${lines.join(`\n${prefix}`)}\n`);
  }
}
