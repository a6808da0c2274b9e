import { pino, type Logger, type LoggerOptions, type DestinationStream } from 'pino';

export type { Logger };

/**
 * Paths redacted by the logger itself, wherever an object with these keys is logged.
 * Secrets (passwords, tokens, LoRaWAN keys) never reach a log line.
 */
const SECRET_KEYS = ['password', 'passwordHash', 'token', 'secret', 'credentialSecret', 'appKey', 'nwkKey', 'nwkSKey', 'appSKey', 'key', 'authorization'];

export const REDACT_PATHS = [
  // two levels down too (a config section's list entry, a detail object inside a log record)
  ...SECRET_KEYS.map((k) => `*.*.${k}`),
  'password',
  'passwordHash',
  'token',
  'tokens',
  'secret',
  'credentialSecret',
  'appKey',
  'nwkKey',
  'nwkSKey',
  'appSKey',
  'key',
  'authorization',
  '*.password',
  '*.passwordHash',
  '*.token',
  '*.secret',
  '*.credentialSecret',
  '*.appKey',
  '*.nwkKey',
  '*.nwkSKey',
  '*.appSKey',
  '*.key',
  '*.authorization',
  'headers.authorization',
  'req.headers.authorization',
];

export interface LogOptions {
  level?: string;
  destination?: DestinationStream;
}

export function createLogger(opts: LogOptions = {}): Logger {
  const options: LoggerOptions = {
    level: opts.level ?? process.env.STREETBOX_LOG_LEVEL ?? 'info',
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    base: { pid: process.pid },
  };
  return opts.destination ? pino(options, opts.destination) : pino(options);
}

/** A logger that drops everything: for tests and one-shot CLI commands. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
