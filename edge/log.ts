import { fstatSync } from 'node:fs';
import { pino, type Logger, type LoggerOptions, type DestinationStream } from 'pino';
import { REDACTED } from './config/redact.js';
import { wantsColor } from './cliStyle.js';
import { LineDestination, PrettyDestination, syslogPriority, type LineSink } from './logFormat.js';
import { StreetboxError } from './errors.js';
import { isoLocal } from './timeFormat.js';

export type { Logger };

/**
 * Whether a field's value never reaches a log line: its name, lower-cased without "-" and "_",
 * names a password, secret, token, key, credential, authorization or cookie ("Authorization",
 * "x-api-key", "privateKey", "AppKey", "accessToken", "passwordHash", "set-cookie", …). This
 * covers every secret of the configuration (config/redact.ts) too.
 */
const SECRET_WORDS = /(passw(or)?d|secret|token|credential|authori[sz]ation|cookie|key$|keys$)/;

function isLogSecret(key: string): boolean {
  return SECRET_WORDS.test(key.toLowerCase().replace(/[-_]/g, ''));
}

/** How deep a log record is searched for secrets; anything deeper is not logged. */
const MAX_DEPTH = 8;
const TOO_DEEP = '[too deep]';
const CIRCULAR = '[circular]';
/** "scheme://user:password@host": the password part of a URL in a string value */
const URL_PASSWORD = /\b([a-z][a-z0-9+.-]*:\/\/[^\s/:@]*):[^\s/@]*@/gi;

/**
 * A log record with every secret-named field, at any depth (inside arrays too), replaced by
 * "[redacted]", and passwords inside URLs blanked. Copies only what it changes: the caller's
 * objects are never modified. Errors go through the `err`/`error` serializers (redactError);
 * other class instances (sockets, buffers, maps) are logged as pino logs them.
 */
export function redactSecrets(record: Record<string, unknown>): Record<string, unknown> {
  return redactDeep(record, 0, new Set()) as Record<string, unknown>;
}

/** pino's error serializer, then the same redaction: an error's own fields can carry secrets. */
function redactError(err: unknown): unknown {
  // the serializer's object has a prototype of its own: its fields, as a plain object
  return redactDeep(err instanceof Error ? { ...pino.stdSerializers.err(err) } : err, 0, new Set());
}

/** `parents`: the objects on the path from the record to here, for cycles (not every object seen: shared ones are redacted each time). */
function redactDeep(value: unknown, depth: number, parents: Set<object>): unknown {
  if (typeof value === 'string') return value.includes('://') ? value.replace(URL_PASSWORD, '$1:' + REDACTED + '@') : value;
  if (value === null || typeof value !== 'object') return value;
  if (depth > MAX_DEPTH) return TOO_DEEP;
  if (parents.has(value)) return CIRCULAR;
  if (!Array.isArray(value)) {
    const proto: unknown = Object.getPrototypeOf(value);
    if (proto !== Object.prototype && proto !== null) return value;
  }
  parents.add(value);
  try {
    if (Array.isArray(value)) {
      let out: unknown[] | null = null;
      for (let i = 0; i < value.length; i++) {
        const v: unknown = value[i];
        const r = redactDeep(v, depth + 1, parents);
        if (r !== v) (out ??= value.slice())[i] = r;
      }
      return out ?? value;
    }
    const obj = value as Record<string, unknown>;
    let out: Record<string, unknown> | null = null;
    for (const key of Object.keys(obj)) {
      const v = obj[key];
      const r = isLogSecret(key) && v !== undefined && v !== null ? REDACTED : redactDeep(v, depth + 1, parents);
      if (r !== v) (out ??= { ...obj })[key] = r;
    }
    return out ?? obj;
  } finally {
    parents.delete(value);
  }
}

export type LogFormat = 'auto' | 'pretty' | 'json';

export interface LogOptions {
  level?: string;
  /** where the lines go; stdout by default */
  destination?: DestinationStream;
  /**
   * auto (default): lines for people when the destination is a TTY, else JSON lines;
   * pretty: always for people (edge/logFormat.ts); json: always JSON lines
   */
  format?: LogFormat;
  /** the gateway's IANA time zone (gateway.timezone), for the time on lines for people; default UTC */
  timezone?: string;
  /**
   * prefix every line with its sd-daemon priority (`<4>`) for journald; default: when the log
   * goes to stdout and stdout is the journal ($JOURNAL_STREAM, see stdoutIsJournal)
   */
  journald?: boolean;
  /** NO_COLOR, FORCE_COLOR and JOURNAL_STREAM are read here; process.env by default */
  env?: NodeJS.ProcessEnv;
}

