/**
 * Secrets of the configuration (passwords, tokens, LoRaWAN keys) replaced for printing:
 * `streetbox config --print`, the status page, a log line. The config itself is untouched.
 */
import type { Config } from './schema.js';

export const REDACTED = '[redacted]';

/** Keys whose value is a secret wherever they appear. */
const SECRET_KEYS = new Set(['password', 'passwordHash', 'token', 'credentialSecret', 'appKey', 'nwkKey', 'nwkSKey', 'appSKey', 'genAppKey']);

export function isSecretKey(key: string): boolean {
  return SECRET_KEYS.has(key);
}

/**
 * Whether the value at `path` is a secret or inside one, whatever its type: the one rule for
 * redacting the config and for every error that shows a value (loader.ts).
 */
export function isSecretPath(path: readonly PropertyKey[]): boolean {
  // sync.key: the upstream client's private key file
  return path.some((seg, i) => typeof seg === 'string' && (isSecretKey(seg) || (i === 1 && path[0] === 'sync' && seg === 'key')));
}

function redactValue(value: unknown, path: readonly PropertyKey[]): unknown {
  if (Array.isArray(value)) return value.map((v, i) => redactValue(v, [...path, i]));
  if (value === null || typeof value !== 'object') return value;
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(value)) {
    const at = [...path, key];
    out[key] = isSecretPath(at) && v !== undefined ? REDACTED : redactValue(v, at);
  }
  return out;
}

/** A deep copy of the config with every secret replaced by "[redacted]". */
export function redactConfig(config: Config): Config {
  return redactValue(config, []) as Config;
}
