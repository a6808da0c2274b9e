import { pino, type Logger, type LoggerOptions, type DestinationStream } from 'pino';
import { REDACTED } from './config/redact.js';

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

export interface LogOptions {
  level?: string;
  destination?: DestinationStream;
}

export function createLogger(opts: LogOptions = {}): Logger {
  const options: LoggerOptions = {
    level: opts.level ?? process.env.STREETBOX_LOG_LEVEL ?? 'info',
    // (child logger bindings are not redacted: they are labels the code sets, module and device names)
    formatters: { log: redactSecrets },
    serializers: { err: redactError, error: redactError },
    base: { pid: process.pid },
  };
  return opts.destination ? pino(options, opts.destination) : pino(options);
}

/** A logger that drops everything: for tests and one-shot CLI commands. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
