/**
 * Secrets of the configuration (passwords, tokens, LoRaWAN keys) replaced for printing:
 * `streetbox config --print`, the status page, a log line. The config itself is untouched.
 */
import type { Config } from './schema.js';

export const REDACTED = '[redacted]';

/** Keys whose value is a secret wherever they appear. */
const SECRET_KEYS = new Set(['password', 'passwordHash', 'token', 'credentialSecret', 'appKey', 'nwkKey', 'nwkSKey', 'appSKey']);

export function isSecretKey(key: string): boolean {
  return SECRET_KEYS.has(key);
}

function redactValue(value: unknown, path: readonly string[]): unknown {
  if (Array.isArray(value)) return value.map((v) => redactValue(v, path));
  if (value === null || typeof value !== 'object') return value;
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(value)) {
    // sync.key: the upstream client's private key file
    const secret = isSecretKey(key) || (path.length === 1 && path[0] === 'sync' && key === 'key');
    out[key] = secret && v !== undefined ? REDACTED : redactValue(v, [...path, key]);
  }
  return out;
}

/** A deep copy of the config with every secret replaced by "[redacted]". */
export function redactConfig(config: Config): Config {
  return redactValue(config, []) as Config;
}
