import { pino, type Logger, type LoggerOptions, type DestinationStream } from 'pino';
import { REDACTED, isSecretKey } from './config/redact.js';

export type { Logger };

/** Keys whose value never reaches a log line, at any depth: the config's secrets and more. */
const LOG_SECRET_KEYS = new Set(['secret', 'key', 'authorization', 'tokens', 'cookie']);
/** How deep a log record is searched for secrets; deeper objects are logged as they are. */
const MAX_DEPTH = 8;

function isLogSecret(key: string): boolean {
  return isSecretKey(key) || LOG_SECRET_KEYS.has(key);
}

/**
 * A log record with every secret-named field, at any depth (inside arrays too), replaced by
 * "[redacted]". Copies only what it changes: the caller's objects are never modified. Errors
 * and class instances (sockets, buffers, maps) are left to pino's serializers.
 */
export function redactSecrets(record: Record<string, unknown>): Record<string, unknown> {
  return redactDeep(record, 0, new WeakSet()) as Record<string, unknown>;
}

function redactDeep(value: unknown, depth: number, seen: WeakSet<object>): unknown {
  if (value === null || typeof value !== 'object' || depth > MAX_DEPTH || seen.has(value)) return value;
  seen.add(value);
  if (Array.isArray(value)) {
    let out: unknown[] | null = null;
    for (let i = 0; i < value.length; i++) {
      const v: unknown = value[i];
      const r = redactDeep(v, depth + 1, seen);
      if (r !== v) (out ??= value.slice())[i] = r;
    }
    return out ?? value;
  }
  const proto: unknown = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) return value;
  const obj = value as Record<string, unknown>;
  let out: Record<string, unknown> | null = null;
  for (const key of Object.keys(obj)) {
    const v = obj[key];
    const r = isLogSecret(key) && v !== undefined && v !== null ? REDACTED : redactDeep(v, depth + 1, seen);
    if (r !== v) (out ??= { ...obj })[key] = r;
  }
  return out ?? obj;
}

export interface LogOptions {
  level?: string;
  destination?: DestinationStream;
}

export function createLogger(opts: LogOptions = {}): Logger {
  const options: LoggerOptions = {
    level: opts.level ?? process.env.STREETBOX_LOG_LEVEL ?? 'info',
    formatters: { log: redactSecrets },
    base: { pid: process.pid },
  };
  return opts.destination ? pino(options, opts.destination) : pino(options);
}

/** A logger that drops everything: for tests and one-shot CLI commands. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