/** A file's identity as fstat reports it */
export interface FileId {
  dev: number | bigint;
  ino: number | bigint;
}

/**
 * Whether `$JOURNAL_STREAM` ("<dev>:<ino>", decimal) names this file: systemd sets it when it
 * connects stdout or stderr to the journal, and a program compares it with fstat of its own
 * fd to know its output still goes there (systemd.exec(5), "$JOURNAL_STREAM").
 */
export function journalStreamMatches(journalStream: string | undefined, file: FileId | null): boolean {
  if (journalStream === undefined || file === null) return false;
  const m = /^(\d+):(\d+)$/.exec(journalStream.trim());
  return m !== null && BigInt(m[1]!) === BigInt(file.dev) && BigInt(m[2]!) === BigInt(file.ino);
}

/** Whether the process's stdout (fd 1) is connected to the journal. */
export function stdoutIsJournal(env: NodeJS.ProcessEnv = process.env, fstat: () => FileId = () => fstatSync(1, { bigint: true })): boolean {
  if (env.JOURNAL_STREAM === undefined || env.JOURNAL_STREAM === '') return false;
  let file: FileId;
  try {
    file = fstat();
  } catch {
    return false;
  }
  return journalStreamMatches(env.JOURNAL_STREAM, file);
}

/**
 * JSON lines with the sd-daemon(3) priority in front (`<4>{"level":40,…}`): journald takes the
 * prefix off and files the line under that priority. pino hands it the record's level
 * (pino.metadata), so nothing is parsed.
 */
const NO_OBJ = Object.freeze({});

class JournalPrefix extends LineDestination {
  readonly [pino.symbols.needsMetadataGsym] = true as const;
  lastLevel = 30;
  lastObj: object = NO_OBJ;
  lastMsg: string | undefined = undefined;
  lastTime = '';
  lastLogger: Logger | undefined = undefined;

  write(line: string): void {
    // (pino also hands over the record and the logger: let them go, they may be large)
    this.lastObj = NO_OBJ;
    this.lastLogger = undefined;
    this.out.write(`<${syslogPriority(this.lastLevel)}>${line}`);
  }
}

/** stdout as pino writes it by default: SonicBoom on fd 1, or process.stdout when a test runner replaced its write. */
function stdoutSink(): LineSink {
  const tampered = process.stdout.write !== (process.stdout.constructor as { prototype: { write: unknown } }).prototype.write;
  return tampered ? process.stdout : pino.destination({ dest: 1 });
}

export function createLogger(opts: LogOptions = {}): Logger {
  const env = opts.env ?? process.env;
  const options: LoggerOptions = {
    level: opts.level ?? process.env.STREETBOX_LOG_LEVEL ?? 'info',
    // (child logger bindings are not redacted: they are labels the code sets, module and device names)
    formatters: { log: redactSecrets },
    serializers: { err: redactError, error: redactError },
    base: { pid: process.pid },
  };
  const toStdout = opts.destination === undefined;
  const isTTY = toStdout ? process.stdout.isTTY === true : (opts.destination as { isTTY?: unknown }).isTTY === true;
  const format = opts.format ?? 'auto';
  const pretty = format === 'pretty' || (format === 'auto' && isTTY);
  const journald = opts.journald ?? (toStdout && stdoutIsJournal(env));
  // JSON lines as they always were: pino writes them, nothing parses them
  if (!pretty && !journald) return opts.destination ? pino(options, opts.destination) : pino(options);

  const sink: LineSink = opts.destination ?? stdoutSink();
  if (!pretty) return pino(options, new JournalPrefix(sink));
  const zone = opts.timezone ?? 'UTC';
  try {
    isoLocal(0, zone);
  } catch (err) {
    throw new StreetboxError('E_USAGE', `"timezone" must be an IANA time zone like "Europe/Amsterdam", got "${zone}"`, { cause: err });
  }
  return pino(options, new PrettyDestination(sink, { zone, color: wantsColor({ isTTY, env }), journald }));
}

/** A logger that drops everything: for tests and one-shot CLI commands. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
